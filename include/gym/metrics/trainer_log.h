// output_dir/trainer_log.jsonl in LLaMA-Factory's format, plus a live progress display.
#pragma once
#include <nlohmann/json.hpp>

#include "gym/metrics/tensorboard.h"

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace gym::metrics {

// "H:MM:SS" as LLaMA-Factory writes elapsed_time / remaining_time.
std::string format_hms(double seconds);

// The lines of a trainer_log.jsonl up to step `up_to` (a line's current_steps, 0 when absent);
// lines that are not JSON objects (a torn last line) are skipped. Empty when the file is missing.
std::vector<nlohmann::json> read_trainer_log(const std::filesystem::path& file, int64_t up_to = INT64_MAX);

class TrainerLog {
 public:
  // fresh = true truncates an existing log (a new run); false appends (a resumed run).
  TrainerLog(const std::filesystem::path& output_dir, int64_t total_steps, bool fresh, int64_t start_step = 0);

  // Writes one line: current_steps, total_steps, loss, lr, epoch, percentage, elapsed_time,
  // remaining_time, throughput (tokens/s), total_tokens and every extra metric given.
  void log(int64_t step, double epoch, const std::map<std::string, double>& metrics);

  // report_to tensorboard: every later line also goes to a new event file in `logging_dir`
  // (numeric fields but current_steps / total_steps / percentage, tagged as HF: train/loss, eval/loss).
  void enable_tensorboard(const std::filesystem::path& logging_dir);
  const EventWriter* tensorboard() const { return tensorboard_.get(); }

  // Every logged line so far in this process and before (read back on resume), for plots.
  const std::vector<nlohmann::json>& history() const { return history_; }
  double elapsed_seconds() const;
  // Seconds left at `step`, from this process's pace: steps resumed from a checkpoint are not
  // counted as done in this run's time.
  double remaining_seconds(int64_t step) const;

 private:
  std::filesystem::path path_;
  std::ofstream out_;
  int64_t total_steps_;
  int64_t start_step_;
  std::chrono::steady_clock::time_point start_;
  std::vector<nlohmann::json> history_;
  std::unique_ptr<EventWriter> tensorboard_;
};

// One line per logged step on a terminal-less stream; an in-place bar with ETA on a terminal.
class Progress {
 public:
  explicit Progress(int64_t total_steps);
  void update(int64_t step, const std::map<std::string, double>& metrics, double elapsed, double remaining);
  // Between logging steps: on a terminal, redraws the bar with the last logged values (no-op otherwise).
  void tick(int64_t step, double elapsed, double remaining);
  void finish();

 private:
  void draw(int64_t step, double elapsed, double remaining);
  std::string fields_;   // " | loss 1.23 | lr ..." of the last update
  int64_t total_;
  bool tty_;
  bool drawn_ = false;
};

}  // namespace gym::metrics
