// safetensors reader (mmap + every check of the reference implementation) and atomic writer.
#include "gym/io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <fstream>

#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/core/json.h"

namespace gym::io {

namespace {

constexpr uint64_t kMaxHeader = 100000000;  // safetensors' own limit

struct DtypeInfo {
  const char* name;
  int bits;
  std::optional<torch::Dtype> torch_dtype;
};

const std::vector<DtypeInfo>& dtype_table() {
  static const std::vector<DtypeInfo> table = {
      {"BOOL", 8, torch::kBool},      {"U8", 8, torch::kUInt8},       {"I8", 8, torch::kInt8},
      {"F8_E5M2", 8, std::nullopt},   {"F8_E4M3", 8, std::nullopt},   {"F8_E8M0", 8, std::nullopt},
      {"F8_E4M3FNUZ", 8, std::nullopt}, {"F8_E5M2FNUZ", 8, std::nullopt},
      {"I16", 16, torch::kInt16},     {"U16", 16, std::nullopt},      {"F16", 16, torch::kFloat16},
      {"BF16", 16, torch::kBFloat16}, {"I32", 32, torch::kInt32},     {"U32", 32, std::nullopt},
      {"F32", 32, torch::kFloat32},   {"I64", 64, torch::kInt64},     {"U64", 64, std::nullopt},
      {"F64", 64, torch::kFloat64},   {"C64", 64, torch::kComplexFloat}, {"F4", 4, std::nullopt},
      {"F6_E2M3", 6, std::nullopt},   {"F6_E3M2", 6, std::nullopt},
  };
  return table;
}

const DtypeInfo* find_dtype(const std::string& name) {
  for (const auto& d : dtype_table())
    if (name == d.name) return &d;
  return nullptr;
}

}  // namespace

torch::Dtype dtype_from_safetensors(const std::string& dtype, const std::string& context) {
  const DtypeInfo* d = find_dtype(dtype);
  if (!d) config_error("{}: unknown safetensors dtype '{}'", context, dtype);
  if (!d->torch_dtype) config_error("{}: dtype {} cannot be loaded by this LibTorch", context, dtype);
  return *d->torch_dtype;
}

std::string dtype_to_safetensors(torch::Dtype dtype) {
  for (const auto& d : dtype_table())
    if (d.torch_dtype && *d.torch_dtype == dtype) return d.name;
  runtime_error("dtype {} cannot be written to safetensors", c10::toString(dtype));
}

SafeTensorsFile::SafeTensorsFile(const std::filesystem::path& path) : path_(path) {
  const std::string p = path.string();
  // stat first: opening a FIFO would block, and only a regular file can be mapped.
  struct stat pre {};
  if (::stat(p.c_str(), &pre) == 0 && !S_ISREG(pre.st_mode)) config_error("safetensors file '{}' is not a regular file", p);
  const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) config_error("cannot open safetensors file '{}': {}", p, std::strerror(errno));
  struct stat st {};
  ::fstat(fd, &st);
  const auto size = static_cast<uint64_t>(st.st_size);
  if (size < 8) {
    ::close(fd);
    config_error("{}: truncated safetensors file ({} bytes, the 8-byte header length is missing)", p, size);
  }
  map_ = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map_ == MAP_FAILED) {
    map_ = nullptr;
    config_error("{}: cannot map the file: {}", p, std::strerror(errno));
  }
  map_size_ = size;
  try {
    const auto* bytes = static_cast<const uint8_t*>(map_);
    uint64_t n = 0;
    for (int i = 7; i >= 0; --i) n = (n << 8) | bytes[i];   // little-endian u64
    if (n > kMaxHeader) config_error("{}: header length {} exceeds the 100 MB limit", p, n);
    if (8 + n > size) config_error("{}: header length {} runs past the end of the file ({} bytes)", p, n, size);
    const std::string header(reinterpret_cast<const char*>(bytes + 8), n);
    if (header.empty() || header[0] != '{') config_error("{}: the header is not a JSON object", p);
    nlohmann::json j;
    try {
      j = parse_json(header);
    } catch (const nlohmann::json::exception& e) {   // parse_error, and out_of_range for a number like 1e999
      config_error("{}: invalid JSON header: {}", p, e.what());
    }
    if (!j.is_object()) config_error("{}: the header is not a JSON object", p);
    data_ = bytes + 8 + n;
    const uint64_t buffer_len = size - 8 - n;
    json_reader(p, [&] {
      for (auto it = j.begin(); it != j.end(); ++it) {
        if (it.key() == "__metadata__") {
          if (!it->is_object()) config_error("{}: __metadata__ must be a string→string map", p);
          for (auto m = it->begin(); m != it->end(); ++m) {
            if (!m->is_string()) config_error("{}: __metadata__ value of '{}' is not a string", p, m.key());
            metadata_[m.key()] = m->get<std::string>();
          }
          continue;
        }
        const auto& e = *it;
        TensorInfo info;
        info.name = it.key();
        if (!e.is_object() || !e.contains("dtype") || !e.contains("shape") || !e.contains("data_offsets"))
          config_error("{}: tensor '{}' needs dtype, shape and data_offsets", p, info.name);
        info.dtype = e["dtype"].get<std::string>();
        const DtypeInfo* d = find_dtype(info.dtype);
        if (!d) config_error("{}: tensor '{}' has unknown dtype '{}'", p, info.name, info.dtype);
        if (!e["shape"].is_array()) config_error("{}: tensor '{}' has an invalid shape (not a list)", p, info.name);
        uint64_t numel = 1;
        for (const auto& s : e["shape"]) {
          if (!s.is_number_unsigned() && !(s.is_number_integer() && s.get<int64_t>() >= 0))
            config_error("{}: tensor '{}' has an invalid shape", p, info.name);
          const uint64_t dim = s.get<uint64_t>();
          // Checked: a wrapped product could match a small byte span and then allocate the real one.
          if (dim > static_cast<uint64_t>(INT64_MAX) || (dim != 0 && numel > static_cast<uint64_t>(INT64_MAX) / dim))
            config_error("{}: tensor '{}' has a shape whose element count overflows 64 bits", p, info.name);
          info.shape.push_back(static_cast<int64_t>(dim));
          numel *= dim;
        }
        const auto& off = e["data_offsets"];
        if (!off.is_array() || off.size() != 2) config_error("{}: tensor '{}' needs data_offsets [begin, end]", p, info.name);
        info.begin = off[0].get<uint64_t>();
        info.end = off[1].get<uint64_t>();
        if (info.end < info.begin) config_error("{}: tensor '{}' has data_offsets end < begin", p, info.name);
        if (numel > UINT64_MAX / static_cast<uint64_t>(d->bits))
          config_error("{}: tensor '{}' has a shape whose size in bits overflows 64 bits", p, info.name);
        const uint64_t bits = numel * static_cast<uint64_t>(d->bits);
        if (bits % 8 != 0 || info.end - info.begin != bits / 8)
          config_error("{}: tensor '{}' spans {} bytes but its shape and dtype {} need {}", p, info.name,
                       info.end - info.begin, info.dtype, bits / 8);
        infos_.push_back(std::move(info));
      }
    });
    // Offsets sorted must tile [0, buffer_len) exactly: no holes, no overlaps.
    std::vector<const TensorInfo*> sorted;
    for (const auto& i : infos_) sorted.push_back(&i);
    std::sort(sorted.begin(), sorted.end(), [](auto* a, auto* b) { return a->begin < b->begin || (a->begin == b->begin && a->end < b->end); });
    uint64_t expect = 0;
    for (const auto* i : sorted) {
      if (i->begin != expect)
        config_error("{}: tensor '{}' starts at byte {} but the previous tensor ends at {} ({})", p, i->name, i->begin,
                     expect, i->begin < expect ? "overlapping offsets" : "a gap between tensors");
      expect = i->end;
    }
    if (expect != buffer_len)
      config_error("{}: the tensors end at byte {} of the data buffer but the buffer holds {} bytes ({})", p, expect,
                   buffer_len, expect > buffer_len ? "truncated file" : "trailing bytes");
    for (size_t k = 0; k < infos_.size(); ++k) index_[infos_[k].name] = k;
  } catch (...) {
    ::munmap(map_, map_size_);
    map_ = nullptr;
    throw;
  }
}

SafeTensorsFile::~SafeTensorsFile() {
  if (map_) ::munmap(map_, map_size_);
}

bool SafeTensorsFile::contains(const std::string& name) const { return index_.count(name) > 0; }

const TensorInfo& SafeTensorsFile::info(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) config_error("{}: no tensor named '{}'", path_.string(), name);
  return infos_[it->second];
}

torch::Tensor SafeTensorsFile::load(const std::string& name) const {
  const TensorInfo& i = info(name);
  const torch::Dtype dt = dtype_from_safetensors(i.dtype, path_.string() + ": tensor '" + name + "'");
  auto t = torch::empty(i.shape, torch::TensorOptions().dtype(dt));
  if (i.end > i.begin) std::memcpy(t.data_ptr(), data_ + i.begin, i.end - i.begin);
  return t;
}

void save_safetensors(const std::filesystem::path& path, const std::map<std::string, torch::Tensor>& tensors,
                      const std::map<std::string, std::string>& metadata) {
  nlohmann::json header = nlohmann::json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<torch::Tensor> bodies;
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    auto t = tensor.detach().to(torch::kCPU).contiguous();
    const uint64_t nbytes = static_cast<uint64_t>(t.numel()) * t.element_size();
    header[name] = {{"dtype", dtype_to_safetensors(t.scalar_type())}, {"shape", t.sizes().vec()},
                    {"data_offsets", {offset, offset + nbytes}}};
    offset += nbytes;
    bodies.push_back(t);
  }
  std::string h = header.dump();
  h.append((8 - h.size() % 8) % 8, ' ');   // the Rust writer pads the header to 8 bytes
  std::string out;
  out.reserve(8 + h.size() + offset);
  const uint64_t n = h.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out += h;
  for (const auto& t : bodies) out.append(static_cast<const char*>(t.data_ptr()), static_cast<size_t>(t.numel()) * t.element_size());
  write_file_atomic(path, out);
}

CheckpointTensors::CheckpointTensors(const std::filesystem::path& model_dir) {
  const auto single = model_dir / "model.safetensors";
  const auto index = model_dir / "model.safetensors.index.json";
  std::vector<std::filesystem::path> shards;
  if (std::filesystem::exists(index)) {
    nlohmann::json j;
    try {
      j = parse_json(read_file(index));
    } catch (const nlohmann::json::exception& e) {   // parse_error, and out_of_range for a number like 1e999
      config_error("{}: invalid JSON: {}", index.string(), e.what());
    }
    if (!j.contains("weight_map") || !j["weight_map"].is_object()) config_error("{}: no weight_map object", index.string());
    std::map<std::string, std::string> wanted;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      if (!it->is_string()) config_error("{}: weight_map entry '{}' is not a file name", index.string(), it.key());
      wanted[it.key()] = it->get<std::string>();
    }
    std::map<std::string, const SafeTensorsFile*> by_file;
    for (const auto& [tensor, file] : wanted) {
      if (!by_file.count(file)) {
        if (!std::filesystem::exists(model_dir / file))
          config_error("{}: shard '{}' (listed for tensor '{}') does not exist", index.string(), file, tensor);
        files_.push_back(std::make_unique<SafeTensorsFile>(model_dir / file));
        by_file[file] = files_.back().get();
      }
      if (!by_file[file]->contains(tensor))
        config_error("{}: tensor '{}' is listed in shard '{}' but not stored there", index.string(), tensor, file);
      owner_[tensor] = by_file[file];
    }
    return;
  }
  if (!std::filesystem::exists(single))
    config_error("model folder '{}' has neither model.safetensors nor model.safetensors.index.json", model_dir.string());
  files_.push_back(std::make_unique<SafeTensorsFile>(single));
  for (const auto& i : files_.back()->tensors()) owner_[i.name] = files_.back().get();
}

std::vector<std::string> CheckpointTensors::names() const {
  std::vector<std::string> out;
  for (const auto& [n, f] : owner_) out.push_back(n);
  return out;
}

bool CheckpointTensors::contains(const std::string& name) const { return owner_.count(name) > 0; }

const TensorInfo& CheckpointTensors::info(const std::string& name) const {
  auto it = owner_.find(name);
  if (it == owner_.end()) config_error("checkpoint has no tensor '{}'", name);
  return it->second->info(name);
}

torch::Tensor CheckpointTensors::load(const std::string& name) const {
  auto it = owner_.find(name);
  if (it == owner_.end()) config_error("checkpoint has no tensor '{}'", name);
  return it->second->load(name);
}

}  // namespace gym::io
