#include "gym/core/fs.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "gym/core/error.h"

namespace gym {

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) config_error("cannot read file '{}': {}", path.string(), fs::exists(path) ? "permission denied or not a file" : "no such file");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_file_atomic(const fs::path& path, const std::string& contents) {
  if (path.has_parent_path()) fs::create_directories(path.parent_path());
  fs::path tmp = path;
  tmp += ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) runtime_error("cannot write file '{}'", tmp.string());
    out << contents;
    out.flush();
    if (!out) runtime_error("failed writing '{}'", tmp.string());
  }
  fs::rename(tmp, path);
}

fs::path source_dir() {
#ifdef GYM_SOURCE_DIR
  fs::path src = GYM_SOURCE_DIR;
  if (fs::exists(src / "configs")) return src;
#endif
  return fs::current_path();
}

fs::path cache_dir() {
  if (const char* c = std::getenv("GYM_CACHE"); c && *c) return c;
  return source_dir() / ".cache";
}

}  // namespace gym
