#include "gym/core/error.h"
#include "gym/recipes/train.h"

namespace gym::recipes {

void run_sft(const config::ResolvedConfig&) { runtime_error("stage sft: the training loop is not implemented yet"); }

}  // namespace gym::recipes
