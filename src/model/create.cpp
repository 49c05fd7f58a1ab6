#include "gym/model/create.h"

#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/model/family.h"
#include "gym/model/loader.h"
#include "gym/tokenizer/bytes_tokenizer.h"
#include "gym/tokenizer/tokenizer.h"

namespace gym::model {

void create_model(const std::string& arch, const std::string& preset, const std::filesystem::path& out,
                  const std::string& tokenizer, uint64_t seed) {
  ArchConfig cfg = preset_arch(arch, preset);
  const bool bytes = tokenizer == "bytes";
  if (!bytes && !std::filesystem::exists(std::filesystem::path(tokenizer) / "tokenizer.json"))
    config_error("--tokenizer '{}' is neither 'bytes' nor a folder with tokenizer.json", tokenizer);
  std::vector<std::pair<std::string, std::filesystem::path>> inputs;
  if (!bytes) inputs.emplace_back("--tokenizer", tokenizer);
  write_whole_folder(out, inputs, [&](const std::filesystem::path& tmp) {
    if (bytes) tokenizer::write_bytes_tokenizer(tmp);
    else
      for (const char* f : {"tokenizer.json", "tokenizer_config.json"})
        if (std::filesystem::exists(std::filesystem::path(tokenizer) / f))
          std::filesystem::copy_file(std::filesystem::path(tokenizer) / f, tmp / f);
    const auto tok = tokenizer::Tokenizer::from_dir(tmp);
    if (tok.vocab_size() > cfg.vocab_size)
      config_error("the tokenizer has {} tokens but preset '{}' has vocab_size {}; use a larger preset", tok.vocab_size(),
                   preset, cfg.vocab_size);
    cfg.eos_token_ids = {tok.eos_id()};
    cfg.pad_token_id = tok.pad_id();
    auto m = build_model(cfg, torch::TensorOptions().dtype(torch::kFloat32));
    init_random_weights(*m, seed);
    save_model(*m, tmp, torch::kFloat32);
  });
}

}  // namespace gym::model
