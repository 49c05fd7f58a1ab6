// "[2, 5, 11]" for error messages (fmt cannot format c10::IntArrayRef itself).
#pragma once
#include <torch/types.h>

#include <string>

namespace gym::rl::detail {

inline std::string shape_text(c10::IntArrayRef sizes) {
  std::string s = "[";
  for (size_t i = 0; i < sizes.size(); ++i) s += (i ? ", " : "") + std::to_string(sizes[i]);
  return s + "]";
}
inline std::string shape_text(const torch::Tensor& t) { return t.defined() ? shape_text(t.sizes()) : "undefined"; }

}  // namespace gym::rl::detail
