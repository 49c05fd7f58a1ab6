// SIGINT / SIGTERM during training: the first signal asks the loop to stop at the next step
// boundary (it then writes a checkpoint unless one was just written, says how to resume, and
// exits 130 / 143); a second signal exits at once.
#pragma once

namespace gym::recipes {

// Installs the handlers (idempotent). Called by the recipes before their loop.
void install_stop_handlers();
// 0 while no stop was asked for, else the signal (SIGINT or SIGTERM).
int stop_requested();
// After the checkpoint: one line on how to resume, then exit(128 + signal).
[[noreturn]] void exit_for_stop(int signal, const char* output_dir, long step);

}  // namespace gym::recipes
