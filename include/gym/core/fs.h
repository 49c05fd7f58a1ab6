// File helpers: whole-file reads and atomic writes (temp path + rename).
#pragma once
#include <filesystem>
#include <string>

namespace gym {

namespace fs = std::filesystem;

// Reads a whole file; throws a Config error naming the path when it cannot be read.
std::string read_file(const fs::path& path);

// Writes to "<path>.tmp.<pid>" then renames over path, so readers never see half a file.
void write_file_atomic(const fs::path& path, const std::string& contents);

// Writes a directory atomically: fill(tmp_dir) then rename tmp_dir → dir (replacing dir).
template <typename Fill>
void write_dir_atomic(const fs::path& dir, Fill&& fill);

// The repository's source directory (where models/, configs/, data/ live) when run from a
// build tree, else the current directory.
fs::path source_dir();

// The cache folder for generated models and tokenizers: $GYM_CACHE, else <source>/.cache.
fs::path cache_dir();

}  // namespace gym

#include "gym/core/fs_inl.h"
