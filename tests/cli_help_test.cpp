// The command line as a user meets it: help per command, "did you mean", the overrides footer,
// bash completion.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "cli_util.h"
#include "test_util.h"
#include "gym/core/fs.h"
#include "gym/model/create.h"

using gym::test::run_gym;

TEST(CliHelp, HelpListsCommandsAndExplainsOneCommand) {
  auto all = run_gym("help");
  ASSERT_EQ(all.exit_code, 0) << all.output;
  for (const char* c : {"train", "validate", "generate", "tokenize", "export", "bench", "completion", "config-doc"})
    EXPECT_NE(all.output.find(c), std::string::npos) << c << "\n" << all.output;
  auto train = run_gym("help train");
  ASSERT_EQ(train.exit_code, 0) << train.output;
  EXPECT_NE(train.output.find("Overrides"), std::string::npos) << train.output;
  EXPECT_NE(train.output.find("gym config-doc"), std::string::npos) << train.output;
  EXPECT_NE(run_gym("train --help").output.find("Overrides: any config key"), std::string::npos);
  auto bench = run_gym("help bench sft");
  ASSERT_EQ(bench.exit_code, 0) << bench.output;
  EXPECT_NE(bench.output.find("--shape"), std::string::npos) << bench.output;
  auto missing = run_gym("help trian");
  EXPECT_EQ(missing.exit_code, 2) << missing.output;
  EXPECT_NE(missing.output.find("did you mean 'train'"), std::string::npos) << missing.output;
}

TEST(CliHelp, AMistypedCommandGetsDidYouMean) {
  for (const auto& [typo, want] : std::vector<std::pair<std::string, std::string>>{
           {"trian", "train"}, {"valdiate", "validate"}, {"gen", "generate"}, {"tokenise", "tokenize"}}) {
    auto r = run_gym(typo + " x.yaml");
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find("unknown command '" + typo + "'; did you mean '" + want + "'?"), std::string::npos) << r.output;
    EXPECT_EQ(gym::test::count_error_lines(r.output), 1) << r.output;
  }
  auto far = run_gym("frobnicate");
  EXPECT_EQ(far.exit_code, 2) << far.output;
  EXPECT_EQ(far.output.find("did you mean"), std::string::npos) << far.output;
  EXPECT_NE(far.output.find("commands: train"), std::string::npos) << far.output;
}

// The completion script is valid bash and completes commands, config keys and bench subcommands.
TEST(CliHelp, BashCompletionCompletesCommandsAndKeys) {
  const auto d = gym::test::fresh_dir("cli_completion");
  auto script = run_gym("completion bash");
  ASSERT_EQ(script.exit_code, 0) << script.output;
  std::ofstream(d / "gym.bash") << script.output;
  auto complete = [&](const std::string& words, int cword) {
    const std::string cmd = "bash -c 'source " + (d / "gym.bash").string() + "; COMP_WORDS=(" + words + "); COMP_CWORD=" +
                            std::to_string(cword) + "; _gym; printf \"%s\\n\" \"${COMPREPLY[@]}\"' 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    std::string out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    pclose(p);
    return out;
  };
  EXPECT_EQ(complete("gym tr", 1), "train\n");
  const auto keys = complete("gym train cfg.yaml --learning_r", 3);
  EXPECT_EQ(keys, "--learning_rate\n");
  EXPECT_NE(complete("gym bench ", 2).find("sft"), std::string::npos);
}

// A model made by create_model_preset (in gym's cache) is found by its bare name from any folder.
TEST(CliHelp, CachedModelsAreFoundByName) {
  const auto d = gym::test::fresh_dir("cli_cache");
  ::setenv("GYM_CACHE", d.c_str(), 1);
  gym::model::create_model("qwen3", "tiny", d / "models" / "named-tiny", "bytes", 5);
  auto r = run_gym("generate --model named-tiny --prompt hi --raw --greedy --max_new_tokens 2");
  auto missing = run_gym("generate --model not-made-yet --prompt hi --max_new_tokens 2");
  ::unsetenv("GYM_CACHE");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(missing.exit_code, 2) << missing.output;
  EXPECT_NE(missing.output.find("gym's cache"), std::string::npos) << missing.output;
}

// gym validate --preview N prints the first examples as training encodes them (LLaMA-Factory's
// "training example"): the prompt's labels are masked runs, the answer's are the trained text.
TEST(CliHelp, ValidatePreviewShowsEncodedExamplesWithMaskedLabels) {
  const auto d = gym::test::fresh_dir("cli_preview");
  gym::model::create_model("qwen3", "tiny", d / "m", "bytes", 5);
  const std::string cfg = (gym::source_dir() / "configs/tiny/sft_tiny.yaml").string();
  auto r = run_gym("validate " + cfg + " --model_name_or_path " + (d / "m").string() + " --preview 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("# example 2"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("# example 3"), std::string::npos) << r.output;
  const auto labels = r.output.find("labels:\n[-100 ×");
  ASSERT_NE(labels, std::string::npos) << r.output;
  EXPECT_NE(r.output.find("<|im_start|>assistant", r.output.find("inputs:")), std::string::npos) << r.output;
  auto rl = run_gym("validate " + (gym::source_dir() / "configs/tiny/gspo_tiny.yaml").string() + " --model_name_or_path " +
                    (d / "m").string() + " --preview 1");
  EXPECT_EQ(rl.exit_code, 0) << rl.output;
  EXPECT_NE(rl.output.find("prompt_ids:\n["), std::string::npos) << rl.output;
}
