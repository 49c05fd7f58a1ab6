// `gym report OUTPUT_DIR`: one self-contained report.html of a run (no network, no external
// files): results, plots of every logged curve (loss, eval loss, reward, KL, aux loss, grad norm,
// learning rate, throughput) drawn by the page's own script from the embedded log, a heat map of
// each MoE expert's load over steps, the checkpoints and the resolved config.
#pragma once
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace gym::metrics {

// The HTML for output_dir (reads trainer_log.jsonl, all_results.json, trainer_state.json and
// gym_config.yaml; `checkpoints`: its complete checkpoint-N folders by step, as
// checkpoint::list_checkpoints gives them). A folder without trainer_log.jsonl is a config error.
std::string render_report_html(const std::filesystem::path& output_dir,
                               const std::vector<std::pair<int64_t, std::filesystem::path>>& checkpoints);

}  // namespace gym::metrics
