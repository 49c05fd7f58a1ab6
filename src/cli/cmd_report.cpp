// gym report OUTPUT_DIR [--out FILE]: the run's report.html (metrics/report.h).
#include <iostream>

#include "cli/commands.h"
#include "gym/checkpoint/checkpoint.h"
#include "gym/checkpoint/output_dir.h"
#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/metrics/report.h"

namespace gym::cli {

void add_report_command(CLI::App& app) {
  struct Args {
    std::string dir, out;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("report", "Write a self-contained report.html of a run (results, curves, MoE routing, checkpoints, config)");
  cmd->add_option("output_dir", a->dir, "The run's output_dir")->required();
  cmd->add_option("--out", a->out, "Where to write the HTML (default OUTPUT_DIR/report.html)");
  cmd->callback([a] {
    namespace fs = std::filesystem;
    const fs::path dir = a->dir;
    if (!fs::is_directory(dir)) config_error("{}: not a folder", dir.string());
    const fs::path out = a->out.empty() ? dir / "report.html" : fs::path(a->out);
    const std::string html = metrics::render_report_html(dir, checkpoint::list_checkpoints(dir));
    // Inside output_dir the file is gym's: recorded in the manifest (overwrite_output_dir removes it),
    // and a report.html gym did not write is never replaced.
    const bool inside = fs::weakly_canonical(fs::absolute(out).parent_path()) == fs::weakly_canonical(fs::absolute(dir));   // "report.html" too
    if (inside) {
      const auto mine = checkpoint::manifest_entries(dir);
      if (fs::exists(out) && !mine.count(out.filename().string()))
        config_error("{}: exists and was not written by gym; pass --out to write the report elsewhere", out.string());
      checkpoint::record_outputs(dir, {out.filename().string()});
    }
    write_file_atomic(out, html);
    std::cout << "wrote " << out.string() << "\n";
  });
}

}  // namespace gym::cli
