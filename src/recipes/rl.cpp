#include "gym/core/error.h"
#include "gym/recipes/train.h"

namespace gym::recipes {

void run_rl(const config::ResolvedConfig&) { runtime_error("stage rl: the training loop is not implemented yet"); }

}  // namespace gym::recipes
