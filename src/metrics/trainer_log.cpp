#include "gym/metrics/trainer_log.h"

#include <fmt/format.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>

#include "gym/core/error.h"

namespace gym::metrics {

std::string format_hms(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) seconds = 0;
  const auto s = static_cast<int64_t>(seconds + 0.5);
  return fmt::format("{}:{:02d}:{:02d}", s / 3600, (s / 60) % 60, s % 60);
}

TrainerLog::TrainerLog(const std::filesystem::path& output_dir, int64_t total_steps, bool fresh, int64_t start_step)
    : path_(output_dir / "trainer_log.jsonl"), total_steps_(total_steps), start_step_(start_step),
      start_(std::chrono::steady_clock::now()) {
  std::filesystem::create_directories(output_dir);
  if (!fresh && std::filesystem::exists(path_)) {
    // Keep the lines up to the resumed step; later ones belong to the interrupted run.
    std::ifstream in(path_);
    std::string line;
    while (std::getline(in, line)) {
      if (line.empty()) continue;
      auto j = nlohmann::json::parse(line, nullptr, false);
      if (!j.is_discarded() && j.value("current_steps", int64_t{0}) <= start_step) history_.push_back(j);
    }
  }
  out_.open(path_, std::ios::trunc);
  if (!out_) runtime_error("cannot write {}", path_.string());
  for (const auto& j : history_) out_ << j.dump() << "\n";
  out_.flush();
}

double TrainerLog::elapsed_seconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void TrainerLog::log(int64_t step, double epoch, const std::map<std::string, double>& metrics) {
  const double elapsed = elapsed_seconds();
  const int64_t done = std::max<int64_t>(1, step - start_step_);
  const double remaining = elapsed / done * static_cast<double>(total_steps_ - step);
  nlohmann::json j;
  j["current_steps"] = step;
  j["total_steps"] = total_steps_;
  for (const auto& [k, v] : metrics) {
    if (std::isfinite(v)) j[k] = v;   // null fields are omitted, as in LLaMA-Factory
  }
  j["epoch"] = std::round(epoch * 100.0) / 100.0;
  j["percentage"] = std::round(10000.0 * static_cast<double>(step) / std::max<int64_t>(1, total_steps_)) / 100.0;
  j["elapsed_time"] = format_hms(elapsed);
  j["remaining_time"] = format_hms(remaining);
  out_ << j.dump() << "\n";
  out_.flush();
  if (tensorboard_) {
    std::map<std::string, float> scalars;
    for (auto it = j.begin(); it != j.end(); ++it)
      if (it->is_number() && it.key() != "current_steps" && it.key() != "total_steps" && it.key() != "percentage")
        scalars[tensorboard_tag(it.key())] = it->get<float>();
    tensorboard_->add_scalars(step, scalars);
  }
  history_.push_back(std::move(j));
}

void TrainerLog::enable_tensorboard(const std::filesystem::path& logging_dir) {
  tensorboard_ = std::make_unique<EventWriter>(logging_dir);
}

Progress::Progress(int64_t total_steps) : total_(total_steps), tty_(::isatty(STDERR_FILENO) != 0) {}

void Progress::update(int64_t step, const std::map<std::string, double>& metrics, double elapsed, double remaining) {
  std::string fields;
  for (const char* k : {"loss", "reward", "lr", "tokens_per_second"}) {
    auto it = metrics.find(k);
    if (it == metrics.end()) continue;
    const char* name = std::string(k) == "tokens_per_second" ? "tok/s" : k;
    fields += std::string(k) == "lr" ? fmt::format(" | {} {:.2e}", name, it->second)
                                     : fmt::format(" | {} {:.4g}", name, it->second);
  }
  const double frac = total_ > 0 ? static_cast<double>(step) / static_cast<double>(total_) : 1.0;
  if (tty_) {
    const int width = 24, filled = static_cast<int>(frac * width);
    std::string bar(static_cast<size_t>(filled), '=');
    if (filled < width) bar += '>' + std::string(static_cast<size_t>(width - filled - 1), ' ');
    std::fprintf(stderr, "\r[%s] %lld/%lld %3.0f%%%s | %s<%s  ", bar.c_str(), static_cast<long long>(step),
                 static_cast<long long>(total_), frac * 100.0, fields.c_str(), format_hms(elapsed).c_str(),
                 format_hms(remaining).c_str());
    drawn_ = true;
  } else {
    std::fprintf(stderr, "step %lld/%lld (%.0f%%)%s | elapsed %s | eta %s\n", static_cast<long long>(step),
                 static_cast<long long>(total_), frac * 100.0, fields.c_str(), format_hms(elapsed).c_str(),
                 format_hms(remaining).c_str());
  }
  std::fflush(stderr);
}

void Progress::finish() {
  if (tty_ && drawn_) std::fprintf(stderr, "\n");
}

}  // namespace gym::metrics
