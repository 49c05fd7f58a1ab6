#include "gym/metrics/report.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <set>

#include "gym/core/error.h"
#include "gym/core/fs.h"
#include "gym/core/json.h"
#include "gym/metrics/trainer_log.h"

namespace gym::metrics {

namespace fs = std::filesystem;

namespace {

std::string escape_html(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// JSON placed inside <script>: "</" would end the script element.
std::string script_json(const nlohmann::json& j) {
  std::string s = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  for (size_t p = 0; (p = s.find("</", p)) != std::string::npos; p += 3) s.replace(p, 2, "<\\/");
  return s;
}

nlohmann::json read_json_if(const fs::path& file) {
  if (!fs::exists(file)) return nullptr;
  return json_reader(file.string(), [&] { return parse_json(read_file(file)); });
}

uint64_t folder_bytes(const fs::path& dir) {
  uint64_t n = 0;
  std::error_code ec;
  for (const auto& e : fs::recursive_directory_iterator(dir, ec))
    if (e.is_regular_file(ec)) n += e.file_size(ec);
  return n;
}

// The page's script: draws each <svg class="plot" data-metric="k"> from DATA.log and the heat map
// from the moe/expert_load/<e> metrics, then marks each drawn element with data-drawn="<points>".
const char* kScript = R"JS(
const NS = 'http://www.w3.org/2000/svg';
function el(tag, attrs, parent) {
  const e = document.createElementNS(NS, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]);
  if (parent) parent.appendChild(e);
  return e;
}
function series(key) {
  const xs = [], ys = [];
  for (const row of DATA.log) if (typeof row[key] === 'number' && isFinite(row[key])) { xs.push(row.current_steps); ys.push(row[key]); }
  return [xs, ys];
}
function fmt(v) { return Math.abs(v) >= 1e4 || (Math.abs(v) < 1e-3 && v !== 0) ? v.toExponential(2) : (+v.toPrecision(4)).toString(); }
function drawPlot(svg) {
  const key = svg.dataset.metric, [xs, ys] = series(key);
  const W = 560, H = 300, L = 64, T = 28, w = W - L - 16, h = H - T - 40;
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  el('text', {x: W / 2, y: 18, 'text-anchor': 'middle', class: 'title'}, svg).textContent = key;
  el('rect', {x: L, y: T, width: w, height: h, fill: 'none', stroke: '#999'}, svg);
  const x0 = Math.min(...xs), x1 = Math.max(...xs);
  let y0 = Math.min(...ys), y1 = Math.max(...ys);
  if (y1 - y0 < 1e-12) { y0 -= 0.5; y1 += 0.5; }
  const px = x => L + (x1 > x0 ? (x - x0) / (x1 - x0) : 0.5) * w, py = y => T + h - (y - y0) / (y1 - y0) * h;
  for (let i = 0; i <= 4; i++) {
    el('text', {x: L - 6, y: T + h - h * i / 4 + 4, 'text-anchor': 'end'}, svg).textContent = fmt(y0 + (y1 - y0) * i / 4);
    el('text', {x: L + w * i / 4, y: T + h + 16, 'text-anchor': 'middle'}, svg).textContent = Math.round(x0 + (x1 - x0) * i / 4);
  }
  el('text', {x: L + w / 2, y: H - 4, 'text-anchor': 'middle'}, svg).textContent = 'step';
  const pts = xs.map((x, i) => `${px(x).toFixed(1)},${py(ys[i]).toFixed(1)}`).join(' ');
  el('polyline', {points: pts, fill: 'none', stroke: '#1f77b4', 'stroke-width': 2, class: 'curve'}, svg);
  svg.dataset.drawn = String(xs.length);
}
function loadColour(v) {   // 0 blue, 1 white, >= 2 red
  const t = Math.max(0, Math.min(2, v));
  return t < 1 ? `rgb(${Math.round(255 * t)},${Math.round(255 * t)},255)` : `rgb(255,${Math.round(255 * (2 - t))},${Math.round(255 * (2 - t))})`;
}
function drawHeat(svg) {
  const keys = DATA.moe_keys, rows = DATA.log.filter(r => keys.some(k => typeof r[k] === 'number'));
  const cw = Math.max(2, Math.min(24, 640 / Math.max(1, rows.length))), ch = Math.max(4, Math.min(18, 600 / keys.length)), L = 80;
  const W = L + cw * rows.length + 10, H = ch * keys.length + 30;
  svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
  svg.setAttribute('width', W);
  svg.setAttribute('height', H);
  let cells = 0;
  keys.forEach((k, r) => {
    const expert = k.substring(k.lastIndexOf('/') + 1);
    if (ch >= 10 || r % 8 === 0) el('text', {x: L - 6, y: 20 + r * ch + ch / 2 + 4, 'text-anchor': 'end'}, svg).textContent = `expert ${expert}`;
    rows.forEach((row, c) => {
      const v = row[k];
      if (typeof v !== 'number') return;
      const cell = el('rect', {x: L + c * cw, y: 20 + r * ch, width: cw, height: ch - 1, fill: loadColour(v), stroke: '#eee'}, svg);
      el('title', {}, cell).textContent = `expert ${expert} at step ${row.current_steps}: ${fmt(v)} x uniform`;
      cells++;
    });
  });
  svg.dataset.drawn = String(cells);
}
document.querySelectorAll('svg.plot').forEach(drawPlot);
document.querySelectorAll('svg.heat').forEach(drawHeat);
)JS";

}  // namespace

std::string render_report_html(const fs::path& output_dir, const std::vector<std::pair<int64_t, fs::path>>& checkpoints) {
  const fs::path log_file = output_dir / "trainer_log.jsonl";
  if (!fs::exists(log_file)) config_error("{}: no trainer_log.jsonl: not the output_dir of a gym run", output_dir.string());
  nlohmann::json log = nlohmann::json::array();
  for (auto& row : read_trainer_log(log_file))
    if (row.contains("current_steps")) log.push_back(std::move(row));
  // Curves in a fixed order, then any other numeric metric.
  const std::vector<std::string> preferred = {"loss",     "eval_loss", "reward",   "eval_reward", "reward_std", "kl",
                                              "aux_loss", "grad_norm", "lr",       "tokens_per_second", "completions/mean_length"};
  const std::set<std::string> skip = {"current_steps", "total_steps", "epoch", "percentage", "elapsed_time", "remaining_time",
                                      "total_tokens",  "skipped_steps"};
  std::vector<std::string> curves, moe_keys;
  std::map<std::string, int> points;
  for (const auto& row : log)
    for (auto it = row.begin(); it != row.end(); ++it)
      if (it.value().is_number() && !skip.count(it.key())) ++points[it.key()];
  for (const auto& k : preferred)
    if (points.count(k) && points.at(k) >= 2) curves.push_back(k);
  for (const auto& [k, n] : points) {
    if (k.rfind("moe/expert_load/", 0) == 0) moe_keys.push_back(k);
    else if (n >= 2 && std::find(curves.begin(), curves.end(), k) == curves.end()) curves.push_back(k);
  }
  std::sort(moe_keys.begin(), moe_keys.end(), [](const std::string& a, const std::string& b) {   // expert 2 before expert 10
    return std::stoll(a.substr(16)) < std::stoll(b.substr(16));
  });

  std::string html = fmt::format(
      "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>gym report: {0}</title>\n<style>\n"
      "body{{font-family:sans-serif;margin:24px;color:#222}} table{{border-collapse:collapse}} td,th{{border:1px solid #ccc;padding:3px 8px;"
      "text-align:left}} pre{{background:#f6f6f6;padding:8px;overflow:auto}} .plots{{display:flex;flex-wrap:wrap;gap:12px}}"
      " svg.plot{{width:560px;height:300px;border:1px solid #eee}} svg text{{font-size:11px}} svg text.title{{font-size:14px}}"
      "\n</style></head><body>\n<h1>gym report</h1>\n<p>output_dir <code>{0}</code>, {1} "
      "logged steps</p>\n",
      escape_html(output_dir.string()), log.size());

  html += "<h2>Results</h2>\n";
  const auto results = read_json_if(output_dir / "all_results.json");
  if (results.is_object() && !results.empty()) {
    html += "<table>\n";
    for (auto it = results.begin(); it != results.end(); ++it)
      html += fmt::format("<tr><th>{}</th><td>{}</td></tr>\n", escape_html(it.key()), escape_html(it.value().dump()));
    html += "</table>\n";
  } else {
    html += "<p>no all_results.json (the run has not finished)</p>\n";
  }
  const auto state = read_json_if(output_dir / "trainer_state.json");

  html += "<h2>Curves</h2>\n<div class=\"plots\">\n";
  for (const auto& k : curves) html += fmt::format("<svg class=\"plot\" data-metric=\"{}\"></svg>\n", escape_html(k));
  html += "</div>\n";
  if (!moe_keys.empty())
    html += "<h2>MoE expert load over steps</h2>\n<p>Each row is one expert, each column a logging step; the colour is the "
            "expert's share of the routed tokens relative to a uniform share, averaged over the MoE layers: blue below 1 (idle), "
            "white at 1 (balanced), red at 2 and above.</p>\n<svg class=\"heat\"></svg>\n";

  html += "<h2>Checkpoints</h2>\n";
  const std::string best = state.is_object() && state.value("best_model_checkpoint", nlohmann::json()).is_string()
                               ? fs::path(state["best_model_checkpoint"].get<std::string>()).filename().string()
                               : "";
  if (checkpoints.empty()) {
    html += "<p>none kept</p>\n";
  } else {
    html += "<table><tr><th>checkpoint</th><th>step</th><th>size MiB</th><th></th></tr>\n";
    for (const auto& [step, dir] : checkpoints)
      html += fmt::format("<tr><td>{}</td><td>{}</td><td>{:.2f}</td><td>{}</td></tr>\n", escape_html(dir.filename().string()), step,
                          static_cast<double>(folder_bytes(dir)) / (1 << 20), dir.filename().string() == best ? "best" : "");
    html += "</table>\n";
  }

  html += "<h2>Configuration</h2>\n";
  if (fs::exists(output_dir / "gym_config.yaml")) html += "<pre>" + escape_html(read_file(output_dir / "gym_config.yaml")) + "</pre>\n";
  else html += "<p>no gym_config.yaml</p>\n";

  const nlohmann::json data = {{"log", log}, {"moe_keys", moe_keys}};
  html += "<script>\nconst DATA = " + script_json(data) + ";\n" + kScript + "</script>\n</body></html>\n";
  return html;
}

}  // namespace gym::metrics
