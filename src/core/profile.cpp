#include "gym/core/profile.h"

#include <algorithm>
#include <map>
#include <mutex>

namespace gym::profile {

std::atomic<bool> g_enabled{false};

namespace {
using Clock = std::chrono::steady_clock;
struct Frame {
  Clock::time_point start;
  double children = 0;   // seconds spent in nested sections
};
thread_local std::vector<Frame> t_stack;
std::mutex g_mutex;
std::map<std::string, double>& table() {
  static std::map<std::string, double> t;
  return t;
}
}  // namespace

void set_enabled(bool on) { g_enabled.store(on, std::memory_order_relaxed); }

void reset() {
  std::lock_guard<std::mutex> lock(g_mutex);
  table().clear();
}

std::vector<std::pair<std::string, double>> totals() {
  std::lock_guard<std::mutex> lock(g_mutex);
  std::vector<std::pair<std::string, double>> out(table().begin(), table().end());
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  return out;
}

void Scope::begin() { t_stack.push_back({Clock::now(), 0.0}); }

void Scope::end() {
  const Frame f = t_stack.back();
  t_stack.pop_back();
  const double elapsed = std::chrono::duration<double>(Clock::now() - f.start).count();
  if (!t_stack.empty()) t_stack.back().children += elapsed;
  std::lock_guard<std::mutex> lock(g_mutex);
  table()[name_] += elapsed - f.children;
}

}  // namespace gym::profile
