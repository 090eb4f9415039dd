#include "cli/eval/png_chart.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <limits>
#include <stdexcept>

#include "cli/eval/font5x7.h"

namespace hotswap::cli::eval {
namespace {

using Rgb = std::array<uint8_t, 3>;
constexpr Rgb kWhite{255, 255, 255}, kBlack{30, 30, 30}, kGrey{210, 210, 210};
constexpr Rgb kPalette[] = {{31, 119, 180}, {255, 127, 14}, {44, 160, 44}, {214, 39, 40}, {148, 103, 189},
                            {140, 86, 75},  {227, 119, 194}, {127, 127, 127}, {188, 189, 34}, {23, 190, 207}};

class Canvas {
 public:
  Canvas(int w, int h) : w_(w), h_(h), px_(static_cast<size_t>(w) * h * 3, 255) {}
  int width() const { return w_; }
  int height() const { return h_; }

  void set(int x, int y, Rgb c) {
    if (x < 0 || y < 0 || x >= w_ || y >= h_) return;
    std::copy(c.begin(), c.end(), px_.begin() + (static_cast<size_t>(y) * w_ + x) * 3);
  }
  void fill(int x0, int y0, int x1, int y1, Rgb c) {
    for (int y = y0; y <= y1; ++y)
      for (int x = x0; x <= x1; ++x) set(x, y, c);
  }
  void line(int x0, int y0, int x1, int y1, Rgb c, int thick = 1) {
    const int dx = std::abs(x1 - x0), dy = -std::abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    for (int err = dx + dy;;) {  // Bresenham
      fill(x0 - thick / 2, y0 - thick / 2, x0 + (thick - 1) / 2, y0 + (thick - 1) / 2, c);
      if (x0 == x1 && y0 == y1) break;
      const int e2 = 2 * err;
      if (e2 >= dy) err += dy, x0 += sx;
      if (e2 <= dx) err += dx, y0 += sy;
    }
  }
  // Text at (x, y) top-left, `scale` pixels per font pixel; returns its width.
  int text(int x, int y, const std::string& s, Rgb c, int scale = 1) {
    int at = x;
    for (char ch : s) {
      const char lc = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      for (const Glyph& g : kFont5x7) {
        if (g.c != lc) continue;
        for (int r = 0; r < 7; ++r)
          for (int b = 0; b < 5; ++b)
            if (g.rows[static_cast<size_t>(r)] & (0x10 >> b)) fill(at + b * scale, y + r * scale, at + b * scale + scale - 1, y + r * scale + scale - 1, c);
      }
      at += 6 * scale;
    }
    return at - x;
  }

  void save(const std::string& path) const {
    std::vector<uint8_t> raw;
    raw.reserve(static_cast<size_t>(h_) * (w_ * 3 + 1));
    for (int y = 0; y < h_; ++y) {
      raw.push_back(0);  // filter: none
      raw.insert(raw.end(), px_.begin() + static_cast<size_t>(y) * w_ * 3, px_.begin() + static_cast<size_t>(y + 1) * w_ * 3);
    }
    uLongf size = compressBound(static_cast<uLong>(raw.size()));
    std::vector<uint8_t> z(size);
    if (compress2(z.data(), &size, raw.data(), static_cast<uLong>(raw.size()), 9) != Z_OK)
      throw std::runtime_error("png: deflate failed");
    z.resize(size);
    std::ofstream out(path, std::ios::binary);
    if (!out) throw std::runtime_error("cannot write '" + path + "'");
    const uint8_t signature[] = {137, 80, 78, 71, 13, 10, 26, 10};
    out.write(reinterpret_cast<const char*>(signature), sizeof signature);
    auto be32 = [](uint32_t v) { return std::array<uint8_t, 4>{uint8_t(v >> 24), uint8_t(v >> 16), uint8_t(v >> 8), uint8_t(v)}; };
    auto chunk = [&](const char* type, const std::vector<uint8_t>& data) {
      const auto len = be32(static_cast<uint32_t>(data.size()));
      out.write(reinterpret_cast<const char*>(len.data()), 4);
      uLong crc = crc32(0, reinterpret_cast<const Bytef*>(type), 4);
      if (!data.empty()) crc = crc32(crc, data.data(), static_cast<uInt>(data.size()));
      out.write(type, 4);
      out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
      const auto c = be32(static_cast<uint32_t>(crc));
      out.write(reinterpret_cast<const char*>(c.data()), 4);
    };
    std::vector<uint8_t> ihdr;
    for (uint32_t v : {static_cast<uint32_t>(w_), static_cast<uint32_t>(h_)})
      for (uint8_t b : be32(v)) ihdr.push_back(b);
    ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});  // 8-bit RGB, deflate, no filter, no interlace
    chunk("IHDR", ihdr);
    chunk("IDAT", z);
    chunk("IEND", {});
    if (!out) throw std::runtime_error("cannot write '" + path + "'");
  }

 private:
  int w_, h_;
  std::vector<uint8_t> px_;
};

std::string tick_label(double v) {
  char buf[32];
  if (std::fabs(v) >= 1000 && std::fabs(v - std::round(v)) < 1e-9) std::snprintf(buf, sizeof buf, "%.0f", v);
  else std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

void draw_panel(Canvas& cv, int x0, int y0, int w, int h, const Panel& p) {
  const int left = x0 + 56, right = x0 + w - 12, top = y0 + 40, bottom = y0 + h - 40;
  cv.text(x0 + 8, y0 + 6, p.title, kBlack, 2);
  double xmin = std::numeric_limits<double>::infinity(), xmax = -xmin, ymin = xmin, ymax = -xmin;
  auto fx = [&](double x) { return p.log2_x ? std::log2(std::max(x, 1e-12)) : x; };
  for (const Series& s : p.series)
    for (auto [x, y] : s.points) {
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      xmin = std::min(xmin, fx(x)), xmax = std::max(xmax, fx(x)), ymin = std::min(ymin, y), ymax = std::max(ymax, y);
    }
  if (!std::isfinite(xmin)) xmin = 0, xmax = 1, ymin = 0, ymax = 1;
  if (xmax - xmin < 1e-9) xmin -= 0.5, xmax += 0.5;
  if (ymax - ymin < 1e-9) ymin -= 0.5, ymax += 0.5;
  const double xpad = (xmax - xmin) * 0.06, ypad = (ymax - ymin) * 0.08;
  xmin -= xpad, xmax += xpad, ymin -= ypad, ymax += ypad;
  auto px = [&](double x) { return left + static_cast<int>((fx(x) - xmin) / (xmax - xmin) * (right - left)); };
  auto py = [&](double y) { return bottom - static_cast<int>((y - ymin) / (ymax - ymin) * (bottom - top)); };
  for (int i = 0; i <= 4; ++i) {  // grid and ticks
    const double yv = ymin + ypad + (ymax - ymin - 2 * ypad) * i / 4.0;
    cv.line(left, py(yv), right, py(yv), kGrey);
    const std::string l = tick_label(yv);
    cv.text(left - 6 - 6 * static_cast<int>(l.size()), py(yv) - 3, l, kBlack);
    const double xv = xmin + xpad + (xmax - xmin - 2 * xpad) * i / 4.0;
    const double shown = p.log2_x ? std::exp2(xv) : xv;
    const int xp = left + static_cast<int>((xv - xmin) / (xmax - xmin) * (right - left));
    cv.line(xp, top, xp, bottom, kGrey);
    const std::string xl = tick_label(shown);
    cv.text(xp - 3 * static_cast<int>(xl.size()), bottom + 6, xl, kBlack);
  }
  cv.line(left, bottom, right, bottom, kBlack);
  cv.line(left, top, left, bottom, kBlack);
  cv.text((left + right) / 2 - 3 * static_cast<int>(p.x_label.size()), bottom + 20, p.x_label, kBlack);
  cv.text(x0 + 8, top - 14, p.y_label, kBlack);
  for (size_t si = 0; si < p.series.size(); ++si) {
    const Series& s = p.series[si];
    const Rgb c = kPalette[si % std::size(kPalette)];
    for (size_t i = 0; i < s.points.size(); ++i) {
      const auto [x, y] = s.points[i];
      if (!std::isfinite(x) || !std::isfinite(y)) continue;
      cv.fill(px(x) - 3, py(y) - 3, px(x) + 3, py(y) + 3, c);
      if (s.lines && i > 0 && std::isfinite(s.points[i - 1].first) && std::isfinite(s.points[i - 1].second))
        cv.line(px(s.points[i - 1].first), py(s.points[i - 1].second), px(x), py(y), c, 2);
    }
  }
}

}  // namespace

void write_png_chart(const std::string& path, const std::vector<Panel>& panels) {
  const int panel_w = 520, panel_h = 380;
  std::vector<std::string> labels;
  for (const Panel& p : panels)
    for (const Series& s : p.series)
      if (std::find(labels.begin(), labels.end(), s.label) == labels.end()) labels.push_back(s.label);
  const int legend_h = 16 + 14 * static_cast<int>(labels.size());
  Canvas cv(panel_w * static_cast<int>(std::max<size_t>(1, panels.size())), panel_h + legend_h);
  for (size_t i = 0; i < panels.size(); ++i) draw_panel(cv, static_cast<int>(i) * panel_w, 0, panel_w, panel_h, panels[i]);
  for (size_t i = 0; i < labels.size(); ++i) {  // colours follow the series index within a panel
    const int y = panel_h + 8 + 14 * static_cast<int>(i);
    cv.fill(16, y, 26, y + 7, kPalette[i % std::size(kPalette)]);
    cv.text(34, y, labels[i], kBlack);
  }
  cv.save(path);
}

}  // namespace hotswap::cli::eval
