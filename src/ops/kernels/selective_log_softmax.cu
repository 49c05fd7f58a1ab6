// Selective log-softmax: log p(chosen token) and the entropy of softmax(logits / T), one block per
// row, one pass over the vocabulary with an online max / sum-exp (never a [rows, V] temporary).
// The running state per thread is (m, s, w): m the max so far, s = Σ e^(z−m), w = Σ e^(z−m)(z−m);
// then logsumexp = m + log s and H = log s − w / s. Backward recomputes p from the saved logsumexp.
#include <cmath>

#include "ops/kernels/device_util.cuh"

namespace gym::ops::kernels {
namespace {

template <typename A>
struct Online {
  A m, s, w;
};

// Adds value z to the state.
template <typename A>
__device__ __forceinline__ void push(Online<A>& st, A z) {
  if (z == A(-INFINITY)) return;   // a masked-out token: p = 0, no entropy term
  if (z > st.m) {
    const A scale = st.s > A(0) ? exp(st.m - z) : A(0);
    st.w = st.s > A(0) ? scale * (st.w + (st.m - z) * st.s) : A(0);
    st.s = st.s * scale + A(1);
    st.m = z;
  } else {
    const A e = exp(z - st.m);
    st.s += e;
    if (e > A(0)) st.w += e * (z - st.m);
  }
}

// Merges b into a (both may be empty: s = 0).
template <typename A>
__device__ __forceinline__ void merge(Online<A>& a, const Online<A>& b) {
  if (b.s == A(0)) return;
  if (a.s == A(0)) { a = b; return; }
  const A m = a.m > b.m ? a.m : b.m;
  const A ea = exp(a.m - m), eb = exp(b.m - m);
  a.w = ea * (a.w + (a.m - m) * a.s) + eb * (b.w + (b.m - m) * b.s);
  a.s = a.s * ea + b.s * eb;
  a.m = m;
}

template <typename A>
__device__ Online<A> shfl_state(const Online<A>& st, int o) {
  return {__shfl_xor_sync(0xffffffffu, st.m, o), __shfl_xor_sync(0xffffffffu, st.s, o), __shfl_xor_sync(0xffffffffu, st.w, o)};
}

template <typename T>
__device__ __forceinline__ const T* row_ptr(const LogitsView& v, int64_t r) {
  return static_cast<const T*>(v.data) + (r / v.rows_per_batch) * v.stride_batch + (r % v.rows_per_batch) * v.stride_row;
}

template <typename T, typename A>
__global__ void forward_kernel(LogitsView v, const int64_t* ids, A inv_t, A* logp, A* lse, A* entropy) {
  const int64_t r = blockIdx.x;
  const T* row = row_ptr<T>(v, r);
  Online<A> st{-INFINITY, A(0), A(0)};
  for (int64_t i = threadIdx.x; i < v.vocab; i += blockDim.x) push(st, A(dev::to_acc(row[i])) * inv_t);
  for (int o = 16; o > 0; o >>= 1) {
    const auto other = shfl_state(st, o);
    merge(st, other);
  }
  __shared__ A sm[32], ss[32], sw[32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  if (lane == 0) { sm[warp] = st.m; ss[warp] = st.s; sw[warp] = st.w; }
  __syncthreads();
  if (warp == 0) {
    st = lane < warps ? Online<A>{sm[lane], ss[lane], sw[lane]} : Online<A>{-INFINITY, A(0), A(0)};
    for (int o = 16; o > 0; o >>= 1) {
      const auto other = shfl_state(st, o);
      merge(st, other);
    }
    if (lane == 0) {
      const A log_s = log(st.s), l = st.m + log_s;
      lse[r] = l;
      logp[r] = A(dev::to_acc(row[ids[r]])) * inv_t - l;
      if (entropy) entropy[r] = log_s - st.w / st.s;
    }
  }
}

template <typename T, typename G, typename A>
__global__ void backward_kernel(LogitsView v, const int64_t* ids, A inv_t, const A* lse, const A* entropy, const A* g_logp,
                                const A* g_entropy, G* grad) {
  const int64_t r = blockIdx.x;
  const T* row = row_ptr<T>(v, r);
  const A l = lse[r], gl = g_logp[r], gh = g_entropy ? g_entropy[r] : A(0), h = g_entropy ? entropy[r] : A(0);
  const int64_t id = ids[r];
  G* out = grad + r * v.vocab;
  for (int64_t i = threadIdx.x; i < v.vocab; i += blockDim.x) {
    const A lp = A(dev::to_acc(row[i])) * inv_t - l, p = exp(lp);
    A g = -gl * p;
    if (i == id) g += gl;
    if (gh != A(0) && p > A(0)) g -= gh * p * (lp + h);
    out[i] = static_cast<G>(g * inv_t);
  }
}

constexpr int kThreads = 256;

template <typename T, typename A>
void forward_typed(const LogitsView& v, const int64_t* ids, double temperature, void* logp, void* lse, void* entropy,
                   cudaStream_t s) {
  forward_kernel<T, A><<<static_cast<unsigned>(v.rows), kThreads, 0, s>>>(v, ids, A(1.0 / temperature), static_cast<A*>(logp),
                                                                          static_cast<A*>(lse), static_cast<A*>(entropy));
}

}  // namespace

std::string launch_selective_log_softmax_forward(const LogitsView& v, const int64_t* ids, double temperature, void* logp,
                                                 void* lse, void* entropy, void* stream) {
  if (v.rows == 0) return {};
  auto s = static_cast<cudaStream_t>(stream);
  switch (v.dtype) {
    case Dtype::F32: forward_typed<float, float>(v, ids, temperature, logp, lse, entropy, s); break;
    case Dtype::F64: forward_typed<double, double>(v, ids, temperature, logp, lse, entropy, s); break;
    case Dtype::BF16: forward_typed<__nv_bfloat16, float>(v, ids, temperature, logp, lse, entropy, s); break;
    case Dtype::F16: forward_typed<__half, float>(v, ids, temperature, logp, lse, entropy, s); break;
  }
  return dev::launch_status("selective_log_softmax forward");
}

namespace {
template <typename T, typename A>
void backward_typed(const LogitsView& v, const int64_t* ids, A inv_t, const void* lse, const void* entropy, const void* gl,
                    const void* gh, void* grad, Dtype grad_dtype, cudaStream_t s) {
  const auto* l = static_cast<const A*>(lse);
  const auto* h = static_cast<const A*>(entropy);
  const auto* g1 = static_cast<const A*>(gl);
  const auto* g2 = static_cast<const A*>(gh);
  const unsigned blocks = static_cast<unsigned>(v.rows);
  switch (grad_dtype) {
    case Dtype::F32: backward_kernel<T, float, A><<<blocks, kThreads, 0, s>>>(v, ids, inv_t, l, h, g1, g2, static_cast<float*>(grad)); break;
    case Dtype::F64: backward_kernel<T, double, A><<<blocks, kThreads, 0, s>>>(v, ids, inv_t, l, h, g1, g2, static_cast<double*>(grad)); break;
    case Dtype::BF16: backward_kernel<T, __nv_bfloat16, A><<<blocks, kThreads, 0, s>>>(v, ids, inv_t, l, h, g1, g2, static_cast<__nv_bfloat16*>(grad)); break;
    case Dtype::F16: backward_kernel<T, __half, A><<<blocks, kThreads, 0, s>>>(v, ids, inv_t, l, h, g1, g2, static_cast<__half*>(grad)); break;
  }
}
}  // namespace

std::string launch_selective_log_softmax_backward(const LogitsView& v, const int64_t* ids, double temperature, const void* lse,
                                                  const void* entropy, const void* g_logp, const void* g_entropy,
                                                  void* grad_logits, Dtype grad_dtype, void* stream) {
  if (v.rows == 0) return {};
  auto s = static_cast<cudaStream_t>(stream);
  switch (v.dtype) {
    case Dtype::F32: backward_typed<float, float>(v, ids, 1.0f / static_cast<float>(temperature), lse, entropy, g_logp, g_entropy, grad_logits, grad_dtype, s); break;
    case Dtype::F64: backward_typed<double, double>(v, ids, 1.0 / temperature, lse, entropy, g_logp, g_entropy, grad_logits, grad_dtype, s); break;
    case Dtype::BF16: backward_typed<__nv_bfloat16, float>(v, ids, 1.0f / static_cast<float>(temperature), lse, entropy, g_logp, g_entropy, grad_logits, grad_dtype, s); break;
    case Dtype::F16: backward_typed<__half, float>(v, ids, 1.0f / static_cast<float>(temperature), lse, entropy, g_logp, g_entropy, grad_logits, grad_dtype, s); break;
  }
  return dev::launch_status("selective_log_softmax backward");
}

}  // namespace gym::ops::kernels
