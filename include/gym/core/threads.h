// Thread settings chosen by gym itself (see docs/performance.md).
#pragma once
#include <string>

namespace gym {

struct ThreadSettings {
  int torch_intra_op = 1;   // LibTorch's OpenMP pool (elementwise ops, reductions)
  int blas = 0;             // OpenBLAS pthread pool (matmuls); 0 = library default (all cores)
  bool flush_denormal = false;   // denormal floats flushed to zero (x86 FTZ/DAZ) on the main thread
  bool blas_workers_flush = false;   // OpenBLAS's worker threads restarted to inherit it (threads.cpp)
  bool heap_reuse = false;       // glibc keeps large freed blocks for reuse (threads.cpp says why)
  std::string describe() const;
};

// Applies gym's thread policy once, before any tensor work. On a small CPU box LibTorch's
// OpenMP pool and OpenBLAS's pthread pool both claim every core and fight; one intra-op thread
// beside a multi-threaded BLAS measured 1.8x faster for LoRA SFT and 2.5-3x for decoding.
// GYM_TORCH_THREADS overrides the intra-op count. Also flushes denormal floats to zero, whose
// slow path made backward passes 6x slower (threads.cpp says when), and has glibc reuse the large
// blocks a training step frees instead of returning them to the kernel.
const ThreadSettings& configure_threads();

// OPENBLAS_NUM_THREADS as a count; 0 when it is not set (the library's default: all cores). gym's
// launcher sets it to cores / processes for each worker.
int blas_threads_from_env();

}  // namespace gym
