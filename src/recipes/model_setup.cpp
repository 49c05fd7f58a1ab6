#include "gym/recipes/model_setup.h"

#include <fmt/ranges.h>
#include <spdlog/spdlog.h>

#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/core/json.h"
#include "gym/io/hf_dir.h"
#include "gym/io/safetensors.h"
#include "gym/lora/adapter.h"
#include "gym/lora/targets.h"
#include "gym/model/create.h"
#include "gym/model/loader.h"

namespace gym::recipes {

namespace fs = std::filesystem;

fs::path resolve_or_create_model(const config::ModelArgs& args) {
  const std::string& name = args.model_name_or_path;
  if (args.create_model_preset.empty() || fs::exists(name)) return io::resolve_model_dir(name);
  const bool bare = name.find('/') == std::string::npos;
  const fs::path dir = bare ? cache_dir() / "models" / name : fs::path(name);
  if (!fs::exists(dir / "model.safetensors")) {
    spdlog::info("creating base model {} (arch {}, preset {}, seed {}, byte tokenizer)", dir.string(), args.create_model_arch,
                 args.create_model_preset, args.create_model_seed);
    try {
      model::create_model(args.create_model_arch, args.create_model_preset, dir, "bytes",
                          static_cast<uint64_t>(args.create_model_seed));
    } catch (const fs::filesystem_error&) {
      if (!fs::exists(dir / "model.safetensors")) throw;   // another process created it at the same time
    }
  }
  return dir;
}

TrainModel setup_model(const config::TrainConfig& c, torch::Device device) {
  TrainModel tm;
  tm.model_dir = resolve_or_create_model(c.model);
  tm.base_name = c.model.model_name_or_path;
  // bf16: the frozen base in bfloat16, adapters and optimizer in float32. A full fine-tune has no
  // frozen base: every weight is trained, so all stay float32 (LLaMA-Factory's
  // cast_trainable_params_to_fp32); AdamW steps on bfloat16 weights mostly round away.
  tm.dtype = c.training.bf16 && c.lora.finetuning_type == "lora" ? torch::kBFloat16 : torch::kFloat32;
  if (c.training.bf16 && c.lora.finetuning_type != "lora")
    spdlog::info("bf16 with finetuning_type {}: the trained weights stay float32", c.lora.finetuning_type);
  tm.tokenizer = tokenizer::Tokenizer::from_dir(tm.model_dir);
  // Training ends every target with the end-of-sequence token and pads with pad (or eos).
  if (tm.tokenizer.eos_id() < 0)
    config_error("{}: tokenizer_config.json's eos_token (default <|im_end|>) is not a token of tokenizer.json; training needs one",
                 tm.model_dir.string());
  if (c.quant.bits == 4 && c.quant.type != "nf4") config_error("quantization_type '{}' is not supported yet (nf4)", c.quant.type);
  model::QuantLoad ql{c.quant.bits, c.quant.blocksize, c.quant.double_quantization};
  tm.model = model::load_model(tm.model_dir, tm.dtype, ql);
  if (tm.tokenizer.vocab_size() > tm.model->config().vocab_size)
    config_error("{}: the tokenizer has {} tokens but config.json's vocab_size is {}: token ids would fall outside the embedding",
                 tm.model_dir.string(), tm.tokenizer.vocab_size(), tm.model->config().vocab_size);
  tm.device = device;
  if (!device.is_cpu()) {
    tm.model->to(device);
    spdlog::info("model on {}", device.str());
  }
  tm.lora = c.lora.finetuning_type == "lora";
  tm.lora_args = c.lora;
  if (tm.lora) {
    torch::manual_seed(static_cast<uint64_t>(c.training.seed));
    auto adapted = lora::inject(*tm.model, c.lora);
    spdlog::info("LoRA r={} alpha={} on {} linear layers", c.lora.rank, c.lora.alpha, adapted.size());
    if (!c.model.adapter_name_or_path.empty()) {
      lora::load_adapter(*tm.model, c.model.adapter_name_or_path, tm.model->config().weight_prefix);
      spdlog::info("continuing adapter {}", c.model.adapter_name_or_path);
    }
  } else {
    for (auto& p : tm.model->parameters()) p.set_requires_grad(true);
  }
  int64_t trainable = 0, total = 0;
  for (auto& p : tm.model->parameters()) {
    total += p.numel();
    if (p.requires_grad()) trainable += p.numel();
  }
  spdlog::info("trainable parameters {} of {} ({:.3f}%)", trainable, total, 100.0 * trainable / std::max<int64_t>(1, total));
  tm.model->train();
  return tm;
}

void save_trained(TrainModel& tm, const config::TrainConfig& c, const fs::path& dir) {
  if (tm.lora) {
    lora::save_adapter(*tm.model, dir, c.lora, tm.base_name, tm.model->config().weight_prefix);
    return;
  }
  for (auto& p : tm.model->parameters())
    if (!torch::isfinite(p).all().item<bool>()) runtime_error("refusing to save: the model holds NaN or infinity");
  model::save_model(*tm.model, dir, tm.dtype, tm.model_dir);
  for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
    if (fs::exists(tm.model_dir / f)) fs::copy_file(tm.model_dir / f, dir / f, fs::copy_options::overwrite_existing);
}

void load_trained(TrainModel& tm, const fs::path& dir) {
  if (tm.lora) {
    // The checkpoint's LoRA must be the run's: a different rank, alpha or scaling is never mixed in.
    const auto cfg_path = dir / "adapter_config.json";
    if (!fs::exists(cfg_path)) config_error("checkpoint '{}' has no adapter_config.json", dir.string());
    auto j = parse_json(read_file(cfg_path), false);
    if (j.is_discarded()) config_error("{}: invalid JSON", cfg_path.string());
    const auto saved = lora::lora_args_from_adapter_config(j, cfg_path.string());
    const auto& run = tm.lora_args;
    if (saved.rank != run.rank || saved.alpha != run.alpha || saved.use_rslora != run.use_rslora)
      config_error("{}: the checkpoint's LoRA (r {}, alpha {}, use_rslora {}) differs from this run's (r {}, alpha {}, use_rslora {}); "
                   "resume with the same LoRA settings, or start afresh with overwrite_output_dir",
                   cfg_path.string(), saved.rank, saved.alpha, saved.use_rslora, run.rank, run.alpha, run.use_rslora);
    lora::load_adapter(*tm.model, dir, tm.model->config().weight_prefix);
    return;
  }
  // A full fine-tune's checkpoint holds every trained parameter, in its shape: a missing or
  // reshaped one would silently keep the base weight or be broadcast into it.
  io::CheckpointTensors tensors(dir);
  torch::NoGradGuard guard;
  for (auto& item : tm.model->named_parameters()) {
    const auto name = tm.model->checkpoint_name(item.key());
    if (!tensors.contains(name)) {
      if (item.value().requires_grad()) config_error("{}: the checkpoint has no tensor '{}', which this run trains", dir.string(), name);
      continue;
    }
    auto t = tensors.load(name);
    if (t.sizes() != item.value().sizes())
      config_error("{}: tensor '{}' has shape [{}] but the model's is [{}]", dir.string(), name, fmt::join(t.sizes(), ", "),
                   fmt::join(item.value().sizes(), ", "));
    item.value().copy_(t.to(item.value().scalar_type()));
  }
}

}  // namespace gym::recipes
