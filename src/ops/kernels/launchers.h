// Launchers of the ops' CUDA kernels: plain C++ declarations (raw pointers, sizes, a cudaStream_t
// passed as void*), so the ATen glue in src/ops/*.cpp needs no CUDA header and the CPU build never
// sees CUDA. Defined in src/ops/kernels/*.cu, which include only this header and CUDA's.
// Every launcher enqueues on `stream` and returns without synchronising; errors of the launch
// itself come back as a non-empty message (empty = ok), never as an exception across the boundary.
#pragma once
#include <cstdint>
#include <string>

namespace gym::ops::kernels {

// Element type of a floating tensor the kernels read or write.
enum class Dtype : int { F32 = 0, F64 = 1, BF16 = 2, F16 = 3 };

// ---- selective log-softmax (selective_log_softmax.cu)
// Row r of the logits starts at logits + (r / rows_per_batch) * stride_batch + (r % rows_per_batch) * stride_row
// (element strides; the vocabulary dimension is contiguous). z = logits / temperature.
struct LogitsView {
  const void* data = nullptr;
  Dtype dtype = Dtype::F32;
  int64_t rows = 0, rows_per_batch = 1, vocab = 0;
  int64_t stride_batch = 0, stride_row = 0;
};
// Forward, one block per row, one pass over the vocabulary with an online max / sum-exp:
//   logp[r] = z[ids[r]] − lse[r];  lse[r] = logsumexp(z);  entropy[r] = −Σ p log p (skipped when null).
// logp, lse, entropy: float [rows] (double when the logits are F64); ids: int64 [rows] in [0, vocab).
std::string launch_selective_log_softmax_forward(const LogitsView& logits, const int64_t* ids, double temperature,
                                                 void* logp, void* lse, void* entropy, void* stream);
// Backward: grad_logits[r, v] = (g_logp[r]·(1[v = ids[r]] − p) − g_entropy[r]·p·(log p + H[r])) / temperature,
// p = exp(z − lse[r]); g_entropy and entropy may be null (no entropy gradient). grad_logits is contiguous
// [rows, vocab] in `grad_dtype`; g_logp/g_entropy/lse/entropy are float [rows] (double for F64 logits).
std::string launch_selective_log_softmax_backward(const LogitsView& logits, const int64_t* ids, double temperature,
                                                  const void* lse, const void* entropy, const void* g_logp,
                                                  const void* g_entropy, void* grad_logits, Dtype grad_dtype, void* stream);

// ---- clipped policy objective with the sequence log-ratio (policy_objective.cu)
struct PolicyObjectiveArgs {
  int level = 1;                 // 0 token, 1 sequence (GSPO), 2 sequence_token (GSPO-token)
  double eps_low = 0.2, eps_high = 0.2;
  bool has_delta = false;
  double delta = 0;              // caps the unclipped ratio after the clipped one is taken (TRL)
  double log_ratio_min = -1e300, log_ratio_max = 1e300;   // clamp of the log importance weight (verl)
  bool has_dual_clip = false;
  double dual_clip = 3.0;        // verl: for A < 0 the loss is at most −A·c
  int64_t batch = 0, time = 0;
  bool adv_per_token = false;    // advantages [B, T] (else [B])
};
// One block per sequence. Inputs are contiguous [B, T] (adv [B] or [B, T], seq_weight [B]) of `dtype`
// (F32 or F64). Writes seq_loss [B] = seq_weight_i Σ_t m_it ℓ_it, ratio [B, T] (level 0/2) or [B]
// (level 1), and grad_logp [B, T] = ∂(Σ_i seq_loss_i)/∂logp.
std::string launch_policy_objective(const PolicyObjectiveArgs& a, Dtype dtype, const void* logp, const void* old,
                                    const void* adv, const void* mask, const void* seq_weight, void* seq_loss,
                                    void* ratio, void* grad_logp, void* stream);

// ---- NF4 dequantize (nf4_dequantize.cu)
struct Nf4View {
  const uint8_t* packed = nullptr;        // [(n + 1) / 2], element 2j in the high nibble of byte j
  const float* code = nullptr;            // [16] NF4 values
  const float* absmax = nullptr;          // [nblocks] float32 absmax; null → double-quantized below
  const uint8_t* absmax_codes = nullptr;  // [nblocks] 8-bit codes of absmax − offset
  const float* nested_map = nullptr;      // [256] dynamic map
  const float* nested_absmax = nullptr;   // [ceil(nblocks / nested_blocksize)]
  float offset = 0.0f;
  int64_t numel = 0, blocksize = 64, nested_blocksize = 256;
};
// One thread per byte → two values. out: [numel] of out_dtype (F32, BF16 or F16); the absmax of a
// double-quantized block is (map[c]·nested_absmax) rounded, then + offset rounded: no FMA.
std::string launch_nf4_dequantize(const Nf4View& q, void* out, Dtype out_dtype, void* stream);

}  // namespace gym::ops::kernels
