#include "gym/io/hf_dir.h"

#include <cstdlib>

#include "gym/core/error.h"
#include "gym/core/fs.h"

namespace gym::io {

std::filesystem::path hf_hub_cache() {
  if (const char* c = std::getenv("HF_HUB_CACHE"); c && *c) return c;
  if (const char* c = std::getenv("HUGGINGFACE_HUB_CACHE"); c && *c) return c;
  if (const char* h = std::getenv("HF_HOME"); h && *h) return std::filesystem::path(h) / "hub";
  const char* home = std::getenv("HOME");
  return std::filesystem::path(home ? home : "/root") / ".cache" / "huggingface" / "hub";
}

std::filesystem::path resolve_model_dir(const std::string& name_or_path) {
  namespace fs = std::filesystem;
  if (fs::is_directory(name_or_path)) return name_or_path;
  const auto slash = name_or_path.find('/');
  const bool hub_like = slash != std::string::npos && slash > 0 && name_or_path.find('/', slash + 1) == std::string::npos &&
                        name_or_path.rfind(".", 0) != 0;
  if (!hub_like) {
    // A bare name: a model that create_model_preset made in gym's cache, found from any folder.
    const fs::path cached = cache_dir() / "models" / name_or_path;
    if (slash == std::string::npos && !name_or_path.empty() && fs::is_directory(cached)) return cached;
    config_error("model '{}' not found: no such folder, and none in gym's cache ({}) (gym reads local folders, models made by "
                 "create_model_preset, and hub ids already in the Hugging Face cache)",
                 name_or_path, (cache_dir() / "models").string());
  }
  const std::string repo = "models--" + name_or_path.substr(0, slash) + "--" + name_or_path.substr(slash + 1);
  const fs::path root = hf_hub_cache() / repo;
  const fs::path ref = root / "refs" / "main";
  if (fs::exists(ref)) {
    std::string sha = read_file(ref);
    while (!sha.empty() && std::isspace(static_cast<unsigned char>(sha.back()))) sha.pop_back();
    const fs::path snap = root / "snapshots" / sha;
    if (fs::is_directory(snap)) return snap;
    config_error("model '{}': {} names snapshot {} but {} does not exist", name_or_path, ref.string(), sha, snap.string());
  }
  config_error("model '{}' is not a local folder and not in the Hugging Face cache (looked for {}); gym does not download — "
               "fetch it first, e.g. `huggingface-cli download {}`, or pass a local folder",
               name_or_path, ref.string(), name_or_path);
}

}  // namespace gym::io
