// The external reward command runs sandboxed: a hostile script can neither reach the network nor
// write outside its temp dir, nor read gym's environment or descriptors, nor outlive its call.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "gym/core/error.h"
#include "gym/rl/rewards.h"
#include "rl/sandbox.h"

namespace fs = std::filesystem;
using namespace gym;

namespace {

std::vector<rl::RewardInput> batch(size_t n) { return std::vector<rl::RewardInput>(n, rl::RewardInput{"p", "c", {1, 2}, {}}); }

// Runs a command for one completion and returns the number it printed.
double run_one(const std::string& cmd, double timeout = 20) {
  rl::RewardSettings s;
  s.external_command = cmd;
  s.external_timeout = timeout;
  auto r = rl::external_reward(batch(1), s);
  return r.at(0).value_or(-12345);
}

std::string error_of(const std::string& cmd, double timeout = 20, int64_t output_mb = 16, int64_t memory_mb = 4096) {
  rl::RewardSettings s;
  s.external_command = cmd;
  s.external_timeout = timeout;
  s.external_max_output_mb = output_mb;
  s.external_memory_mb = memory_mb;
  try {
    rl::external_reward(batch(1), s);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// bubblewrap installed and able to create namespaces here, for the user the command runs as.
bool isolated() { return rl::sandbox_isolates(); }

}  // namespace

TEST(RlSandbox, NoNetworkNoWritesOutsideItsTempDirReadableFilesystem) {
  if (!isolated()) GTEST_SKIP() << "bubblewrap is missing or cannot create namespaces here (scripts/setup.sh installs it)";
  // Only the loopback interface exists in its network namespace.
  EXPECT_EQ(run_one("read l; grep -c : /proc/net/dev"), 1);
  const fs::path probe = fs::temp_directory_path() / ("gym_sandbox_probe_" + std::to_string(::getpid()));
  fs::remove(probe);
  EXPECT_EQ(run_one("read l; touch " + probe.string() + " 2>/dev/null; echo 0"), 0);
  EXPECT_FALSE(fs::exists(probe)) << "the command wrote outside its temp dir";
  // Its own temp dir is writable and is its working directory and HOME; the filesystem is readable.
  EXPECT_EQ(run_one("read l; echo x > here && [ \"$PWD\" = \"$HOME\" ] && [ -r /etc/hostname ] && echo 1"), 1);
}

TEST(RlSandbox, CleanEnvironmentAndNoInheritedDescriptors) {
  ::setenv("GYM_TEST_SECRET", "hunter2", 1);
  const int leaked = ::open("/dev/null", O_RDONLY);   // not close-on-exec: must not reach the command
  EXPECT_EQ(run_one("read l; env | grep -c SECRET || true"), 0);
  EXPECT_EQ(run_one("read l; env | wc -l"), 6);   // PATH HOME TMPDIR LANG LC_ALL, and the shell's PWD
  // ls itself opens its directory: 0, 1, 2 and that one.
  EXPECT_EQ(run_one("read l; ls /proc/self/fd | wc -l"), 4);
  ::close(leaked);
  ::unsetenv("GYM_TEST_SECRET");
}

TEST(RlSandbox, TheWholeProcessTreeDiesWithTheCall) {
  const fs::path marker = fs::temp_directory_path() / ("gym_sandbox_linger_" + std::to_string(::getpid()));
  fs::remove(marker);
  // A setsid'd grandchild that would write a marker (and sleep on) after the command returns.
  const std::string cmd = "read l; setsid sh -c 'sleep 2; echo alive > " + marker.string() + "' >/dev/null 2>&1 & echo 1";
  rl::RewardSettings s;
  s.external_command = cmd;
  s.external_sandbox = true;
  const auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(rl::external_reward(batch(1), s).at(0).value(), 1.0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));   // it did not wait for the grandchild
  std::this_thread::sleep_for(std::chrono::milliseconds(3000));
  if (isolated()) { EXPECT_FALSE(fs::exists(marker)) << "a setsid'd child outlived the reward call"; }
  fs::remove(marker);
}

TEST(RlSandbox, LimitsTimeoutsAndBadOutputsAreErrorsNamingTheCommand) {
  // A timeout far beyond any clock cannot overflow.
  EXPECT_EQ(run_one("read l; echo 0.5", 1e300), 0.5);
  EXPECT_NE(error_of("read l; sleep 30", 0.5).find("timed out"), std::string::npos);
  EXPECT_NE(error_of("read l; echo nan").find("returned NaN"), std::string::npos);
  EXPECT_NE(error_of("read l; echo 1; echo 2").find("printed 2 numbers for 1 completions"), std::string::npos);
  EXPECT_NE(error_of("yes 1", 20, 1).find("printed more than 1 MB"), std::string::npos);
  // Memory: with a 256 MiB limit, a shell that holds 400 MB in a variable is stopped.
  const auto mem = error_of("read l; a=$(head -c 400000000 /dev/zero | tr '\\0' x); echo 1", 20, 16, 256);
  EXPECT_FALSE(mem.empty()) << "a 400 MB allocation was allowed under a 256 MiB limit";
  EXPECT_NE(mem.find("external reward"), std::string::npos) << mem;
}

// reward_max_processes holds for every user, root included (the kernel exempts uid 0 from
// RLIMIT_NPROC, so a root gym runs the command as nobody): of 60 background sleeps under a limit
// of 20 added processes, the shell fails to start some. Bounded, unlike a real fork bomb.
TEST(RlSandbox, TheProcessLimitHoldsEvenWhenGymIsRoot) {
  if (::geteuid() == 0) { EXPECT_EQ(run_one("read l; id -u"), 65534) << "a root gym ran the reward command as root"; }
  // 60 background sleeps under a limit of 20 added processes: the shell cannot fork them all (dash
  // stops with "Cannot fork"; a shell that went on would count fewer than 60 started).
  rl::RewardSettings s;
  s.external_command = "read l; n=0; i=0; last=; while [ $i -lt 60 ]; do i=$((i+1)); sleep 2 & "
                       "[ \"$!\" != \"$last\" ] && n=$((n+1)); last=$!; done; echo $n";
  s.external_max_processes = 20;
  s.external_timeout = 20;
  try {
    EXPECT_LT(rl::external_reward(batch(1), s).at(0).value(), 40) << "60 processes started under a limit of 20";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("Cannot fork"), std::string::npos) << e.what();
  }
}
