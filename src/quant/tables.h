#pragma once
#include <array>

namespace gym::quant {
extern const std::array<float, 16> kNf4Code;            // sorted; index 7 is exactly 0
extern const std::array<float, 256> kDynamicMapSigned;  // the signed dynamic 8-bit map, sorted
}  // namespace gym::quant
