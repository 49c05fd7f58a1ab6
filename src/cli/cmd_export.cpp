// gym export --model DIR --adapter DIR --out DIR: merge a LoRA adapter into a full HF checkpoint.
#include <iostream>

#include "cli/commands.h"
#include "cli/model_args.h"
#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/io/hf_dir.h"
#include "gym/lora/adapter.h"
#include "gym/model/loader.h"

namespace gym::cli {

void add_export_command(CLI::App& app) {
  struct Args {
    std::string model, adapter, out, dtype = "float32", quantize;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("export", "Merge a LoRA adapter into its base and write a full Hugging Face checkpoint");
  cmd->add_option("--model", a->model, "Base model folder or hub id")->required();
  cmd->add_option("--adapter", a->adapter, "PEFT adapter folder (optional with --quantize)");
  cmd->add_option("--quantize", a->quantize, "nf4: write bitsandbytes' 4-bit format (double quant, block 64)")->check(CLI::IsMember({"nf4"}));
  cmd->add_option("--out", a->out, "Output folder")->required();
  cmd->add_option("--dtype", a->dtype, "float32 or bfloat16")->check(CLI::IsMember({"float32", "bfloat16"}));
  cmd->callback([a] {
    const auto base_dir = io::resolve_model_dir(a->model);
    if (a->adapter.empty() && a->quantize.empty()) config_error("gym export needs --adapter (to merge) or --quantize nf4");
    const std::vector<std::pair<std::string, std::filesystem::path>> inputs = {{"--model", base_dir}, {"--adapter", a->adapter}};
    check_whole_folder_target(a->out, inputs);   // before the load: a refusal costs nothing
    auto m = load_model_for_cli(a->model, a->adapter);
    if (!a->adapter.empty()) lora::merge(*m);
    const auto dtype = a->dtype == "bfloat16" ? torch::kBFloat16 : torch::kFloat32;
    write_whole_folder(a->out, inputs, [&](const std::filesystem::path& tmp) {
      // Tensors that are not the text model's (MTP, audio/vision towers, talker) pass through unchanged.
      if (a->quantize.empty()) model::save_model(*m, tmp, dtype, base_dir);
      else model::save_model_bnb4(*m, tmp, dtype, base_dir);
      for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
        if (std::filesystem::exists(base_dir / f)) std::filesystem::copy_file(base_dir / f, tmp / f);
    });
    std::cout << "exported " << a->model << (a->adapter.empty() ? "" : " + " + a->adapter) << (a->quantize.empty() ? "" : " as nf4")
              << " → " << a->out << "\n";
  });
}

}  // namespace gym::cli
