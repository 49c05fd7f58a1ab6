#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <thread>

#include "cli_util.h"
#include "test_util.h"
#include "gym/checkpoint/checkpoint.h"
#include "gym/checkpoint/output_dir.h"
#include "gym/ops/ops.h"
#include "gym/config/config.h"
#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/data/dataset.h"
#include "gym/metrics/plot.h"
#include "gym/metrics/tensorboard.h"
#include "gym/metrics/trainer_log.h"
#include "gym/model/generate.h"
#include "gym/model/score.h"
#include "gym/recipes/model_setup.h"
#include "gym/recipes/optimization.h"
#include "gym/recipes/schedule.h"
#include "gym/rl/rewards.h"

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

TEST(Optimizer, AnotherRunsOptimizerStateIsAConfigError) {
  config::TrainingArgs args;
  args.lr_scheduler_type = "constant";
  auto a = torch::ones({8, 4}).requires_grad_();
  recipes::Optimization opt({{"a.weight", a}}, args, 10);
  (a * a).sum().backward();
  ASSERT_TRUE(opt.step(0, 1.0).applied);
  const auto dir = fresh_dir("optimizer_shapes");
  opt.save(dir);
  auto b = torch::ones({4, 4}).requires_grad_();   // a rank-4 run reading a rank-8 run's state
  recipes::Optimization other({{"a.weight", b}}, args, 10);
  try {
    other.load(dir);
    FAIL() << "loaded";
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 2);
    EXPECT_NE(std::string(e.what()).find("of shape [8, 4] for a parameter of shape [4, 4]"), std::string::npos) << e.what();
  }
}

// PyTorch's AdamW skips a parameter whose .grad is None; gym unsets gradients after each step
// (zero_grad(set_to_none=True), HF's choice) on every LibTorch, so a parameter without a gradient
// in a step (an expert no token reached) neither moves on its momentum nor decays.
TEST(Optimizer, AParameterWithoutAGradientInAStepDoesNotMove) {
  config::TrainingArgs args;
  args.learning_rate = 0.1;
  args.weight_decay = 0.1;
  args.lr_scheduler_type = "constant";
  auto a = torch::ones({3}).requires_grad_(), b = torch::ones({3}).requires_grad_();
  recipes::Optimization opt({{"a.weight", a}, {"b.weight", b}}, args, 10);
  (a * a).sum().add((b * b).sum()).backward();
  ASSERT_TRUE(opt.step(0, 1.0).applied);
  EXPECT_LT(b[0].item<double>(), 0.95);   // the first step moved both
  EXPECT_FALSE(b.grad().defined());
  const auto a1 = a.detach().clone(), b1 = b.detach().clone();
  (a * a).sum().backward();
  ASSERT_TRUE(opt.step(1, 1.0).applied);
  EXPECT_TRUE(torch::equal(b.detach(), b1)) << "b had no gradient in step 2 but moved";
  EXPECT_LT(a[0].item<double>(), a1[0].item<double>() - 0.05);
}

TEST(Checkpoint, ListsRotatesAndPlansResume) {
  auto out = fresh_dir("ckpt");
  make_checkpoint(out, 10);
  make_checkpoint(out, 2);
  make_checkpoint(out, 30);
  checkpoint::record_outputs(out, {"checkpoint-2", "checkpoint-10", "checkpoint-30"});   // gym's own
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

  // Rotation removes the oldest of gym's checkpoints; one the manifest does not list is someone
  // else's and stays.
  make_checkpoint(out, 1);
  checkpoint::rotate_checkpoints(out, 2);
  all = checkpoint::list_checkpoints(out);
  ASSERT_EQ(all.size(), 3u);
  EXPECT_EQ(all[0].first, 1);
  EXPECT_EQ(all[1].first, 10);

  o.overwrite_output_dir = true;
  // Checkpoints gym did not record are someone else's: overwrite refuses to remove them.
  EXPECT_THROW(checkpoint::plan_start(o), Error);
  EXPECT_EQ(checkpoint::list_checkpoints(out).size(), 3u);
  o.overwrite_output_dir = false;   // and resuming there would write beside it: refused too
  EXPECT_THROW(checkpoint::plan_start(o), Error);
  o.overwrite_output_dir = true;
  fs::remove_all(out / "checkpoint-1");
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
  auto state = ops::default_generator_state(torch::kCPU);
  auto a = torch::rand({5});
  ops::set_default_generator_state(torch::kCPU, state);
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

// ---- evaluation during training and report_to tensorboard
// Evaluation during training (eval_strategy, load_best_model_at_end, early stopping, do_eval) and
// report_to tensorboard, checked against independent computations: the eval loss recomputed from
// the saved checkpoints with model::score, the RL eval reward recomputed with greedy generation,
// and the TensorBoard event files decoded by a reader written here (its own bitwise CRC32C).

namespace {
const std::string kTiny = (source_dir() / "configs" / "tiny").string();

// ---- an independent TensorBoard reader: TFRecord framing, CRC32C bit by bit, protobuf fields
uint32_t crc32c_bitwise(const std::string& bytes) {
  uint32_t crc = 0xFFFFFFFFu;
  for (unsigned char b : bytes) {
    crc ^= b;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0x82F63B78u & (0u - (crc & 1u)));
  }
  return ~crc;
}
uint32_t masked(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xA282EAD8u; }
uint64_t read_le(const std::string& s, size_t pos, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(s[pos + static_cast<size_t>(i)])) << (8 * i);
  return v;
}
uint64_t read_varint(const std::string& s, size_t& pos) {
  uint64_t v = 0;
  for (int shift = 0;; shift += 7) {
    const auto b = static_cast<unsigned char>(s.at(pos++));
    v |= static_cast<uint64_t>(b & 0x7F) << shift;
    if (!(b & 0x80)) return v;
  }
}
// field number → raw values (varint / fixed as integers, length-delimited as bytes)
struct Fields {
  std::multimap<int, uint64_t> ints;
  std::multimap<int, std::string> bytes;
};
Fields parse_proto(const std::string& s) {
  Fields f;
  size_t pos = 0;
  while (pos < s.size()) {
    const uint64_t key = read_varint(s, pos);
    const int field = static_cast<int>(key >> 3), wire = static_cast<int>(key & 7);
    if (wire == 0) f.ints.emplace(field, read_varint(s, pos));
    else if (wire == 1) f.ints.emplace(field, read_le(s, pos, 8)), pos += 8;
    else if (wire == 5) f.ints.emplace(field, read_le(s, pos, 4)), pos += 4;
    else if (wire == 2) {
      const auto n = static_cast<size_t>(read_varint(s, pos));
      f.bytes.emplace(field, s.substr(pos, n));
      pos += n;
    } else {
      ADD_FAILURE() << "unexpected wire type " << wire;
      return f;
    }
  }
  return f;
}
struct Event {
  double wall_time = 0;
  int64_t step = 0;
  std::string file_version;
  std::map<std::string, float> scalars;
};
std::vector<Event> read_events(const fs::path& file) {
  const std::string s = read_file(file);
  std::vector<Event> events;
  size_t pos = 0;
  while (pos < s.size()) {
    EXPECT_GE(s.size() - pos, 12u) << file;
    const uint64_t len = read_le(s, pos, 8);
    EXPECT_EQ(read_le(s, pos + 8, 4), masked(crc32c_bitwise(s.substr(pos, 8)))) << "length CRC at " << pos;
    const std::string data = s.substr(pos + 12, static_cast<size_t>(len));
    EXPECT_EQ(read_le(s, pos + 12 + len, 4), masked(crc32c_bitwise(data))) << "data CRC at " << pos;
    pos += 16 + static_cast<size_t>(len);
    // tensorflow.Event: wall_time = 1 (double), step = 2 (int64), file_version = 3, summary = 5
    const Fields e = parse_proto(data);
    Event ev;
    if (auto it = e.ints.find(1); it != e.ints.end()) std::memcpy(&ev.wall_time, &it->second, 8);
    if (auto it = e.ints.find(2); it != e.ints.end()) ev.step = static_cast<int64_t>(it->second);
    if (auto it = e.bytes.find(3); it != e.bytes.end()) ev.file_version = it->second;
    if (auto it = e.bytes.find(5); it != e.bytes.end()) {
      // Summary: repeated Value value = 1; Value: tag = 1, simple_value = 2 (float)
      const Fields summary = parse_proto(it->second);
      for (auto [b, end] = summary.bytes.equal_range(1); b != end; ++b) {
        const Fields value = parse_proto(b->second);
        const auto bits = static_cast<uint32_t>(value.ints.find(2)->second);
        float x;
        std::memcpy(&x, &bits, 4);
        ev.scalars[value.bytes.find(1)->second] = x;
      }
    }
    events.push_back(ev);
  }
  return events;
}
std::vector<fs::path> event_files(const fs::path& dir) {
  std::vector<fs::path> files;
  if (!fs::exists(dir)) return files;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.path().filename().string().rfind("events.out.tfevents.", 0) == 0) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  return files;
}
// The TensorBoard tag of a trainer_log.jsonl key, as HF's rewrite_logs.
std::string tag_of(const std::string& key) {
  if (key.rfind("eval_", 0) == 0) return "eval/" + key.substr(5);
  return "train/" + (key == "lr" ? std::string("learning_rate") : key);
}

config::TrainConfig run_config(const fs::path& out) { return config::load_config(out / "gym_config.yaml", {}).config; }

// The token-mean CE of the eval split under a checkpoint's adapter, one example at a time through
// model::score (no padding, no batching, not the training loss function).
double independent_eval_loss(const config::TrainConfig& c, const fs::path& checkpoint) {
  auto tm = recipes::setup_model(c);
  recipes::load_trained(tm, checkpoint);
  tm.model->eval();
  torch::NoGradGuard ng;
  const auto splits = data::load_datasets(c.data, false);
  data::RenderOptions ro{c.model.template_name, c.model.enable_thinking, c.data.cutoff_len, c.data.train_on_prompt, c.data.mask_history,
                         c.data.default_system};
  double ce = 0, n = 0;
  for (const auto& conv : splits.eval) {
    const auto ex = data::encode_sft(conv, tm.tokenizer, ro);
    const auto len = static_cast<int64_t>(ex.input_ids.size());
    auto r = model::score(*tm.model, torch::tensor(ex.input_ids, torch::kInt64).unsqueeze(0), torch::ones({1, len}, torch::kInt64));
    auto lp = r.logprobs[0].to(torch::kFloat64);
    for (int64_t t = 1; t < len; ++t)
      if (ex.labels[static_cast<size_t>(t)] != -100) ce -= lp[t - 1].item<double>(), n += 1;
  }
  return ce / n;
}

std::vector<std::pair<int64_t, double>> eval_losses(const std::vector<nlohmann::json>& log) {
  std::vector<std::pair<int64_t, double>> v;
  for (const auto& l : log)
    if (l.contains("eval_loss")) v.emplace_back(l["current_steps"].get<int64_t>(), l["eval_loss"].get<double>());
  return v;
}

const std::string kSft = "train " + kTiny + "/sft_tiny.yaml --plot_loss true --save_total_limit null --val_size 24 ";
}  // namespace

TEST(MetricsTensorBoard, EventFileDecodesWithAnIndependentReader) {
  // The writer's CRC32C on the standard check value, then a file read back by the reader above.
  EXPECT_EQ(metrics::crc32c("123456789", 9), 0xE3069283u);
  EXPECT_EQ(crc32c_bitwise("123456789"), 0xE3069283u);
  const auto dir = test::fresh_dir("tb_unit");
  std::string path;
  {
    metrics::EventWriter w(dir);
    path = w.path().string();
    w.add_scalars(3, {{"train/loss", 1.25f}, {"train/learning_rate", 5e-3f}});
    w.add_scalars(300, {{"eval/loss", -0.5f}});
  }
  EXPECT_EQ(fs::path(path).filename().string().rfind("events.out.tfevents.", 0), 0u);
  const auto ev = read_events(path);
  ASSERT_EQ(ev.size(), 3u);
  EXPECT_EQ(ev[0].file_version, "brain.Event:2");
  EXPECT_GT(ev[0].wall_time, 1.6e9);
  EXPECT_EQ(ev[1].step, 3);
  EXPECT_EQ(ev[1].scalars.at("train/loss"), 1.25f);
  EXPECT_EQ(ev[1].scalars.at("train/learning_rate"), 5e-3f);
  EXPECT_EQ(ev[2].step, 300);
  EXPECT_EQ(ev[2].scalars.at("eval/loss"), -0.5f);
  EXPECT_EQ(metrics::tensorboard_tag("lr"), "train/learning_rate");
  EXPECT_EQ(metrics::tensorboard_tag("eval_reward_std"), "eval/reward_std");
  EXPECT_EQ(metrics::tensorboard_tag("rewards/accuracy/mean"), "train/rewards/accuracy/mean");
}

TEST(MetricsTensorBoard, TrainerLogFeedsTheEventFile) {
  const auto dir = test::fresh_dir("tb_log");
  metrics::TrainerLog log(dir, 10, true);
  log.enable_tensorboard(dir / "runs" / "x");
  log.log(1, 0.1, {{"loss", 2.5}, {"lr", 1e-3}, {"grad_norm", 0.75}});
  log.log(1, 0.1, {{"eval_loss", 2.25}, {"eval_runtime", 0.5}});
  const auto files = event_files(dir / "runs");
  ASSERT_EQ(files.size(), 1u);
  const auto ev = read_events(files[0]);
  ASSERT_EQ(ev.size(), 3u);
  EXPECT_EQ(ev[1].scalars.at("train/loss"), 2.5f);
  EXPECT_EQ(ev[1].scalars.at("train/learning_rate"), 1e-3f);
  EXPECT_EQ(ev[1].scalars.at("train/grad_norm"), 0.75f);
  EXPECT_EQ(ev[1].scalars.at("train/epoch"), 0.1f);
  EXPECT_EQ(ev[1].scalars.size(), 4u);
  EXPECT_EQ(ev[2].scalars.at("eval/loss"), 2.25f);
  EXPECT_EQ(ev[2].scalars.at("eval/runtime"), 0.5f);
  EXPECT_EQ(ev[2].step, 1);
}

TEST(DataEval, EvalDatasetAndValSize) {
  config::DataArgs a;
  a.dataset = {"arithmetic_sft"};
  a.dataset_dir = std::string(GYM_SOURCE_DIR) + "/data";
  auto base = data::load_datasets(a, false);
  EXPECT_TRUE(base.eval.empty());
  a.val_size = 24;
  auto split = data::load_datasets(a, false);
  ASSERT_EQ(split.eval.size(), 24u);
  EXPECT_EQ(split.train.size() + 24, base.train.size());
  EXPECT_EQ(split.eval[0].source, base.train[0].source);   // carved from the front of the seeded shuffle
  a.val_size = 0;
  a.eval_dataset = {"alpaca_demo"};
  a.max_samples = 5;
  auto named = data::load_datasets(a, false);
  EXPECT_EQ(named.eval.size(), 5u);
  EXPECT_EQ(named.train.size(), 5u);
  a.eval_dataset = {"no_such_set"};
  try {
    data::load_datasets(a, false);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_EQ(e.exit_code(), 2);
    EXPECT_NE(std::string(e.what()).find("eval_dataset"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("no_such_set"), std::string::npos) << e.what();
  }
}

TEST(ConfigEval, KeysDefaultsAndUnsupportedCombinations) {
  auto expect_error = [](const std::string& yaml, const std::vector<std::string>& overrides, const std::vector<std::string>& fragments) {
    try {
      config::load_config_from_string(yaml, overrides);
      ADD_FAILURE() << "no error for " << yaml;
    } catch (const Error& e) {
      EXPECT_EQ(e.exit_code(), 2);
      for (const auto& f : fragments) EXPECT_NE(std::string(e.what()).find(f), std::string::npos) << e.what() << " lacks " << f;
    }
  };
  const std::string base = "model_name_or_path: m\ndataset: d\n";
  // defaults: HF's eval_steps = logging_steps, metric loss → eval_loss, smaller is better
  auto c = config::load_config_from_string(base, {"--val_size", "0.1", "--eval_strategy", "steps", "--logging_steps", "7",
                                                  "--load_best_model_at_end", "true", "--save_steps", "14"}).config;
  EXPECT_EQ(c.eval.steps, 7);
  EXPECT_EQ(c.eval.metric_for_best_model, "eval_loss");
  EXPECT_FALSE(c.eval.greater_is_better);
  auto rl = config::load_config_from_string(base + "stage: grpo\nnum_generations: 4\nper_device_train_batch_size: 4\n",
                                            {"--val_size", "4", "--eval_strategy", "steps", "--early_stopping_patience", "2"}).config;
  EXPECT_EQ(rl.eval.metric_for_best_model, "eval_reward");
  EXPECT_TRUE(rl.eval.greater_is_better);
  EXPECT_EQ(rl.eval.early_stopping_patience, 2);
  // the TrainingArguments alias, and tensorboard without the "not available" warning
  auto rc = config::load_config_from_string(base, {"--val_size", "3", "--evaluation_strategy", "epoch", "--report_to", "tensorboard"});
  EXPECT_EQ(rc.config.eval.strategy, "epoch");
  for (const auto& w : rc.warnings) EXPECT_EQ(w.find("report_to"), std::string::npos) << w;
  auto wandb = config::load_config_from_string(base, {"--report_to", "wandb"});
  int report_warnings = 0;
  for (const auto& w : wandb.warnings) report_warnings += w.find("report_to 'wandb' is not available") != std::string::npos;
  EXPECT_EQ(report_warnings, 1);
  // errors name the key
  expect_error(base, {"--eval_strategy", "steps"}, {"eval_strategy", "val_size"});
  expect_error(base, {"--do_eval", "true"}, {"do_eval", "eval split"});
  expect_error(base, {"--eval_strategy", "sometimes", "--val_size", "3"}, {"eval_strategy", "sometimes"});
  expect_error(base, {"--val_size", "3", "--eval_dataset", "e"}, {"val_size", "eval_dataset"});
  expect_error(base, {"--val_size", "3", "--eval_strategy", "steps", "--eval_steps", "2", "--save_steps", "5", "--load_best_model_at_end", "true"},
               {"save_steps", "round multiple of the evaluation steps", "found 5", "multiple of 2"});
  expect_error(base, {"--val_size", "3", "--eval_strategy", "epoch", "--load_best_model_at_end", "true"}, {"eval_strategy", "steps"});
  expect_error(base, {"--val_size", "3", "--load_best_model_at_end", "true"}, {"load_best_model_at_end", "eval_strategy"});
  expect_error(base, {"--val_size", "3", "--early_stopping_patience", "2"}, {"early_stopping_patience", "eval_strategy"});
  expect_error(base, {"--val_size", "3", "--eval_strategy", "steps", "--early_stopping_patience", "0"}, {"early_stopping_patience"});
  expect_error(base, {"--val_size", "3", "--eval_strategy", "steps", "--early_stopping_patience", "2", "--early_stopping_threshold", "-1"},
               {"early_stopping_threshold"});
  // the resolved config (gym_config.yaml: every key written out) loads again
  const auto full = config::load_config_from_string(base, {"--val_size", "3", "--eval_strategy", "steps", "--eval_steps", "5", "--save_steps", "10",
                                                           "--load_best_model_at_end", "true", "--early_stopping_patience", "3"});
  const auto again = config::load_config_from_string(full.to_yaml(), {}).config;
  EXPECT_EQ(again.eval.early_stopping_patience, 3);
  EXPECT_EQ(again.eval.metric_for_best_model, "eval_loss");
  EXPECT_EQ(again.eval.steps, 5);
  expect_error(base, {"--val_size", "3", "--eval_strategy", "steps", "--metric_for_best_model", "accuracy"},
               {"metric_for_best_model", "accuracy", "eval_loss"});
  expect_error(base, {"--val_size", "3", "--eval_strategy", "steps", "--per_device_eval_batch_size", "0"}, {"per_device_eval_batch_size"});
}

TEST(SftEval, EvalLossIsTheCheckpointsCrossEntropyAndGoesToTensorBoard) {
  // 40 steps, eval on start and every 10 steps, do_eval at the end; each logged eval_loss equals
  // the CE of the 24 held-out rows recomputed from that step's checkpoint, and every logged value
  // is in the TensorBoard event file.
  const auto out = test::fresh_dir("eval_sft", false);
  auto r = test::run_gym(kSft + "--max_steps 40 --logging_steps 10 --eval_strategy steps --eval_steps 10 --save_steps 10 "
                         "--per_device_eval_batch_size 5 --eval_on_start true --do_eval true --report_to tensorboard --output_dir " +
                         out.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.find("report_to"), std::string::npos) << r.output;
  const auto log = test::read_log(out);
  const auto evals = eval_losses(log);
  ASSERT_EQ(evals.size(), 6u);   // steps 0, 10, 20, 30, 40 and do_eval's at 40
  const std::vector<int64_t> steps = {0, 10, 20, 30, 40, 40};
  for (size_t i = 0; i < evals.size(); ++i) EXPECT_EQ(evals[i].first, steps[i]);
  EXPECT_EQ(evals[4].second, evals[5].second);   // deterministic
  EXPECT_LT(evals[4].second, evals[0].second - 0.5) << "eval loss must fall on the learnable task";
  for (size_t i = 1; i < 4; ++i) EXPECT_LT(evals[i].second, evals[i - 1].second + 0.05);
  const auto c = run_config(out);
  for (int64_t step : {10, 20, 30}) {
    const double mine = independent_eval_loss(c, out / ("checkpoint-" + std::to_string(step)));
    EXPECT_NEAR(evals[static_cast<size_t>(step / 10)].second, mine, 1e-5) << "step " << step;
  }
  EXPECT_NEAR(evals[5].second, independent_eval_loss(c, out), 1e-5);
  // HF's log_history entries and eval_results.json
  const auto state = nlohmann::json::parse(read_file(out / "trainer_state.json"));
  int eval_entries = 0;
  for (const auto& h : state["log_history"])
    if (h.contains("eval_loss")) {
      ++eval_entries;
      for (const char* k : {"eval_runtime", "eval_samples_per_second", "eval_steps_per_second", "epoch", "step"}) EXPECT_TRUE(h.contains(k)) << k;
      EXPECT_FALSE(h.contains("loss"));
    }
  EXPECT_EQ(eval_entries, 6);
  const auto results = nlohmann::json::parse(read_file(out / "eval_results.json"));
  EXPECT_EQ(results["eval_loss"].get<double>(), evals[5].second);
  EXPECT_EQ(nlohmann::json::parse(read_file(out / "all_results.json"))["eval_loss"].get<double>(), evals[5].second);
  EXPECT_TRUE(fs::exists(out / "training_eval_loss.svg"));
  // TensorBoard: one file under runs/<date>_<host>, one event per logged line with its values
  const auto files = event_files(out / "runs");
  ASSERT_EQ(files.size(), 1u);
  const auto events = read_events(files[0]);
  ASSERT_EQ(events.size(), log.size() + 1);
  EXPECT_EQ(events[0].file_version, "brain.Event:2");
  for (size_t i = 0; i < log.size(); ++i) {
    const auto& e = events[i + 1];
    EXPECT_EQ(e.step, log[i]["current_steps"].get<int64_t>());
    size_t numeric = 0;
    for (auto it = log[i].begin(); it != log[i].end(); ++it) {
      if (!it->is_number() || it.key() == "current_steps" || it.key() == "total_steps" || it.key() == "percentage") continue;
      ++numeric;
      ASSERT_TRUE(e.scalars.count(tag_of(it.key()))) << tag_of(it.key()) << " at line " << i;
      EXPECT_EQ(e.scalars.at(tag_of(it.key())), it->get<float>()) << it.key();
    }
    EXPECT_EQ(e.scalars.size(), numeric);
  }
  EXPECT_TRUE(events[2].scalars.count("train/loss"));   // step 10's training line
  EXPECT_TRUE(events[3].scalars.count("eval/loss"));    // then its evaluation
  // the manifest lists runs/, so overwrite_output_dir removes it
  EXPECT_TRUE(checkpoint::manifest_entries(out).count("runs"));
  r = test::run_gym(kSft + "--max_steps 2 --report_to tensorboard --overwrite_output_dir true --output_dir " + out.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(event_files(out / "runs").size(), 1u);
}

TEST(SftEval, LoadBestModelAtEndKeepsTheArgminCheckpoint) {
  // A learning rate high enough to make the eval loss wander: the best checkpoint is the argmin of
  // the logged eval losses, it survives save_total_limit, and the final adapter is its adapter.
  const auto out = test::fresh_dir("eval_best", false);
  auto r = test::run_gym(kSft + "--max_steps 60 --logging_steps 5 --eval_strategy steps --eval_steps 10 --save_steps 10 "
                         "--learning_rate 0.02 --lr_scheduler_type constant --warmup_ratio 0 --load_best_model_at_end true "
                         "--save_total_limit 1 --output_dir " + out.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto evals = eval_losses(test::read_log(out));
  ASSERT_EQ(evals.size(), 6u);
  double best = INFINITY;
  int64_t best_step = 0;
  for (const auto& [step, loss] : evals)
    if (loss < best) best = loss, best_step = step;
  const auto state = nlohmann::json::parse(read_file(out / "trainer_state.json"));
  EXPECT_EQ(state["best_metric"].get<double>(), best);
  EXPECT_EQ(state["best_global_step"].get<int64_t>(), best_step);
  const fs::path best_dir = state["best_model_checkpoint"].get<std::string>();
  std::cout << "eval losses:";
  for (const auto& [step, loss] : evals) std::cout << " " << step << ":" << loss;
  std::cout << "\nbest " << best_step << ", checkpoint " << best_dir << "\n";
  EXPECT_EQ(best_dir.filename().string(), "checkpoint-" + std::to_string(best_step));
  EXPECT_EQ(best_dir.parent_path(), out);
  EXPECT_TRUE(fs::exists(best_dir / "adapter_model.safetensors"));
  EXPECT_TRUE(fs::exists(out / "checkpoint-60"));   // the last checkpoint (written at the last step for load_best_model_at_end)
  EXPECT_EQ(read_file(out / "adapter_model.safetensors"), read_file(best_dir / "adapter_model.safetensors"));
  EXPECT_NEAR(independent_eval_loss(run_config(out), out), best, 1e-5);
}

TEST(SftEval, EarlyStoppingStopsWhereTheLoggedLossesSayIt) {
  // HF's EarlyStoppingCallback replayed on the logged eval losses: the counter resets when a loss
  // beats the best by more than the threshold, else grows; the run stops when it reaches patience.
  const auto out = test::fresh_dir("eval_early", false);
  const std::string args = kSft + "--max_steps 200 --logging_steps 5 --eval_strategy steps --eval_steps 5 --save_steps 1000 "
                                  "--early_stopping_patience 2 --early_stopping_threshold 0.05 --output_dir " + out.string();
  auto r = test::run_gym(args);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto evals = eval_losses(test::read_log(out));
  ASSERT_FALSE(evals.empty());
  double best = INFINITY;
  int counter = 0;
  int64_t predicted = 200;
  for (const auto& [step, loss] : evals) {
    if (std::isinf(best) || (loss < best && best - loss > 0.05)) counter = 0;
    else ++counter;
    best = std::min(best, loss);
    if (counter >= 2) {
      predicted = step;
      break;
    }
  }
  ASSERT_LT(predicted, 200) << "the run never plateaued; raise the threshold";
  EXPECT_EQ(evals.back().first, predicted);
  const auto state = nlohmann::json::parse(read_file(out / "trainer_state.json"));
  EXPECT_EQ(state["global_step"].get<int64_t>(), predicted);
  EXPECT_TRUE(state["gym_finished"].get<bool>());
  EXPECT_EQ(state["stateful_callbacks"]["EarlyStoppingCallback"]["attributes"]["early_stopping_patience_counter"].get<int>(), 2);
  EXPECT_TRUE(fs::exists(out / "adapter_model.safetensors"));
  // the same command does nothing
  const auto lines = test::read_log(out).size();
  r = test::run_gym(args);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(test::read_log(out).size(), lines);
}

TEST(SftEval, KillAndResumeIsBitIdenticalWithEvaluation) {
  // Evaluation every 5 steps with load_best_model_at_end and early stopping bookkeeping: a run
  // killed at step 17 and resumed ends with the same adapter, log values and best checkpoint.
  const std::string common = kSft + "--max_steps 30 --logging_steps 5 --eval_strategy steps --eval_steps 5 --save_steps 10 "
                                    "--load_best_model_at_end true --early_stopping_patience 50 --report_to tensorboard --output_dir ";
  const auto a = test::fresh_dir("eval_resume_a", false), b = test::fresh_dir("eval_resume_b", false);
  auto r = test::run_gym(common + a.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string kill = "GYM_TEST_SIGKILL_AFTER_STEP=17 " + std::string(GYM_BINARY) + " " + common + b.string() + " > /dev/null 2>&1";
  EXPECT_NE(std::system(kill.c_str()), 0);
  r = test::run_gym(common + b.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(read_file(a / "adapter_model.safetensors"), read_file(b / "adapter_model.safetensors"));
  const auto la = test::read_log(a), lb = test::read_log(b);
  ASSERT_EQ(la.size(), lb.size());
  for (size_t i = 0; i < la.size(); ++i)
    for (const char* k : {"loss", "eval_loss", "grad_norm"})
      if (la[i].contains(k)) {
        EXPECT_EQ(la[i][k], lb[i][k]) << k << " line " << i;
      }
  const auto sa = nlohmann::json::parse(read_file(a / "trainer_state.json")), sb = nlohmann::json::parse(read_file(b / "trainer_state.json"));
  EXPECT_EQ(sa["best_metric"], sb["best_metric"]);
  EXPECT_EQ(fs::path(sa["best_model_checkpoint"].get<std::string>()).filename(), fs::path(sb["best_model_checkpoint"].get<std::string>()).filename());
  // a resumed run writes a new event file (as HF); together they hold every logged step
  const auto files = event_files(b / "runs");
  ASSERT_EQ(files.size(), 2u);
  std::set<int64_t> steps;
  for (const auto& f : files)
    for (const auto& e : read_events(f))
      if (!e.scalars.empty()) steps.insert(e.step);
  for (const auto& l : lb) EXPECT_TRUE(steps.count(l["current_steps"].get<int64_t>()));
}

TEST(SftEval, UnknownEvalDatasetIsAConfigError) {
  const auto out = test::fresh_dir("eval_unknown", false);
  auto r = test::run_gym("train " + kTiny + "/sft_tiny.yaml --max_steps 2 --eval_dataset no_such_set --eval_strategy steps --output_dir " +
                         out.string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("eval_dataset"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("no_such_set"), std::string::npos) << r.output;
  // a registered eval_dataset is read as given (here the training set itself, max_samples 40)
  r = test::run_gym("train " + kTiny + "/sft_tiny.yaml --max_steps 4 --eval_dataset arithmetic_sft --max_samples 40 "
                    "--eval_strategy steps --eval_steps 2 --plot_loss false --output_dir " + out.string() + "_named");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(eval_losses(test::read_log(out.string() + "_named")).size(), 2u);
  fs::remove_all(out.string() + "_named");
}

TEST(RlEval, GreedyEvalRewardMatchesAnIndependentRollout) {
  // GRPO with 8 held-out prompts: eval_reward / eval_reward_std at steps 0, 2, 4 equal the mean and
  // std of the accuracy of greedy completions recomputed from the step-2 checkpoint.
  const auto out = test::fresh_dir("eval_rl", false);
  auto r = test::run_gym("train " + kTiny + "/grpo_tiny.yaml --adapter_name_or_path null --max_steps 4 --per_device_train_batch_size 16 "
                         "--logging_steps 2 --save_steps 2 --plot_loss false --val_size 8 --eval_strategy steps --eval_steps 2 "
                         "--eval_on_start true --report_to tensorboard --output_dir " + out.string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::vector<nlohmann::json> evals;
  for (const auto& l : test::read_log(out))
    if (l.contains("eval_reward")) evals.push_back(l);
  ASSERT_EQ(evals.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(evals[i]["current_steps"].get<int64_t>(), static_cast<int64_t>(2 * i));
  // recompute step 2's evaluation
  const auto c = run_config(out);
  auto tm = recipes::setup_model(c);
  recipes::load_trained(tm, out / "checkpoint-2");
  tm.model->eval();
  torch::NoGradGuard ng;
  const auto splits = data::load_datasets(c.data, true);
  ASSERT_EQ(splits.eval.size(), 8u);
  data::RenderOptions ro{c.model.template_name, c.model.enable_thinking, c.data.cutoff_len, false, false, c.data.default_system};
  model::SamplingConfig sc;
  sc.max_new_tokens = c.rl.max_completion_length;
  sc.do_sample = false;
  sc.stop_ids = {tm.tokenizer.eos_id()};
  if (auto e = tm.tokenizer.im_end_id(); e && *e != tm.tokenizer.eos_id()) sc.stop_ids.push_back(*e);
  sc.pad_id = tm.tokenizer.pad_id();
  std::vector<rl::RewardInput> inputs;
  for (const auto& conv : splits.eval) {
    const auto p = data::encode_rl_prompt(conv, tm.tokenizer, ro, c.rl.max_prompt_length);
    const auto n = static_cast<int64_t>(p.prompt_ids.size());
    auto g = model::generate(*tm.model, torch::tensor(p.prompt_ids, torch::kInt64).unsqueeze(0), torch::ones({1, n}, torch::kInt64), sc);
    const int64_t len = g.completion_mask[0].sum().item<int64_t>();
    std::vector<int64_t> ids(g.completion_ids[0].data_ptr<int64_t>(), g.completion_ids[0].data_ptr<int64_t>() + len);
    inputs.push_back({p.prompt_text, tm.tokenizer.decode(ids, true), ids, p.extra});
  }
  const auto scores = rl::score_rewards("accuracy", inputs, {});
  double sum = 0, sq = 0;
  for (double s : scores) sum += s, sq += s * s;
  const double mean = sum / 8, std = std::sqrt(std::max(0.0, (sq - sum * sum / 8) / 7));
  EXPECT_NEAR(evals[1]["eval_reward"].get<double>(), mean, 1e-12);
  EXPECT_NEAR(evals[1]["eval_reward_std"].get<double>(), std, 1e-12);
  EXPECT_NEAR(evals[1]["eval_rewards/accuracy/mean"].get<double>(), mean, 1e-12);
  // and the event file carries eval/reward
  const auto files = event_files(out / "runs");
  ASSERT_EQ(files.size(), 1u);
  bool found = false;
  for (const auto& e : read_events(files[0]))
    if (e.step == 2 && e.scalars.count("eval/reward")) {
      found = true;
      EXPECT_EQ(e.scalars.at("eval/reward"), static_cast<float>(mean));
    }
  EXPECT_TRUE(found);
}
