#include "gym/core/threads.h"

#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <cstdlib>
#include <thread>

namespace gym {

std::string ThreadSettings::describe() const {
  return fmt::format("torch intra-op threads {}, BLAS threads {}", torch_intra_op,
                     blas > 0 ? std::to_string(blas) : std::string("default"));
}

const ThreadSettings& configure_threads() {
  static ThreadSettings settings = [] {
    ThreadSettings s;
    if (const char* t = std::getenv("GYM_TORCH_THREADS"); t && *t) s.torch_intra_op = std::max(1, std::atoi(t));
    if (const char* b = std::getenv("OPENBLAS_NUM_THREADS"); b && *b) s.blas = std::atoi(b);
    at::set_num_threads(s.torch_intra_op);
    at::set_num_interop_threads(1);
    return s;
  }();
  return settings;
}

}  // namespace gym
