#include "attention/nsa/nsa_attention.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "attention/nsa/nsa_compress.h"
#include "attention/nsa/nsa_math.h"
#include "attention/nsa/nsa_select.h"
#include "core/check.h"

namespace hotswap {
namespace {

using nsa_detail::axpy;
using nsa_detail::dot;
using nsa_detail::score_rows;
using nsa_detail::sigmoid;
using nsa_detail::softmax_inplace;

// Blocks compressed per work item: enough to amortise reading an MLP's weights, few enough
// that a prefill's blocks spread over the threads.
constexpr int kCompressTile = 32;
// Below this many multiply-adds a call runs on the calling thread: waking the OpenMP team
// costs more than it saves (short decodes of small models).
constexpr int64_t kParallelWork = 1 << 16;
// Query heads per KV head an item handles (pointers to their queries live on the stack).
constexpr int kMaxGroup = 64;

template <typename T>
T* grow(std::vector<T>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  return v.data();
}

// Per-thread buffers, grown to the largest call and reused.
struct CompressScratch {
  std::vector<const float*> rows;
  std::vector<float> x, hidden, out;
};
struct ItemScratch {
  std::vector<float> cmp_scores, importance_p, head_importance, importance, sel_scores, win_scores, branch_out;
  std::vector<int32_t> candidates, blocks;
  std::vector<int64_t> ranges;
};
CompressScratch& compress_scratch() {
  thread_local CompressScratch s;
  return s;
}
ItemScratch& item_scratch() {
  thread_local ItemScratch s;
  return s;
}

// Where the key that block compression reads for position p of KV head h lives.
struct KeySource {
  const PagedKvView* kv = nullptr;
  bool pre = false;
  const float* new_keys = nullptr;  // "pre": [T, Hkv, d] un-rotated keys of the call's tokens
  const float* recent = nullptr;    // "pre": [Hkv, l, d] un-rotated keys of positions < first
  int64_t first = 0;
  int num_kv_heads = 0, head_dim = 0, l = 0;

  const float* key(int64_t p, int h) const {
    if (!pre) return kv->key(static_cast<int>(p), h);
    if (p >= first) return new_keys + ((p - first) * num_kv_heads + h) * head_dim;
    return recent + (static_cast<int64_t>(h) * l + p % l) * head_dim;
  }
};

// Computes compressed blocks [begin, end) of every KV head into the sequence's pages.
void compress_new_blocks(const LayerAttentionCall& call, const NsaAdapter& adapter, const KeySource& keys,
                         NsaSequenceState& state, int64_t begin, int64_t end) {
  const NsaConfig& c = adapter.config;
  const NsaLayerWeights& w = adapter.layers[static_cast<size_t>(call.layer)];
  const int hkv = call.num_kv_heads, d = call.head_dim, l = c.compress_block_size, hidden = c.mlp_hidden_size;
  const int64_t s = c.compress_stride;
  CompressedBlockPool& pool = state.pool();
  const int64_t e = pool.entries_per_page();
  const std::vector<int32_t>& pages = state.layer(call.layer).pages;
  const int64_t tiles = (end - begin + kCompressTile - 1) / kCompressTile;
  const int64_t items = tiles * hkv * 2;  // x2: keys and values are independent items
  const int64_t per_block = static_cast<int64_t>(l) * d * std::max(hidden, 1);
  const bool parallel = items > 1 && (end - begin) * hkv * 2 * per_block > kParallelWork;

#pragma omp parallel for schedule(dynamic, 1) if (parallel)
  for (int64_t item = 0; item < items; ++item) {
    const bool values = item % 2 == 1;
    const int h = static_cast<int>(item / 2 % hkv);
    const int64_t j0 = begin + item / 2 / hkv * kCompressTile;
    const int nb = static_cast<int>(std::min<int64_t>(kCompressTile, end - j0));
    const NsaCompressor& side = values ? w.v : w.k;
    CompressScratch& cs = compress_scratch();
    const float** rows = grow(cs.rows, l);
    float* x = grow(cs.x, static_cast<int64_t>(nb) * l * d);
    float* hid = grow(cs.hidden, nsa_detail::compress_scratch_floats(nb, std::max(hidden, 1)));
    float* out = grow(cs.out, static_cast<int64_t>(nb) * d);
    const float* pos_emb = side.pos_emb.data() + static_cast<int64_t>(h) * l * d;
    for (int b = 0; b < nb; ++b) {
      const int64_t start = (j0 + b) * s;
      for (int i = 0; i < l; ++i) {
        rows[i] = values ? call.kv.value(static_cast<int>(start + i), h) : keys.key(start + i, h);
      }
      nsa_detail::add_position_embedding(rows, pos_emb, l, d, x + static_cast<int64_t>(b) * l * d);
    }
    nsa_detail::compress_blocks(side, h, l, d, hidden, x, nb, hid, out);
    for (int b = 0; b < nb; ++b) {
      const int64_t j = j0 + b;
      const int32_t page = pages[static_cast<size_t>(j / e)];
      float* dst = (values ? pool.values(page) : pool.keys(page)) + (static_cast<int64_t>(h) * e + j % e) * d;
      std::copy_n(out + static_cast<int64_t>(b) * d, d, dst);
    }
  }
}

// Calls f(first_position, count, key_rows, value_rows) for the runs of [lo, hi) that are
// contiguous in the paged KV cache for KV head h.
template <typename F>
void for_each_run(const PagedKvView& kv, int64_t lo, int64_t hi, int h, F&& f) {
  for (int64_t p = lo; p < hi;) {
    const int64_t run_end = std::min<int64_t>(hi, (p / kv.block_size + 1) * kv.block_size);
    HS_CHECK(kv.blocks[p / kv.block_size] >= 0) << "nsa reads position " << p << " from a released KV page";
    f(p, static_cast<int>(run_end - p), kv.key(static_cast<int>(p), h), kv.value(static_cast<int>(p), h));
    p = run_end;
  }
}

// Softmax attention of the group's rotated queries over the KV-cache keys of `ranges`
// (ascending, disjoint [lo, hi) pairs); out is [group, d].
void attend_ranges(const PagedKvView& kv, int h, const float* const* q, int group, int d, float scale,
                   const int64_t* ranges, int num_ranges, float* scores, int64_t stride, float* out) {
  int64_t n = 0;
  for (int r = 0; r < num_ranges; ++r) {
    for_each_run(kv, ranges[2 * r], ranges[2 * r + 1], h, [&](int64_t, int count, const float* k, const float*) {
      score_rows(q, group, k, count, d, scale, scores + n, static_cast<int>(stride));
      n += count;
    });
  }
  std::fill_n(out, static_cast<int64_t>(group) * d, 0.0f);
  for (int a = 0; a < group; ++a) softmax_inplace(scores + a * stride, static_cast<int>(n));
  int64_t at = 0;
  for (int r = 0; r < num_ranges; ++r) {
    for_each_run(kv, ranges[2 * r], ranges[2 * r + 1], h, [&](int64_t, int count, const float*, const float* v) {
      for (int k = 0; k < count; ++k) {
        for (int a = 0; a < group; ++a) axpy(scores[a * stride + at + k], v + static_cast<int64_t>(k) * d, out + a * d, d);
      }
      at += count;
    });
  }
}

struct ItemContext {
  const LayerAttentionCall* call;
  const NsaLayerInputs* extra;
  const NsaAdapter* adapter;
  const NsaSequenceState::Layer* layer_state;
  const CompressedBlockPool* pool;
  int group;
};

// One query token (index i of the call) and one KV group: all branches, the gate, the output.
void attend_item(const ItemContext& ctx, int i, int g, ItemScratch& s) {
  const LayerAttentionCall& call = *ctx.call;
  const NsaAdapter& adapter = *ctx.adapter;
  const NsaConfig& c = adapter.config;
  const NsaLayerWeights& w = adapter.layers[static_cast<size_t>(call.layer)];
  const int G = ctx.group, H = call.num_heads, d = call.head_dim, M = c.num_mem_tokens;
  const int64_t t = static_cast<int64_t>(call.first_position) + i;
  const float scale = call.scale;
  const bool pre = c.compress_rope == NsaCompressRope::kPre;

  const float* qr[kMaxGroup];
  const float* qc[kMaxGroup];
  for (int a = 0; a < G; ++a) {
    const int64_t off = (static_cast<int64_t>(i) * H + static_cast<int64_t>(g) * G + a) * d;
    qr[a] = call.q + off;
    qc[a] = (pre ? ctx.extra->q_unrotated : call.q) + off;
  }
  float* o_cmp = grow(s.branch_out, 3 * static_cast<int64_t>(G) * d);
  float* o_sel = o_cmp + static_cast<int64_t>(G) * d;
  float* o_win = o_sel + static_cast<int64_t>(G) * d;

  // Compressed branch: memory tokens + the blocks that exist at t, from the cache.
  const int64_t nc = c.num_compressed_blocks(t + 1);
  const int64_t nk = M + nc;
  const int64_t e = ctx.pool->entries_per_page();
  const std::vector<int32_t>& pages = ctx.layer_state->pages;
  float* sc = grow(s.cmp_scores, std::max<int64_t>(1, G * nk));
  score_rows(qc, G, adapter.mem_keys(call.layer, g), M, d, scale, sc, static_cast<int>(nk));
  for (int64_t j = 0; j < nc; j += e) {
    const int count = static_cast<int>(std::min(e, nc - j));
    const float* keys = ctx.pool->keys(pages[static_cast<size_t>(j / e)]) + static_cast<int64_t>(g) * e * d;
    score_rows(qc, G, keys, count, d, scale, sc + M + j, static_cast<int>(nk));
  }
  // Importance probabilities: a softmax over the existing blocks only (not the memory tokens).
  float* p = grow(s.importance_p, std::max<int64_t>(1, G * nc));
  if (nc > 0) {
    for (int a = 0; a < G; ++a) {
      std::copy_n(sc + a * nk + M, nc, p + a * nc);
      softmax_inplace(p + a * nc, static_cast<int>(nc));
    }
  }
  std::fill_n(o_cmp, static_cast<int64_t>(G) * d, 0.0f);
  if (nk > 0) {
    for (int a = 0; a < G; ++a) softmax_inplace(sc + a * nk, static_cast<int>(nk));
    const float* mem_v = adapter.mem_values(call.layer, g);
    for (int m = 0; m < M; ++m) {
      for (int a = 0; a < G; ++a) axpy(sc[a * nk + m], mem_v + static_cast<int64_t>(m) * d, o_cmp + a * d, d);
    }
    for (int64_t j = 0; j < nc; j += e) {
      const int count = static_cast<int>(std::min(e, nc - j));
      const float* vals = ctx.pool->values(pages[static_cast<size_t>(j / e)]) + static_cast<int64_t>(g) * e * d;
      for (int r = 0; r < count; ++r) {
        for (int a = 0; a < G; ++a) axpy(sc[a * nk + M + j + r], vals + static_cast<int64_t>(r) * d, o_cmp + a * d, d);
      }
    }
  }

  // Selection, shared by the group's heads.
  const int64_t nsel = c.num_selection_blocks(t);
  float* head_imp = grow(s.head_importance, nsel);
  float* imp = grow(s.importance, nsel);
  nsa_detail::group_importance(p, G, nc, nc, c, nsel, head_imp, imp);
  int32_t* blocks = grow(s.blocks, std::min<int64_t>(nsel, c.num_selected_blocks));
  const int num_blocks = nsa_detail::select_blocks(imp, t, c, grow(s.candidates, nsel), blocks);

  // Selected branch: the chosen blocks' keys up to t, as [lo, hi) ranges (adjacent blocks merged).
  const int64_t sel = c.selection_block_size;
  int64_t* ranges = grow(s.ranges, 2 * static_cast<int64_t>(num_blocks) + 2);
  int num_ranges = 0;
  int64_t num_sel_keys = 0;
  for (int k = 0; k < num_blocks; ++k) {
    const int64_t lo = blocks[k] * sel, hi = std::min((blocks[k] + 1) * sel, t + 1);
    if (num_ranges > 0 && ranges[2 * num_ranges - 1] == lo) {
      ranges[2 * num_ranges - 1] = hi;
    } else {
      ranges[2 * num_ranges] = lo;
      ranges[2 * num_ranges + 1] = hi;
      ++num_ranges;
    }
    num_sel_keys += hi - lo;
  }
  attend_ranges(call.kv, g, qr, G, d, scale, ranges, num_ranges, grow(s.sel_scores, G * num_sel_keys), num_sel_keys,
                o_sel);

  // Sliding branch: keys (t - w, t].
  const int64_t win_lo = std::max<int64_t>(0, t - c.sliding_window_size + 1);
  const int64_t window[2] = {win_lo, t + 1};
  attend_ranges(call.kv, g, qr, G, d, scale, window, 1, grow(s.win_scores, G * (t + 1 - win_lo)), t + 1 - win_lo,
                o_win);

  // Gate and mix: g = sigmoid(W_g x + b_g), row 3*qh + branch.
  const int D = ctx.extra->hidden_size;
  const float* x = ctx.extra->x + static_cast<int64_t>(i) * D;
  for (int a = 0; a < G; ++a) {
    const int64_t qh = static_cast<int64_t>(g) * G + a;
    float gate[3];
    for (int b = 0; b < 3; ++b) {
      const int64_t row = 3 * qh + b;
      gate[b] = sigmoid(dot(w.gate_w.data() + row * D, x, D) + w.gate_b[static_cast<size_t>(row)]);
    }
    float* out = call.out + (static_cast<int64_t>(i) * H + qh) * d;
    const float* oc = o_cmp + a * d;
    const float* os = o_sel + a * d;
    const float* ow = o_win + a * d;
#pragma omp simd
    for (int k = 0; k < d; ++k) out[k] = gate[0] * oc[k] + gate[1] * os[k] + gate[2] * ow[k];
  }
}

}  // namespace

void nsa_attend(const LayerAttentionCall& call, const NsaLayerInputs& extra, const NsaAdapter& adapter,
                NsaSequenceState& state) {
  const NsaConfig& c = adapter.config;
  HS_CHECK(&state.adapter() == &adapter) << "nsa state belongs to another adapter";
  HS_CHECK(call.layer >= 0 && call.layer < adapter.num_layers)
      << "layer " << call.layer << " of an adapter with " << adapter.num_layers << " layers";
  HS_CHECK(call.num_heads == adapter.num_heads && call.num_kv_heads == adapter.num_kv_heads &&
           call.head_dim == adapter.head_dim && call.kv.num_kv_heads == call.num_kv_heads &&
           call.kv.head_dim == call.head_dim)
      << "nsa call H=" << call.num_heads << " Hkv=" << call.num_kv_heads << " d=" << call.head_dim
      << ", adapter H=" << adapter.num_heads << " Hkv=" << adapter.num_kv_heads << " d=" << adapter.head_dim;
  HS_CHECK(call.num_heads % call.num_kv_heads == 0 && call.num_heads / call.num_kv_heads <= kMaxGroup)
      << "nsa supports up to " << kMaxGroup << " query heads per KV head, got H=" << call.num_heads
      << " Hkv=" << call.num_kv_heads;
  HS_CHECK(extra.x != nullptr && extra.hidden_size == adapter.hidden_size)
      << "nsa needs the attention input x [T, " << adapter.hidden_size << "]";
  const bool pre = c.compress_rope == NsaCompressRope::kPre;
  HS_CHECK(!pre || (extra.q_unrotated != nullptr && extra.k_unrotated != nullptr))
      << "compress_rope 'pre' needs the un-rotated q and k";
  NsaSequenceState::Layer& ls = state.layer(call.layer);
  HS_CHECK(ls.num_positions == call.first_position)
      << "nsa state of layer " << call.layer << " has seen " << ls.num_positions << " positions, the call starts at "
      << call.first_position;
  const int T = call.num_tokens;
  if (T <= 0) return;
  const int hkv = call.num_kv_heads, d = call.head_dim, l = c.compress_block_size;
  const int64_t first = call.first_position, end = first + T;
  HS_CHECK(static_cast<int64_t>(call.kv.num_logical_blocks) * call.kv.block_size >= end)
      << "KV view covers " << call.kv.num_logical_blocks * call.kv.block_size << " positions, the call needs " << end;

  // 1. Compressed blocks completing in this call, before any of its queries (the query at
  //    j*s + l - 1 already sees block j).
  if (pre && ls.recent_keys.empty()) ls.recent_keys.assign(static_cast<size_t>(hkv) * l * d, 0.0f);
  const int64_t nc_end = c.num_compressed_blocks(end);
  if (nc_end > ls.num_entries) {
    state.ensure_pages(call.layer, nc_end);
    KeySource keys{&call.kv, pre, extra.k_unrotated, ls.recent_keys.data(), first, hkv, d, l};
    compress_new_blocks(call, adapter, keys, state, ls.num_entries, nc_end);
  }
  // Only now may the recent un-rotated keys move on: the blocks above read the old ones.
  if (pre) {
    for (int64_t p = std::max(first, end - l); p < end; ++p) {
      for (int h = 0; h < hkv; ++h) {
        std::copy_n(extra.k_unrotated + ((p - first) * hkv + h) * d, d,
                    ls.recent_keys.data() + (static_cast<int64_t>(h) * l + p % l) * d);
      }
    }
  }
  ls.num_positions = end;
  ls.num_entries = nc_end;

  // 2. Every (query token, KV group) independently.
  const ItemContext ctx{&call, &extra, &adapter, &ls, &state.pool(), call.num_heads / hkv};
  const int64_t items = static_cast<int64_t>(T) * hkv;
  const int64_t keys_per_query = c.num_mem_tokens + nc_end +
                                 std::min<int64_t>(static_cast<int64_t>(c.num_selected_blocks) * c.selection_block_size, end) +
                                 std::min<int64_t>(c.sliding_window_size, end);
  const bool parallel = items > 1 && items * ctx.group * d * keys_per_query > kParallelWork;
#pragma omp parallel for schedule(dynamic, 1) if (parallel)
  for (int64_t item = 0; item < items; ++item) {
    attend_item(ctx, static_cast<int>(item / hkv), static_cast<int>(item % hkv), item_scratch());
  }
}

const char* nsa_kernel_name() { return "nsa_paged"; }

}  // namespace hotswap
