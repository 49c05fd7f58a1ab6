// gym report: report.html renders in headless Chromium (Debian's, installed by scripts/setup.sh)
// with every curve and the MoE heat map drawn by its own script; it is recorded as gym's output
// and never replaces a file gym did not write. plot_loss also writes PNG plots beside the SVGs.
#include <gtest/gtest.h>
#include <png.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>

#include "cli_util.h"
#include "test_util.h"
#include "gym/checkpoint/output_dir.h"
#include "gym/core/fs.h"

namespace fs = std::filesystem;
using namespace gym;

namespace {

const std::string kSft = (source_dir() / "configs" / "tiny" / "sft_tiny.yaml").string();

std::string run_capture(const std::string& cmd) {
  std::string out;
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[65536];
  for (size_t n; (n = fread(buf, 1, sizeof(buf), p)) > 0;) out.append(buf, n);
  pclose(p);
  return out;
}

// data-drawn of the element whose data attribute `attr` is `value` in Chromium's DOM dump (-1: none).
int drawn(const std::string& dom, const std::string& attr, const std::string& value) {
  const std::regex tag("<svg[^>]*" + attr + "=\"" + value + "\"[^>]*>");
  std::smatch m;
  if (!std::regex_search(dom, m, tag)) return -1;
  std::smatch d;
  const std::string t = m.str();
  return std::regex_search(t, d, std::regex("data-drawn=\"(\\d+)\"")) ? std::stoi(d[1]) : 0;
}

// Pixels of a PNG that are the plots' blue (libpng reads it back).
int blue_pixels(const fs::path& file, int* width, int* height) {
  png_image img{};
  img.version = PNG_IMAGE_VERSION;
  if (!png_image_begin_read_from_file(&img, file.c_str())) return -1;
  img.format = PNG_FORMAT_RGB;
  std::vector<uint8_t> px(PNG_IMAGE_SIZE(img));
  if (!png_image_finish_read(&img, nullptr, px.data(), 0, nullptr)) return -1;
  *width = static_cast<int>(img.width), *height = static_cast<int>(img.height);
  int n = 0;
  for (size_t i = 0; i + 2 < px.size(); i += 3) n += px[i + 2] > 150 && px[i] < 120;
  return n;
}

}  // namespace

TEST(Report, RendersInChromiumWithEveryCurveAndTheMoeHeatMapDrawn) {
  const auto root = test::fresh_dir("report");
  const auto dense = root / "dense", moe = root / "moe";
  auto r = test::run_gym("train " + kSft + " --output_dir " + dense.string() +
                         " --max_steps 60 --logging_steps 10 --val_size 16 --eval_strategy steps --eval_steps 20");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = test::run_gym("train " + kSft + " --output_dir " + moe.string() + " --model_name_or_path " + (root / "tiny-moe").string() +
                    " --create_model_arch qwen3_moe --max_steps 20 --logging_steps 5");
  ASSERT_EQ(r.exit_code, 0) << r.output;

  // PNG beside the SVG: a 640 × 400 image with the curve drawn.
  int w = 0, h = 0;
  EXPECT_GT(blue_pixels(dense / "training_loss.png", &w, &h), 300);
  EXPECT_EQ(w, 640);
  EXPECT_EQ(h, 400);
  EXPECT_TRUE(fs::exists(dense / "training_eval_loss.png"));

  // Every expert's load is logged (the heat map's rows).
  const auto moe_log = test::read_log(moe);
  int experts = 0;
  for (auto it = moe_log.back().begin(); it != moe_log.back().end(); ++it) experts += it.key().rfind("moe/expert_load/", 0) == 0;
  EXPECT_GE(experts, 4);
  double load_sum = 0;
  for (int e = 0; e < experts; ++e) load_sum += moe_log.back()["moe/expert_load/" + std::to_string(e)].get<double>();
  EXPECT_NEAR(load_sum / experts, 1.0, 1e-6);   // shares relative to uniform average to 1

  for (const auto& dir : {dense, moe}) {
    r = test::run_gym("report " + dir.string());
    ASSERT_EQ(r.exit_code, 0) << r.output;
    ASSERT_TRUE(fs::exists(dir / "report.html"));
    EXPECT_TRUE(checkpoint::manifest_entries(dir).count("report.html"));
  }
  EXPECT_EQ(test::run_gym("report " + dense.string()).exit_code, 0);   // its own file: replaced

  // A report.html gym did not write stays as it is.
  const auto foreign = root / "foreign";
  fs::create_directories(foreign);
  fs::copy_file(dense / "trainer_log.jsonl", foreign / "trainer_log.jsonl");
  std::ofstream(foreign / "report.html") << "mine";
  r = test::run_gym("report " + foreign.string());
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("was not written by gym"), std::string::npos) << r.output;
  EXPECT_EQ(read_file(foreign / "report.html"), "mine");
  EXPECT_EQ(test::run_gym("report " + root.string()).exit_code, 2);   // not a run's folder

  if (std::system("command -v chromium >/dev/null 2>&1") != 0) GTEST_SKIP() << "chromium is missing (scripts/setup.sh installs it)";
  auto dump = [&](const fs::path& html) {
    return run_capture("timeout 120 chromium --headless --no-sandbox --disable-gpu --user-data-dir=" + (root / "chromium").string() +
                       " --dump-dom 'file://" + html.string() + "' 2>/dev/null");
  };
  const std::string dom = dump(dense / "report.html");
  ASSERT_NE(dom.find("gym report"), std::string::npos) << dom.substr(0, 2000);
  for (const char* k : {"loss", "eval_loss", "grad_norm", "lr", "tokens_per_second"}) EXPECT_GE(drawn(dom, "data-metric", k), 2) << k;
  EXPECT_EQ(drawn(dom, "data-metric", "eval_loss"), 3);   // steps 20, 40, 60
  EXPECT_NE(dom.find("class=\"curve\""), std::string::npos);
  const std::string moe_dom = dump(moe / "report.html");
  EXPECT_GE(drawn(moe_dom, "data-metric", "aux_loss"), 2);
  EXPECT_GE(drawn(moe_dom, "data-metric", "moe/max_load"), 2);
  EXPECT_EQ(drawn(moe_dom, "class", "heat"), 4 * experts);   // 4 logging steps × every expert
}
