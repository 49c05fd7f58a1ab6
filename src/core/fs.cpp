#include "gym/core/fs.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

#include "gym/core/error.h"

namespace gym {

namespace {
// Whole-file reads hold the file in memory: larger inputs are refused with a clear line.
constexpr uintmax_t kMaxReadBytes = uintmax_t{8} << 30;
}  // namespace

std::string read_file(const fs::path& path) {
  // stat before open: opening a FIFO would block, a device may never end.
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) config_error("cannot read file '{}': {}", path.string(), std::strerror(errno));
  if (!S_ISREG(st.st_mode))
    config_error("cannot read file '{}': not a regular file ({})", path.string(),
                 S_ISDIR(st.st_mode) ? "a directory" : S_ISFIFO(st.st_mode) ? "a FIFO" : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? "a device" : "a special file");
  if (static_cast<uintmax_t>(st.st_size) > kMaxReadBytes)
    config_error("cannot read file '{}': {} bytes is more than the {} GiB gym reads into memory", path.string(), st.st_size, kMaxReadBytes >> 30);
  std::ifstream in(path, std::ios::binary);
  if (!in) config_error("cannot read file '{}': {}", path.string(), std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) config_error("cannot read file '{}': read error", path.string());
  return ss.str();
}

void write_file_atomic(const fs::path& path, const std::string& contents) {
  write_file_atomic_stream(path, [&](const WriteChunk& write) { write(contents.data(), contents.size()); });
}

void write_file_atomic_stream(const fs::path& path, const std::function<void(const WriteChunk& write)>& produce) {
  std::error_code ec;
  if (path.has_parent_path()) {
    fs::create_directories(path.parent_path(), ec);
    if (ec) runtime_error("cannot create folder '{}': {}", path.parent_path().string(), ec.message());
  }
  fs::path tmp = path;
  tmp += ".tmp." + std::to_string(::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) runtime_error("cannot write file '{}': {}", path.string(), std::strerror(errno));
  int write_errno = 0;
  auto fail = [&](int err, const char* what) {
    ::close(fd);
    ::unlink(tmp.c_str());
    runtime_error("cannot write file '{}': {} ({})", path.string(), std::strerror(err), what);
  };
  const WriteChunk write = [&](const void* data, size_t n) {
    if (write_errno != 0) return false;
    const char* p = static_cast<const char*>(data);
    while (n > 0) {
      const ssize_t k = ::write(fd, p, n);
      if (k < 0) {
        if (errno == EINTR) continue;
        write_errno = errno;
        return false;
      }
      p += k, n -= static_cast<size_t>(k);
    }
    return true;
  };
  try {
    produce(write);
  } catch (...) {
    if (write_errno != 0) fail(write_errno, "write");   // the OS reason, not the producer's echo of it
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  if (write_errno != 0) fail(write_errno, "write");
  if (::fsync(fd) != 0 && errno != EINVAL) fail(errno, "fsync");
  if (::close(fd) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    runtime_error("cannot write file '{}': {} (close)", path.string(), std::strerror(err));
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    runtime_error("cannot write file '{}': {} (rename)", path.string(), std::strerror(err));
  }
}

void remove_stale_dir_temporaries(const fs::path& dir) {
  std::error_code ec;
  const auto parent = dir.has_parent_path() ? dir.parent_path() : fs::path(".");
  const std::string prefix = dir.filename().string() + ".tmp.";
  for (const auto& e : fs::directory_iterator(parent, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind(prefix, 0) != 0) continue;
    std::string pid = name.substr(prefix.size());
    if (pid.rfind("old.", 0) == 0) pid = pid.substr(4);
    if (pid.empty() || pid.size() > 10 || !std::all_of(pid.begin(), pid.end(), [](char c) { return c >= '0' && c <= '9'; })) continue;
    const long n = std::stol(pid);
    if (n == ::getpid() || ::kill(static_cast<pid_t>(n), 0) == 0 || errno != ESRCH) continue;   // a live writer's
    std::error_code rm;
    if (!fs::exists(e.path() / kPartialFolderMarker, rm) && !fs::exists(e.path() / kWholeFolderMarker, rm)) continue;
    fs::remove_all(e.path(), rm);
  }
}

bool path_within(const fs::path& inner, const fs::path& outer) {
  auto i = inner.begin(), o = outer.begin();
  for (; o != outer.end(); ++o, ++i) {
    if (o->empty()) continue;   // trailing separator
    if (i == inner.end() || *i != *o) return false;
  }
  return true;
}

void check_whole_folder_target(const fs::path& dir, const std::vector<std::pair<std::string, fs::path>>& inputs) {
  std::error_code ec;
  const auto out = fs::weakly_canonical(fs::absolute(dir), ec);
  for (const auto& [option, path] : inputs) {
    if (path.empty() || !fs::exists(path, ec)) continue;
    const auto in = fs::weakly_canonical(fs::absolute(path), ec);
    // Replacing `dir` deletes it and what it holds (a new folder inside an input deletes nothing).
    if (path_within(in, out))
      config_error("'{}' {} {} '{}': gym would replace a folder it reads; choose another output folder", dir.string(),
                   out == in ? "is" : "contains", option, path.string());
  }
  if (!fs::exists(fs::symlink_status(dir, ec))) return;
  if (!fs::is_directory(dir, ec)) config_error("'{}' exists and is not a folder; choose another output folder", dir.string());
  if (fs::exists(dir / kWholeFolderMarker, ec)) return;   // a folder an earlier export / create-model wrote
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir, ec)) names.push_back(e.path().filename().string());
  if (ec) runtime_error("cannot list folder '{}': {}", dir.string(), ec.message());
  if (names.empty()) return;
  std::sort(names.begin(), names.end());
  std::string shown;
  for (size_t i = 0; i < names.size() && i < 3; ++i) shown += (i ? ", " : "") + names[i];
  if (names.size() > 3) shown += fmt::format(", ... ({} entries)", names.size());
  config_error("'{}' already holds files gym did not write ({}): gym replaces only a folder it wrote whole; choose a new folder or empty this one",
               dir.string(), shown);
}

void fs_error(const char* what, const fs::path& path, const std::error_code& ec) {
  runtime_error("{} '{}': {}", what, path.string(), ec.message());
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
