#include "cli/model_args.h"

#include "gym/io/hf_dir.h"
#include "gym/lora/adapter.h"
#include "gym/model/loader.h"

namespace gym::cli {

model::CausalLM load_model_for_cli(const std::string& name, const std::string& adapter) {
  auto m = model::load_model(io::resolve_model_dir(name), torch::kFloat32);
  if (!adapter.empty()) lora::load_adapter(*m, adapter, m->config().weight_prefix);
  m->eval();
  return m;
}

}  // namespace gym::cli
