#include "attention/nsa/nsa_attention.h"

#include <algorithm>
#include <cstdint>
#include <vector>

#include "attention/nsa/nsa_compress.h"
#include "attention/nsa/nsa_math.h"
#include "attention/nsa/nsa_select.h"
#include "attention/paged_attention_kernel.h"
#include "core/check.h"
#include "kernels/isa.h"

#ifdef _OPENMP
#include <omp.h>
#endif

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
// Query heads per KV head (a bound that keeps per-item buffers small).
constexpr int kMaxGroup = 64;
// Head dimension (the compressed branch's output row lives on the stack).
constexpr int kMaxHeadDim = 512;
// Floats of importance probabilities a tile of queries may hold ([tile, H, blocks]): 16 MiB.
constexpr int64_t kTileBufferFloats = int64_t{1} << 22;
// Fewest compressed blocks a chunk of the compressed branch handles.
constexpr int64_t kMinChunk = 256;

template <typename T>
T* grow(std::vector<T>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
  return v.data();
}

// Per-thread buffers, grown to the largest call and reused.
struct CompressScratch {
  std::vector<const float*> rows;
  std::vector<float> x, hidden, out;
  std::vector<float> widened;  // [l, d]: a block's bf16 K or V rows as float32
};
struct ItemScratch {
  std::vector<float> importance, kernel_state, kernel_scratch;
  std::vector<int32_t> candidates, blocks;
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

  // buf[head_dim] receives a bf16 or q8 cache row widened (PagedKvView::key_row).
  const float* key(int64_t p, int h, float* buf) const {
    if (!pre) return kv->key_row(static_cast<int>(p), h, buf);
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
    float* widened = grow(cs.widened, static_cast<int64_t>(l) * d);
    float* x = grow(cs.x, static_cast<int64_t>(nb) * l * d);
    float* hid = grow(cs.hidden, nsa_detail::compress_scratch_floats(nb, std::max(hidden, 1)));
    float* out = grow(cs.out, static_cast<int64_t>(nb) * d);
    const float* pos_emb = side.pos_emb.data() + static_cast<int64_t>(h) * l * d;
    for (int b = 0; b < nb; ++b) {
      const int64_t start = (j0 + b) * s;
      for (int i = 0; i < l; ++i) {
        float* buf = widened + static_cast<int64_t>(i) * d;
        rows[i] = values ? call.kv.value_row(static_cast<int>(start + i), h, buf) : keys.key(start + i, h, buf);
      }
      nsa_detail::add_position_embedding(rows, pos_emb, l, d, x + static_cast<int64_t>(b) * l * d);
    }
    nsa_detail::compress_blocks(side, h, l, d, hidden, x, nb, hid, out);
    for (int b = 0; b < nb; ++b) {
      const int64_t j = j0 + b;
      const int32_t page = pages[static_cast<size_t>(j / e)];
      const float* src = out + static_cast<int64_t>(b) * d;
      if (values) {
        std::copy_n(src, d, pool.values(page) + (static_cast<int64_t>(h) * e + j % e) * d);
      } else {  // keys are stored transposed, [d, E] per head (compressed_block_pool.h)
        float* dst = pool.keys(page) + static_cast<int64_t>(h) * d * e + j % e;
        for (int c = 0; c < d; ++c) dst[c * e] = src[c];
      }
    }
  }
}

// The paged attention kernel of the active ISA (attention/paged_attention_kernel.h): one
// online-softmax pass of a KV group's query heads over key segments, each K/V row loaded
// once for the whole group. The selected and sliding branches run on it.
attention_detail::ItemKernel branch_kernel() {
  switch (kernels::active_isa()) {
    case kernels::Isa::kAvx512:
      return attention_detail::avx512_item_kernel();
    case kernels::Isa::kAvx2:
      return attention_detail::avx2_item_kernel();
    case kernels::Isa::kScalar:
      break;
  }
  return attention_detail::scalar_item_kernel();
}

// Per-call buffers the phases of one tile of queries hand each other (the engine thread's).
struct TileBuffers {
  std::vector<float> scores;       // [tile, H, M + nc_max]: compressed-branch scores, then weights
  std::vector<float> p;            // [tile, H, nc_max]: each head's importance probabilities
  std::vector<float> importance;   // [tile, H, nsel_max]: each head's importance of each selection block
  std::vector<float> partial;      // [tile, Hkv, chunks, G, d]: compressed-branch partial outputs
  std::vector<float> o_branch;     // [tile, H, 2, d]: selected and sliding outputs
  std::vector<attention_detail::Segment> ranges;  // [tile, Hkv, max_ranges]: selected keys
  std::vector<int32_t> num_ranges; // [tile, Hkv]
  std::vector<uint8_t> all_heads, no_heads;  // [G] flags of the kernel: every head, no head
};
TileBuffers& tile_buffers() {
  thread_local TileBuffers b;
  return b;
}

struct CallContext {
  const LayerAttentionCall* call;
  const NsaLayerInputs* extra;
  const NsaAdapter* adapter;
  const NsaSequenceState::Layer* layer_state;
  const CompressedBlockPool* pool;
  int group;
  int64_t nc_max;      // compressed blocks seen by the call's last query (row stride of p)
  int64_t nsel_max;    // selection blocks of the call's last query (row stride of importance)
  int64_t chunk;       // compressed entries per chunk, a multiple of the page size
  int num_chunks;
  int max_ranges;      // selected ranges per (query, group): at most one per selected block
  int tile_begin;      // first query index of the tile
  TileBuffers* buffers;

  int64_t score_stride() const { return adapter->config.num_mem_tokens + nc_max; }
  float* scores(int i, int qh) const {
    return buffers->scores.data() + (static_cast<int64_t>(i - tile_begin) * call->num_heads + qh) * score_stride();
  }
  float* probs(int i, int qh) const {
    return buffers->p.data() + (static_cast<int64_t>(i - tile_begin) * call->num_heads + qh) * nc_max;
  }
  float* head_importance(int i, int qh) const {
    return buffers->importance.data() + (static_cast<int64_t>(i - tile_begin) * call->num_heads + qh) * nsel_max;
  }
  float* branch_out(int i, int qh) const {
    return buffers->o_branch.data() +
           ((static_cast<int64_t>(i - tile_begin) * call->num_heads + qh) * 2) * call->head_dim;
  }
  float* partial(int i, int g, int chunk_index) const {
    const int64_t item = static_cast<int64_t>(i - tile_begin) * call->num_kv_heads + g;
    return buffers->partial.data() + ((item * num_chunks + chunk_index) * group) * call->head_dim;
  }
};

// Calls f(first_entry, count, page_keys, page_values) for the compressed entries of KV head g
// in [begin, end), page by page (`begin` is page-aligned).
template <typename F>
void for_each_page(const CallContext& ctx, int g, int64_t begin, int64_t end, F&& f) {
  const int64_t e = ctx.pool->entries_per_page();
  const int64_t d = ctx.call->head_dim;
  const std::vector<int32_t>& pages = ctx.layer_state->pages;
  for (int64_t j = begin; j < end; j += e) {
    const int32_t page = pages[static_cast<size_t>(j / e)];
    f(j, static_cast<int>(std::min(e, end - j)), ctx.pool->keys(page) + g * e * d, ctx.pool->values(page) + g * e * d);
  }
}

// Phase 1, one query token, one KV group and one chunk of its compressed entries: the
// scores of the group's queries (un-rotated for "pre") against the memory tokens (chunk 0)
// and the chunk's cached blocks. Each key row is read once for the whole group.
void compressed_scores(const CallContext& ctx, int i, int g, int chunk_index) {
  const LayerAttentionCall& call = *ctx.call;
  const NsaAdapter& adapter = *ctx.adapter;
  const NsaConfig& c = adapter.config;
  const int G = ctx.group, d = call.head_dim, M = c.num_mem_tokens;
  const int64_t t = static_cast<int64_t>(call.first_position) + i;
  const int64_t nc = c.num_compressed_blocks(t + 1);
  const bool pre = c.compress_rope == NsaCompressRope::kPre;
  const float* q[kMaxGroup];
  for (int a = 0; a < G; ++a) {
    q[a] = (pre ? ctx.extra->q_unrotated : call.q) + (static_cast<int64_t>(i) * call.num_heads + g * G + a) * d;
  }
  float* rows = ctx.scores(i, g * G);
  const int stride = static_cast<int>(ctx.score_stride());
  if (chunk_index == 0) score_rows(q, G, adapter.mem_keys(call.layer, g), M, d, call.scale, rows, stride);
  const int64_t begin = chunk_index * ctx.chunk, end = std::min(nc, begin + ctx.chunk);
  const int e = static_cast<int>(ctx.pool->entries_per_page());
  for_each_page(ctx, g, begin, end, [&](int64_t j, int count, const float* keys, const float*) {
    nsa_detail::score_columns(q, G, keys, e, count, d, call.scale, rows + M + j, stride);
  });
}

// Part of phase 2, one query token and one query head: the importance probabilities (a softmax over
// the existing blocks only, not the memory tokens) and the branch's own softmax weights over
// [memory tokens] + blocks.
void compressed_softmax(const CallContext& ctx, int i, int qh) {
  const NsaConfig& c = ctx.adapter->config;
  const int M = c.num_mem_tokens;
  const int64_t nc = c.num_compressed_blocks(static_cast<int64_t>(ctx.call->first_position) + i + 1);
  float* row = ctx.scores(i, qh);
  const int64_t nsel = c.num_selection_blocks(static_cast<int64_t>(ctx.call->first_position) + i);
  float* importance = ctx.head_importance(i, qh);
  std::fill_n(importance, nsel, 0.0f);
  if (nc > 0) {
    float* p = ctx.probs(i, qh);
    std::copy_n(row + M, nc, p);
    softmax_inplace(p, static_cast<int>(nc));
    nsa_detail::add_block_importance(p, nc, c, nsel, importance);
  }
  if (M + nc > 0) softmax_inplace(row, static_cast<int>(M + nc));
}

// Phase 3a, one query token, one KV group and one chunk: the chunk's share of the group's
// compressed-branch outputs (weights x values; memory tokens with chunk 0).
void compressed_values(const CallContext& ctx, int i, int g, int chunk_index) {
  const LayerAttentionCall& call = *ctx.call;
  const NsaAdapter& adapter = *ctx.adapter;
  const NsaConfig& c = adapter.config;
  const int G = ctx.group, d = call.head_dim, M = c.num_mem_tokens;
  const int64_t nc = c.num_compressed_blocks(static_cast<int64_t>(call.first_position) + i + 1);
  const float* rows = ctx.scores(i, g * G);
  const int64_t stride = ctx.score_stride();
  float* acc = ctx.partial(i, g, chunk_index);
  std::fill_n(acc, static_cast<int64_t>(G) * d, 0.0f);
  if (chunk_index == 0) {
    const float* mem_v = adapter.mem_values(call.layer, g);
    for (int m = 0; m < M; ++m) {
      for (int a = 0; a < G; ++a) axpy(rows[a * stride + m], mem_v + static_cast<int64_t>(m) * d, acc + a * d, d);
    }
  }
  const int64_t begin = chunk_index * ctx.chunk, end = std::min(nc, begin + ctx.chunk);
  for_each_page(ctx, g, begin, end, [&](int64_t j, int count, const float*, const float* values) {
    nsa_detail::accumulate_rows(rows + M + j, stride, G, values, count, d, acc);
  });
}

// Phase 2, one query token and one KV group: its heads' softmaxes, the group's importance and
// the selection, as merged [lo, hi) key ranges up to t.
void select_for_group(const CallContext& ctx, int i, int g, ItemScratch& s) {
  const LayerAttentionCall& call = *ctx.call;
  const NsaConfig& c = ctx.adapter->config;
  const int G = ctx.group;
  const int64_t t = static_cast<int64_t>(call.first_position) + i;
  const int64_t nsel = c.num_selection_blocks(t);
  // Each head's softmaxes and importance (compressed_softmax), then the group's importance: its heads',
  // summed in head order as group_importance().
  for (int a = 0; a < G; ++a) compressed_softmax(ctx, i, g * G + a);
  float* imp = grow(s.importance, nsel);
  std::fill_n(imp, nsel, 0.0f);
  for (int a = 0; a < G; ++a) {
    const float* head = ctx.head_importance(i, g * G + a);
#pragma omp simd
    for (int64_t b = 0; b < nsel; ++b) imp[b] += head[b];
  }
  int32_t* blocks = grow(s.blocks, std::min<int64_t>(nsel, c.num_selected_blocks));
  const int num_blocks = nsa_detail::select_blocks(imp, t, c, grow(s.candidates, nsel), blocks);

  // Ascending blocks give the fewest segments and read the cache in address order.
  std::sort(blocks, blocks + num_blocks);
  const int64_t item = static_cast<int64_t>(i - ctx.tile_begin) * call.num_kv_heads + g;
  attention_detail::Segment* ranges = ctx.buffers->ranges.data() + item * ctx.max_ranges;
  int n = 0;
  const int64_t sel = c.selection_block_size;
  for (int k = 0; k < num_blocks; ++k) {
    const int lo = static_cast<int>(blocks[k] * sel);
    const int hi = static_cast<int>(std::min((blocks[k] + 1) * sel, t + 1));
    if (n > 0 && ranges[n - 1].end == lo) {
      ranges[n - 1].end = hi;  // adjacent blocks: one segment
    } else {
      ranges[n++] = attention_detail::Segment{lo, hi, false};
    }
  }
  ctx.buffers->num_ranges[static_cast<size_t>(item)] = n;
}

// Phase 3b, one query token, one KV group and one branch (0 selected, 1 sliding): the
// branch's softmax attention for all the group's query heads at once, on the paged kernel
// (each selected or windowed K/V row is read once per group, not once per head).
void branch_for_group(const CallContext& ctx, attention_detail::ItemKernel kernel, int i, int g, int branch,
                      ItemScratch& s) {
  const LayerAttentionCall& call = *ctx.call;
  const NsaConfig& c = ctx.adapter->config;
  const int G = ctx.group, d = call.head_dim;
  const int64_t t = static_cast<int64_t>(call.first_position) + i;
  const int64_t item = static_cast<int64_t>(i - ctx.tile_begin) * call.num_kv_heads + g;
  attention_detail::Segment window{static_cast<int>(std::max<int64_t>(0, t - c.sliding_window_size + 1)),
                                   static_cast<int>(t + 1), false};
  attention_detail::ItemArgs args = attention_detail::item_args(call, i, g);
  if (branch == 0) {
    args.segments = ctx.buffers->ranges.data() + item * ctx.max_ranges;
    args.num_segments = ctx.buffers->num_ranges[static_cast<size_t>(item)];
  } else {
    args.segments = &window;
    args.num_segments = 1;
  }
  // The kernel's "dense" state is the branch; its streaming state stays unused.
  args.need_dense = ctx.buffers->all_heads.data();
  args.need_window = ctx.buffers->no_heads.data();
  float* state = grow(s.kernel_state, static_cast<int64_t>(attention_detail::state_floats(G, d)));
  kernel(args, state, grow(s.kernel_scratch, static_cast<int64_t>(attention_detail::scratch_floats(G, d))));
  const size_t stride = attention_detail::state_stride(d);
  for (int a = 0; a < G; ++a) {
    const float* st = state + a * stride;
    const float inv = 1.0f / st[1];  // > 0: both branches always see key t
    float* o = ctx.branch_out(i, g * G + a) + static_cast<int64_t>(branch) * d;
    for (int k = 0; k < d; ++k) o[k] = st[2 + k] * inv;
  }
}

// Phase 4, one query token and one query head: the compressed branch's chunks summed, the
// gate and the output row.
void finish_head(const CallContext& ctx, int i, int qh) {
  const LayerAttentionCall& call = *ctx.call;
  const NsaLayerWeights& w = ctx.adapter->layers[static_cast<size_t>(call.layer)];
  const int H = call.num_heads, d = call.head_dim;
  // g = sigmoid(W_g x + b_g), row 3*qh + branch.
  const int D = ctx.extra->hidden_size;
  const float* x = ctx.extra->x + static_cast<int64_t>(i) * D;
  float gate[3];
  for (int b = 0; b < 3; ++b) {
    const int64_t r = 3 * static_cast<int64_t>(qh) + b;
    gate[b] = sigmoid(dot(w.gate_w.data() + r * D, x, D) + w.gate_b[static_cast<size_t>(r)]);
  }
  // The compressed branch's output: the chunks' partial sums, in chunk order.
  const int G = ctx.group, g = qh / G;
  float oc[kMaxHeadDim];
  std::copy_n(ctx.partial(i, g, 0) + static_cast<int64_t>(qh - g * G) * d, d, oc);
  for (int k = 1; k < ctx.num_chunks; ++k) {
    const float* part = ctx.partial(i, g, k) + static_cast<int64_t>(qh - g * G) * d;
    for (int e = 0; e < d; ++e) oc[e] += part[e];
  }
  const float* o_sel = ctx.branch_out(i, qh);
  const float* o_win = o_sel + d;
  float* out = call.out + (static_cast<int64_t>(i) * H + qh) * d;
#pragma omp simd
  for (int k = 0; k < d; ++k) out[k] = gate[0] * oc[k] + gate[1] * o_sel[k] + gate[2] * o_win[k];
}

}  // namespace

void nsa_update_cache(const LayerAttentionCall& call, const NsaLayerInputs& extra, const NsaAdapter& adapter,
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
  const bool pre = c.compress_rope == NsaCompressRope::kPre;
  HS_CHECK(!pre || extra.k_unrotated != nullptr) << "compress_rope 'pre' needs the un-rotated keys";
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
}

void nsa_attend(const LayerAttentionCall& call, const NsaLayerInputs& extra, const NsaAdapter& adapter,
                NsaSequenceState& state) {
  const NsaConfig& c = adapter.config;
  HS_CHECK(call.num_kv_heads > 0 && call.num_heads % call.num_kv_heads == 0 &&
           call.num_heads / call.num_kv_heads <= kMaxGroup && call.head_dim <= kMaxHeadDim)
      << "nsa supports up to " << kMaxGroup << " query heads per KV head and d <= " << kMaxHeadDim
      << ", got H=" << call.num_heads << " Hkv=" << call.num_kv_heads << " d=" << call.head_dim;
  HS_CHECK(extra.x != nullptr && extra.hidden_size == adapter.hidden_size)
      << "nsa needs the attention input x [T, " << adapter.hidden_size << "]";
  HS_CHECK(c.compress_rope != NsaCompressRope::kPre || extra.q_unrotated != nullptr)
      << "compress_rope 'pre' needs the un-rotated queries";
  // 1. Compressed blocks completing in this call, before any of its queries (the query at
  //    j*s + l - 1 already sees block j).
  nsa_update_cache(call, extra, adapter, state);
  const int T = call.num_tokens;
  if (T <= 0) return;
  const int hkv = call.num_kv_heads, d = call.head_dim;
  const int64_t end = static_cast<int64_t>(call.first_position) + T;
  const int64_t nc_end = c.num_compressed_blocks(end);
  const NsaSequenceState::Layer& ls = state.layer(call.layer);
  const int H = call.num_heads, G = H / hkv;
  const int max_ranges = static_cast<int>(std::min<int64_t>(c.num_selected_blocks, c.num_selection_blocks(end - 1)));

  // 2. The queries, a tile at a time (the tile's scores and importance probabilities are
  //    kept between phases), in four work-shared phases: 1) compressed scores per (token,
  //    group, chunk of blocks); 2) softmaxes, importance and selection per (token, group);
  //    3) compressed values per (token, group, chunk) beside the selected and the sliding
  //    branch per (token, group, branch); 4) gate and output per (token, head). Chunks
  //    spread a single decode token's compressed cache over the threads while each key row
  //    is still read once per group; few phases keep a decode step's barriers few.
  const int64_t nc_max = std::max<int64_t>(1, nc_end);
  const int64_t nsel_max = c.num_selection_blocks(end - 1);
  const int64_t per_query = static_cast<int64_t>(H) * (c.num_mem_tokens + 2 * nc_max + nsel_max + 3 * d);
  const int64_t tile = std::clamp<int64_t>(kTileBufferFloats / per_query, 1, T);
  const int64_t page = state.pool().entries_per_page();
  int threads = 1;
#ifdef _OPENMP
  threads = omp_get_max_threads();
#endif
  // Enough (token, group, chunk) items for twice the threads, chunks of at least kMinChunk
  // blocks, page-aligned.
  const int64_t want = std::max<int64_t>(1, (2 * threads + tile * hkv - 1) / (tile * hkv));
  int64_t chunk = std::max<int64_t>(kMinChunk, (nc_max + want - 1) / want);
  chunk = (chunk + page - 1) / page * page;
  const int num_chunks = static_cast<int>((nc_max + chunk - 1) / chunk);
  TileBuffers& buf = tile_buffers();
  grow(buf.scores, tile * H * (c.num_mem_tokens + nc_max));
  grow(buf.p, tile * H * nc_max);
  grow(buf.importance, tile * H * nsel_max);
  grow(buf.partial, tile * hkv * num_chunks * G * d);
  grow(buf.o_branch, tile * H * 2 * d);
  grow(buf.ranges, tile * hkv * std::max(1, max_ranges));
  grow(buf.num_ranges, tile * hkv);
  buf.all_heads.assign(static_cast<size_t>(G), 1);
  buf.no_heads.assign(static_cast<size_t>(G), 0);
  const attention_detail::ItemKernel kernel = branch_kernel();
  const int64_t keys_per_query = c.num_mem_tokens + nc_end +
                                 std::min<int64_t>(static_cast<int64_t>(c.num_selected_blocks) * c.selection_block_size, end) +
                                 std::min<int64_t>(c.sliding_window_size, end);
  for (int i0 = 0; i0 < T; i0 += static_cast<int>(tile)) {
    const int i1 = static_cast<int>(std::min<int64_t>(T, i0 + tile));
    const CallContext ctx{&call, &extra, &adapter, &ls, &state.pool(), G, nc_max, nsel_max, chunk, num_chunks,
                          std::max(1, max_ranges), i0, &buf};
    const int64_t heads = static_cast<int64_t>(i1 - i0) * H, groups = static_cast<int64_t>(i1 - i0) * hkv;
    const int64_t chunked = groups * num_chunks;
    const bool parallel = heads > 1 && heads * d * keys_per_query > kParallelWork;
#pragma omp parallel if (parallel)
    {
      ItemScratch& s = item_scratch();
#pragma omp for schedule(dynamic, 1)
      for (int64_t it = 0; it < chunked; ++it) {
        compressed_scores(ctx, i0 + static_cast<int>(it / num_chunks / hkv),
                          static_cast<int>(it / num_chunks % hkv), static_cast<int>(it % num_chunks));
      }
#pragma omp for schedule(dynamic, 1)
      for (int64_t it = 0; it < groups; ++it) {
        select_for_group(ctx, i0 + static_cast<int>(it / hkv), static_cast<int>(it % hkv), s);
      }
      // The selected and sliding items first: each is bigger than a chunk of compressed values.
#pragma omp for schedule(dynamic, 1)
      for (int64_t it = 0; it < 2 * groups + chunked; ++it) {
        if (it < 2 * groups) {
          branch_for_group(ctx, kernel, i0 + static_cast<int>(it / 2 / hkv), static_cast<int>(it / 2 % hkv),
                           static_cast<int>(it % 2), s);
        } else {
          const int64_t k = it - 2 * groups;
          compressed_values(ctx, i0 + static_cast<int>(k / num_chunks / hkv),
                            static_cast<int>(k / num_chunks % hkv), static_cast<int>(k % num_chunks));
        }
      }
#pragma omp for schedule(dynamic, 1)
      for (int64_t it = 0; it < heads; ++it) {
        finish_head(ctx, i0 + static_cast<int>(it / H), static_cast<int>(it % H));
      }
    }
  }
}

const char* nsa_kernel_name() { return "nsa_paged"; }

}  // namespace hotswap
