// An Nf4Weight as the ops layer's NF4 tensors (handles, no copies; the tables on packed's device).
#pragma once
#include "gym/ops/nf4.h"
#include "gym/quant/nf4.h"

namespace gym::quant {

ops::Nf4Data nf4_ops_data(const Nf4Weight& q);

}  // namespace gym::quant
