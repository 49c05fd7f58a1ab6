// gym create-model --arch qwen3|qwen3_moe|qwen3_next|qwen3_omni_moe --preset tiny|small|qwen-like --out DIR [--tokenizer DIR|bytes] [--seed N]
#include <iostream>

#include "cli/commands.h"
#include "gym/model/create.h"
#include "gym/model/family.h"

namespace gym::cli {

void add_create_model_command(CLI::App& app) {
  struct Args {
    std::string arch = "qwen3", preset = "tiny", out, tokenizer = "bytes";
    uint64_t seed = 0;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("create-model", "Write a complete Hugging Face checkpoint folder with random weights");
  cmd->add_option("--arch", a->arch, "A model family: qwen3, qwen3_moe, qwen3_next or qwen3_omni_moe")->check(CLI::IsMember(model::model_family_names()));
  cmd->add_option("--preset", a->preset, "tiny, small or qwen-like")->check(CLI::IsMember({"tiny", "small", "qwen-like"}));
  cmd->add_option("--out", a->out, "Output folder")->required();
  cmd->add_option("--tokenizer", a->tokenizer, "'bytes' or a folder holding tokenizer.json to copy");
  cmd->add_option("--seed", a->seed, "Seed of the random weights");
  cmd->callback([a] {
    model::create_model(a->arch, a->preset, a->out, a->tokenizer, a->seed);
    std::cout << "wrote " << a->arch << " preset " << a->preset << " to " << a->out << "\n";
  });
}

}  // namespace gym::cli
