// File helpers: whole-file reads and atomic writes (temp path + rename).
#pragma once
#include <cstddef>
#include <filesystem>
#include <functional>
#include <string>
#include <utility>
#include <vector>

namespace gym {

namespace fs = std::filesystem;

// Reads a whole file; throws a Config error naming the path when it cannot be read.
std::string read_file(const fs::path& path);

// Writes to "<path>.tmp.<pid>" then renames over path, so readers never see half a file.
// A failure (ENOSPC, EIO, ...) is a runtime error naming the path and the OS reason; the temporary
// file is removed and a previous file at path stays as it was.
void write_file_atomic(const fs::path& path, const std::string& contents);

// The same for contents produced piece by piece (LibTorch archives: never held twice in memory):
// produce(write) calls write(data, n), which returns false once a write failed; the OS reason of
// that failure is what the error reports, whatever produce throws afterwards.
using WriteChunk = std::function<bool(const void* data, size_t n)>;
void write_file_atomic_stream(const fs::path& path, const std::function<void(const WriteChunk& write)>& produce);

// Writes a directory atomically: fill(tmp_dir) then rename tmp_dir → dir (replacing dir).
template <typename Fill>
void write_dir_atomic(const fs::path& dir, Fill&& fill);

// A folder that a command writes whole (gym export, gym create-model): write_dir_atomic, plus the
// marker file kWholeFolderMarker written last. gym never destroys what it did not write: an
// existing `dir` is replaced only when it is empty or carries that marker; otherwise, and when
// `dir` is or contains one of `inputs` (option → path; missing paths skipped), a config error names
// it before anything is written or touched.
inline constexpr const char* kWholeFolderMarker = ".gym_folder";
// Inside write_dir_atomic's temporary folder while it is filled (removed before the rename).
inline constexpr const char* kPartialFolderMarker = ".gym_partial";
template <typename Fill>
void write_whole_folder(const fs::path& dir, const std::vector<std::pair<std::string, fs::path>>& inputs, Fill&& fill);
// The checks of write_whole_folder alone.
void check_whole_folder_target(const fs::path& dir, const std::vector<std::pair<std::string, fs::path>>& inputs);

// True when `inner` is `outer` or lies inside it (both absolute and normalised).
bool path_within(const fs::path& inner, const fs::path& outer);

// The repository's source directory (where models/, configs/, data/ live) when run from a
// build tree, else the current directory.
fs::path source_dir();

// The cache folder for generated models and tokenizers: $GYM_CACHE, else <source>/.cache.
fs::path cache_dir();

}  // namespace gym

#include "gym/core/fs_inl.h"
