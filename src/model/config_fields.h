// config.json readers and writers shared by the family files (private to model/).
#pragma once
#include <nlohmann/json.hpp>

#include <optional>
#include <string>

#include "gym/core/error.h"
#include "gym/model/config.h"

namespace gym::model {

int64_t required_int(const nlohmann::json& j, const char* key, const std::string& source);

template <typename T>
T optional_value(const nlohmann::json& j, const char* key, T fallback, const std::string& source) {
  if (!j.contains(key) || j[key].is_null()) return fallback;
  try {
    return j[key].get<T>();
  } catch (const nlohmann::json::exception&) {
    config_error("{}: field '{}' has the wrong type ({})", source, key, j[key].dump());
  }
}

// The decoder fields every family has (vocab, hidden, layers, heads, head_dim, norms, RoPE,
// tying, token ids); intermediate_size when `intermediate_required`.
void read_decoder_fields(const nlohmann::json& j, ArchConfig& c, const std::string& source, bool intermediate_required);
// num_experts, num_experts_per_tok, moe_intermediate_size, norm_topk_prob, decoder_sparse_step,
// mlp_only_layers, router_aux_loss_coef, output_router_logits (num_experts may be 0 = dense).
void read_moe_fields(const nlohmann::json& j, ArchConfig& c, const std::string& source, bool norm_topk_default);
// Sizes, ratios and ranges that would otherwise fail deep inside (or allocate absurdly).
void check_arch(const ArchConfig& c, const std::string& source);

// The same fields as config.json keys, merged into `j` (which may hold the source's other keys).
void write_decoder_fields(nlohmann::json& j, const ArchConfig& c);
void write_moe_fields(nlohmann::json& j, const ArchConfig& c);

// The source config.json when it is an object of the same model_type, else an empty object.
nlohmann::json base_json(const ArchConfig& c);

}  // namespace gym::model
