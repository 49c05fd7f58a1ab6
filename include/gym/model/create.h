// Writing a complete random Hugging Face checkpoint folder (gym create-model, tiny configs).
#pragma once
#include <filesystem>
#include <string>

namespace gym::model {

// config.json, model.safetensors, generation_config.json, tokenizer.json, tokenizer_config.json.
// tokenizer: "bytes" (a 256-byte vocabulary plus ChatML tokens) or a folder to copy from.
// Deterministic in (arch, preset, seed). The folder is written atomically and whole
// (write_whole_folder: an existing `out` that gym did not write, or the tokenizer folder, is refused).
void create_model(const std::string& arch, const std::string& preset, const std::filesystem::path& out,
                  const std::string& tokenizer, uint64_t seed);

}  // namespace gym::model
