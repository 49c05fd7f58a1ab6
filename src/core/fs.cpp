#include "gym/core/fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

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
