#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "gym/checkpoint/checkpoint.h"
#include "gym/checkpoint/output_dir.h"
#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/metrics/plot.h"
#include "gym/metrics/trainer_log.h"
#include "gym/recipes/schedule.h"

namespace fs = std::filesystem;
using namespace gym;

namespace {
fs::path fresh_dir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("gym_infra_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}
void make_checkpoint(const fs::path& out, int step) {
  fs::create_directories(out / ("checkpoint-" + std::to_string(step)));
  std::ofstream(out / ("checkpoint-" + std::to_string(step)) / "trainer_state.json") << "{}";
}
}  // namespace

TEST(Schedule, MatchesHuggingFaceShapes) {
  using recipes::learning_rate_at;
  EXPECT_DOUBLE_EQ(learning_rate_at("constant", 1.0, 5, 10, 3), 1.0);
  EXPECT_DOUBLE_EQ(learning_rate_at("linear", 1.0, 0, 10, 2), 0.0);
  EXPECT_DOUBLE_EQ(learning_rate_at("linear", 1.0, 1, 10, 2), 0.5);
  EXPECT_DOUBLE_EQ(learning_rate_at("linear", 1.0, 2, 10, 2), 1.0);
  EXPECT_DOUBLE_EQ(learning_rate_at("linear", 1.0, 6, 10, 2), 0.5);
  EXPECT_DOUBLE_EQ(learning_rate_at("linear", 1.0, 10, 10, 2), 0.0);
  EXPECT_NEAR(learning_rate_at("cosine", 2.0, 5, 10, 0), 1.0, 1e-12);   // halfway: cos(π/2) = 0
  EXPECT_NEAR(learning_rate_at("cosine", 2.0, 0, 10, 0), 2.0, 1e-12);
  EXPECT_DOUBLE_EQ(learning_rate_at("constant_with_warmup", 1.0, 1, 10, 4), 0.25);
  EXPECT_EQ(recipes::warmup_steps_for(100, 0, 0.1), 10);
  EXPECT_EQ(recipes::warmup_steps_for(100, 7, 0.1), 7);
  EXPECT_EQ(recipes::warmup_steps_for(15, 0, 0.1), 2);  // ceil(1.5)
}

TEST(Checkpoint, ListsRotatesAndPlansResume) {
  auto out = fresh_dir("ckpt");
  make_checkpoint(out, 10);
  make_checkpoint(out, 2);
  make_checkpoint(out, 30);
  fs::create_directories(out / "checkpoint-40.tmp.123");   // an interrupted write is ignored
  auto all = checkpoint::list_checkpoints(out);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all.front().first, 2);
  EXPECT_EQ(checkpoint::latest_checkpoint(out)->filename(), "checkpoint-30");

  config::OutputArgs o;
  o.output_dir = out.string();
  auto plan = checkpoint::plan_start(o);   // non-empty with checkpoints: resume the latest
  EXPECT_FALSE(plan.fresh);
  EXPECT_EQ(plan.resume_from.filename(), "checkpoint-30");
  o.resume_from_checkpoint = (out / "checkpoint-10").string();
  EXPECT_EQ(checkpoint::plan_start(o).resume_from.filename(), "checkpoint-10");
  o.resume_from_checkpoint = "";

  checkpoint::rotate_checkpoints(out, 2);
  all = checkpoint::list_checkpoints(out);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all.front().first, 10);

  o.overwrite_output_dir = true;
  // Checkpoints gym did not record are someone else's: overwrite refuses to remove them.
  EXPECT_THROW(checkpoint::plan_start(o), Error);
  EXPECT_EQ(checkpoint::list_checkpoints(out).size(), 2u);
  checkpoint::record_outputs(out, {"checkpoint-10", "checkpoint-30", "checkpoint-40.tmp.123"});
  std::ofstream(out / "user_notes.txt") << "keep me";
  EXPECT_TRUE(checkpoint::plan_start(o).fresh);
  EXPECT_TRUE(checkpoint::list_checkpoints(out).empty());
  EXPECT_TRUE(fs::exists(out / "user_notes.txt"));   // only gym's own outputs are removed

  o.overwrite_output_dir = false;                    // non-empty, no checkpoints: refuse to clobber
  try {
    checkpoint::plan_start(o);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 2);
    EXPECT_NE(std::string(e.what()).find("overwrite_output_dir"), std::string::npos);
  }
  o.resume_from_checkpoint = "true";
  EXPECT_THROW(checkpoint::plan_start(o), Error);
}

TEST(Checkpoint, CpuRngStateRoundTrips) {
  torch::manual_seed(3);
  auto state = checkpoint::cpu_rng_state();
  auto a = torch::rand({5});
  checkpoint::set_cpu_rng_state(state);
  auto b = torch::rand({5});
  EXPECT_TRUE(torch::equal(a, b));
}

TEST(Metrics, TrainerLogHasLlamaFactoryFieldsAndResumes) {
  auto out = fresh_dir("log");
  {
    metrics::TrainerLog log(out, 4, true);
    log.log(1, 0.25, {{"loss", 2.5}, {"lr", 1e-3}});
    log.log(2, 0.5, {{"loss", 2.0}, {"lr", 1e-3}, {"nan_is_omitted", std::nan("")}});
    log.log(3, 0.75, {{"loss", 1.5}, {"lr", 1e-3}});
  }
  std::ifstream in(out / "trainer_log.jsonl");
  std::string line;
  std::vector<nlohmann::json> lines;
  while (std::getline(in, line)) lines.push_back(nlohmann::json::parse(line));
  ASSERT_EQ(lines.size(), 3u);
  for (const char* k : {"current_steps", "total_steps", "loss", "lr", "epoch", "percentage", "elapsed_time", "remaining_time"})
    EXPECT_TRUE(lines[1].contains(k)) << k;
  EXPECT_FALSE(lines[1].contains("nan_is_omitted"));
  EXPECT_DOUBLE_EQ(lines[1]["percentage"].get<double>(), 50.0);
  // Resuming from step 2 drops the lines of the interrupted run after it.
  metrics::TrainerLog resumed(out, 4, false, 2);
  EXPECT_EQ(resumed.history().size(), 2u);
  EXPECT_EQ(metrics::format_hms(3725), "1:02:05");
}

// The ETA of a resumed run: only the steps done in this process count towards its pace. A run of
// 100 steps resumed at 90 that has done 5 steps in e seconds has 5 left: about e more seconds
// (counting the 95 steps as done here would say e·5/95).
TEST(Metrics, EtaAfterAResumeCountsOnlyTheRemainingSteps) {
  auto out = fresh_dir("eta");
  metrics::TrainerLog log(out, 100, true, 90);
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  const double remaining = log.remaining_seconds(95), elapsed = log.elapsed_seconds();
  EXPECT_GT(remaining, 0.8 * elapsed);
  EXPECT_LT(remaining, 1.2 * elapsed + 0.01);
  EXPECT_EQ(log.remaining_seconds(100), 0.0);
}

TEST(Metrics, SmoothingAndSvgPlot) {
  auto s = metrics::smooth({1.0, 1.0, 1.0});
  EXPECT_DOUBLE_EQ(s[2], 1.0);
  auto sm = metrics::smooth({0.0, 10.0});
  EXPECT_GT(sm[1], 0.0);
  EXPECT_LT(sm[1], 10.0);   // an EMA, not the raw value
  auto out = fresh_dir("plot");
  EXPECT_FALSE(metrics::write_plot_svg(out / "one.svg", "loss", {1}, {2.0}));
  ASSERT_TRUE(metrics::write_plot_svg(out / "training_loss.svg", "loss", {1, 2, 3}, {3.0, 2.0, 1.5}));
  const std::string svg = read_file(out / "training_loss.svg");
  EXPECT_EQ(svg.rfind("<svg", 0), 0u);
  EXPECT_EQ(std::count(svg.begin(), svg.end(), '\n') > 5, true);
  EXPECT_NE(svg.find("<polyline"), std::string::npos);
}
