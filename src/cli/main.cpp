// gym: fine-tune Qwen3-family models from YAML configs.
#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>
#include <torch/cuda.h>

#include <iostream>
#include <string>

#include "cli/commands.h"
#include "gym/core/error.h"
#include "gym/core/threads.h"
#include "gym/dist/env.h"
#include "gym/ops/ops.h"

namespace gym::cli {
int g_exit_code = 0;

// gym --version: the version, then whether the CUDA kernels are built in and, if so, how many CUDA
// devices LibTorch sees (scripts/check_cuda.sh looks for "no CUDA device" in a GPU-less chroot).
std::string version_text() {
  std::string text = std::string("gym ") + GYM_VERSION + "\nCUDA kernels: ";
  if (!ops::cuda_kernels_compiled()) return text + "not built (GYM_CUDA off)";
  const auto n = torch::cuda::device_count();
  return text + "built; " + (n == 0 ? std::string("no CUDA device") : std::to_string(n) + " CUDA device(s)");
}
// The error line is one line whatever the message holds (a reward command's stderr, a LibTorch
// message): newlines become " | ", so the last line of stderr is always "gym: error: ...".
std::string one_line(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r')) s.pop_back();
  std::string out;
  for (char c : s) {
    if (c == '\n') out += " | ";
    else if (c != '\r') out += c;
  }
  return out;
}
}  // namespace gym::cli

int main(int argc, char** argv) {
  using namespace gym;
  spdlog::set_pattern("[%H:%M:%S] %^%l%$ %v");
  if (const char* lvl = std::getenv("GYM_LOG_LEVEL")) spdlog::set_level(spdlog::level::from_str(lvl));

  CLI::App app{"gym — fine-tune Qwen3-family models (LoRA, QLoRA, SFT, GRPO, GSPO) from YAML configs", "gym"};
  app.set_version_flag("--version", cli::version_text);
  app.require_subcommand(1);
  app.fallthrough(false);
  cli::add_train_command(app);
  cli::add_validate_command(app);
  cli::add_create_model_command(app);
  cli::add_score_command(app);
  cli::add_generate_command(app);
  cli::add_tokenize_command(app);
  cli::add_export_command(app);
  cli::add_bench_command(app);
  cli::add_report_command(app);
  cli::add_help_commands(app);
  if (const int rc = cli::check_command_word(app, argc, argv)) return rc;

  try {
    configure_threads();
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "gym: error: " << cli::one_line(e.what()) << " (see 'gym help')\n";
    return 2;
  } catch (const Error& e) {
    std::cerr << "gym: error: " << dist::rank_prefix() << cli::one_line(e.what()) << "\n";
    return e.exit_code();
  } catch (const c10::Error& e) {
    std::cerr << "gym: error: " << dist::rank_prefix() << cli::one_line(e.what_without_backtrace()) << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "gym: error: " << dist::rank_prefix() << cli::one_line(e.what()) << "\n";
    return 1;
  }
  return cli::g_exit_code;
}
