#include "gym/model/family.h"

#include <fmt/format.h>

#include "gym/core/error.h"
#include "gym/model/decoder.h"
#include "model/families.h"

namespace gym::model {

namespace {
const std::vector<ModelFamily>& families() {
  static const std::vector<ModelFamily> all = {qwen3_family(), qwen3_moe_family(), qwen3_next_family(), qwen3_omni_family()};
  return all;
}
}  // namespace

const ModelFamily& model_family(const std::string& model_type, const std::string& source) {
  for (const auto& f : families())
    if (f.model_type == model_type) return f;
  config_error("{}unknown model_type '{}' (gym knows {})", source.empty() ? "" : source + ": ", model_type,
               fmt::join(model_family_names(), ", "));
}

std::vector<std::string> model_family_names() {
  std::vector<std::string> out;
  for (const auto& f : families()) out.push_back(f.model_type);
  return out;
}

CausalLM build_model(const ArchConfig& c, torch::TensorOptions options) { return model_family(c.model_type).build(c, options); }

CausalLM build_decoder(const ArchConfig& c, torch::TensorOptions options) { return std::make_shared<DecoderLMImpl>(c, options); }

void apply_dense_preset(ArchConfig& c, const std::string& preset) {
  c.rope_theta = 1e6;
  c.torch_dtype = "float32";
  if (preset == "tiny") {
    c.vocab_size = 512, c.hidden_size = 64, c.intermediate_size = 128, c.num_hidden_layers = 2;
    c.num_attention_heads = 4, c.num_key_value_heads = 2, c.head_dim = 16, c.max_position_embeddings = 256;
  } else if (preset == "small") {
    c.vocab_size = 32000, c.hidden_size = 512, c.intermediate_size = 1536, c.num_hidden_layers = 8;
    c.num_attention_heads = 8, c.num_key_value_heads = 4, c.head_dim = 64, c.max_position_embeddings = 4096;
  } else if (preset == "qwen-like") {
    c.vocab_size = 151936, c.hidden_size = 512, c.intermediate_size = 1536, c.num_hidden_layers = 4;
    c.num_attention_heads = 8, c.num_key_value_heads = 4, c.head_dim = 64, c.max_position_embeddings = 4096;
  } else {
    config_error("unknown preset '{}' (tiny, small, qwen-like)", preset);
  }
  c.tie_word_embeddings = true;
}

}  // namespace gym::model
