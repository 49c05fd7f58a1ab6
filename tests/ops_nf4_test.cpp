// NF4 dequantize op: the CPU loop and the LibTorch reference against bitsandbytes' own dequantized
// vectors bit for bit (plain and double-quantized absmax), bf16 output, the dequantize-matmul and
// its gradient; and the CUDA kernel vs the CPU loop, bit for bit, where a GPU is present.
#include "gym/ops/nf4.h"

#include "gym/core/error.h"
#include "ops_test_util.h"

namespace ops = gym::ops;

namespace {

torch::Tensor f32(const nlohmann::json& j) { return torch::tensor(j.get<std::vector<float>>()); }
torch::Tensor u8(const nlohmann::json& j) { return torch::tensor(j.get<std::vector<int64_t>>()).to(torch::kUInt8); }

struct Case {
  std::string name;
  ops::Nf4Data plain, dq;
  torch::Tensor want_plain, want_dq;   // float32 [numel]; undefined where the fixture leaves it out
};

std::vector<Case> cases() {
  const auto& v = gym::test::nf4_vectors();
  const auto code = f32(v["tables"]["nf4_code"]), map = f32(v["tables"]["dynamic_map_signed"]);
  std::vector<Case> out;
  for (const char* name : {"W", "tail_7x33", "big_131x129", "edge_5x64"}) {
    const auto& c = v[name];
    for (auto it = c.begin(); it != c.end(); ++it) {
      if (it.key().rfind("bs", 0) != 0) continue;
      const auto& r = *it;
      const auto& d = r["double_quant"];
      Case k;
      k.name = std::string(name) + "/" + it.key();
      k.plain.packed = u8(r["packed"]);
      k.plain.code = code;
      k.plain.absmax = f32(r["absmax"]);
      k.plain.numel = c["numel"];
      k.plain.blocksize = r["blocksize"];
      k.dq = k.plain;
      k.dq.absmax = torch::Tensor();
      k.dq.absmax_codes = u8(d["absmax_codes"]);
      k.dq.nested_map = map;
      k.dq.nested_absmax = f32(d["nested_absmax"]);
      k.dq.offset = d["offset"].get<float>();
      k.dq.nested_blocksize = d["nested_blocksize"];
      if (r.contains("dequant")) k.want_plain = f32(r["dequant"]);
      if (d.contains("dequant")) k.want_dq = f32(d["dequant"]);
      out.push_back(k);
    }
  }
  return out;
}

}  // namespace

TEST(OpsNf4, DequantizeEqualsBitsandbytesBitForBit) {
  int exact = 0;
  for (const auto& k : cases()) {
    SCOPED_TRACE(k.name);
    for (const auto* q : {&k.plain, &k.dq}) {
      auto got = ops::nf4_dequantize(*q);
      auto ref = ops::nf4_dequantize_reference(*q);
      ASSERT_EQ(got.numel(), q->numel);
      EXPECT_TRUE(torch::equal(got, ref));   // the CPU loop and the LibTorch reference agree bit for bit
      const auto& want = q == &k.plain ? k.want_plain : k.want_dq;
      if (!want.defined()) continue;
      // bit for bit: compare the float32 bit patterns (also tells +0 from −0)
      EXPECT_TRUE(torch::equal(got.view(torch::kInt32), want.view(torch::kInt32)));
      ++exact;
    }
  }
  EXPECT_EQ(exact, 11);   // every case and blocksize with a dequant vector, plain and double quant
}

TEST(OpsNf4, HalfPrecisionOutputIsTheRoundedFloat32) {
  const auto k = cases().front();
  auto f = ops::nf4_dequantize(k.dq);
  for (auto dt : {torch::kBFloat16, torch::kFloat16}) {
    auto h = ops::nf4_dequantize(k.dq, dt);
    EXPECT_EQ(h.scalar_type(), dt);
    EXPECT_TRUE(torch::equal(h, f.to(dt)));
  }
}

TEST(OpsNf4, MatmulEqualsLinearWithTheDequantizedWeightAndItsGradient) {
  const auto k = cases().front();   // W: 96 × 160
  torch::manual_seed(31);
  auto x = torch::randn({3, 4, 160}, torch::kFloat32).requires_grad_(true);
  auto y = ops::nf4_matmul(x, k.dq, 96, 160);
  ASSERT_EQ(y.sizes(), torch::IntArrayRef({3, 4, 96}));
  auto w = ops::nf4_dequantize(k.dq).view({96, 160});
  auto x2 = x.detach().clone().requires_grad_(true);
  auto y2 = torch::matmul(x2, w.t());
  EXPECT_LE(gym::test::max_abs_diff(y, y2), 1e-5);
  auto g = torch::randn({3, 4, 96});
  (y * g).sum().backward();
  (y2 * g).sum().backward();
  EXPECT_LE(gym::test::max_abs_diff(x.grad(), x2.grad()), 1e-5);
  EXPECT_GT(x.grad().abs().max().item<float>(), 0.01f);
  EXPECT_THROW(ops::nf4_matmul(x.detach(), k.dq, 96, 161), gym::Error);
  EXPECT_THROW(ops::nf4_matmul(x.detach().narrow(2, 0, 100), k.dq, 96, 160), gym::Error);
}

TEST(OpsNf4, InconsistentTensorsAreClearErrors) {
  auto k = cases().front();
  auto bad = k.dq;
  bad.numel += 2;
  EXPECT_THROW(ops::nf4_dequantize(bad), gym::Error);
  bad = k.dq;
  bad.nested_absmax = torch::Tensor();
  EXPECT_THROW(ops::nf4_dequantize(bad), gym::Error);
  bad = k.plain;
  bad.absmax = bad.absmax.to(torch::kFloat64);
  EXPECT_THROW(ops::nf4_dequantize(bad), gym::Error);
}

TEST(OpsNf4Cuda, KernelEqualsCpuBitForBit) {
  GYM_REQUIRE_CUDA_KERNELS();
  auto cuda = [](ops::Nf4Data q) {
    for (auto* t : {&q.packed, &q.code, &q.absmax, &q.absmax_codes, &q.nested_map, &q.nested_absmax})
      if (t->defined()) *t = t->to(torch::kCUDA);
    return q;
  };
  for (const auto& k : cases()) {
    SCOPED_TRACE(k.name);
    for (const auto* q : {&k.plain, &k.dq}) {
      auto cpu = ops::nf4_dequantize(*q);
      auto gpu = ops::nf4_dequantize(cuda(*q));
      EXPECT_TRUE(gpu.is_cuda());
      EXPECT_TRUE(torch::equal(gpu.cpu().view(torch::kInt32), cpu.view(torch::kInt32)));
      EXPECT_TRUE(torch::equal(ops::nf4_dequantize(cuda(*q), torch::kBFloat16).cpu(), cpu.to(torch::kBFloat16)));
    }
  }
}
