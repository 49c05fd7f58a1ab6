// safetensors: a validating, memory-mapped reader and an atomic writer.
// Format facts: ../shared/specs/qwen3.md §5 (u64 header length, JSON header, contiguous buffer).
#pragma once
#include <torch/types.h>

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace gym::io {

struct TensorInfo {
  std::string name;
  std::string dtype;            // safetensors dtype string: "F32", "BF16", "U8", ...
  std::vector<int64_t> shape;
  uint64_t begin = 0, end = 0;  // byte offsets relative to the start of the data buffer
};

// An open, fully validated .safetensors file (mmap'ed; tensors are views or copies of it).
// Construction checks everything the reference implementation checks and throws a
// gym::Error (config kind) naming the file and the problem.
class SafeTensorsFile {
 public:
  explicit SafeTensorsFile(const std::filesystem::path& path);
  ~SafeTensorsFile();
  SafeTensorsFile(const SafeTensorsFile&) = delete;
  SafeTensorsFile& operator=(const SafeTensorsFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return infos_; }   // in header order
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  bool contains(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;  // throws naming the tensor if absent
  // A tensor that owns a copy of the bytes (safe after the file is closed).
  torch::Tensor load(const std::string& name) const;

 private:
  std::filesystem::path path_;
  std::vector<TensorInfo> infos_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
  const uint8_t* data_ = nullptr;   // start of the byte buffer
  void* map_ = nullptr;
  size_t map_size_ = 0;
};

// Writes tensors (contiguous, any supported dtype) to path atomically (temp file + rename),
// header padded to a multiple of 8 with spaces, tensors ordered by name.
void save_safetensors(const std::filesystem::path& path,
                      const std::map<std::string, torch::Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

// All tensors of a checkpoint folder: model.safetensors, or the shards listed in
// model.safetensors.index.json. Tensors are loaded lazily by name through the returned object.
class CheckpointTensors {
 public:
  explicit CheckpointTensors(const std::filesystem::path& model_dir);
  std::vector<std::string> names() const;      // sorted
  bool contains(const std::string& name) const;
  const TensorInfo& info(const std::string& name) const;
  torch::Tensor load(const std::string& name) const;

 private:
  std::vector<std::unique_ptr<SafeTensorsFile>> files_;
  std::map<std::string, const SafeTensorsFile*> owner_;
};

// safetensors dtype string <-> torch dtype; throws for dtypes LibTorch cannot hold.
torch::Dtype dtype_from_safetensors(const std::string& dtype, const std::string& context);
std::string dtype_to_safetensors(torch::Dtype dtype);

}  // namespace gym::io
