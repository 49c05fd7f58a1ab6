#include "gym/core/threads.h"

#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <fmt/format.h>

#include <algorithm>
#include <cstdlib>
#include <dlfcn.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <thread>

namespace gym {

std::string ThreadSettings::describe() const {
  return fmt::format("torch intra-op threads {}, BLAS threads {}{}{}", torch_intra_op,
                     blas > 0 ? std::to_string(blas) : std::string("default"),
                     flush_denormal ? (blas_workers_flush ? ", denormals flushed (BLAS workers too)" : ", denormals flushed") : "",
                     heap_reuse ? ", heap reuse" : "");
}

int blas_threads_from_env() {
  const char* b = std::getenv("OPENBLAS_NUM_THREADS");
  return b && *b ? std::max(0, std::atoi(b)) : 0;
}

const ThreadSettings& configure_threads() {
  static ThreadSettings settings = [] {
    ThreadSettings s;
    if (const char* t = std::getenv("GYM_TORCH_THREADS"); t && *t) s.torch_intra_op = std::max(1, std::atoi(t));
    s.blas = blas_threads_from_env();
    at::set_num_threads(s.torch_intra_op);
    at::set_num_interop_threads(1);
    // Denormal floats (|x| < 1.2e-38) take a slow path in every x86 multiply: a peaked softmax
    // fills the logit gradients with them and a LoRA SFT step on the `small` bench shape ran its
    // backward 6x slower (5.2 s against 0.86 s flushed). Flushed to zero they change nothing that
    // float32 training can see (TensorFlow's CPU default; torch.set_flush_denormal in PyTorch).
    s.flush_denormal = at::globalContext().setFlushDenormal(true);
    // That sets this thread's MXCSR only. OpenBLAS (pthreads) starts its worker threads when it is
    // loaded, before main: they kept the default MXCSR and computed their share of every GEMM with
    // denormals (a SFT step's logit-gradient GEMM ran 2x slower than the same GEMM on clean data).
    // Shutting its pool down (what OpenBLAS itself does before a fork) makes the next BLAS call
    // start the workers again from this thread, and they inherit its flush-to-zero.
    if (s.flush_denormal)
      if (auto* shutdown = reinterpret_cast<int (*)()>(dlsym(RTLD_DEFAULT, "blas_thread_shutdown_"))) s.blas_workers_flush = shutdown() == 0;
    // A step allocates and frees the same large tensors every time (logits and their gradient:
    // ~600 MB per LoRA SFT step on the `small` bench shape). glibc serves blocks above 32 MB with
    // mmap and unmaps them on free, so every step faulted in and zeroed fresh pages again. From
    // the heap, with up to 1 GiB of free top kept, they are reused: SFT +8-9 % tokens/s, the GSPO
    // log-prob pass -13 %, for +7 % peak RSS (docs/performance.md). Freed memory beyond 1 GiB
    // (a model load's buffers) still goes back to the kernel.
#if defined(__GLIBC__)
    s.heap_reuse = mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_TRIM_THRESHOLD, 1 << 30) == 1;
#endif
    return s;
  }();
  return settings;
}

}  // namespace gym
