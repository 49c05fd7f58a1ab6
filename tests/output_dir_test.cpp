// gym never destroys what it did not write: output_dir checks, the manifest, the lock, reruns.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include "cli_util.h"
#include "test_util.h"
#include "gym/checkpoint/checkpoint.h"
#include "gym/checkpoint/output_dir.h"
#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/model/create.h"

namespace fs = std::filesystem;
using namespace gym;

namespace {

const std::string kSft = (source_dir() / "configs" / "tiny" / "sft_tiny.yaml").string();

fs::path fresh(const std::string& name) { return test::fresh_dir("outdir_" + name); }

// name → contents of every file below dir: equal before and after means nothing was altered.
std::map<std::string, std::string> snapshot(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) out[fs::relative(e.path(), dir).string()] = read_file(e.path());
  return out;
}

void write(const fs::path& p, const std::string& s) { std::ofstream(p) << s; }

}  // namespace

TEST(OutputDir, ManifestClearsOnlyGymsEntriesAndRefusesForeignOnes) {
  const auto d = fresh("manifest");
  checkpoint::write_recorded(d, [&] {
    write(d / "adapter_model.safetensors", "ours");
    fs::create_directories(d / "checkpoint-2");
  });
  EXPECT_EQ(checkpoint::manifest_entries(d), (std::set<std::string>{"adapter_model.safetensors", "checkpoint-2"}));
  EXPECT_TRUE(checkpoint::foreign_entries(d).empty());
  write(d / "notes.txt", "the user's");
  write(d / "model.safetensors", "the user's model");
  EXPECT_EQ(checkpoint::foreign_entries(d), (std::vector<std::string>{"model.safetensors", "notes.txt"}));
  const auto before = snapshot(d);
  EXPECT_THROW(checkpoint::clear_previous_outputs(d), Error);   // gym would overwrite the user's model
  EXPECT_EQ(snapshot(d), before);                                // refused: nothing removed
  fs::remove(d / "model.safetensors");
  const auto removed = checkpoint::clear_previous_outputs(d);
  EXPECT_EQ(removed.size(), 2u);
  EXPECT_EQ(checkpoint::entry_names(d), (std::set<std::string>{"notes.txt"}));   // the user's file stays
  // A manifest that names a path outside output_dir is refused, never followed.
  write(d / checkpoint::kManifestName, R"({"entries": ["../victim"]})");
  EXPECT_THROW(checkpoint::manifest_entries(d), Error);
}

TEST(OutputDir, InsideAnInputFolderIsRefused) {
  const auto m = fresh("inputs");
  fs::create_directories(m / "model" / "sub");
  EXPECT_THROW(checkpoint::check_not_inside_inputs(m / "model", {{"model_name_or_path", m / "model"}}), Error);
  EXPECT_THROW(checkpoint::check_not_inside_inputs(m / "model" / "sub", {{"model_name_or_path", m / "model"}}), Error);
  EXPECT_THROW(checkpoint::check_not_inside_inputs(m / "model" / "new", {{"dataset_dir", m / "model/"}}), Error);
  EXPECT_NO_THROW(checkpoint::check_not_inside_inputs(m / "model_out", {{"model_name_or_path", m / "model"}}));
  EXPECT_NO_THROW(checkpoint::check_not_inside_inputs(m / "out", {{"adapter_name_or_path", m / "missing"}}));
}

TEST(OutputDir, LockNamesItsHolderAndAStaleLockIsTakenOver) {
  const auto d = fresh("lock");
  write(d / checkpoint::kLockName, "pid 999999 on host gone\n");   // a holder that died: no flock held
  checkpoint::lock_output_dir(d);                                    // taken over
  EXPECT_NE(read_file(d / checkpoint::kLockName).find("pid " + std::to_string(::getpid())), std::string::npos);
  // This process holds it now: a gym run on the same output_dir is refused, naming us.
  auto r = test::run_gym("train " + kSft + " --output_dir " + d.string() + " --max_steps 2");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("in use by another gym run (pid " + std::to_string(::getpid())), std::string::npos) << r.output;
  EXPECT_EQ(test::count_error_lines(r.output), 1) << r.output;
}

TEST(OutputDir, OnlyGymsOwnTemporariesAreRemovedOrIgnored) {
  const auto d = fresh("temporaries");
  write(d / "backup.tmp.1", "the user's");                 // ".tmp." in a name gym never writes
  write(d / "trainer_state.json.tmp.123", "half a write");   // gym's, left by a kill
  fs::create_directories(d / "checkpoint-2.tmp.old.55");
  EXPECT_EQ(checkpoint::foreign_entries(d), (std::vector<std::string>{"backup.tmp.1"}));
  checkpoint::remove_temporaries(d);
  EXPECT_EQ(checkpoint::entry_names(d), (std::set<std::string>{"backup.tmp.1"}));
}

TEST(OutputDir, AnInputInsideAnEarlierOutputBlocksItsRemoval) {
  const auto d = fresh("input_inside");
  checkpoint::write_recorded(d, [&] { fs::create_directories(d / "checkpoint-2"); });
  fs::create_directories(d / "mine");
  EXPECT_THROW(checkpoint::check_inputs_survive(d, {{"adapter_name_or_path", d / "checkpoint-2"}}), Error);
  EXPECT_NO_THROW(checkpoint::check_inputs_survive(d, {{"adapter_name_or_path", d / "mine"}}));
  EXPECT_NO_THROW(checkpoint::check_inputs_survive(d, {{"model_name_or_path", d.parent_path()}}));
}

TEST(OutputDir, ASymlinkedLockIsRefusedAndItsTargetKept) {
  const auto d = fresh("lock_link");
  write(d.parent_path() / "outdir_lock_link_target.txt", "IMPORTANT");
  fs::create_symlink(d.parent_path() / "outdir_lock_link_target.txt", d / checkpoint::kLockName);
  EXPECT_THROW(checkpoint::lock_output_dir(d), Error);
  EXPECT_EQ(read_file(d.parent_path() / "outdir_lock_link_target.txt"), "IMPORTANT");
}

TEST(OutputDir, RotationRemovesOnlyGymsCheckpoints) {
  const auto d = fresh("rotation");
  for (const char* ck : {"checkpoint-1", "checkpoint-2", "checkpoint-4"}) {
    fs::create_directories(d / ck);
    write(d / ck / "trainer_state.json", "{}");
  }
  checkpoint::record_outputs(d, {"checkpoint-2", "checkpoint-4"});   // checkpoint-1 is someone else's
  checkpoint::rotate_checkpoints(d, 1);
  EXPECT_TRUE(fs::exists(d / "checkpoint-1"));
  EXPECT_FALSE(fs::exists(d / "checkpoint-2"));
  EXPECT_TRUE(fs::exists(d / "checkpoint-4"));
}

TEST(OutputDir, WholeFolderWritesReplaceOnlyTheirOwnFolders) {
  const auto root = fresh("whole");
  const auto fill = [](const fs::path& tmp) { write(tmp / "config.json", "{}"); };
  fs::create_directories(root / "foreign");
  write(root / "foreign" / "notes.txt", "the user's");
  EXPECT_THROW(write_whole_folder(root / "foreign", {}, fill), Error);
  EXPECT_EQ(snapshot(root / "foreign"), (std::map<std::string, std::string>{{"notes.txt", "the user's"}}));
  write(root / "file", "a file");
  EXPECT_THROW(write_whole_folder(root / "file", {}, fill), Error);
  EXPECT_EQ(read_file(root / "file"), "a file");
  // Is or contains an input: refused before anything is written. A new folder inside one deletes
  // nothing (gym export --out RUN/merged beside the adapter it merges).
  fs::create_directories(root / "model");
  EXPECT_THROW(write_whole_folder(root / "model", {{"--model", root / "model"}}, fill), Error);
  EXPECT_THROW(write_whole_folder(root, {{"--adapter", root / "model"}}, fill), Error);
  EXPECT_TRUE(fs::is_empty(root / "model"));
  write_whole_folder(root / "model" / "merged", {{"--model", root / "model"}}, fill);
  EXPECT_TRUE(fs::exists(root / "model" / "merged" / "config.json"));
  // New (a trailing separator names the same folder), then replaced by the same command; a
  // temporary folder of a killed earlier write goes.
  fs::create_directories(root / "new.tmp.999999999");
  write(root / "new.tmp.999999999" / kPartialFolderMarker, "");
  fs::create_directories(root / "new.tmp.999999998");   // the user's, only named like one: stays
  write_whole_folder(root.string() + "/new/", {}, fill);
  EXPECT_TRUE(fs::exists(root / "new" / "config.json"));
  EXPECT_TRUE(fs::exists(root / "new" / kWholeFolderMarker));
  EXPECT_FALSE(fs::exists(root / "new" / kPartialFolderMarker));
  EXPECT_FALSE(fs::exists(root / "new.tmp.999999999"));
  EXPECT_TRUE(fs::exists(root / "new.tmp.999999998"));
  write(root / "new" / "extra", "from the earlier write");
  write_whole_folder(root / "new", {}, fill);
  EXPECT_FALSE(fs::exists(root / "new" / "extra"));
  fs::create_directories(root / "empty");
  EXPECT_NO_THROW(write_whole_folder(root / "empty", {}, fill));
}

TEST(OutputDirCli, CreateModelAndExportNeverReplaceAFolderGymDidNotWrite) {
  const auto root = fresh("export_guard");
  fs::create_directories(root / "victim");
  write(root / "victim" / "notes.txt", "precious");
  auto r = test::run_gym("create-model --arch qwen3 --preset tiny --out " + (root / "victim").string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("holds files gym did not write (notes.txt)"), std::string::npos) << r.output;
  EXPECT_EQ(test::count_error_lines(r.output), 1) << r.output;
  EXPECT_EQ(read_file(root / "victim" / "notes.txt"), "precious");
  r = test::run_gym("create-model --arch qwen3 --preset tiny --out " + (root / "base").string());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto base = snapshot(root / "base");
  r = test::run_gym("export --model " + (root / "base").string() + " --quantize nf4 --out " + (root / "base").string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("is --model"), std::string::npos) << r.output;
  EXPECT_EQ(snapshot(root / "base"), base);
  r = test::run_gym("export --model " + (root / "base").string() + " --quantize nf4 --out " + (root / "nf4").string());
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = test::run_gym("export --model " + (root / "base").string() + " --quantize nf4 --out " + (root / "nf4").string());
  EXPECT_EQ(r.exit_code, 0) << r.output;   // its own earlier output: replaced
}

TEST(OutputDirCli, OverwriteNeverDeletesAModelFolder) {
  const auto root = fresh("model_guard");
  model::create_model("qwen3", "tiny", root / "model", "bytes", 0);
  const auto before = snapshot(root / "model");
  // output_dir = the model folder, with overwrite: refused before anything is touched.
  auto r = test::run_gym("train " + kSft + " --model_name_or_path " + (root / "model").string() + " --create_model_preset null" +
                         " --output_dir " + (root / "model").string() + " --overwrite_output_dir true --max_steps 2");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("is model_name_or_path"), std::string::npos) << r.output;
  EXPECT_EQ(snapshot(root / "model"), before);
  EXPECT_FALSE(fs::exists(root / "model" / checkpoint::kLockName));
  // A copy of the model as output_dir of another run: foreign files, overwrite refuses them.
  fs::copy(root / "model", root / "copy", fs::copy_options::recursive);
  r = test::run_gym("train " + kSft + " --output_dir " + (root / "copy").string() + " --overwrite_output_dir true --max_steps 2");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("holds files gym did not write"), std::string::npos) << r.output;
  EXPECT_EQ(snapshot(root / "copy"), before);   // a refused start leaves nothing, not even its lock file
  EXPECT_EQ(read_file(root / "copy" / "model.safetensors"), before.at("model.safetensors"));
}

TEST(OutputDirCli, RerunResumesOrSaysFinishedAndOverwriteRemovesOnlyGymsFiles) {
  const auto d = fresh("rerun") / "out";
  const std::string cmd = "train " + kSft + " --output_dir " + d.string() + " --max_steps 4 --save_steps 2 --logging_steps 1";
  auto r = test::run_gym(cmd);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto finished = snapshot(d);
  r = test::run_gym(cmd);   // the same command again: a finished run is left as it is
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("holds a finished run: nothing to do"), std::string::npos) << r.output;
  auto again = snapshot(d), before = finished;
  again.erase(checkpoint::kLockName), before.erase(checkpoint::kLockName);   // the lock names the last holder
  EXPECT_EQ(again, before);
  // A changed command is not silently ignored: refused, naming what changed.
  r = test::run_gym(cmd + " --learning_rate 0.0123");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("holds a finished run of another config"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("0.0123"), std::string::npos) << r.output;
  again = snapshot(d);
  again.erase(checkpoint::kLockName);
  EXPECT_EQ(again, before);
  // Longer: resumes from checkpoint-2 (the latest complete one), one line says so.
  fs::remove(d / "trainer_state.json");
  r = test::run_gym(cmd);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resuming from"), std::string::npos) << r.output;
  // overwrite: gym's files go and the run starts afresh; the user's file stays.
  write(d / "my_notes.txt", "keep me");
  r = test::run_gym(cmd + " --overwrite_output_dir true");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("overwrite_output_dir: removed"), std::string::npos) << r.output;
  EXPECT_EQ(read_file(d / "my_notes.txt"), "keep me");
  EXPECT_TRUE(fs::exists(d / "adapter_model.safetensors"));
}

TEST(OutputDirCli, SigintStopsAtAStepBoundaryWithACheckpointAndTheRerunResumes) {
  const auto d = fresh("sigint") / "out";
  const std::string args = "train " + kSft + " --output_dir " + d.string() + " --max_steps 400 --save_steps 1000 --logging_steps 1";
  const auto log_file = d.parent_path() / "run.log";
  const pid_t pid = fork();
  if (pid == 0) {
    const std::string cmd = std::string(GYM_BINARY) + " " + args + " > " + log_file.string() + " 2>&1";
    execl("/bin/sh", "sh", "-c", ("exec " + cmd).c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // Wait for a few logged steps, then interrupt.
  for (int i = 0; i < 600; ++i) {
    if (fs::exists(d / "trainer_log.jsonl") && test::read_log(d).size() >= 3) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_GE(test::read_log(d).size(), 3u) << read_file(log_file);
  ::kill(pid, SIGINT);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130) << read_file(log_file);
  const auto out = read_file(log_file);
  EXPECT_NE(out.find("run the same command again to resume"), std::string::npos) << out;
  auto ckpts = checkpoint::entry_names(d);
  const auto it = std::find_if(ckpts.begin(), ckpts.end(), [](const std::string& n) { return n.rfind("checkpoint-", 0) == 0; });
  ASSERT_NE(it, ckpts.end()) << out;
  EXPECT_TRUE(fs::exists(d / *it / "trainer_state.json"));
  EXPECT_FALSE(fs::exists(d / "adapter_model.safetensors"));   // not finished
  // The same command resumes from that checkpoint (shortened here to end soon).
  auto r = test::run_gym("train " + kSft + " --output_dir " + d.string() + " --save_steps 1000 --logging_steps 1 --max_steps 400 --resume_from_checkpoint true");
  EXPECT_NE(r.output.find("resumed from"), std::string::npos) << r.output;
}

TEST(OutputDirCli, CorruptCheckpointFilesAreErrorsNamingTheFile) {
  const auto d = fresh("corrupt") / "out";
  const std::string cmd = "train " + kSft + " --output_dir " + d.string() + " --max_steps 4 --save_steps 2";
  ASSERT_EQ(test::run_gym(cmd).exit_code, 0);
  fs::remove(d / "trainer_state.json");   // not finished: the rerun resumes from checkpoint-2
  const auto ckpt = d / "checkpoint-2";
  const auto optimizer = read_file(ckpt / "optimizer.pt"), state = read_file(ckpt / "trainer_state.json");
  auto expect_error = [&](const std::string& needle) {
    auto r = test::run_gym(cmd);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find(needle), std::string::npos) << r.output;
    EXPECT_EQ(test::count_error_lines(r.output), 1) << r.output;
  };
  write(ckpt / "optimizer.pt", optimizer.substr(0, optimizer.size() / 2));   // truncated
  expect_error("optimizer.pt: unreadable");
  write(ckpt / "optimizer.pt", optimizer);
  auto j = nlohmann::json::parse(state);
  j["global_step"] = "two";
  write(ckpt / "trainer_state.json", j.dump());
  expect_error("field 'global_step' must be a non-negative integer");
  write(ckpt / "trainer_state.json", state);
  fs::remove(ckpt / "rng_state.pt");
  expect_error("has no rng_state.pt");
}

// A run that fails before training (here: a dataset that is not registered) leaves only gym's own
// files, which the retry with the fixed command recognises: it trains without overwrite_output_dir.
TEST(OutputDirCli, ARunThatFailedBeforeTrainingDoesNotBlockItsRetry) {
  const auto out = test::fresh_dir("outdir_retry", false);
  const std::string common = " --output_dir " + out.string() + " --max_steps 2 --save_steps 100 --logging_steps 1 --plot_loss false";
  auto failed = test::run_gym("train " + kSft + common + " --dataset not_registered");
  EXPECT_EQ(failed.exit_code, 2) << failed.output;
  EXPECT_NE(failed.output.find("not_registered"), std::string::npos) << failed.output;
  auto retry = test::run_gym("train " + kSft + common);
  ASSERT_EQ(retry.exit_code, 0) << retry.output;
  EXPECT_TRUE(fs::exists(out / "adapter_model.safetensors"));
}
