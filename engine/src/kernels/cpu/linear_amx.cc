// AMX forms of LinearPrecision::kBf16Dot on CPUs with AMX-BF16: the same bf16-rounded x and
// bf16 W as the vdpbf16ps forms, multiplied in tile registers. One tdpbf16ps does 16 x 16 x 32
// products where vdpbf16ps does 32, so prefill and batched decode stop being bound by
// arithmetic and become bound by reading W.
//
// Tiles: C0-C3 accumulate up to 32 rows x 32 columns of y (2 row blocks x 2 column groups),
// A0-A1 hold 16 rows x 32 k of x each, B0-B1 16 k-pairs x 16 columns of W pairs each. W comes
// as k-pair-major tiles (cpu/bf16_pairs.h): packed per call by linear() (64 columns, from 8
// rows) or once at load (kernels/bf16_packed.h, 32 columns, at every row count).
//
// Up to 16 rows (decode) a thread sweeps each W tile once over the whole k; that is bound by
// reading W. Beyond, the tile registers can do ~3 TFLOP/s a core, which only L1 and L2 feed:
//  * x comes in tile order (AmxX, amx_pack_x): each A tile is 1 KiB in one piece, not 16 rows 4 KiB apart;
//  * the packed form blocks rows and k (RowGroups) so that the x it sweeps stays in L2 while W
//    tiles pass, fetches the next W tile into L2 while one is swept (a tile's first block would
//    otherwise wait on DRAM one load at a time), and keeps each C block in the tile registers
//    for 64 to 128 k steps (storing C stalls the tile pipeline; every 32 steps costs ~30%).
// Partial sums between k chunks go through y (float32: exact).
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

constexpr int64_t kTileRows = kAmxTileRows;  // rows of an A or C tile
constexpr int64_t kStepK = 32;     // bf16 elements of k per tdpbf16ps (64-byte A rows)
// Packed form beyond 16 rows: bytes of x swept per k chunk (half this CPU class's 2 MiB L2;
// the W tile in use and the next take part of the rest), and the k steps a C block stays in
// the tile registers per chunk: at least kMinChunkSteps unless the rows must be split into
// groups (each reading W again), at most kMaxChunkSteps.
constexpr int64_t kXGroupBytes = int64_t{1} << 20;
// Up to 16 rows: W steps (2 KiB each) fetched ahead of the tile loads (sweep_few_rows).
constexpr int64_t kDecodePrefetchSteps = 32;
constexpr int64_t kMinChunkSteps = 64;
constexpr int64_t kMaxChunkSteps = 128;

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

// c_tiles (as write_block reads it) = y's rows [0, row_count), columns [0, cols): the partial
// sums of a block that does not fill its tiles; zero elsewhere.
void read_block(const float* y, int64_t ldy, int64_t row_count, int64_t cols, float* c_tiles) {
  std::memset(c_tiles, 0, 4 * 256 * sizeof(float));
  for (int64_t g = 0; g < 2; ++g) {
    const int64_t c0 = 16 * g, vc = std::min<int64_t>(16, cols - c0);
    if (vc <= 0) break;
    const __mmask16 mask = static_cast<__mmask16>((1u << vc) - 1);
    for (int64_t r = 0; r < row_count; ++r)
      _mm512_store_ps(c_tiles + ((r / kTileRows) * 2 + g) * 256 + (r % kTileRows) * 16,
                      _mm512_maskz_loadu_ps(mask, y + r * ldy + c0));
  }
}

// A W tile in k-pair-major form: the 16 pairs of k step s for column group g (16 columns)
// start at pairs + s * step_words + 16 g, one tile row every row_bytes.
struct PairTile {
  const uint32_t* pairs;
  int64_t step_words;
  int64_t row_bytes;
};

// Where 16 rows of x sit for tile loads: step s's A tile at rows + s * step_elems, one tile
// row every row_bytes. Row-major xb (up to 16 rows) or the AmxX tile order.
struct ATiles {
  const uint16_t* rows;
  int64_t step_elems;
  int64_t row_bytes;
};

// The 16-row blocks of tile-ordered x (AmxX): block b, step s at xt + (b * steps + s) * 512.
ATiles amx_x_block(const uint16_t* xt, int64_t steps, int64_t block) {
  return ATiles{xt + block * steps * kTileRows * kStepK, kTileRows * kStepK, kStepK * 2};
}

// Where a block's k steps sit in the whole sum: C starts from zero at the first step of k,
// else from the partial sums in y; after the last step y gets C + bias, else C.
struct KRange {
  int64_t begin, end;
  bool first, last;
};

// Software prefetch of the next W tile (or chunk of one) into L2, spread over the k steps
// that sweep this one.
struct NextTile {
  const char* at = nullptr;  // next line to fetch
  const char* end = nullptr;
  int64_t lines_per_step = 0;

  void step() {
    for (int64_t l = 0; l < lines_per_step && at < end; ++l, at += 64) _mm_prefetch(at, _MM_HINT_T1);
  }
};

// One block of up to 32 rows (a0: rows 0-15, a1: 16-31, zero past row_count) x `cols` <= 32
// columns of y over k steps `ks`. A whole block's C goes between y and the tile registers
// directly; a partial one (the last rows, or the last columns of W) through c_tiles, so y is
// never touched outside its rows and columns.
void sweep_block(const ATiles& a0, const ATiles& a1, int64_t row_count, const KRange& ks, const PairTile& w,
                 int64_t cols, const float* bias, float* y, int64_t ldy, float* c_tiles, NextTile& next) {
  const int64_t y_bytes = ldy * 4;
  const bool direct = row_count == 2 * kTileRows && cols == 2 * 16 && !(ks.last && bias != nullptr);
  if (ks.first) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
  } else if (direct) {
    _tile_loadd(0, y, y_bytes);
    _tile_loadd(1, y + 16, y_bytes);
    _tile_loadd(2, y + kTileRows * ldy, y_bytes);
    _tile_loadd(3, y + kTileRows * ldy + 16, y_bytes);
  } else {
    read_block(y, ldy, row_count, cols, c_tiles);
    _tile_loadd(0, c_tiles, 64);
    _tile_loadd(1, c_tiles + 256, 64);
    _tile_loadd(2, c_tiles + 512, 64);
    _tile_loadd(3, c_tiles + 768, 64);
  }
  for (int64_t s = ks.begin; s < ks.end; ++s) {
    const uint32_t* b = w.pairs + s * w.step_words;
    _tile_loadd(4, a0.rows + s * a0.step_elems, a0.row_bytes);
    _tile_loadd(5, a1.rows + s * a1.step_elems, a1.row_bytes);
    next.step();
    _tile_loadd(6, b, w.row_bytes);
    _tile_loadd(7, b + 16, w.row_bytes);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
    _tile_dpbf16ps(2, 5, 6);
    _tile_dpbf16ps(3, 5, 7);
  }
  if (direct) {
    _tile_stored(0, y, y_bytes);
    _tile_stored(1, y + 16, y_bytes);
    _tile_stored(2, y + kTileRows * ldy, y_bytes);
    _tile_stored(3, y + kTileRows * ldy + 16, y_bytes);
    return;
  }
  _tile_stored(0, c_tiles, 64);
  _tile_stored(1, c_tiles + 256, 64);
  _tile_stored(2, c_tiles + 512, 64);
  _tile_stored(3, c_tiles + 768, 64);
  write_block(c_tiles, row_count, cols, ks.last ? bias : nullptr, y, ldy);
}

// Up to 16 rows (tiles configured m rows tall): y[i][c] (+ bias[c]) for c < cols <= 32 over
// the whole k, from row-major xb. W streams from DRAM here, and the tile loads alone keep too
// few misses in flight: each step also fetches into L2 the step kDecodePrefetchSteps ahead
// (64 KiB; into the next tiles, below fetch_end; none when null). kernels_bench, packed GEMV and m = 8 on 32 MiB
// projections, interleaved: 29-31 GB/s without, 34-36 with.
void sweep_few_rows(const uint16_t* xb, int64_t x_stride, int64_t m, int64_t steps, const PairTile& w, int64_t cols,
                    const float* bias, float* y, int64_t ldy, float* c_tiles, const char* fetch_end) {
  const int64_t a_bytes = x_stride * 2, step_bytes = w.step_words * 4;
  _tile_zero(0);
  _tile_zero(1);
  for (int64_t s = 0; s < steps; ++s) {
    const uint32_t* b = w.pairs + s * w.step_words;
    const char* ahead = reinterpret_cast<const char*>(b + kDecodePrefetchSteps * w.step_words);
    for (int64_t l = 0; l < step_bytes && ahead + l < fetch_end; l += 64) _mm_prefetch(ahead + l, _MM_HINT_T1);
    _tile_loadd(4, xb + s * kStepK, a_bytes);
    _tile_loadd(6, b, w.row_bytes);
    _tile_loadd(7, b + 16, w.row_bytes);
    _tile_dpbf16ps(0, 4, 6);
    _tile_dpbf16ps(1, 4, 7);
  }
  _tile_stored(0, c_tiles, 64);
  _tile_stored(1, c_tiles + 256, 64);
  write_block(c_tiles, m, cols, bias, y, ldy);
}

// Rows [r_begin, r_end) of tile-ordered x (AmxX) against one W tile over k steps `ks`.
void sweep_blocks(const uint16_t* xt, int64_t steps, int64_t m, int64_t r_begin, int64_t r_end, const KRange& ks,
                  const PairTile& w, int64_t cols, const float* bias, float* y, int64_t ldy, float* c_tiles,
                  NextTile& next) {
  for (int64_t i0 = r_begin; i0 < r_end; i0 += 2 * kTileRows) {
    const int64_t block = i0 / kTileRows;
    sweep_block(amx_x_block(xt, steps, block), amx_x_block(xt, steps, block + 1), std::min(2 * kTileRows, m - i0), ks,
                w, cols, bias, y + i0 * ldy, ldy, c_tiles, next);
  }
}

// How the packed form blocks rows and k beyond 16 rows (see the top of the file).
struct RowGroups {
  int64_t chunk_steps;  // k steps per chunk
  int64_t group_rows;   // rows per group, a multiple of 32
};

RowGroups row_groups(int64_t m, int64_t steps) {
  const int64_t blocks = (m + 2 * kTileRows - 1) / (2 * kTileRows), line_bytes = kStepK * 2;
  const auto even_chunks = [steps](int64_t at_most) {
    const int64_t chunks = (steps + at_most - 1) / at_most;
    return (steps + chunks - 1) / chunks;
  };
  // One group (W read once) when chunks of kMinChunkSteps or more keep every row in L2.
  const int64_t fit_steps = kXGroupBytes / (blocks * 2 * kTileRows * line_bytes);
  if (fit_steps >= std::min(steps, kMinChunkSteps))
    return RowGroups{even_chunks(std::min(fit_steps, kMaxChunkSteps)), blocks * 2 * kTileRows};
  // Else groups of rows, as even as possible, over chunks as long as allowed.
  const int64_t chunk_steps = even_chunks(kMaxChunkSteps);
  const int64_t fit_blocks = std::max<int64_t>(1, kXGroupBytes / (chunk_steps * line_bytes) / (2 * kTileRows));
  const int64_t groups = (blocks + fit_blocks - 1) / fit_blocks;
  return RowGroups{chunk_steps, (blocks + groups - 1) / groups * 2 * kTileRows};
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
  const KRange whole{0, steps, true, true};
  NextTile none;
  for (int64_t j = j_begin; j < j_end; j += kBf16TileCols) {
    const int64_t cols = std::min(kBf16TileCols, j_end - j);
    pack_w_tile_bf16(w, j, cols, 0, k, wp, kBf16Vecs);
    // The last step's pairs past k multiply x's zero padding; they must not be NaN garbage.
    std::memset(wp + pairs * kPairWords, 0, static_cast<size_t>((padded_pairs - pairs) * kPairWords) * sizeof(uint32_t));
    for (int64_t v0 = 0; v0 < kBf16Vecs && 16 * v0 < cols; v0 += 2) {
      const PairTile tile{wp + v0 * 16, (kStepK / 2) * kPairWords, kPairWords * 4};
      const float* b = bias != nullptr ? bias + j + 16 * v0 : nullptr;
      if (!amx_x_in_tile_order(m))
        sweep_few_rows(xb, x_stride, m, steps, tile, cols - 16 * v0, b, y + j + 16 * v0, w.n, c_tiles,
                       /*fetch_end=*/nullptr);  // W is this thread's packed copy, already in cache
      else
        sweep_blocks(xb, steps, m, 0, m, whole, tile, cols - 16 * v0, b, y + j + 16 * v0, w.n, c_tiles, none);
    }
  }
  // Back to the initial state: the OS then need not save 8 KiB of tiles at a context switch.
  _tile_release();
}

void amx_gemm_packed_bf16(const uint16_t* xb, int64_t m, const uint32_t* packed, int64_t n, int64_t k,
                          const float* bias, int64_t tile_begin, int64_t tile_end, float* y) {
  const int64_t x_stride = bf16_x_stride(k), steps = x_stride / kStepK;
  const int64_t step_words = (kStepK / 2) * kPackedTileCols, tile_words = steps * step_words;
  auto* c_tiles = thread_scratch_as<float>(ScratchSlot::kGemmC, 4 * 256);
  configure_tiles(std::min(m, kTileRows));
  const auto tile_at = [&](int64_t t) { return PairTile{packed + t * tile_words, step_words, kPackedTileCols * 4}; };
  if (!amx_x_in_tile_order(m)) {
    for (int64_t t = tile_begin; t < tile_end; ++t) {
      const int64_t j = t * kPackedTileCols;
      sweep_few_rows(xb, x_stride, m, steps, tile_at(t), std::min(kPackedTileCols, n - j),
                     bias != nullptr ? bias + j : nullptr, y + j, n, c_tiles,
                     reinterpret_cast<const char*>(tile_at(tile_end).pairs));
    }
    return _tile_release();
  }
  const RowGroups plan = row_groups(m, steps);
  for (int64_t g0 = 0; g0 < m; g0 += plan.group_rows) {
    const int64_t g1 = std::min(m, g0 + plan.group_rows);
    const int64_t blocks = (g1 - g0 + 2 * kTileRows - 1) / (2 * kTileRows);
    for (int64_t s0 = 0; s0 < steps; s0 += plan.chunk_steps) {
      const KRange ks{s0, std::min(steps, s0 + plan.chunk_steps), s0 == 0, s0 + plan.chunk_steps >= steps};
      const int64_t chunk_bytes = (ks.end - ks.begin) * step_words * 4, block_steps = blocks * (ks.end - ks.begin);
      const int64_t lines_per_step = (chunk_bytes / 64 + block_steps - 1) / block_steps;
      for (int64_t t = tile_begin; t < tile_end; ++t) {
        // Fetched meanwhile: this chunk of the next tile, else the next chunk of the first.
        const bool last_tile = t + 1 == tile_end;
        const int64_t next_step = last_tile ? (ks.last ? 0 : ks.end) : ks.begin;
        NextTile next;
        if (!(last_tile && ks.last && g1 == m)) {
          next.at = reinterpret_cast<const char*>(tile_at(last_tile ? tile_begin : t + 1).pairs + next_step * step_words);
          next.end = next.at + std::min(chunk_bytes, (steps - next_step) * step_words * 4);
          next.lines_per_step = lines_per_step;
        }
        const int64_t j = t * kPackedTileCols;
        sweep_blocks(xb, steps, m, g0, g1, ks, tile_at(t), std::min(kPackedTileCols, n - j),
                     bias != nullptr ? bias + j : nullptr, y + j, n, c_tiles, next);
      }
    }
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
