// A small raster plot written as a PNG (zlib deflate): scatter and line series on linear or
// log2 axes with tick labels and a legend, in a built-in 5x7 font. Enough for `hotswap eval`'s
// two charts (quality against density, retrieval accuracy against context length).
#pragma once

#include <string>
#include <vector>

namespace hotswap::cli::eval {

struct Series {
  std::string label;
  std::vector<std::pair<double, double>> points;  // (x, y)
  bool lines = false;                             // join the points (else markers only)
};

struct Panel {
  std::string title, x_label, y_label;
  bool log2_x = false;
  std::vector<Series> series;
};

// Panels side by side, one shared legend (series labels in order, colours by index).
// Throws std::runtime_error when the file cannot be written.
void write_png_chart(const std::string& path, const std::vector<Panel>& panels);

}  // namespace hotswap::cli::eval
