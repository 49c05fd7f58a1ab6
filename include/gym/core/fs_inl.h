#pragma once
#include <unistd.h>

#include <system_error>

namespace gym {

// A runtime error "<what> '<path>': <OS reason>" (the folder operations of write_dir_atomic).
[[noreturn]] void fs_error(const char* what, const fs::path& path, const std::error_code& ec);

// Removes "<dir>.tmp[.old].<pid>" folders that an earlier write of `dir` left when it was killed
// (the pid no longer runs), when they carry gym's partial or whole-folder marker: a user's folder
// that only looks like one stays.
void remove_stale_dir_temporaries(const fs::path& dir);

template <typename Fill>
void write_dir_atomic(const fs::path& dir_in, Fill&& fill) {
  // "out/" names the folder "out": the temporaries are its siblings, never inside it.
  const fs::path dir = dir_in.has_filename() ? dir_in : dir_in.parent_path();
  remove_stale_dir_temporaries(dir);
  fs::path tmp = dir;
  tmp += ".tmp." + std::to_string(::getpid());
  std::error_code ec;
  fs::remove_all(tmp, ec);
  fs::create_directories(tmp, ec);
  if (ec) fs_error("cannot create folder", tmp, ec);
  try {
    write_file_atomic(tmp / kPartialFolderMarker, "");   // marks it as gym's until the rename
    fill(tmp);
    fs::remove(tmp / kPartialFolderMarker);
  } catch (...) {
    fs::remove_all(tmp, ec);   // a failed write leaves no temporary folder behind
    throw;
  }
  fs::path old = dir;
  old += ".tmp.old." + std::to_string(::getpid());   // ".tmp.": gym's own temporary (output_dir.h)
  if (fs::exists(dir, ec)) {
    fs::rename(dir, old, ec);
    if (ec) {
      const auto err = ec;
      fs::remove_all(tmp, ec);
      fs_error("cannot replace folder", dir, err);
    }
  }
  fs::rename(tmp, dir, ec);
  if (ec) {
    const auto err = ec;
    if (fs::exists(old)) fs::rename(old, dir, ec);   // the previous folder back in place
    fs::remove_all(tmp, ec);
    fs_error("cannot write folder", dir, err);
  }
  fs::remove_all(old, ec);
}

template <typename Fill>
void write_whole_folder(const fs::path& dir, const std::vector<std::pair<std::string, fs::path>>& inputs, Fill&& fill) {
  check_whole_folder_target(dir, inputs);
  write_dir_atomic(dir, [&](const fs::path& tmp) {
    fill(tmp);
    write_file_atomic(tmp / kWholeFolderMarker, "written whole by gym: gym may replace this folder\n");
  });
}

}  // namespace gym
