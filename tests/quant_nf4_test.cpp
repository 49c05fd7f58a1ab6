// bitsandbytes NF4 exactness on the vectors bitsandbytes' own code produced.
#include <gtest/gtest.h>

#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/quant/nf4.h"

using namespace gym;

namespace {
const nlohmann::json& vectors() {
  static const auto v = nlohmann::json::parse(read_file(std::string(GYM_TEST_DATA) + "/quant/nf4_vectors.json"));
  return v;
}
torch::Tensor f32(const nlohmann::json& j) { return torch::tensor(j.get<std::vector<float>>()); }
torch::Tensor u8(const nlohmann::json& j) {
  auto v = j.get<std::vector<int64_t>>();
  return torch::tensor(v).to(torch::kUInt8);
}
}  // namespace

TEST(Nf4Vectors, PackedBytesStatisticsAndDequantMatchBitsandbytes) {
  int cases = 0;
  for (const char* name : {"W", "tail_7x33", "big_131x129", "edge_5x64"}) {
    const auto& c = vectors()[name];
    auto input = f32(c["input"]).view(c["shape"].get<std::vector<int64_t>>());
    for (auto it = c.begin(); it != c.end(); ++it) {
      if (it.key().rfind("bs", 0) != 0) continue;
      SCOPED_TRACE(std::string(name) + "/" + it.key());
      const auto& r = *it;
      const int64_t bs = r["blocksize"];
      auto plain = quant::quantize_nf4(input, bs, false);
      EXPECT_TRUE(torch::equal(plain.packed.reshape({-1}), u8(r["packed"])));
      EXPECT_TRUE(torch::equal(plain.absmax, f32(r["absmax"])));   // bit-exact float32
      if (r.contains("dequant")) { EXPECT_LE((quant::dequantize_nf4(plain).reshape({-1}) - f32(r["dequant"])).abs().max().item<double>(), 1e-6); }
      if (input.numel() % 2 == 1) { EXPECT_EQ(plain.packed.reshape({-1})[-1].item<uint8_t>() & 0xF, 7); }
      const auto& d = r["double_quant"];
      auto dq = quant::quantize_nf4(input, bs, true);
      EXPECT_TRUE(torch::equal(dq.packed, plain.packed));
      EXPECT_EQ(dq.nested_offset, d["offset"].get<float>());
      EXPECT_TRUE(torch::equal(dq.nested.codes, u8(d["absmax_codes"])));
      EXPECT_TRUE(torch::equal(dq.nested.absmax, f32(d["nested_absmax"])));
      EXPECT_TRUE(torch::equal(dq.block_absmax(), f32(d["absmax_dequantized"])));   // two roundings, no FMA
      EXPECT_LE((quant::dequantize_nf4(dq).reshape({-1}) - f32(d["dequant"])).abs().max().item<double>(), 1e-6);
      EXPECT_EQ(quant::quant_state_json(dq), d["quant_state_json"].get<std::string>());
      ++cases;
    }
  }
  EXPECT_EQ(cases, 6);
}

TEST(Nf4Vectors, Blockwise8bitTiesAndRandom) {
  for (const char* name : {"blockwise8_ties", "blockwise8_random_600"}) {
    SCOPED_TRACE(name);
    const auto& c = vectors()[name];
    auto q = quant::quantize_blockwise_8bit(f32(c["input"]), 256);
    EXPECT_TRUE(torch::equal(q.codes, u8(c["codes"])));
    EXPECT_TRUE(torch::equal(q.absmax, f32(c["absmax"])));
    EXPECT_LE((quant::dequantize_blockwise_8bit(q) - f32(c["dequant"])).abs().max().item<double>(), 1e-7);
  }
}

TEST(Nf4, BitsPerParameterAndBadBlocksize) {
  EXPECT_NEAR(quant::nf4_bits_per_param(4096 * 4096, 64, false), 4.5, 1e-6);
  EXPECT_LE(quant::nf4_bits_per_param(4096 * 4096, 64, true), 4.13);
  EXPECT_THROW(quant::quantize_nf4(torch::randn({4, 4}), 48), Error);
}
