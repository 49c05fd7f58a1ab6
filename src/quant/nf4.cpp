#include "gym/quant/nf4.h"

#include <cmath>

#include "gym/core/error.h"
#include "quant/nf4_ops.h"
#include "quant/tables.h"

namespace gym::quant {

namespace {

torch::Tensor table(const float* data, int64_t n) { return torch::from_blob(const_cast<float*>(data), {n}, torch::kFloat32).clone(); }

// Midpoints (c[i] + c[i+1]) / 2 in float32: the decision boundaries bitsandbytes uses.
torch::Tensor midpoints(const torch::Tensor& code) {
  return (code.narrow(0, 0, code.size(0) - 1) + code.narrow(0, 1, code.size(0) - 1)) / 2.0f;
}

// Scales blocks to [-1, 1]: full blocks multiply by the float32 reciprocal of absmax, the tail
// block divides by its absmax clamped to 1e-38 (bitsandbytes' two code paths, which can differ by
// one ulp). Returns the scaled values [n] and the stored absmax [nblocks].
std::pair<torch::Tensor, torch::Tensor> scale_blocks(const torch::Tensor& flat, int64_t bs) {
  const int64_t n = flat.numel(), full = n / bs, tail = n % bs;
  std::vector<torch::Tensor> scaled, absmax;
  if (full > 0) {
    auto blocks = flat.narrow(0, 0, full * bs).view({full, bs});
    auto am = blocks.abs().amax(1);
    auto inv = 1.0f / am.clamp_min(1e-38f);
    scaled.push_back((blocks * inv.unsqueeze(1)).clamp(-1.0f, 1.0f).reshape({-1}));
    absmax.push_back(am);
  }
  if (tail > 0) {
    auto t = flat.narrow(0, full * bs, tail);
    auto am = t.abs().amax().clamp_min(1e-38f);
    scaled.push_back((t / am).clamp(-1.0f, 1.0f));
    absmax.push_back(am.view({1}));
  }
  return {torch::cat(scaled), torch::cat(absmax)};
}

void check_blocksize(int64_t bs) {
  if (bs < 32 || bs > 4096 || (bs & (bs - 1)) != 0) config_error("invalid NF4 blocksize {} (32, 64, ..., 4096)", bs);
}

}  // namespace

Blockwise8 quantize_blockwise_8bit(const torch::Tensor& x, int64_t blocksize) {
  auto flat = x.detach().to(torch::kFloat32).contiguous().reshape({-1});
  auto [scaled, absmax] = scale_blocks(flat, blocksize);
  static const auto mid = midpoints(table(kDynamicMapSigned.data(), 256));
  Blockwise8 q;
  q.codes = torch::bucketize(scaled, mid, /*out_int32=*/false, /*right=*/false).to(torch::kUInt8);
  q.absmax = absmax;
  q.blocksize = blocksize;
  return q;
}

torch::Tensor dequantize_blockwise_8bit(const Blockwise8& q) {
  static const auto dyn = table(kDynamicMapSigned.data(), 256);
  const int64_t n = q.codes.numel();
  auto scale = q.absmax.repeat_interleave(q.blocksize).narrow(0, 0, n);
  return dyn.index_select(0, q.codes.to(torch::kInt64)) * scale;
}

int64_t Nf4Weight::numel() const {
  int64_t n = 1;
  for (auto s : shape) n *= s;
  return n;
}

torch::Tensor Nf4Weight::block_absmax() const {
  if (!double_quant) return absmax;
  // Two float32 roundings, as bitsandbytes: (code · nested absmax), then + offset.
  return dequantize_blockwise_8bit(nested) + nested_offset;
}

Nf4Weight quantize_nf4(const torch::Tensor& w, int64_t blocksize, bool double_quant) {
  check_blocksize(blocksize);
  Nf4Weight q;
  q.shape = w.sizes().vec();
  q.blocksize = blocksize;
  auto flat = w.detach().to(torch::kFloat32).contiguous().reshape({-1});
  auto [scaled, absmax] = scale_blocks(flat, blocksize);
  static const auto mid = midpoints(table(kNf4Code.data(), 16));
  auto codes = torch::bucketize(scaled, mid, /*out_int32=*/true, false).to(torch::kUInt8);   // ties take the lower code
  if (codes.numel() % 2 == 1) codes = torch::cat({codes, torch::full({1}, 7, torch::kUInt8)});   // pad: 0.0 → code 7
  auto pairs = codes.view({-1, 2});
  q.packed = (pairs.select(1, 0) * 16 + pairs.select(1, 1)).to(torch::kUInt8).view({-1, 1});
  q.double_quant = double_quant;
  if (double_quant) {
    q.nested_offset = absmax.mean().item<float>();
    q.nested = quantize_blockwise_8bit(absmax - q.nested_offset, 256);
  } else {
    q.absmax = absmax;
  }
  return q;
}

ops::Nf4Data nf4_ops_data(const Nf4Weight& q) {
  static const auto code = table(kNf4Code.data(), 16);
  static const auto dyn = table(kDynamicMapSigned.data(), 256);
  const auto device = q.packed.device();
  ops::Nf4Data d;
  d.packed = q.packed.reshape({-1});
  d.code = code.to(device);
  if (q.double_quant) {
    d.absmax_codes = q.nested.codes;
    d.nested_map = dyn.to(device);
    d.nested_absmax = q.nested.absmax;
    d.offset = q.nested_offset;
    d.nested_blocksize = q.nested.blocksize;
  } else {
    d.absmax = q.absmax;
  }
  d.numel = q.numel();
  d.blocksize = q.blocksize;
  return d;
}

// Through the ops layer: a one-pass loop on CPU, the kernel on CUDA.
torch::Tensor dequantize_nf4(const Nf4Weight& q, torch::Dtype dtype) { return ops::nf4_dequantize(nf4_ops_data(q), dtype).view(q.shape); }

double nf4_bits_per_param(int64_t n, int64_t bs, bool dq) {
  const double blocks = std::ceil(static_cast<double>(n) / bs);
  const double stats = dq ? blocks * 8 + std::ceil(blocks / 256) * 32 + 32 : blocks * 32;
  return (std::ceil(n / 2.0) * 8 + stats) / static_cast<double>(n);
}

double nf4_bits_per_param(const Nf4Weight& q) { return nf4_bits_per_param(q.numel(), q.blocksize, q.double_quant); }

std::string quant_state_json(const Nf4Weight& q, const std::string& dtype) {
  nlohmann::ordered_json j = {{"quant_type", "nf4"}, {"blocksize", q.blocksize}, {"dtype", dtype}, {"shape", q.shape}};
  if (q.double_quant) {
    j["nested_blocksize"] = q.nested.blocksize;
    j["nested_dtype"] = "float32";
    j["nested_offset"] = static_cast<double>(q.nested_offset);
  }
  // Python's json.dumps separators.
  std::string s = j.dump();
  std::string out;
  bool in_str = false;
  for (char c : s) {
    if (c == '"') in_str = !in_str;
    out += c;
    if (!in_str && (c == ',' || c == ':')) out += ' ';
  }
  return out;
}

}  // namespace gym::quant
