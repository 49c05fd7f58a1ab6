// NF4 dequantize: CPU loop, CUDA kernel, reference; and the dequantize-matmul autograd function.
#include "gym/ops/nf4.h"

#include <ATen/Parallel.h>
#include <c10/core/DeviceGuard.h>
#include <torch/autograd.h>
#include <torch/nn/functional/linear.h>

#include "gym/core/error.h"
#include "ops/device.h"

namespace gym::ops {

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

void check(const Nf4Data& q) {
  auto fail = [&](const std::string& what) { runtime_error("nf4_dequantize: {}", what); };
  if (q.numel < 0 || q.blocksize < 1 || q.nested_blocksize < 1) fail("numel, blocksize and nested_blocksize must be positive");
  if (!q.packed.defined() || q.packed.scalar_type() != torch::kUInt8 || q.packed.numel() != (q.numel + 1) / 2)
    fail(fmt::format("packed must be uint8 with {} bytes, got {}", (q.numel + 1) / 2, detail::shape_text(q.packed)));
  if (!q.code.defined() || q.code.numel() != 16 || q.code.scalar_type() != torch::kFloat32) fail("code must be float32 [16]");
  const int64_t nblocks = ceil_div(q.numel, q.blocksize);
  auto on_device = [&](const torch::Tensor& t, const char* what) {
    if (t.device() != q.packed.device()) fail(fmt::format("{} is on {}, packed on {}", what, t.device().str(), q.packed.device().str()));
  };
  on_device(q.code, "code");
  if (q.absmax.defined()) {
    if (q.absmax.scalar_type() != torch::kFloat32 || q.absmax.numel() != nblocks)
      fail(fmt::format("absmax must be float32 [{}], got {}", nblocks, detail::shape_text(q.absmax)));
    on_device(q.absmax, "absmax");
    return;
  }
  if (!q.absmax_codes.defined() || q.absmax_codes.scalar_type() != torch::kUInt8 || q.absmax_codes.numel() != nblocks)
    fail(fmt::format("absmax_codes must be uint8 [{}], got {}", nblocks, detail::shape_text(q.absmax_codes)));
  if (!q.nested_map.defined() || q.nested_map.numel() != 256 || q.nested_map.scalar_type() != torch::kFloat32)
    fail("nested_map must be float32 [256]");
  const int64_t nested = ceil_div(nblocks, q.nested_blocksize);
  if (!q.nested_absmax.defined() || q.nested_absmax.scalar_type() != torch::kFloat32 || q.nested_absmax.numel() != nested)
    fail(fmt::format("nested_absmax must be float32 [{}], got {}", nested, detail::shape_text(q.nested_absmax)));
  on_device(q.absmax_codes, "absmax_codes");
  on_device(q.nested_map, "nested_map");
  on_device(q.nested_absmax, "nested_absmax");
}

// The float32 absmax of every block: [nblocks] (two roundings for a double-quantized one).
torch::Tensor block_absmax_cpu(const Nf4Data& q) {
  if (q.absmax.defined()) return q.absmax.contiguous();
  const int64_t nblocks = ceil_div(q.numel, q.blocksize);
  auto out = torch::empty({nblocks}, torch::kFloat32);
  auto codes = q.absmax_codes.contiguous();
  auto map = q.nested_map.contiguous();
  auto nested = q.nested_absmax.contiguous();
  const uint8_t* c = codes.data_ptr<uint8_t>();
  const float* m = map.data_ptr<float>();
  const float* na = nested.data_ptr<float>();
  float* o = out.data_ptr<float>();
  for (int64_t b = 0; b < nblocks; ++b) {
    const float scaled = m[c[b]] * na[b / q.nested_blocksize];   // rounded once (gym_lib has -ffp-contract=off)
    o[b] = scaled + q.offset;                                    // and again
  }
  return out;
}

// CPU: one pass over the bytes, two values per byte; float32 [numel].
torch::Tensor dequantize_cpu(const Nf4Data& q) {
  auto absmax = block_absmax_cpu(q);
  auto packed = q.packed.contiguous();
  auto code_t = q.code.contiguous();
  auto out = torch::empty({q.numel}, torch::kFloat32);
  const uint8_t* p = packed.data_ptr<uint8_t>();
  const float* code = code_t.data_ptr<float>();
  const float* am = absmax.data_ptr<float>();
  float* o = out.data_ptr<float>();
  const int64_t n = q.numel, bs = q.blocksize;
  at::parallel_for(0, (n + 1) / 2, 1 << 14, [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) {
      const int64_t e = 2 * j;
      o[e] = code[p[j] >> 4] * am[e / bs];
      if (e + 1 < n) o[e + 1] = code[p[j] & 15] * am[(e + 1) / bs];
    }
  });
  return out;
}

torch::Tensor dequantize_cuda(const Nf4Data& q, torch::ScalarType dtype) {
  const c10::DeviceGuard guard(q.packed.device());
  const auto kernel_out = dtype == torch::kFloat64 ? torch::kFloat32 : dtype;
  auto out = torch::empty({q.numel}, q.packed.options().dtype(kernel_out));
  auto packed = q.packed.contiguous(), code = q.code.contiguous();
  torch::Tensor absmax, codes, map, nested;
  kernels::Nf4View v;
  v.packed = packed.data_ptr<uint8_t>();
  v.code = code.data_ptr<float>();
  if (q.absmax.defined()) {
    absmax = q.absmax.contiguous();
    v.absmax = absmax.data_ptr<float>();
  } else {
    codes = q.absmax_codes.contiguous();
    map = q.nested_map.contiguous();
    nested = q.nested_absmax.contiguous();
    v.absmax_codes = codes.data_ptr<uint8_t>();
    v.nested_map = map.data_ptr<float>();
    v.nested_absmax = nested.data_ptr<float>();
  }
  v.offset = q.offset;
  v.numel = q.numel;
  v.blocksize = q.blocksize;
  v.nested_blocksize = q.nested_blocksize;
  detail::check_launch(kernels::launch_nf4_dequantize(v, out.data_ptr(), detail::kernel_dtype(kernel_out), detail::cuda_stream(packed)));
  return out.to(dtype);
}

}  // namespace

torch::Tensor nf4_dequantize(const Nf4Data& q, torch::ScalarType dtype, Impl impl) {
  check(q);
  if (detail::use_kernel(q.packed, impl)) return dequantize_cuda(q, dtype);
  if (q.packed.is_cpu()) return dequantize_cpu(q).to(dtype);
  return nf4_dequantize_reference(q, dtype);   // other devices: LibTorch ops on that device
}

torch::Tensor nf4_dequantize_reference(const Nf4Data& q, torch::ScalarType dtype) {
  check(q);
  const int64_t n = q.numel;
  // Each block's statistic repeated over its elements: [nblocks] → [nblocks·bs] → first `count`.
  auto spread = [](const torch::Tensor& per_block, int64_t bs, int64_t count) {
    return per_block.unsqueeze(1).expand({per_block.size(0), bs}).reshape({-1}).narrow(0, 0, count);
  };
  torch::Tensor absmax = q.absmax;
  if (!absmax.defined()) {   // two float32 roundings: (map[c] · nested absmax), then + offset
    const int64_t nblocks = q.absmax_codes.numel();
    absmax = q.nested_map.index_select(0, q.absmax_codes.reshape({-1}).to(torch::kInt64)) *
                 spread(q.nested_absmax.reshape({-1}), q.nested_blocksize, nblocks) +
             q.offset;
  }
  auto bytes = q.packed.reshape({-1}).to(torch::kInt64);
  auto codes = torch::stack({bytes.div(16, "floor"), bytes.remainder(16)}, 1).reshape({-1}).narrow(0, 0, n);
  return (q.code.index_select(0, codes) * spread(absmax.reshape({-1}), q.blocksize, n)).to(dtype);
}

namespace {

// x [..., in] · Wᵀ → [..., out]. The weight's tensors travel in saved_data (no pointer to the caller's).
struct Nf4MatmulFunction : torch::autograd::Function<Nf4MatmulFunction> {
  static torch::Tensor weight(const Nf4Data& q, int64_t out_f, int64_t in_f, torch::ScalarType dtype) {
    return nf4_dequantize(q, dtype).view({out_f, in_f});
  }
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, torch::Tensor x, const Nf4Data& q, int64_t out_f, int64_t in_f) {
    ctx->saved_data["packed"] = q.packed;
    ctx->saved_data["code"] = q.code;
    ctx->saved_data["absmax"] = q.absmax;
    ctx->saved_data["absmax_codes"] = q.absmax_codes;
    ctx->saved_data["nested_map"] = q.nested_map;
    ctx->saved_data["nested_absmax"] = q.nested_absmax;
    ctx->saved_data["offset"] = static_cast<double>(q.offset);
    ctx->saved_data["sizes"] = std::vector<int64_t>{q.numel, q.blocksize, q.nested_blocksize, out_f, in_f};
    return torch::nn::functional::linear(x, weight(q, out_f, in_f, x.scalar_type()));
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx, torch::autograd::variable_list grads) {
    auto& d = ctx->saved_data;
    auto t = [&](const char* k) { return d[k].isTensor() ? d[k].toTensor() : torch::Tensor(); };
    const auto s = d["sizes"].toIntVector();
    Nf4Data q{t("packed"), t("code"), t("absmax"), t("absmax_codes"), t("nested_map"), t("nested_absmax"),
              static_cast<float>(d["offset"].toDouble()), s[0], s[1], s[2]};
    return {torch::matmul(grads[0], weight(q, s[3], s[4], grads[0].scalar_type())), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

torch::Tensor nf4_matmul(const torch::Tensor& x, const Nf4Data& q, int64_t out_features, int64_t in_features) {
  if (out_features * in_features != q.numel)
    runtime_error("nf4_matmul: weight [{}, {}] does not hold {} values", out_features, in_features, q.numel);
  if (x.dim() < 1 || x.size(-1) != in_features)
    runtime_error("nf4_matmul: x is {}, expected [..., {}]", detail::shape_text(x), in_features);
  return Nf4MatmulFunction::apply(x, q, out_features, in_features);
}

}  // namespace gym::ops
