#pragma once
#include <unistd.h>

namespace gym {

template <typename Fill>
void write_dir_atomic(const fs::path& dir, Fill&& fill) {
  fs::path tmp = dir;
  tmp += ".tmp." + std::to_string(::getpid());
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  try {
    fill(tmp);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);   // a failed write leaves no temporary folder behind
    throw;
  }
  fs::path old = dir;
  old += ".old." + std::to_string(::getpid());
  if (fs::exists(dir)) fs::rename(dir, old);
  fs::rename(tmp, dir);
  fs::remove_all(old);
}

}  // namespace gym
