// Fault injection with real gym processes (issue 11, item 10): kill -9 during checkpoint writes, a
// full disk (a 2 MB tmpfs in a private mount namespace), two runs on one output_dir, and hostile
// reward commands. Every case checks the same things: a clean end (exit 0, or exit 1/2 with a last
// line "gym: error: <file|key>: <problem>", never a signal or a hang), nothing previously saved
// lost or altered, no half-written output, and the model, adapter and dataset folders
// byte-identical before and after (hash_tree). The tally is in docs/reliability.md.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <thread>

#include "cli_util.h"
#include "test_util.h"
#include "gym/checkpoint/checkpoint.h"
#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/io/safetensors.h"
#include "gym/model/create.h"
#include "gym/recipes/run_state.h"
#include "rl/sandbox.h"

namespace fs = std::filesystem;
using namespace gym;
using Clock = std::chrono::steady_clock;

namespace {

const std::string kSft = (source_dir() / "configs" / "tiny" / "sft_tiny.yaml").string();
const std::string kGspo = (source_dir() / "configs" / "tiny" / "gspo_tiny.yaml").string();

// relative path → FNV-1a of the contents, for every file below dir.
std::map<std::string, uint64_t> hash_tree(const fs::path& dir) {
  std::map<std::string, uint64_t> out;
  if (!fs::exists(dir)) return out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : read_file(e.path())) h = (h ^ c) * 1099511628211ull;
    out[fs::relative(e.path(), dir).string()] = h;
  }
  return out;
}

// The inputs of a run, in their own folders: a tiny model and a copy of the shipped datasets.
struct Inputs {
  fs::path root, model, data;
  std::map<std::string, uint64_t> model_hash, data_hash;
  explicit Inputs(const std::string& name) {
    root = test::fresh_dir("fault_" + name);
    model = root / "model";
    data = root / "data";
    model::create_model("qwen3", "tiny", model, "bytes", 0);
    fs::copy(source_dir() / "data", data, fs::copy_options::recursive);
    model_hash = hash_tree(model), data_hash = hash_tree(data);
  }
  std::string args() const {
    return " --model_name_or_path " + model.string() + " --create_model_preset null --dataset_dir " + data.string();
  }
  void expect_untouched() const {
    EXPECT_EQ(hash_tree(model), model_hash) << "the model folder was altered";
    EXPECT_EQ(hash_tree(data), data_hash) << "the dataset folder was altered";
  }
};

struct Ended {
  int code = -1;     // exit status, -1 when killed by a signal
  int signal = 0;
  bool hung = false;
  std::string out;   // stdout + stderr
};

pid_t spawn(const std::string& cmd, const fs::path& log) {
  const pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", ("exec " + cmd + " > '" + log.string() + "' 2>&1").c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  return pid;
}

Ended wait_for(pid_t pid, const fs::path& log, double timeout_s = 180) {
  Ended e;
  int status = 0;
  const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s);
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (Clock::now() > deadline) {
      e.hung = true;
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (WIFEXITED(status)) e.code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) e.signal = WTERMSIG(status);
  e.out = fs::exists(log) ? read_file(log) : "";
  return e;
}

// Whether the child has ended, without reaping it (wait_for still gets its status).
bool exited(pid_t pid) {
  siginfo_t info{};
  return ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid;
}

Ended run(const std::string& cmd, const fs::path& log, double timeout_s = 180) { return wait_for(spawn(cmd, log), log, timeout_s); }

std::string gym_cmd(const std::string& args) { return std::string(GYM_BINARY) + " " + args; }

std::string last_line(std::string s) {
  while (!s.empty() && s.back() == '\n') s.pop_back();
  return s.substr(s.rfind('\n') == std::string::npos ? 0 : s.rfind('\n') + 1);
}

// exit `code` with a last line "gym: error: ..." holding `needle`.
void expect_clean_error(const Ended& e, int code, const std::string& needle) {
  EXPECT_FALSE(e.hung) << e.out;
  EXPECT_EQ(e.signal, 0) << e.out;
  EXPECT_EQ(e.code, code) << e.out;
  const auto last = last_line(e.out);
  EXPECT_EQ(last.rfind("gym: error: ", 0), 0u) << e.out;
  EXPECT_NE(last.find(needle), std::string::npos) << last;
}

// Entries of output_dir (top level and inside checkpoints) that are half-written: temporary files
// or folders of an interrupted atomic write.
std::vector<std::string> temporaries(const fs::path& out) {
  std::vector<std::string> t;
  if (!fs::exists(out)) return t;
  for (const auto& e : fs::recursive_directory_iterator(out)) {
    const auto n = e.path().filename().string();
    if (n.find(".tmp.") != std::string::npos || n.find(".old.") != std::string::npos) t.push_back(fs::relative(e.path(), out).string());
  }
  return t;
}

// Every checkpoint gym counts (checkpoint-N with trainer_state.json) is complete and readable.
void expect_checkpoints_complete(const fs::path& out) {
  for (const auto& [step, dir] : checkpoint::list_checkpoints(out)) {
    SCOPED_TRACE(dir.string());
    const auto state = recipes::read_run_state(dir / "trainer_state.json");
    EXPECT_EQ(state.global_step, step);
    EXPECT_NO_THROW(io::SafeTensorsFile(dir / "adapter_model.safetensors"));
    EXPECT_NO_THROW(nlohmann::json::parse(read_file(dir / "adapter_config.json")));
    for (const char* f : {"optimizer.pt", "rng_state.pt"}) {
      torch::serialize::InputArchive a;
      EXPECT_NO_THROW(a.load_from((dir / f).string())) << f;
    }
  }
}

bool can_unshare_mounts() {
  return std::system("unshare --mount sh -c 'mount -t tmpfs -o size=64k tmpfs /mnt' >/dev/null 2>&1") == 0;
}

bool sandboxed_rewards() { return rl::sandbox_isolates(); }

}  // namespace

// kill -9 while a checkpoint is being written (its temporary folder exists), again and again: every
// checkpoint gym counts stays complete and byte-identical, the rerun resumes, the end is a normal run.
TEST(FaultInjection, KillNineDuringCheckpointWritesLosesNothing) {
  const Inputs in("kill9");
  const auto out = in.root / "out";
  const std::string cmd = gym_cmd("train " + kSft + in.args() + " --output_dir " + out.string() +
                              " --lora_rank 8 --max_steps 120 --save_steps 1 --save_total_limit 3 --logging_steps 1");
  std::map<std::string, std::map<std::string, uint64_t>> saved;   // checkpoint → its files' hashes
  int kills = 0;
  for (int round = 0; round < 8; ++round) {
    const auto log = in.root / ("round" + std::to_string(round) + ".log");
    const pid_t pid = spawn(cmd, log);
    // Wait for this process's ((round % 3) + 1)-th checkpoint write in progress (its
    // checkpoint-N.tmp.<pid> folder), then kill it 0-7 ms later.
    const std::string mine = ".tmp." + std::to_string(pid);
    std::set<std::string> writes;
    bool writing = false;
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    while (!writing && Clock::now() < deadline && !exited(pid)) {
      std::error_code ec;
      for (const auto& e : fs::directory_iterator(out, ec)) {
        const auto n = e.path().filename().string();
        if (n.rfind("checkpoint-", 0) == 0 && n.size() > mine.size() && n.compare(n.size() - mine.size(), mine.size(), mine) == 0)
          writes.insert(n);
      }
      writing = static_cast<int>(writes.size()) > round % 3;
      if (!writing) std::this_thread::sleep_for(std::chrono::microseconds(300));
    }
    if (!writing) {   // the run finished (or failed) before a write was caught
      const auto e = wait_for(pid, log);
      ASSERT_EQ(e.code, 0) << e.out;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(round % 8));
    ::kill(pid, SIGKILL);
    const auto e = wait_for(pid, log);
    ASSERT_EQ(e.signal, SIGKILL) << e.out;
    ++kills;
    // What was counted before the kill is unchanged (or rotated away whole); what is counted now is complete.
    for (const auto& [name, files] : saved) {
      if (fs::exists(out / name / "trainer_state.json")) {
        EXPECT_EQ(hash_tree(out / name), files) << name << " changed after a kill";
      }
    }
    expect_checkpoints_complete(out);
    for (const auto& [step, dir] : checkpoint::list_checkpoints(out)) saved[dir.filename().string()] = hash_tree(dir);
    in.expect_untouched();
  }
  EXPECT_GE(kills, 3) << "too few checkpoint writes were caught";
  const auto e = run(cmd, in.root / "final.log");
  ASSERT_EQ(e.code, 0) << e.out;
  EXPECT_NE(e.out.find("resum"), std::string::npos) << e.out;
  EXPECT_TRUE(temporaries(out).empty()) << "left behind: " << ::testing::PrintToString(temporaries(out));
  expect_checkpoints_complete(out);
  EXPECT_NO_THROW(io::SafeTensorsFile(out / "adapter_model.safetensors"));
  const auto log = test::read_log(out);
  ASSERT_FALSE(log.empty());
  EXPECT_EQ(log.back()["current_steps"], 120);
  in.expect_untouched();
}

// A full disk: output_dir on a 2 MB tmpfs (a private mount namespace). A checkpoint that does not
// fit is exit 1 naming the file and "No space left on device"; the previous checkpoint and the
// previous outputs are byte-identical; nothing half-written stays; with space again the run resumes.
TEST(FaultInjection, DiskFullIsACleanErrorAndKeepsWhatWasSaved) {
  if (!can_unshare_mounts()) GTEST_SKIP() << "unshare --mount + mount -t tmpfs is not permitted here (needs root or user namespaces)";
  const Inputs in("diskfull");
  const auto stages = in.root / "stages";
  fs::create_directories(stages);
  const std::string train = gym_cmd("train " + kSft + in.args() + " --lora_rank 8 --save_steps 2 --logging_steps 1 --output_dir $M/out");
  // Inside the namespace: run 1 ends at step 3 (checkpoint-2 + the final adapter); its
  // trainer_state.json is removed so that the next runs resume from checkpoint-2. Then, from that
  // same state each time, the disk is filled to leave 16 to 300 KiB free and a run to step 6 must
  // fail cleanly: writing checkpoint-4's adapter (16), its optimizer.pt (100, 160), its
  // rng_state.pt (220) or the final adapter (300). Last, with space again, run 3 resumes.
  // Each stage's output_dir is copied out of the tmpfs for the checks.
  const std::vector<int> free_kib = {16, 100, 160, 220, 300};
  std::string script = "set -u; M=" + (in.root / "mnt").string() + "; S=" + stages.string() +
                       "; mkdir -p $M; mount -t tmpfs -o size=2m tmpfs $M || exit 97\n" +
                       train + " --max_steps 3 > $S/run1.log 2>&1; echo $? > $S/run1.rc\n" +
                       "rm $M/out/trainer_state.json; cp -a $M/out $S/before\n";
  for (int k : free_kib) {
    const std::string n = std::to_string(k);
    script += "rm -rf $M/out; cp -a $S/before $M/out\n"
              "free=$(df -k --output=avail $M | tail -1); head -c $(( (free - " + n + ") * 1024 )) /dev/zero > $M/filler 2>/dev/null\n" +
              train + " --max_steps 6 > $S/full" + n + ".log 2>&1; echo $? > $S/full" + n + ".rc\n" +
              "cp -a $M/out $S/after" + n + "; rm $M/filler\n";
  }
  script += "rm -rf $M/out; cp -a $S/before $M/out\n" + train + " --max_steps 6 > $S/run3.log 2>&1; echo $? > $S/run3.rc\n" +
            "cp -a $M/out $S/resumed\n";
  std::ofstream(in.root / "diskfull.sh") << script;
  const auto e = run("unshare --mount sh " + (in.root / "diskfull.sh").string(), in.root / "unshare.log", 300);
  ASSERT_EQ(e.code, 0) << e.out;
  auto rc = [&](const std::string& r) { return std::stoi(read_file(stages / (r + ".rc"))); };
  ASSERT_EQ(rc("run1"), 0) << read_file(stages / "run1.log");
  const auto before = hash_tree(stages / "before");
  ASSERT_TRUE(before.count("checkpoint-2/optimizer.pt")) << read_file(stages / "run1.log");
  for (int k : free_kib) {
    const std::string n = std::to_string(k);
    SCOPED_TRACE(n + " KiB free");
    Ended full;
    full.code = rc("full" + n);
    full.out = read_file(stages / ("full" + n + ".log"));
    expect_clean_error(full, 1, "No space left on device");   // before: LibTorch's archive writer aborted (SIGABRT)
    EXPECT_EQ(test::count_error_lines(full.out), 1) << full.out;
    // Nothing previously saved altered (checkpoint-2, run 1's adapter); nothing half-written left.
    const auto after = hash_tree(stages / ("after" + n));
    for (const auto& [name, h] : before) {
      if (name.rfind("checkpoint-2/", 0) == 0 || name.rfind("adapter_", 0) == 0) {
        EXPECT_EQ(after.count(name) ? after.at(name) : 0, h) << name << " changed on a full disk";
      }
    }
    EXPECT_TRUE(temporaries(stages / ("after" + n)).empty()) << ::testing::PrintToString(temporaries(stages / ("after" + n)));
    expect_checkpoints_complete(stages / ("after" + n));
  }
  ASSERT_EQ(rc("run3"), 0) << read_file(stages / "run3.log");
  EXPECT_NE(read_file(stages / "run3.log").find("resumed from"), std::string::npos) << read_file(stages / "run3.log");
  EXPECT_TRUE(fs::exists(stages / "resumed" / "checkpoint-4" / "trainer_state.json"));
  EXPECT_TRUE(temporaries(stages / "resumed").empty());
  in.expect_untouched();
}

// Two runs started together on one output_dir: one trains, the other is refused with exit 2 naming
// the holder when it is known (or, when it comes after the end, refuses the changed command); the outputs are one
// run's, whole: every step logged once, a loadable adapter, complete checkpoints.
TEST(FaultInjection, TwoConcurrentRunsOnOneOutputDir) {
  const Inputs in("concurrent");
  for (int delay_ms : {0, 30, 400}) {
    SCOPED_TRACE("second run started after " + std::to_string(delay_ms) + " ms");
    const auto out = in.root / ("out" + std::to_string(delay_ms));
    const std::string args = "train " + kSft + in.args() + " --output_dir " + out.string() + " --lora_rank 8 --max_steps 6 --save_steps 2 --logging_steps 1";
    const pid_t a = spawn(gym_cmd(args), in.root / "a.log");
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    const pid_t b = spawn(gym_cmd(args + " --learning_rate 1e-3"), in.root / "b.log");
    const auto ea = wait_for(a, in.root / "a.log"), eb = wait_for(b, in.root / "b.log");
    int trained = 0;
    for (const auto* e : {&ea, &eb}) {
      EXPECT_FALSE(e->hung) << e->out;
      EXPECT_EQ(e->signal, 0) << e->out;
      if (e->code == 0 && e->out.find("nothing to do") == std::string::npos) {
        ++trained;
      } else if (e->code != 0) {
        // (pid N) once the holder has written its record; "(holder unknown)" in the instant between
        // its lock and that write (seen once with the 30 ms delay under a loaded machine). Started
        // after the first run finished, the second (another learning rate) is refused as a changed
        // command.
        const bool finished = e->out.find("holds a finished run of another config") != std::string::npos;
        expect_clean_error(*e, 2, finished ? "holds a finished run of another config" : "in use by another gym run (");
      }
    }
    EXPECT_EQ(trained, 1) << ea.out << "\n----\n" << eb.out;
    const auto log = test::read_log(out);
    ASSERT_EQ(log.size(), 6u);
    for (size_t i = 0; i < log.size(); ++i) EXPECT_EQ(log[i]["current_steps"], static_cast<int>(i + 1));
    EXPECT_NO_THROW(io::SafeTensorsFile(out / "adapter_model.safetensors"));
    expect_checkpoints_complete(out);
    EXPECT_TRUE(temporaries(out).empty());
  }
  in.expect_untouched();
}

// Reward commands that attack: delete or overwrite the model, dataset and output folders, kill
// gym, kill everything they see, leave processes behind, fork without end, print garbage. The run
// either trains on (the attack had no effect) or stops with exit 1 naming the command; the
// model, adapter, dataset and saved outputs are byte-identical.
TEST(FaultInjection, HostileRewardCommands) {
  if (!sandboxed_rewards()) GTEST_SKIP() << "bubblewrap is missing or cannot create namespaces here: a hostile command would run unconfined";
  const Inputs in("reward");
  // The adapter the RL run continues: a short SFT run, then kept as an input folder.
  const auto adapter = in.root / "adapter";
  ASSERT_EQ(run(gym_cmd("train " + kSft + in.args() + " --output_dir " + adapter.string() + " --lora_rank 8 --max_steps 2 --save_steps 100"),
                in.root / "sft.log").code, 0) << read_file(in.root / "sft.log");
  const auto adapter_hash = hash_tree(adapter);
  const auto marker = in.root / "survivor";
  const std::string targets = in.model.string() + " " + in.data.string() + " " + adapter.string();
  enum Outcome { kTrains, kFails, kEither };   // kTrains: the attack is contained and the run goes on
  struct Case {
    const char* name;
    std::string script;
    Outcome outcome;
    const char* needle;   // in the last line when it fails
  };
  const std::vector<Case> cases = {
      {"vandal", "rm -rf " + targets + " 2>/dev/null; for f in $(find " + targets + " -type f); do echo x > $f; done\n"
                 "while read l; do echo 1; done\n", kTrains, ""},
      // Before, its stderr (many lines) followed gym's error line: the last line was not gym's.
      {"kill_parent", "for f in $(find " + targets + " -type f); do echo x > $f; done; kill -9 $PPID; while read l; do echo 1; done\n",
       kFails, "external reward"},
      {"straggler", "(setsid sh -c 'sleep 3; touch " + marker.string() + "' &) ; while read l; do echo 0.5; done\n", kTrains, ""},
      {"kill_all", "kill -9 -1; while read l; do echo 1; done\n", kFails, "external reward"},
      {"fork_bomb", "b() { b | b & }; b 2>/dev/null; while read l; do echo 1; done\n", kEither, "external reward"},
      {"garbage", "while read l; do echo 'not a number'; done\n", kFails, "which is not a number"},
      {"hang", "sleep 600\n", kFails, "timed out"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    const auto script = in.root / (std::string(c.name) + ".sh");
    std::ofstream(script) << c.script;
    const auto out = in.root / ("rl_" + std::string(c.name));
    const auto e = run(gym_cmd("train " + kGspo + in.args() + " --adapter_name_or_path " + adapter.string() + " --adapter_warm_start null" +
                           " --lora_rank 8 --output_dir " + out.string() + " --reward_funcs external --reward_command 'sh " +
                           script.string() + "' --reward_timeout 5 --reward_max_processes 64 --per_device_train_batch_size 8" +
                           " --num_generations 4 --max_steps 2 --save_steps 1 --logging_steps 1"),
                       in.root / (std::string(c.name) + ".log"), 120);
    if (c.outcome == kTrains || (c.outcome == kEither && e.code == 0)) {
      EXPECT_EQ(e.code, 0) << e.out;
      EXPECT_NO_THROW(io::SafeTensorsFile(out / "adapter_model.safetensors"));
    } else {
      expect_clean_error(e, 1, c.needle);
    }
    EXPECT_TRUE(temporaries(out).empty());
    in.expect_untouched();
    EXPECT_EQ(hash_tree(adapter), adapter_hash) << "the adapter folder was altered";
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(3500));
  EXPECT_FALSE(fs::exists(marker)) << "a process left by the reward command outlived its call";
}
