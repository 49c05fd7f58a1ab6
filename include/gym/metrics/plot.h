// Loss / reward curves as standalone SVG files (raw series and an EMA-smoothed one).
#pragma once
#include <filesystem>
#include <string>
#include <vector>

namespace gym::metrics {

// LLaMA-Factory's smoothing: EMA with weight 1.8 · (sigmoid(0.05 · n) − 0.5).
std::vector<double> smooth(const std::vector<double>& values);

// Writes an SVG line plot of values over steps (atomically). Returns false when fewer than 2 points.
bool write_plot_svg(const std::filesystem::path& path, const std::string& title, const std::vector<double>& steps,
                    const std::vector<double>& values);

// The same plot as a PNG (libpng; as LLaMA-Factory's training_loss.png): frame, grid, the values
// (light) and their smoothed curve (dark); the title and axis numbers are in the SVG only.
// Returns false when fewer than 2 points.
bool write_plot_png(const std::filesystem::path& path, const std::vector<double>& steps, const std::vector<double>& values);

}  // namespace gym::metrics
