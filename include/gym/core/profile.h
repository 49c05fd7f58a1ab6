// A lightweight section profiler for `gym bench ... --profile`: GYM_PROFILE("section") times the
// enclosing scope. Each section gets its self time (nested sections are subtracted from their
// parent), summed per name. Off by default: a disabled scope costs one relaxed atomic load.
#pragma once
#include <atomic>
#include <chrono>
#include <string>
#include <utility>
#include <vector>

namespace gym::profile {

extern std::atomic<bool> g_enabled;
inline bool enabled() { return g_enabled.load(std::memory_order_relaxed); }
void set_enabled(bool on);
void reset();
// (section, seconds of self time), largest first.
std::vector<std::pair<std::string, double>> totals();

class Scope {
 public:
  explicit Scope(const char* name) : name_(enabled() ? name : nullptr) {
    if (name_) begin();
  }
  ~Scope() {
    if (name_) end();
  }
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

 private:
  void begin();
  void end();
  const char* name_;
};

}  // namespace gym::profile

#define GYM_PROFILE_CAT2(a, b) a##b
#define GYM_PROFILE_CAT(a, b) GYM_PROFILE_CAT2(a, b)
#define GYM_PROFILE(name) ::gym::profile::Scope GYM_PROFILE_CAT(gym_profile_scope_, __LINE__)(name)
