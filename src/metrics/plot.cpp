#include "gym/metrics/plot.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "gym/core/fs.h"

namespace gym::metrics {

std::vector<double> smooth(const std::vector<double>& values) {
  if (values.empty()) return {};
  const double weight = 1.8 * (1.0 / (1.0 + std::exp(-0.05 * static_cast<double>(values.size()))) - 0.5);
  std::vector<double> out;
  out.reserve(values.size());
  double last = values.front();
  for (double v : values) {
    last = last * weight + (1.0 - weight) * v;
    out.push_back(last);
  }
  return out;
}

namespace {
std::string polyline(const std::vector<double>& xs, const std::vector<double>& ys, double x0, double x1, double y0,
                     double y1, double left, double top, double w, double h) {
  std::string pts;
  for (size_t i = 0; i < xs.size(); ++i) {
    const double px = left + (x1 > x0 ? (xs[i] - x0) / (x1 - x0) : 0.5) * w;
    const double py = top + h - (y1 > y0 ? (ys[i] - y0) / (y1 - y0) : 0.5) * h;
    pts += fmt::format("{:.1f},{:.1f} ", px, py);
  }
  return pts;
}
}  // namespace

bool write_plot_svg(const std::filesystem::path& path, const std::string& title, const std::vector<double>& steps,
                    const std::vector<double>& values) {
  std::vector<double> xs, ys;
  for (size_t i = 0; i < std::min(steps.size(), values.size()); ++i)
    if (std::isfinite(values[i])) xs.push_back(steps[i]), ys.push_back(values[i]);
  if (xs.size() < 2) return false;
  const auto sm = smooth(ys);
  const double x0 = *std::min_element(xs.begin(), xs.end()), x1 = *std::max_element(xs.begin(), xs.end());
  double y0 = *std::min_element(ys.begin(), ys.end()), y1 = *std::max_element(ys.begin(), ys.end());
  if (y1 - y0 < 1e-12) y0 -= 0.5, y1 += 0.5;
  const double W = 640, H = 400, left = 70, top = 40, w = W - left - 20, h = H - top - 50;
  std::string svg = fmt::format(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{}\" height=\"{}\" font-family=\"sans-serif\" font-size=\"12\">\n"
      "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      "<text x=\"{}\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">{}</text>\n"
      "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#888\"/>\n",
      W, H, W / 2, title, left, top, w, h);
  for (int i = 0; i <= 4; ++i) {
    const double yv = y0 + (y1 - y0) * i / 4.0, py = top + h - h * i / 4.0;
    const double xv = x0 + (x1 - x0) * i / 4.0, px = left + w * i / 4.0;
    svg += fmt::format("<text x=\"{}\" y=\"{:.1f}\" text-anchor=\"end\">{:.4g}</text>\n", left - 6, py + 4, yv);
    svg += fmt::format("<text x=\"{:.1f}\" y=\"{}\" text-anchor=\"middle\">{:.0f}</text>\n", px, top + h + 18, xv);
  }
  svg += fmt::format("<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">step</text>\n", left + w / 2, H - 8);
  svg += "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-opacity=\"0.4\" stroke-width=\"1.5\" points=\"" +
         polyline(xs, ys, x0, x1, y0, y1, left, top, w, h) + "\"/>\n";
  svg += "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"" +
         polyline(xs, sm, x0, x1, y0, y1, left, top, w, h) + "\"/>\n";
  svg += fmt::format("<text x=\"{}\" y=\"{}\" fill=\"#1f77b4\">original (light), smoothed (dark)</text>\n", left + 8, top + 16);
  svg += "</svg>\n";
  write_file_atomic(path, svg);
  return true;
}

}  // namespace gym::metrics
