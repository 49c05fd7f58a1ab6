// Running the built gym binary from tests.
#pragma once
#include <array>
#include <cstdio>
#include <string>
#include <sys/wait.h>

namespace gym::test {

struct CommandResult {
  int exit_code = -1;
  std::string output;   // stdout and stderr together
};

inline CommandResult run_gym(const std::string& args) {
  CommandResult r;
  const std::string cmd = std::string(GYM_BINARY) + " " + args + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  if (!pipe) return r;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) r.output.append(buf.data(), n);
  const int status = pclose(pipe);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// Lines of the output that are gym's error lines.
inline int count_error_lines(const std::string& out) {
  int n = 0;
  size_t pos = 0;
  while ((pos = out.find("gym: error:", pos)) != std::string::npos) ++n, ++pos;
  return n;
}

}  // namespace gym::test
