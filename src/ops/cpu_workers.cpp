// Helper threads for the CPU decode kernels (src/ops/cpu_workers.h).
#include "ops/cpu_workers.h"

#include "gym/ops/ops.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "gym/core/threads.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define GYM_WORKERS_X86 1
#endif

namespace gym::ops {

namespace {

void cpu_relax() {
#ifdef GYM_WORKERS_X86
  _mm_pause();
#else
  std::this_thread::yield();
#endif
}

// One job at a time. state_ packs the job's generation (high 32 bits) with the next unclaimed
// chunk (low 32 bits), so a helper claims a chunk of the job it looked at or of none: a claim made
// with a stale generation fails, and the caller cannot publish the next job while a claimed chunk
// of this one is running (it waits for done_ == chunks), so fn_ stays valid for every claim. Chunk
// counts stay below 2^32 - 1 (the closed marker); parallel_chunks runs larger jobs serially.
class Workers {
 public:
  explicit Workers(int helpers) {
    for (int i = 0; i < helpers; ++i) threads_.emplace_back([this] { helper(); });
  }
  ~Workers() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
  }

  bool run(int64_t chunks, const std::function<void(int64_t)>& fn) {
    std::unique_lock<std::mutex> busy(submit_, std::try_to_lock);
    if (!busy.owns_lock() || threads_.empty()) return false;
    // First the new generation, closed (index at its maximum): a helper still holding the previous
    // job's exhausted state can no longer claim anything once it sees the new chunk count (its CAS
    // fails), then the job, then the generation opened at chunk 0.
    const uint64_t gen = (state_.load(std::memory_order_relaxed) >> 32) + 1;
    state_.store(gen << 32 | 0xffffffffULL, std::memory_order_seq_cst);
    fn_ = &fn;
    done_.store(0, std::memory_order_relaxed);
#ifdef GYM_WORKERS_X86
    mxcsr_.store(_mm_getcsr(), std::memory_order_relaxed);
#endif
    chunks_.store(chunks, std::memory_order_release);
    state_.store(gen << 32, std::memory_order_seq_cst);
    // seq_cst pairs with the helper's seq_cst increment and check (a store-then-load on each side):
    // either it sees the new generation or this sees it asleep. A missed wake-up would only leave
    // the work to this thread; nothing ever waits for a sleeping helper.
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
      { std::lock_guard<std::mutex> l(mu_); }   // a helper between its check and its wait sees gen
      cv_.notify_all();
    }
    int64_t mine = claim_all(gen);
    done_.fetch_add(mine, std::memory_order_acq_rel);
    while (done_.load(std::memory_order_acquire) < chunks) cpu_relax();
    return true;
  }

 private:
  // Claims and runs chunks of job `gen` until none is left; returns how many it ran.
  int64_t claim_all(uint64_t gen) {
    int64_t ran = 0;
    for (;;) {
      uint64_t s = state_.load(std::memory_order_acquire);
      if ((s >> 32) != gen) return ran;
      const auto i = static_cast<int64_t>(s & 0xffffffffULL);
      if (i >= chunks_.load(std::memory_order_acquire)) return ran;   // acquire: a new count implies the closed state
      if (!state_.compare_exchange_weak(s, s + 1, std::memory_order_acq_rel)) continue;
      (*fn_)(i);
      ++ran;
    }
  }

  void helper() {
    uint64_t seen = 0;
    for (;;) {
      const auto spin_until = std::chrono::steady_clock::now() + std::chrono::microseconds(200);
      for (int spins = 1; (state_.load(std::memory_order_acquire) >> 32) == seen; ++spins) {
        cpu_relax();
        if (spins % 64 == 0 && std::chrono::steady_clock::now() >= spin_until) break;   // the clock read costs more than a pause
      }
      if ((state_.load(std::memory_order_acquire) >> 32) == seen) {
        std::unique_lock<std::mutex> l(mu_);
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        cv_.wait(l, [&] { return stop_ || (state_.load(std::memory_order_seq_cst) >> 32) != seen; });
        sleepers_.fetch_sub(1, std::memory_order_acq_rel);
        if (stop_) return;
      }
      uint64_t s;   // a job being published is closed for a few instructions: wait for it to open
      while (((s = state_.load(std::memory_order_acquire)) & 0xffffffffULL) == 0xffffffffULL) cpu_relax();
      seen = s >> 32;
#ifdef GYM_WORKERS_X86
      _mm_setcsr(mxcsr_.load(std::memory_order_relaxed));
#endif
      const int64_t ran = claim_all(seen);
      if (ran) done_.fetch_add(ran, std::memory_order_acq_rel);
    }
  }

  std::vector<std::thread> threads_;
  std::mutex submit_, mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::atomic<int> sleepers_{0};
  std::atomic<uint64_t> state_{0};
  std::atomic<int64_t> chunks_{0}, done_{0};
  std::atomic<unsigned> mxcsr_{0};
  const std::function<void(int64_t)>* fn_ = nullptr;
};

Workers& workers() {
  // Leaked on purpose: helpers must not be joined from static destructors after main returns
  // (a worker could be mid-spin while the runtime tears down).
  static Workers* w = new Workers(cpu_worker_threads() - 1);
  return *w;
}

}  // namespace

int cpu_worker_threads() {
  static const int n = [] {
    int t = blas_threads_from_env();
    if (t <= 0) t = static_cast<int>(std::thread::hardware_concurrency());
    return std::clamp(t, 1, 8);
  }();
  return n;
}

void parallel_chunks(int64_t chunks, const std::function<void(int64_t)>& fn) {
  if (chunks <= 0) return;
  if (chunks == 1 || chunks >= 0xffffffffLL || cpu_worker_threads() == 1 || !workers().run(chunks, fn))
    for (int64_t i = 0; i < chunks; ++i) fn(i);
}

// (declared in gym/ops/ops.h; here, beside the other CPU helpers the kernels use) Checked once.
namespace {
struct CpuFeatures {
  bool avx2_fma = false, avx512 = false;   // AVX2 + FMA; AVX-512 F + DQ
};
const CpuFeatures& cpu_features() {
  static const CpuFeatures f = [] {
    CpuFeatures c;
#if defined(__x86_64__) || defined(_M_X64)
    c.avx2_fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    c.avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
#endif
    return c;
  }();
  return f;
}
}  // namespace

bool cpu_has_avx2_fma() { return cpu_features().avx2_fma; }
bool cpu_has_avx512() { return cpu_features().avx512; }

}  // namespace gym::ops
