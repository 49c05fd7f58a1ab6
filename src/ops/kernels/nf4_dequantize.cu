// NF4 dequantize, bitsandbytes-exact: one thread per packed byte → two values (high nibble first).
// A double-quantized block's absmax is map[c]·nested_absmax rounded, then + offset rounded
// (__fmul_rn/__fadd_rn keep nvcc from contracting them into one FMA, which changes ~15% of them).
#include "ops/kernels/device_util.cuh"

namespace gym::ops::kernels {
namespace {

__device__ __forceinline__ float block_absmax(const Nf4View& q, int64_t block) {
  if (q.absmax) return q.absmax[block];
  return __fadd_rn(__fmul_rn(q.nested_map[q.absmax_codes[block]], q.nested_absmax[block / q.nested_blocksize]), q.offset);
}

template <typename T>
__global__ void nf4_dequantize_kernel(Nf4View q, T* out) {
  __shared__ float code[16];
  if (threadIdx.x < 16) code[threadIdx.x] = q.code[threadIdx.x];
  __syncthreads();
  const int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t e = 2 * j;
  if (e >= q.numel) return;
  const uint8_t byte = q.packed[j];
  out[e] = dev::from_float<T>(__fmul_rn(code[byte >> 4], block_absmax(q, e / q.blocksize)));
  if (e + 1 < q.numel) out[e + 1] = dev::from_float<T>(__fmul_rn(code[byte & 15], block_absmax(q, (e + 1) / q.blocksize)));
}

}  // namespace

std::string launch_nf4_dequantize(const Nf4View& q, void* out, Dtype out_dtype, void* stream) {
  if (q.numel == 0) return {};
  auto s = static_cast<cudaStream_t>(stream);
  const int threads = 256;
  const int64_t bytes = (q.numel + 1) / 2;
  const unsigned blocks = static_cast<unsigned>((bytes + threads - 1) / threads);
  switch (out_dtype) {
    case Dtype::F32: nf4_dequantize_kernel<float><<<blocks, threads, 0, s>>>(q, static_cast<float*>(out)); break;
    case Dtype::BF16: nf4_dequantize_kernel<__nv_bfloat16><<<blocks, threads, 0, s>>>(q, static_cast<__nv_bfloat16*>(out)); break;
    case Dtype::F16: nf4_dequantize_kernel<__half><<<blocks, threads, 0, s>>>(q, static_cast<__half*>(out)); break;
    case Dtype::F64: return "nf4_dequantize: float32, bfloat16 or float16 output expected";
  }
  return dev::launch_status("nf4_dequantize");
}

}  // namespace gym::ops::kernels
