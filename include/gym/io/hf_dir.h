// Where a model lives: a local folder, or a hub id in the Hugging Face cache.
#pragma once
#include <filesystem>
#include <string>

namespace gym::io {

// The cache root: $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub.
std::filesystem::path hf_hub_cache();

// A local folder as is; "org/name" → <cache>/models--org--name/snapshots/<refs/main>.
// Throws a config error saying where it looked and how to get the model (gym never downloads).
std::filesystem::path resolve_model_dir(const std::string& name_or_path);

}  // namespace gym::io
