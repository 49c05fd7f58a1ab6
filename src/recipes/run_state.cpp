#include "gym/recipes/run_state.h"

#include <spdlog/spdlog.h>
#include <algorithm>
#include <cmath>
#include <torch/serialize.h>

#include "gym/checkpoint/checkpoint.h"
#include "gym/checkpoint/output_dir.h"
#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/metrics/plot.h"

namespace gym::recipes {

namespace fs = std::filesystem;

namespace {

// HF's TrainerState.stateful_callbacks entry of EarlyStoppingCallback (its counter survives resume).
nlohmann::json early_stopping_callback_json(const config::TrainConfig& c, const RunState& s) {
  if (c.eval.early_stopping_patience <= 0) return nlohmann::json::object();
  return {{"EarlyStoppingCallback",
           {{"args", {{"early_stopping_patience", c.eval.early_stopping_patience}, {"early_stopping_threshold", c.eval.early_stopping_threshold}}},
            {"attributes", {{"early_stopping_patience_counter", s.early_stopping_patience_counter}}}}}};
}

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
          {"best_metric", s.best_metric ? nlohmann::json(*s.best_metric) : nlohmann::json()},
          {"best_global_step", s.best_global_step ? nlohmann::json(s.best_global_step) : nlohmann::json()},
          {"best_model_checkpoint", s.best_model_checkpoint.empty() ? nlohmann::json() : nlohmann::json(s.best_model_checkpoint)},
          {"eval_steps", c.eval.during_training() ? nlohmann::json(c.eval.steps) : nlohmann::json()},
          {"stateful_callbacks", early_stopping_callback_json(c, s)},
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
                     const metrics::TrainerLog& log, int64_t total_steps, const std::vector<torch::Tensor>& rank_rng) {
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
    rng.save_to((tmp / "rng_state.pt").string());
    // trainer_state.json last: list_checkpoints only counts folders that have it.
    write_file_atomic(tmp / "trainer_state.json", trainer_state_json(c, state, log, total_steps).dump(2) + "\n");
  });
  if (c.output.save_total_limit)
    checkpoint::rotate_checkpoints(c.output.output_dir, *c.output.save_total_limit, state.best_model_checkpoint);
}

RunState load_checkpoint(const fs::path& dir, TrainModel& tm, Optimization& opt, int64_t rank, int64_t world) {
  const auto state_path = dir / "trainer_state.json";
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(state_path));
  } catch (const nlohmann::json::parse_error& e) {
    config_error("{}: invalid JSON: {}", state_path.string(), e.what());
  }
  // Every field typed and in range before anything is restored.
  if (!j.is_object()) config_error("{}: expected a JSON object", state_path.string());
  auto count = [&](const char* key, bool required) -> int64_t {
    if (!j.contains(key)) {
      if (required) config_error("{}: missing field '{}'", state_path.string(), key);
      return 0;
    }
    if (!j[key].is_number_integer() || j[key].get<int64_t>() < 0)
      config_error("{}: field '{}' must be a non-negative integer, got {}", state_path.string(), key, j[key].dump());
    return j[key].get<int64_t>();
  };
  RunState s;
  s.global_step = count("global_step", true);
  s.tokens_seen = count("num_input_tokens_seen", false);
  if (j.contains("epoch") && !(j["epoch"].is_number() && j["epoch"].get<double>() >= 0 && std::isfinite(j["epoch"].get<double>())))
    config_error("{}: field 'epoch' must be a non-negative number, got {}", state_path.string(), j["epoch"].dump());
  s.epoch = j.contains("epoch") ? j["epoch"].get<double>() : 0.0;
  for (const char* key : {"gym_data_state", "gym_extra"})
    if (j.contains(key) && !j[key].is_object() && !j[key].is_null())
      config_error("{}: field '{}' must be an object", state_path.string(), key);
  s.data_state = j.value("gym_data_state", nlohmann::json());
  s.extra = j.contains("gym_extra") && j["gym_extra"].is_object() ? j["gym_extra"] : nlohmann::json::object();
  if (j.contains("best_metric") && !j["best_metric"].is_null()) {
    if (!j["best_metric"].is_number()) config_error("{}: field 'best_metric' must be a number or null", state_path.string());
    s.best_metric = j["best_metric"].get<double>();
  }
  if (j.contains("best_global_step") && !j["best_global_step"].is_null()) s.best_global_step = count("best_global_step", false);
  if (j.contains("best_model_checkpoint") && !j["best_model_checkpoint"].is_null()) {
    if (!j["best_model_checkpoint"].is_string()) config_error("{}: field 'best_model_checkpoint' must be a string or null", state_path.string());
    s.best_model_checkpoint = j["best_model_checkpoint"].get<std::string>();
  }
  const auto counter = j.contains("stateful_callbacks") && j["stateful_callbacks"].is_object()
                           ? j["stateful_callbacks"].value("/EarlyStoppingCallback/attributes/early_stopping_patience_counter"_json_pointer, nlohmann::json())
                           : nlohmann::json();
  if (counter.is_number_integer() && counter.get<int64_t>() >= 0) s.early_stopping_patience_counter = counter.get<int64_t>();
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
  // the last training line (evaluation lines carry eval_* metrics only)
  auto train_line = std::find_if(log.history().rbegin(), log.history().rend(), [](const nlohmann::json& l) {
    for (auto it = l.begin(); it != l.end(); ++it)
      if (it.key().rfind("eval_", 0) == 0) return false;
    return true;
  });
  if (train_line != log.history().rend()) {
    const auto& last = *train_line;
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
  auto final_state = trainer_state_json(c, state, log, total_steps);
  final_state["gym_finished"] = state.global_step >= total_steps || state.stopped_early;   // a rerun does not train again
  write_file_atomic(out / "trainer_state.json", final_state.dump(2) + "\n");
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
  if (!state.final_eval.empty()) {   // do_eval: as LLaMA-Factory's trainer.save_metrics("eval", ...)
    nlohmann::json eval = {{"epoch", state.epoch}};
    for (const auto& [k, v] : state.final_eval) eval[k] = v, results[k] = v;
    write_file_atomic(out / "eval_results.json", eval.dump(2) + "\n");
  }
  write_file_atomic(out / "all_results.json", results.dump(2) + "\n");
  if (c.output.plot_loss) {
    for (const char* key : {"loss", "eval_loss", "reward", "eval_reward", "kl", "aux_loss"}) {
      std::vector<double> steps, values;
      for (const auto& l : log.history())
        if (l.contains(key)) steps.push_back(l["current_steps"].get<double>()), values.push_back(l[key].get<double>());
      std::string name = key;
      if (metrics::write_plot_svg(out / ("training_" + name + ".svg"), "training " + name + " of " + out.string(), steps, values))
        spdlog::info("wrote {}", (out / ("training_" + name + ".svg")).string());
    }
  }
}

}  // namespace gym::recipes
