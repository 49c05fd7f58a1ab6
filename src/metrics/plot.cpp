#include "gym/metrics/plot.h"

#include <fmt/format.h>
#include <png.h>

#include <algorithm>
#include <cmath>
#include <optional>

#include "gym/core/error.h"
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

namespace {
// The finite points of a curve, their smoothed values and the axis ranges (nullopt: < 2 points).
struct Curve {
  std::vector<double> xs, ys, sm;
  double x0, x1, y0, y1;
};

std::optional<Curve> curve_of(const std::vector<double>& steps, const std::vector<double>& values) {
  Curve c;
  for (size_t i = 0; i < std::min(steps.size(), values.size()); ++i)
    if (std::isfinite(values[i])) c.xs.push_back(steps[i]), c.ys.push_back(values[i]);
  if (c.xs.size() < 2) return std::nullopt;
  c.sm = smooth(c.ys);
  c.x0 = *std::min_element(c.xs.begin(), c.xs.end()), c.x1 = *std::max_element(c.xs.begin(), c.xs.end());
  c.y0 = *std::min_element(c.ys.begin(), c.ys.end()), c.y1 = *std::max_element(c.ys.begin(), c.ys.end());
  if (c.y1 - c.y0 < 1e-12) c.y0 -= 0.5, c.y1 += 0.5;
  return c;
}
}  // namespace

bool write_plot_svg(const std::filesystem::path& path, const std::string& title, const std::vector<double>& steps,
                    const std::vector<double>& values) {
  const auto c = curve_of(steps, values);
  if (!c) return false;
  const auto &xs = c->xs, &ys = c->ys, &sm = c->sm;
  const double x0 = c->x0, x1 = c->x1, y0 = c->y0, y1 = c->y1;   // plain names: lambdas capture them
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

// ---- PNG
namespace gym::metrics {
namespace {

struct Canvas {
  int w, h;
  std::vector<uint8_t> rgb;      // row-major, 3 bytes per pixel
  std::vector<uint32_t> stamp;   // per pixel: the last line that blended it (each line blends a pixel once)
  uint32_t lines = 0;
  Canvas(int w_, int h_) : w(w_), h(h_), rgb(static_cast<size_t>(w_) * h_ * 3, 255), stamp(static_cast<size_t>(w_) * h_, 0) {}
  // Blends colour c into pixel (x, y) with opacity a.
  void blend(int x, int y, const uint8_t c[3], double a) {
    if (x < 0 || y < 0 || x >= w || y >= h) return;
    uint8_t* p = &rgb[(static_cast<size_t>(y) * w + x) * 3];
    for (int k = 0; k < 3; ++k) p[k] = static_cast<uint8_t>(std::lround(p[k] * (1 - a) + c[k] * a));
  }
  // A line `width` pixels wide: stamps a square brush every half pixel along it.
  void line(double x0, double y0, double x1, double y1, const uint8_t c[3], double a, int width) {
    const int n = std::max(1, static_cast<int>(std::ceil(2 * std::max(std::abs(x1 - x0), std::abs(y1 - y0)))));
    const uint32_t id = ++lines;
    for (int i = 0; i <= n; ++i) {
      const double t = static_cast<double>(i) / n;
      const int cx = static_cast<int>(std::lround(x0 + (x1 - x0) * t)), cy = static_cast<int>(std::lround(y0 + (y1 - y0) * t));
      for (int dy = -(width / 2); dy <= (width - 1) / 2; ++dy)
        for (int dx = -(width / 2); dx <= (width - 1) / 2; ++dx) {
          const int x = cx + dx, y = cy + dy;
          if (x < 0 || y < 0 || x >= w || y >= h || stamp[static_cast<size_t>(y) * w + x] == id) continue;
          stamp[static_cast<size_t>(y) * w + x] = id;
          blend(x, y, c, a);
        }
    }
  }
};

void png_append(png_structp png, png_bytep data, png_size_t n) {
  static_cast<std::string*>(png_get_io_ptr(png))->append(reinterpret_cast<const char*>(data), n);
}

}  // namespace

bool write_plot_png(const std::filesystem::path& path, const std::vector<double>& steps, const std::vector<double>& values) {
  const auto c = curve_of(steps, values);
  if (!c) return false;
  const auto &xs = c->xs, &ys = c->ys, &sm = c->sm;
  const double x0 = c->x0, x1 = c->x1, y0 = c->y0, y1 = c->y1;   // plain names: lambdas capture them
  const int W = 640, H = 400;
  const double left = 70, top = 40, w = W - left - 20, h = H - top - 50;
  Canvas cv(W, H);
  const uint8_t grey[3] = {136, 136, 136}, grid[3] = {220, 220, 220}, blue[3] = {31, 119, 180};
  for (int i = 1; i < 4; ++i) {
    cv.line(left, top + h * i / 4.0, left + w, top + h * i / 4.0, grid, 1.0, 1);
    cv.line(left + w * i / 4.0, top, left + w * i / 4.0, top + h, grid, 1.0, 1);
  }
  cv.line(left, top, left + w, top, grey, 1.0, 1), cv.line(left, top + h, left + w, top + h, grey, 1.0, 1);
  cv.line(left, top, left, top + h, grey, 1.0, 1), cv.line(left + w, top, left + w, top + h, grey, 1.0, 1);
  auto px = [&](double x) { return left + (x1 > x0 ? (x - x0) / (x1 - x0) : 0.5) * w; };
  auto py = [&](double y) { return top + h - (y - y0) / (y1 - y0) * h; };
  for (size_t i = 1; i < xs.size(); ++i) cv.line(px(xs[i - 1]), py(ys[i - 1]), px(xs[i]), py(ys[i]), blue, 0.4, 2);
  for (size_t i = 1; i < xs.size(); ++i) cv.line(px(xs[i - 1]), py(sm[i - 1]), px(xs[i]), py(sm[i]), blue, 1.0, 2);

  std::string bytes;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png ? png_create_info_struct(png) : nullptr;
  if (!png || !info) {
    png_destroy_write_struct(&png, &info);
    runtime_error("{}: libpng could not start a PNG", path.string());
  }
  if (setjmp(png_jmpbuf(png))) {   // libpng's error path (no C++ objects are created after this point)
    png_destroy_write_struct(&png, &info);
    runtime_error("{}: libpng failed to encode the plot", path.string());
  }
  png_set_write_fn(png, &bytes, png_append, nullptr);
  png_set_IHDR(png, info, W, H, 8, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_write_info(png, info);
  for (int y = 0; y < H; ++y) png_write_row(png, &cv.rgb[static_cast<size_t>(y) * W * 3]);
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  write_file_atomic(path, bytes);
  return true;
}

}  // namespace gym::metrics
