// gym's own checkpoint readers: trainer_state.json (recipes/run_state_read.cpp, read before a
// resume restores anything) and output_dir's .gym_manifest.json and finished-run check
// (checkpoint/output_dir.cpp). Input: trainer_state.json \0 .gym_manifest.json.
#include "fuzz_util.h"
#include "gym/checkpoint/output_dir.h"
#include "gym/recipes/run_state.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const auto& dir = gym::fuzz::scratch("checkpoint");
  const auto parts = gym::fuzz::split(data, size, 2);
  gym::fuzz::write(dir / "trainer_state.json", parts[0]);
  gym::fuzz::write(dir / gym::checkpoint::kManifestName, parts[1]);
  gym::fuzz::expect_clean([&] { (void)gym::recipes::read_run_state(dir / "trainer_state.json"); });
  gym::fuzz::expect_clean([&] { (void)gym::checkpoint::holds_finished_run(dir); });
  gym::fuzz::expect_clean([&] { (void)gym::checkpoint::manifest_entries(dir); });
  return 0;
}
