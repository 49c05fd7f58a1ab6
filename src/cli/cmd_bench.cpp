// gym bench: speed and memory figures, reported as ratios to baselines measured in the same run.
#include "cli/bench.h"
#include "cli/commands.h"

namespace gym::cli {

void add_bench_command(CLI::App& app) {
  auto* bench = app.add_subcommand("bench", "Benchmarks (figures are ratios to this machine's own baselines)");
  bench->require_subcommand(1);
  add_bench_threads(*bench);
  add_bench_model(*bench);
  add_bench_tokenizer(*bench);
  add_bench_nf4(*bench);
  add_bench_dist(*bench);
}

}  // namespace gym::cli
