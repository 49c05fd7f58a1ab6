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
    std::string model, adapter, out, dtype = "float32";
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("export", "Merge a LoRA adapter into its base and write a full Hugging Face checkpoint");
  cmd->add_option("--model", a->model, "Base model folder or hub id")->required();
  cmd->add_option("--adapter", a->adapter, "PEFT adapter folder")->required();
  cmd->add_option("--out", a->out, "Output folder")->required();
  cmd->add_option("--dtype", a->dtype, "float32 or bfloat16")->check(CLI::IsMember({"float32", "bfloat16"}));
  cmd->callback([a] {
    const auto base_dir = io::resolve_model_dir(a->model);
    auto m = load_model_for_cli(a->model, a->adapter);
    lora::merge(*m);
    const auto dtype = a->dtype == "bfloat16" ? torch::kBFloat16 : torch::kFloat32;
    write_dir_atomic(a->out, [&](const std::filesystem::path& tmp) {
      model::save_model(*m, tmp, dtype);
      for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
        if (std::filesystem::exists(base_dir / f)) std::filesystem::copy_file(base_dir / f, tmp / f);
    });
    std::cout << "merged " << a->adapter << " into " << a->model << " → " << a->out << "\n";
  });
}

}  // namespace gym::cli
