#include "gym/recipes/run_state.h"

#include <spdlog/spdlog.h>
#include <cmath>
#include <torch/serialize.h>

#include "gym/checkpoint/checkpoint.h"
#include "gym/checkpoint/output_dir.h"
#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/metrics/plot.h"
#include "gym/ops/ops.h"

namespace gym::recipes {

namespace fs = std::filesystem;

namespace {

nlohmann::json trainer_state_json(const config::TrainConfig& c, const RunState& s, const metrics::TrainerLog& log,
                                  int64_t total_steps) {
  nlohmann::json history = nlohmann::json::array();
  for (const auto& l : log.history()) {
    nlohmann::json h = {{"step", l.value("current_steps", 0)}, {"epoch", l.value("epoch", 0.0)}};
    for (auto it = l.begin(); it != l.end(); ++it)
      if (it->is_number() && it.key() != "current_steps" && it.key() != "total_steps" && it.key() != "percentage")
        h[it.key() == "lr" ? "learning_rate" : it.key()] = *it;
    history.push_back(h);
  }
  return {{"global_step", s.global_step},
          {"epoch", s.epoch},
          {"max_steps", total_steps},
          {"logging_steps", c.output.logging_steps},
          {"save_steps", c.output.save_steps},
          {"train_batch_size", c.training.per_device_train_batch_size},
          {"num_train_epochs", c.training.num_train_epochs},
          {"num_input_tokens_seen", s.tokens_seen},
          {"total_flos", 0},
          {"log_history", history},
          {"best_metric", nullptr},
          {"best_model_checkpoint", nullptr},
          {"is_local_process_zero", true},
          {"is_world_process_zero", true},
          {"gym_data_state", s.data_state},
          {"gym_extra", s.extra}};
}

}  // namespace

fs::path prepare_output_dir(const config::ResolvedConfig& rc) {
  const auto& c = rc.config;
  const fs::path out = c.output.output_dir;
  // Before anything in output_dir is touched: never write into a folder the run reads, never
  // share output_dir with another run.
  checkpoint::check_not_inside_inputs(out, {{"model_name_or_path", c.model.model_name_or_path},
                                            {"adapter_name_or_path", c.model.adapter_name_or_path},
                                            {"dataset_dir", c.data.dataset_dir}});
  checkpoint::lock_output_dir(out);
  const auto plan = checkpoint::plan_start(c.output);
  checkpoint::record_outputs(out, {"gym_config.yaml", "trainer_log.jsonl"});
  write_file_atomic(out / "gym_config.yaml",
                    "# resolved by gym from " + (rc.files.empty() ? std::string("overrides") : rc.files.back().string()) + "\n" +
                        rc.to_yaml());
  return plan.resume_from;
}

void save_checkpoint(const config::ResolvedConfig& rc, TrainModel& tm, const Optimization& opt, const RunState& state,
                     const metrics::TrainerLog& log, int64_t total_steps, const std::vector<torch::Tensor>& rank_rng,
                     const std::vector<torch::Tensor>& rank_device_rng) {
  const auto& c = rc.config;
  const fs::path dir = fs::path(c.output.output_dir) / ("checkpoint-" + std::to_string(state.global_step));
  checkpoint::record_outputs(c.output.output_dir, {dir.filename().string()});
  write_dir_atomic(dir, [&](const fs::path& tmp) {
    save_trained(tm, c, tmp);
    opt.save(tmp);
    torch::serialize::OutputArchive rng;
    rng.write("cpu", checkpoint::cpu_rng_state());
    if (rank_rng.size() > 1) {
      rng.write("world_size", torch::tensor(static_cast<int64_t>(rank_rng.size())));
      for (size_t r = 0; r < rank_rng.size(); ++r) rng.write("cpu_rank_" + std::to_string(r), rank_rng[r]);
    }
    if (tm.device.is_cuda()) {
      rng.write("cuda", ops::default_generator_state(tm.device));
      for (size_t r = 0; rank_device_rng.size() > 1 && r < rank_device_rng.size(); ++r)
        rng.write("cuda_rank_" + std::to_string(r), rank_device_rng[r]);
    }
    save_archive(rng, tmp / "rng_state.pt");
    // trainer_state.json last: list_checkpoints only counts folders that have it.
    write_file_atomic(tmp / "trainer_state.json", trainer_state_json(c, state, log, total_steps).dump(2) + "\n");
  });
  if (c.output.save_total_limit) checkpoint::rotate_checkpoints(c.output.output_dir, *c.output.save_total_limit);
}

RunState load_checkpoint(const fs::path& dir, TrainModel& tm, Optimization& opt, int64_t rank, int64_t world) {
  RunState s = read_run_state(dir / "trainer_state.json");
  load_trained(tm, dir);
  opt.load(dir);
  const auto rng_path = dir / "rng_state.pt";
  if (!fs::exists(rng_path)) config_error("checkpoint '{}' has no rng_state.pt", dir.string());
  try {
    torch::serialize::InputArchive rng;
    rng.load_from(rng_path.string());
    torch::Tensor cpu;
    rng.read("cpu", cpu);
    torch::Tensor saved_world, own;
    const int64_t ckpt_world = rng.try_read("world_size", saved_world) ? saved_world.item<int64_t>() : 1;
    if (ckpt_world == world && world > 1 && rng.try_read("cpu_rank_" + std::to_string(rank), own)) cpu = own;
    if (ckpt_world != world && rank == 0)
      spdlog::warn("{} was written by {} process(es), this run has {}: the data order and batches continue, but random "
                   "streams (dropout) restart from rank 0's state, so the run is not bit-identical to an uninterrupted one",
                   dir.string(), ckpt_world, world);
    checkpoint::set_cpu_rng_state(cpu);
    torch::Tensor cuda;
    if (tm.device.is_cuda() && rng.try_read("cuda", cuda)) {
      if (ckpt_world == world && world > 1) rng.try_read("cuda_rank_" + std::to_string(rank), cuda);
      ops::set_default_generator_state(tm.device, cuda);
    }
  } catch (const c10::Error& e) {
    config_error("{}: unreadable or truncated ({})", rng_path.string(), std::string(e.what_without_backtrace()).substr(0, 160));
  }
  spdlog::info("resumed from {} at step {}", dir.string(), s.global_step);
  return s;
}

// The final files of a run (adapter or model, trainer_state.json, results, plots).
void finish_outputs(const config::ResolvedConfig& rc, TrainModel& tm, const RunState& state, const metrics::TrainerLog& log,
                    int64_t total_steps, double runtime, int64_t samples_seen);

void finish_run(const config::ResolvedConfig& rc, TrainModel& tm, const RunState& state, const metrics::TrainerLog& log,
                int64_t total_steps, double runtime, int64_t samples_seen) {
  const auto& c = rc.config;
  const fs::path out = c.output.output_dir;
  // A run that did not learn anything usable ends with exit 1, and its outputs are not written.
  if (!log.history().empty()) {
    const auto& last = log.history().back();
    if (last.contains("loss") && !(last["loss"].is_number() && std::isfinite(last["loss"].get<double>())))
      runtime_error("the last logged loss (step {}) is not finite: the adapter is not saved; lower learning_rate or check the "
                    "data, then rerun (checkpoints before the divergence are kept)",
                    state.global_step);
    if (last.contains("skipped_steps") && last["skipped_steps"].is_number() &&
        last["skipped_steps"].get<double>() >= static_cast<double>(state.global_step))
      runtime_error("every one of the {} steps was skipped (non-finite loss or gradient): nothing was trained", state.global_step);
  }
  checkpoint::write_recorded(out, [&] { finish_outputs(rc, tm, state, log, total_steps, runtime, samples_seen); });
}

void finish_outputs(const config::ResolvedConfig& rc, TrainModel& tm, const RunState& state, const metrics::TrainerLog& log,
                    int64_t total_steps, double runtime, int64_t samples_seen) {
  const auto& c = rc.config;
  const fs::path out = c.output.output_dir;
  save_trained(tm, c, out);
  double loss_sum = 0;
  int n = 0;
  for (const auto& l : log.history())
    if (l.contains("loss")) loss_sum += l["loss"].get<double>(), ++n;
  nlohmann::json results = {{"epoch", state.epoch},
                            {"total_flos", 0},
                            {"train_loss", n ? loss_sum / n : 0.0},
                            {"train_runtime", runtime},
                            {"train_samples_per_second", runtime > 0 ? samples_seen / runtime : 0.0},
                            {"train_steps_per_second", runtime > 0 ? state.global_step / runtime : 0.0},
                            {"num_input_tokens_seen", state.tokens_seen}};
  write_file_atomic(out / "train_results.json", results.dump(2) + "\n");
  write_file_atomic(out / "all_results.json", results.dump(2) + "\n");
  if (c.output.plot_loss) {
    for (const char* key : {"loss", "reward", "kl", "aux_loss"}) {
      std::vector<double> steps, values;
      for (const auto& l : log.history())
        if (l.contains(key)) steps.push_back(l["current_steps"].get<double>()), values.push_back(l[key].get<double>());
      std::string name = key;
      if (metrics::write_plot_svg(out / ("training_" + name + ".svg"), "training " + name + " of " + out.string(), steps, values))
        spdlog::info("wrote {}", (out / ("training_" + name + ".svg")).string());
    }
  }
  // Last: it marks the run finished (a rerun does not train again), so a write that failed before
  // it (a full disk) leaves a run that the same command completes.
  auto final_state = trainer_state_json(c, state, log, total_steps);
  final_state["gym_finished"] = state.global_step >= total_steps;
  write_file_atomic(out / "trainer_state.json", final_state.dump(2) + "\n");
}

}  // namespace gym::recipes
