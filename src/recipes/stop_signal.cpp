#include "recipes/stop_signal.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cstdlib>

namespace gym::recipes {

namespace {

volatile sig_atomic_t g_stop = 0;

void on_signal(int sig) {
  if (g_stop != 0) _exit(128 + sig);   // the second signal: at once
  g_stop = sig;
  static const char msg[] = "\ngym: stopping at the end of this step (a checkpoint is written); send the signal again to exit at once\n";
  const ssize_t ignored = ::write(2, msg, sizeof(msg) - 1);
  (void)ignored;
}

}  // namespace

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

int stop_requested() { return g_stop; }

void exit_for_stop(int signal, const char* output_dir, long step) {
  spdlog::info("stopped by {} after step {}; the checkpoint is in {}: run the same command again to resume",
               signal == SIGINT ? "SIGINT" : "SIGTERM", step, output_dir);
  spdlog::default_logger()->flush();
  std::exit(128 + signal);
}

}  // namespace gym::recipes
