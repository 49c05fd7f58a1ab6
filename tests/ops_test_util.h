// Helpers of the ops tests: JSON → tensors, the fixture files, error measures, the CUDA gate.
#pragma once
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <torch/cuda.h>
#include <torch/types.h>

#include <functional>
#include <string>
#include <vector>

#include "gym/core/fs.h"
#include "gym/ops/ops.h"
#include "gym/ops/policy_objective.h"

namespace gym::test {

// A nested JSON array of numbers → float64 tensor of its shape.
inline torch::Tensor json_tensor(const nlohmann::json& j) {
  std::vector<int64_t> shape;
  for (const nlohmann::json* p = &j; p->is_array(); p = &(*p)[0]) shape.push_back(static_cast<int64_t>(p->size()));
  std::vector<double> flat;
  std::function<void(const nlohmann::json&)> walk = [&](const nlohmann::json& x) {
    if (x.is_array()) for (const auto& y : x) walk(y);
    else flat.push_back(x.get<double>());
  };
  walk(j);
  return torch::tensor(flat, torch::kFloat64).view(shape);
}

inline const nlohmann::json& policy_loss_vectors() {
  static const auto v = nlohmann::json::parse(read_file(std::string(GYM_TEST_DATA) + "/rl/policy_loss_vectors.json"));
  return v;
}
inline const nlohmann::json& nf4_vectors() {
  static const auto v = nlohmann::json::parse(read_file(std::string(GYM_TEST_DATA) + "/quant/nf4_vectors.json"));
  return v;
}

// A TRL case of the policy-loss vectors (its "config" and the file's "meta") as the ops' options:
// the ratio level, the clip range, and the loss aggregation with its parameters.
struct TrlCaseOptions {
  ops::PolicyObjectiveOptions objective;
  ops::Aggregation aggregation;
  ops::AggregationParams params;
};
inline TrlCaseOptions trl_case_options(const nlohmann::json& cfg, const nlohmann::json& meta) {
  TrlCaseOptions t;
  const std::string level = cfg["level"], loss_type = cfg["loss_type"];
  t.objective.level = level == "token" ? ops::RatioLevel::Token : level == "sequence" ? ops::RatioLevel::Sequence : ops::RatioLevel::SequenceToken;
  t.objective.eps_low = cfg["eps_low"];
  t.objective.eps_high = cfg["eps_high"];
  t.params.grad_accum = meta["grad_accum_steps"];
  t.params.max_completion_length = meta["max_completion_length"];
  t.params.num_processes = meta["num_processes"];
  t.aggregation = loss_type == "grpo"      ? ops::Aggregation::TrlGrpo
                  : loss_type == "bnpo"    ? ops::Aggregation::TrlBnpo
                  : loss_type == "dr_grpo" ? ops::Aggregation::TrlDrGrpo
                                           : ops::Aggregation::TrlDapo;
  return t;
}

inline double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.detach().cpu().to(torch::kFloat64) - b.detach().cpu().to(torch::kFloat64)).abs().max().item<double>();
}

// Kernel-vs-twin tests run only where a GPU is present and the kernels are compiled in.
#define GYM_REQUIRE_CUDA_KERNELS()                                                                   \
  do {                                                                                              \
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device: kernel parity not checked";  \
    if (!gym::ops::cuda_kernels_compiled()) GTEST_SKIP() << "built without GYM_CUDA: no kernels";   \
  } while (0)

}  // namespace gym::test
