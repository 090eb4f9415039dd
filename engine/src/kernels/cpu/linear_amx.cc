// AMX forms of LinearPrecision::kBf16Dot on CPUs with AMX-BF16: the same bf16-rounded x and
// bf16 W as the vdpbf16ps forms, multiplied in tile registers. One tdpbf16ps does 16 x 16 x 32
// products where vdpbf16ps does 32, so prefill and batched decode stop being bound by
// arithmetic and become bound by reading W.
//
// Tiles: C0-C3 accumulate up to 32 rows x 32 columns of y (2 row blocks x 2 column groups),
// A0-A1 hold 16 rows x 32 k of xb each, B0-B1 16 k-pairs x 16 columns of W pairs each. W comes
// as k-pair-major tiles (cpu/bf16_pairs.h): packed per call by linear() (64 columns, from 8
// rows) or once at load (kernels/bf16_packed.h, 32 columns, at every row count). Either way a
// thread holds one W tile over the whole k and sweeps every row block against it, so C stays
// in tile registers for the whole k and y is written once.
//
// Row independence: each row of C is summed from zero over the k steps in order, whatever
// other rows share the tile, so a row's result does not depend on the rest of the batch; the
// two W layouts give bitwise the same y. (It differs from the vdpbf16ps forms', whose float32
// summation order is another.)
//
// The target pragma comes after every #include (see cpu/linear_avx512.cc); this code runs only
// when amx_enabled() (cpu/isa.cc has checked CPUID and been granted the tile state).
#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "kernels/cpu/bf16_pairs.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/scratch.h"

#pragma GCC push_options
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512bf16,amx-tile,amx-bf16")

namespace hotswap::kernels::detail {
namespace {

// The 64-byte operand of ldtilecfg (palette 1).
struct TileConfig {
  uint8_t palette_id;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};

constexpr int64_t kTileRows = 16;  // rows of an A or C tile
constexpr int64_t kStepK = 32;     // bf16 elements of k per tdpbf16ps (64-byte A rows)

// Every tile 64 bytes wide; A and C tiles `rows` tall (fewer than 16 when the call has fewer
// rows: tdpbf16ps then does less work), B tiles 16. Per thread, until release.
void configure_tiles(int64_t rows) {
  alignas(64) TileConfig cfg{};
  cfg.palette_id = 1;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = static_cast<uint8_t>(t >= 6 ? kTileRows : rows);
    cfg.colsb[t] = 64;
  }
  // GCC 12's _tile_loadconfig tells the compiler it reads 8 bytes of the 64, so stores to the
  // rest may be dropped or sunk past it (seen: colsb[0..3] left zero and ldtilecfg faulting).
  __asm__ volatile("" : : "r"(&cfg) : "memory");
  _tile_loadconfig(&cfg);
}

// y[i0 + r][c] = C + bias for r < row_count, c < cols; c_tiles holds C0-C3 as stored:
// [row block][column group][16][16].
void write_block(const float* c_tiles, int64_t row_count, int64_t cols, const float* bias, float* y, int64_t ldy) {
  for (int64_t g = 0; g < 2; ++g) {
    const int64_t c0 = 16 * g, vc = std::min<int64_t>(16, cols - c0);
    if (vc <= 0) break;
    const __mmask16 mask = static_cast<__mmask16>((1u << vc) - 1);
    const __m512 b = bias != nullptr ? _mm512_maskz_loadu_ps(mask, bias + c0) : _mm512_setzero_ps();
    for (int64_t r = 0; r < row_count; ++r) {
      const float* src = c_tiles + ((r / kTileRows) * 2 + g) * 256 + (r % kTileRows) * 16;
      _mm512_mask_storeu_ps(y + r * ldy + c0, mask, _mm512_add_ps(_mm512_load_ps(src), b));
    }
  }
}

// A W tile in k-pair-major form: the 16 pairs of k step s for column group g (16 columns)
// start at pairs + s * step_words + 16 g, one tile row every row_bytes.
struct PairTile {
  const uint32_t* pairs;
  int64_t step_words;
  int64_t row_bytes;
};

// y[i][c] (+ bias[c]) for i < m and c < cols <= 32, from xb (x_stride elements a row, padded
// with zero rows to a multiple of 32 when m > 16) and `steps` k steps of w.
void sweep_rows(const uint16_t* xb, int64_t x_stride, int64_t m, int64_t steps, const PairTile& w, int64_t cols,
                const float* bias, float* y, int64_t ldy, float* c_tiles) {
  const int64_t a_bytes = x_stride * 2;
  if (m <= kTileRows) {  // one row block, tiles configured m rows tall
    _tile_zero(0);
    _tile_zero(1);
    for (int64_t s = 0; s < steps; ++s) {
      const uint32_t* b = w.pairs + s * w.step_words;
      _tile_loadd(4, xb + s * kStepK, a_bytes);
      _tile_loadd(6, b, w.row_bytes);
      _tile_loadd(7, b + 16, w.row_bytes);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
    }
    _tile_stored(0, c_tiles, 64);
    _tile_stored(1, c_tiles + 256, 64);
    return write_block(c_tiles, m, cols, bias, y, ldy);
  }
  for (int64_t i0 = 0; i0 < m; i0 += 2 * kTileRows) {
    const uint16_t* a = xb + i0 * x_stride;
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (int64_t s = 0; s < steps; ++s) {
      const uint32_t* b = w.pairs + s * w.step_words;
      _tile_loadd(4, a + s * kStepK, a_bytes);
      _tile_loadd(5, a + kTileRows * x_stride + s * kStepK, a_bytes);
      _tile_loadd(6, b, w.row_bytes);
      _tile_loadd(7, b + 16, w.row_bytes);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, c_tiles, 64);
    _tile_stored(1, c_tiles + 256, 64);
    _tile_stored(2, c_tiles + 512, 64);
    _tile_stored(3, c_tiles + 768, 64);
    write_block(c_tiles, std::min(2 * kTileRows, m - i0), cols, bias, y + i0 * ldy, ldy);
  }
}

}  // namespace

void amx_gemm_cols_bf16(const uint16_t* xb, int64_t m, const WeightMatrix& w, const float* bias, int64_t j_begin,
                        int64_t j_end, float* y) {
  constexpr int64_t kPairWords = kBf16Vecs * 16;  // uint32 per k-pair in a packed tile
  const int64_t k = w.k, x_stride = bf16_x_stride(k), steps = x_stride / kStepK;
  const int64_t pairs = (k + 1) / 2, padded_pairs = steps * (kStepK / 2);
  auto* wp = thread_scratch_as<uint32_t>(ScratchSlot::kGemmW, static_cast<size_t>(padded_pairs * kPairWords));
  auto* c_tiles = thread_scratch_as<float>(ScratchSlot::kGemmC, 4 * 256);
  configure_tiles(std::min(m, kTileRows));
  for (int64_t j = j_begin; j < j_end; j += kBf16TileCols) {
    const int64_t cols = std::min(kBf16TileCols, j_end - j);
    pack_w_tile_bf16(w, j, cols, 0, k, wp, kBf16Vecs);
    // The last step's pairs past k multiply x's zero padding; they must not be NaN garbage.
    std::memset(wp + pairs * kPairWords, 0, static_cast<size_t>((padded_pairs - pairs) * kPairWords) * sizeof(uint32_t));
    for (int64_t v0 = 0; v0 < kBf16Vecs && 16 * v0 < cols; v0 += 2) {
      const PairTile tile{wp + v0 * 16, (kStepK / 2) * kPairWords, kPairWords * 4};
      sweep_rows(xb, x_stride, m, steps, tile, cols - 16 * v0, bias != nullptr ? bias + j + 16 * v0 : nullptr,
                 y + j + 16 * v0, w.n, c_tiles);
    }
  }
  // Back to the initial state: the OS then need not save 8 KiB of tiles at a context switch.
  _tile_release();
}

void amx_gemm_packed_bf16(const uint16_t* xb, int64_t m, const uint32_t* packed, int64_t n, int64_t k,
                          const float* bias, int64_t tile_begin, int64_t tile_end, float* y) {
  const int64_t x_stride = bf16_x_stride(k), steps = x_stride / kStepK;
  const int64_t tile_words = steps * (kStepK / 2) * kPackedTileCols;
  auto* c_tiles = thread_scratch_as<float>(ScratchSlot::kGemmC, 4 * 256);
  configure_tiles(std::min(m, kTileRows));
  for (int64_t t = tile_begin; t < tile_end; ++t) {
    const int64_t j = t * kPackedTileCols, cols = std::min(kPackedTileCols, n - j);
    const PairTile tile{packed + t * tile_words, (kStepK / 2) * kPackedTileCols, kPackedTileCols * 4};
    sweep_rows(xb, x_stride, m, steps, tile, cols, bias != nullptr ? bias + j : nullptr, y + j, n, c_tiles);
  }
  _tile_release();
}

void amx_packed_share(const uint16_t* xb, int64_t m, const Bf16Packed& w, const float* bias, float* y, int index,
                      int count) {
  const int64_t tiles = (w.n + kPackedTileCols - 1) / kPackedTileCols;
  const Range own = split(tiles, count, index, 1, tiles);
  if (own.begin < own.end) amx_gemm_packed_bf16(xb, m, w.pairs, w.n, w.k, bias, own.begin, own.end, y);
}

}  // namespace hotswap::kernels::detail

#pragma GCC diagnostic pop
#pragma GCC pop_options
