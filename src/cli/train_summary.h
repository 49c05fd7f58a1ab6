#pragma once
#include <string>

#include "gym/config/config.h"

namespace gym::cli {

// A short human summary of what `gym train` would do with this config.
std::string train_summary(const config::ResolvedConfig& rc);

}  // namespace gym::cli
