// Warns when MoE experts collapse: some expert received no token for many steps in a row.
#pragma once
#include <spdlog/spdlog.h>

#include <map>
#include <string>

namespace gym::recipes {

class ExpertCollapseMonitor {
 public:
  explicit ExpertCollapseMonitor(int64_t patience = 20) : patience_(patience) {}
  void update(const std::map<std::string, double>& stats, int64_t step) {
    auto it = stats.find("moe/idle_experts");
    if (it == stats.end()) return;
    streak_ = it->second > 0 ? streak_ + 1 : 0;
    if (streak_ == patience_)
      spdlog::warn("step {}: router collapse — {:.0f} expert slot(s) got no token for {} steps in a row; raise "
                   "router_aux_loss_coef or lower the learning rate", step, it->second, patience_);
  }

 private:
  int64_t patience_;
  int64_t streak_ = 0;
};

}  // namespace gym::recipes
