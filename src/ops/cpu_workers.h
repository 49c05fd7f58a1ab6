// Helper threads for the CPU decode kernels: fn(i) for every i in [0, chunks), run by the calling
// thread and whichever helpers are awake. The caller never waits for a chunk nobody has claimed: a
// helper that is late (the core is busy) leaves its share to the caller, so a loaded machine costs
// at most the chunk a descheduled helper holds, not a barrier per call (why an OpenMP version of
// the small-M kernel ran 10x slower under load). Helpers spin briefly between calls (decode issues
// them back to back), then sleep on a condition variable. They run with the caller's MXCSR, so
// flushed denormals and rounding are the caller's: every chunk computes exactly what it would on
// the calling thread.
#pragma once
#include <algorithm>
#include <cstdint>
#include <functional>

namespace gym::ops {

// Threads that share the work, the caller included: OPENBLAS_NUM_THREADS when set (gym's decode
// kernels stand in for OpenBLAS's small-M calls), else the hardware threads; at most 8.
int cpu_worker_threads();

// fn(0) ... fn(chunks - 1), each exactly once, possibly concurrently; returns when all are done.
// Re-entrant calls (from fn, or a second thread while a call runs) run serially on their thread.
void parallel_chunks(int64_t chunks, const std::function<void(int64_t)>& fn);

// fn(r) for every row r in [0, rows), in chunks of rows_per_chunk shared with the helpers; on this
// thread alone when rows × row_size is under 64 Ki elements (not worth waking a helper).
template <typename Fn>
void for_each_row(int64_t rows, int64_t row_size, int64_t rows_per_chunk, Fn&& fn) {
  if (rows * row_size < (int64_t{1} << 16)) {
    for (int64_t r = 0; r < rows; ++r) fn(r);
    return;
  }
  parallel_chunks((rows + rows_per_chunk - 1) / rows_per_chunk, [&](int64_t c) {
    for (int64_t r = c * rows_per_chunk; r < std::min(rows, (c + 1) * rows_per_chunk); ++r) fn(r);
  });
}

}  // namespace gym::ops
