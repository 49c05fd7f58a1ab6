#include <cmath>
#include "gym/core/error.h"
#include "gym/core/json.h"
#include "gym/quant/nf4.h"
#include "quant/nf4_ops.h"
#include "quant/tables.h"

namespace gym::quant {

// x · dequant(W)ᵀ through ops::nf4_matmul, which saves the weight's tensor handles (not a pointer to
// w) and dequantizes again in backward.
torch::Tensor nf4_linear(const torch::Tensor& x, const Nf4Weight& w) {
  const int64_t out_features = w.shape.empty() ? 1 : w.shape[0];
  return ops::nf4_matmul(x, nf4_ops_data(w), out_features, out_features > 0 ? w.numel() / out_features : 0);
}

std::map<std::string, torch::Tensor> nf4_to_bnb_tensors(const std::string& p, const Nf4Weight& w) {
  std::map<std::string, torch::Tensor> t;
  t[p] = w.packed;
  t[p + ".quant_map"] = torch::from_blob(const_cast<float*>(kNf4Code.data()), {16}, torch::kFloat32).clone();
  if (w.double_quant) {
    t[p + ".absmax"] = w.nested.codes;
    t[p + ".nested_absmax"] = w.nested.absmax;
    t[p + ".nested_quant_map"] = torch::from_blob(const_cast<float*>(kDynamicMapSigned.data()), {256}, torch::kFloat32).clone();
  } else {
    t[p + ".absmax"] = w.absmax;
  }
  const std::string js = quant_state_json(w);
  t[p + ".quant_state.bitsandbytes__nf4"] = torch::from_blob(const_cast<char*>(js.data()), {static_cast<int64_t>(js.size())}, torch::kUInt8).clone();
  return t;
}

Nf4Weight nf4_from_bnb_tensors(const std::string& p, const std::function<torch::Tensor(const std::string&)>& get) {
  auto state = get(p + ".quant_state.bitsandbytes__nf4");
  if (!state.defined()) {
    if (get(p + ".quant_state.bitsandbytes__fp4").defined()) config_error("tensor '{}': fp4 4-bit weights are not supported (nf4 only)", p);
    config_error("tensor '{}': no {}.quant_state.bitsandbytes__nf4 (not a bitsandbytes 4-bit weight)", p, p);
  }
  auto bytes = state.to(torch::kUInt8).contiguous();
  const std::string text(reinterpret_cast<const char*>(bytes.data_ptr<uint8_t>()), static_cast<size_t>(bytes.numel()));
  auto j = parse_json(text, false);
  if (j.is_discarded() || !j.is_object()) config_error("tensor '{}': quant_state is not JSON", p);
  // Every field typed and in range before any size is computed from it (a zero blocksize would
  // divide by zero, a huge shape would allocate without bound).
  if (!j.contains("quant_type") || !j["quant_type"].is_string() || j["quant_type"] != "nf4")
    config_error("tensor '{}': quant_type {} is not supported (nf4)", p, j.value("quant_type", nlohmann::json()).dump());
  auto int_field = [&](const char* key, int64_t lo, int64_t hi) {
    if (!j.contains(key) || !j[key].is_number_integer() || j[key].get<int64_t>() < lo || j[key].get<int64_t>() > hi)
      config_error("tensor '{}': quant_state field '{}' must be an integer in [{}, {}], got {}", p, key, lo, hi,
                   j.contains(key) ? j[key].dump() : "nothing");
    return j[key].get<int64_t>();
  };
  Nf4Weight w;
  w.blocksize = int_field("blocksize", 16, 4096);
  if (!j.contains("shape") || !j["shape"].is_array() || j["shape"].empty() || j["shape"].size() > 8)
    config_error("tensor '{}': quant_state field 'shape' must be a list of 1 to 8 sizes", p);
  int64_t numel = 1;
  for (const auto& d : j["shape"]) {
    if (!d.is_number_integer() || d.get<int64_t>() <= 0 || d.get<int64_t>() > (int64_t{1} << 40) / numel)
      config_error("tensor '{}': quant_state shape {} is not a list of positive sizes of at most 2^40 elements", p, j["shape"].dump());
    numel *= d.get<int64_t>();
    w.shape.push_back(d.get<int64_t>());
  }
  w.packed = get(p);
  if (!w.packed.defined()) config_error("tensor '{}' is missing", p);
  const int64_t n = w.numel();
  if (w.shape.empty() || w.packed.numel() != (n + 1) / 2)
    config_error("tensor '{}': quant_state shape [{}] needs {} packed bytes but the tensor holds {}", p, fmt::join(w.shape, ", "),
                 (n + 1) / 2, w.packed.numel());
  const int64_t blocks = (n + w.blocksize - 1) / w.blocksize;
  auto absmax = get(p + ".absmax");
  if (!absmax.defined() || absmax.numel() != blocks)
    config_error("tensor '{}': absmax holds {} values but shape and blocksize {} need {}", p, absmax.defined() ? absmax.numel() : 0,
                 w.blocksize, blocks);
  if (j.contains("nested_blocksize")) {
    w.double_quant = true;
    w.nested.codes = absmax.to(torch::kUInt8).reshape({-1});
    auto nested_absmax = get(p + ".nested_absmax");
    if (!nested_absmax.defined()) config_error("tensor '{}': double quantization without {}.nested_absmax", p, p);
    w.nested.absmax = nested_absmax.to(torch::kFloat32).reshape({-1});
    w.nested.blocksize = int_field("nested_blocksize", 16, 4096);
    if (!j.contains("nested_offset") || !j["nested_offset"].is_number() || !std::isfinite(j["nested_offset"].get<double>()))
      config_error("tensor '{}': quant_state field 'nested_offset' must be a finite number", p);
    w.nested_offset = j["nested_offset"].get<float>();
    if (w.nested.absmax.numel() != (blocks + w.nested.blocksize - 1) / w.nested.blocksize)
      config_error("tensor '{}': nested_absmax size does not match nested_blocksize {}", p, w.nested.blocksize);
    if (!torch::isfinite(w.nested.absmax).all().item<bool>()) config_error("tensor '{}': nested_absmax holds NaN or infinity", p);
  } else {
    w.absmax = absmax.to(torch::kFloat32).reshape({-1});
    if (!torch::isfinite(w.absmax).all().item<bool>()) config_error("tensor '{}': absmax holds NaN or infinity", p);
  }
  w.packed = w.packed.to(torch::kUInt8).reshape({-1, 1});
  return w;
}

}  // namespace gym::quant
