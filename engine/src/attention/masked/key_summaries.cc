#include "attention/masked/key_summaries.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>

#include "attention/kernel_dispatch.h"
#include "attention/masked/hash_functions.h"
#include "core/check.h"

namespace hotswap::masked {
namespace {

// The largest power of two <= min(256, page / bytes_per_key), at least 1.
int block_keys_for(size_t bytes_per_key) {
  const size_t fit = std::max<size_t>(1, SummaryPool::kPageBytes / bytes_per_key);
  return static_cast<int>(std::bit_floor(std::min<size_t>(256, fit)));
}

size_t round8(size_t n) { return (n + 7) / 8 * 8; }

// Below this many (key, head) items a summarising pass stays on the calling thread.
constexpr int64_t kMinParallelItems = 256;

bool parallel_for(int64_t items) { return items >= kMinParallelItems && attention_detail::kernel_threads() > 1; }

int hat_word_bytes_for(int bits) { return bits <= 32 ? 4 : 8; }

// MagicPig's codes are stored as their low pig_code_bytes_for bytes.
static_assert(std::endian::native == std::endian::little);

}  // namespace

std::optional<SummaryArrayLayout> summary_array_layout(const MaskerSpec& spec, const SummaryShape& shape, int hat_bits) {
  switch (spec.type) {
    case MaskerType::kHashAttentionTopK: {
      const size_t word = static_cast<size_t>(hat_word_bytes_for(hat_bits));
      const int n = block_keys_for(static_cast<size_t>(shape.num_heads) * word);
      return SummaryArrayLayout{round8(static_cast<size_t>(shape.num_heads) * n * word), n};
    }
    case MaskerType::kMagicPig: {
      const size_t per_key = static_cast<size_t>(shape.num_kv_heads) * spec.lsh_l * pig_code_bytes_for(spec.lsh_k);
      const int n = block_keys_for(per_key);
      return SummaryArrayLayout{per_key * n, n};
    }
    case MaskerType::kQuestTopK:
      return SummaryArrayLayout{static_cast<size_t>(shape.num_kv_heads) * 2 * shape.head_dim * sizeof(float),
                                spec.page_size};
    default:
      return std::nullopt;
  }
}

int64_t summary_bytes(const MaskedConfig& config, const SummaryShape& shape, int hat_bits, int64_t num_keys) {
  int64_t pages = 0;
  for (const MaskerSpec& spec : config.maskers) {
    const std::optional<SummaryArrayLayout> a = summary_array_layout(spec, shape, hat_bits);
    if (!a) continue;
    const int64_t records = (num_keys + a->keys_per_record - 1) / a->keys_per_record;
    const auto per_page = static_cast<int64_t>(SummaryPool::kPageBytes / a->record_bytes);
    pages += shape.num_layers * ((records + per_page - 1) / per_page);
  }
  return pages * static_cast<int64_t>(SummaryPool::kPageBytes);
}

KeySummaries::KeySummaries(const MaskedConfig& config, const SummaryShape& shape, SummaryPool& pool,
                           std::shared_ptr<const HashAttentionAdapter> hat, std::shared_ptr<const LshAdapter> lsh)
    : shape_(shape), pool_(&pool), hat_(std::move(hat)), lsh_(std::move(lsh)) {
  const size_t layers = static_cast<size_t>(shape.num_layers);
  per_masker_.resize(config.maskers.size());
  for (size_t i = 0; i < config.maskers.size(); ++i) {
    PerMasker& m = per_masker_[i];
    m.spec = config.maskers[i];
    if (m.spec.type == MaskerType::kHashAttentionTopK) {
      HS_CHECK(hat_ != nullptr) << "hashattention_top_k without its adapter";
      hat_word_bytes_ = hat_word_bytes_for(hat_->bits);
    }
    const std::optional<SummaryArrayLayout> a = summary_array_layout(m.spec, shape, hat_ ? hat_->bits : 0);
    if (!a) continue;
    switch (m.spec.type) {
      case MaskerType::kHashAttentionTopK:
        m.keys_per_block = a->keys_per_record;
        for (size_t l = 0; l < layers; ++l) m.hat.push_back({SummaryArray(pool_, a->record_bytes), 0});
        break;
      case MaskerType::kMagicPig:
        m.keys_per_block = a->keys_per_record;
        m.pig.resize(layers);
        for (PigLayer& p : m.pig) p.blocks = SummaryArray(pool_, a->record_bytes);
        m.projections.resize(layers);
        break;
      default:  // quest_top_k: one record per page of page_size keys
        for (size_t l = 0; l < layers; ++l) m.quest.push_back({SummaryArray(pool_, a->record_bytes), 0});
        break;
    }
  }
}

void KeySummaries::reset() {
  for (PerMasker& m : per_masker_) {
    for (HatLayer& h : m.hat) h.blocks.release(), h.done = 0;
    for (QuestLayer& q : m.quest) q.pages.release(), q.done = 0;
    for (PigLayer& p : m.pig) {
      p.blocks.release();
      p.done = 0;
      p.initialised = false;
      p.first_query = -1;
      p.mean.clear();
      p.run_max.clear();
    }
  }
}

int64_t KeySummaries::num_pages() const {
  int64_t n = 0;
  for (const PerMasker& m : per_masker_) {
    for (const HatLayer& h : m.hat) n += h.blocks.num_pages();
    for (const QuestLayer& q : m.quest) n += q.pages.num_pages();
    for (const PigLayer& p : m.pig) n += p.blocks.num_pages();
  }
  return n;
}

void KeySummaries::write_keys(int layer, const PagedKvView& kv, int end) {
  for (PerMasker& m : per_masker_) {
    if (m.spec.type == MaskerType::kHashAttentionTopK) write_hat(m, layer, kv, end);
    if (m.spec.type == MaskerType::kQuestTopK) write_quest(m, layer, kv, end);
  }
}

void KeySummaries::prepare_queries(int layer, const PagedKvView& kv, int first, int last,
                                   const std::function<bool(size_t, int64_t)>& runs) {
  for (size_t i = 0; i < per_masker_.size(); ++i)
    if (per_masker_[i].spec.type == MaskerType::kMagicPig) prepare_pig(i, layer, kv, first, last, runs);
}

void KeySummaries::write_hat(PerMasker& m, int layer, const PagedKvView& kv, int end) {
  HatLayer& hl = m.hat[static_cast<size_t>(layer)];
  if (hl.done >= end) return;
  const int64_t n_block = m.keys_per_block;
  hl.blocks.reserve((end + n_block - 1) / n_block);
  const int heads = shape_.num_heads, group = shape_.num_heads / shape_.num_kv_heads;
  const auto& mlp = hat_->layers[static_cast<size_t>(layer)].key;
  // Work items: (head, batch of up to kHashBatch consecutive keys), each hashed in one
  // batched MLP pass (weights read once per batch).
  const int64_t first = hl.done;
  const int64_t batches = (end - first + kHashBatch - 1) / kHashBatch;
  const int64_t items = batches * heads;
  auto sign = [&](int64_t item) {
    thread_local std::vector<float> scratch;
    const int h = static_cast<int>(item % heads);
    const int64_t j0 = first + (item / heads) * kHashBatch;
    const int n = static_cast<int>(std::min<int64_t>(kHashBatch, end - j0));
    thread_local std::vector<float> widened;  // bf16 keys as float32 rows
    widened.resize(static_cast<size_t>(kHashBatch) * kv.head_dim);
    const float* rows[kHashBatch];
    uint64_t sigs[kHashBatch];
    for (int b = 0; b < n; ++b)
      rows[b] = kv.key_row(static_cast<int>(j0 + b), h / group, widened.data() + static_cast<size_t>(b) * kv.head_dim);
    if (n >= 4) {
      hash_signatures(mlp, hat_->activation, h, rows, n, sigs, scratch);
    } else {  // decode: a key or two per step
      for (int b = 0; b < n; ++b) sigs[b] = hash_signature(mlp, hat_->activation, h, rows[b], scratch);
    }
    for (int b = 0; b < n; ++b) {
      const int64_t j = j0 + b;
      const size_t at = static_cast<size_t>(h) * n_block + static_cast<size_t>(j % n_block);
      if (hat_word_bytes_ == 4)
        hl.blocks.record<uint32_t>(j / n_block)[at] = static_cast<uint32_t>(sigs[b]);
      else
        hl.blocks.record<uint64_t>(j / n_block)[at] = sigs[b];
    }
  };
#pragma omp parallel for schedule(static) if (parallel_for(items * kHashBatch))
  for (int64_t item = 0; item < items; ++item) sign(item);
  hl.done = end;
}

void KeySummaries::write_quest(PerMasker& m, int layer, const PagedKvView& kv, int end) {
  QuestLayer& ql = m.quest[static_cast<size_t>(layer)];
  if (ql.done >= end) return;
  const int ps = m.spec.page_size, d = shape_.head_dim, hkv = shape_.num_kv_heads;
  ql.pages.reserve((end + ps - 1) / ps);
  const int64_t first = ql.done;
  // Per KV head: the keys in order, each folded into its page's min and max.
#pragma omp parallel for schedule(static) if (parallel_for((end - first) * hkv / 8))
  for (int g = 0; g < hkv; ++g) {
    thread_local std::vector<float> row;  // a bf16 key widened
    row.resize(static_cast<size_t>(d));
    for (int64_t j = first; j < end; ++j) {
      float* mn = ql.pages.record<float>(j / ps) + static_cast<size_t>(g) * 2 * d;
      float* mx = mn + d;
      const float* k = kv.key_row(static_cast<int>(j), g, row.data());
      if (j % ps == 0) {
        std::copy(k, k + d, mn);
        std::copy(k, k + d, mx);
      } else {
        for (int c = 0; c < d; ++c) mn[c] = std::min(mn[c], k[c]), mx[c] = std::max(mx[c], k[c]);
      }
    }
  }
  ql.done = end;
}

void KeySummaries::prepare_pig(size_t index, int layer, const PagedKvView& kv, int first, int last,
                               const std::function<bool(size_t, int64_t)>& runs) {
  PerMasker& m = per_masker_[index];
  PigLayer& pl = m.pig[static_cast<size_t>(layer)];
  const int d = shape_.head_dim, hkv = shape_.num_kv_heads, tables = m.spec.lsh_l, bits = m.spec.lsh_k;
  if (!pl.initialised) {
    int start = -1;
    for (int t = first; t <= last && start < 0; ++t)
      if (runs(index, static_cast<int64_t>(t) + 1)) start = t;
    if (start < 0) return;  // FULL before magic_pig at every query: its caches stay untouched
    if (lsh_ == nullptr && m.projections[static_cast<size_t>(layer)].empty())
      m.projections[static_cast<size_t>(layer)] = lsh_projection(m.spec.seed, layer, d + 1, tables * bits);
    // The key mean over keys 0..start, frozen for the rest of the sequence (float64 sums
    // rounded once: within an ulp of torch's float32 mean).
    pl.mean.assign(static_cast<size_t>(hkv) * d, 0.0f);
    if (m.spec.center) {
      std::vector<double> sum(static_cast<size_t>(d));
      std::vector<float> row(static_cast<size_t>(d));  // a bf16 key widened
      for (int g = 0; g < hkv; ++g) {
        std::fill(sum.begin(), sum.end(), 0.0);
        for (int j = 0; j <= start; ++j) {
          const float* k = kv.key_row(j, g, row.data());
          for (int c = 0; c < d; ++c) sum[static_cast<size_t>(c)] += k[c];
        }
        for (int c = 0; c < d; ++c)
          pl.mean[static_cast<size_t>(g) * d + c] = static_cast<float>(sum[static_cast<size_t>(c)] / (start + 1));
      }
    }
    pl.initialised = true;
    pl.first_query = start;
    pl.done = 0;
    pl.run_max.clear();
  }
  if (pl.done > last) return;
  const int64_t n_block = m.keys_per_block;
  pl.blocks.reserve((static_cast<int64_t>(last) + n_block) / n_block);
  const float* proj = projection(index, layer);

  // Centred norms of the new keys (max over KV heads), then the running max: the backlog
  // (done == 0) all takes M over keys 0..first query; later keys extend it one by one.
  const int64_t from = pl.done;
  std::vector<float> norms(static_cast<size_t>(last - from + 1), 0.0f);
  std::vector<float> centred(static_cast<size_t>(d));
  std::vector<float> row(static_cast<size_t>(d));  // a bf16 key widened
  for (int64_t j = from; j <= last; ++j) {
    for (int g = 0; g < hkv; ++g) {
      const float* k = kv.key_row(static_cast<int>(j), g, row.data());
      const float* mu = pl.mean.data() + static_cast<size_t>(g) * d;
      for (int c = 0; c < d; ++c) centred[static_cast<size_t>(c)] = k[c] - mu[c];
      norms[static_cast<size_t>(j - from)] = std::max(norms[static_cast<size_t>(j - from)], lsh_norm(centred.data(), d));
    }
  }
  if (from == 0) {
    // The backlog: keys up to the first query where magic_pig ran share that query's M.
    const int64_t backlog = pl.first_query;
    float mx = 0.0f;
    for (int64_t j = 0; j <= backlog; ++j) mx = std::max(mx, norms[static_cast<size_t>(j)]);
    pl.run_max.assign(static_cast<size_t>(backlog) + 1, mx);
  }
  for (int64_t j = static_cast<int64_t>(pl.run_max.size()); j <= last; ++j)
    pl.run_max.push_back(std::max(pl.run_max.back(), norms[static_cast<size_t>(j - from)]));

  // Codes: k̃ = [kc / M, sqrt(M² - ||kc||²) / M] with the M current when the key is hashed.
  const int64_t items = (last - from + 1) * hkv;
#pragma omp parallel for schedule(static) if (parallel_for(items))
  for (int64_t item = 0; item < items; ++item) {
    const int64_t j = from + item / hkv;
    const int g = static_cast<int>(item % hkv);
    thread_local std::vector<float> v, row;
    v.resize(static_cast<size_t>(d) + 1);
    row.resize(static_cast<size_t>(d));  // a bf16 key widened
    const float* k = kv.key_row(static_cast<int>(j), g, row.data());
    const float* mu = pl.mean.data() + static_cast<size_t>(g) * d;
    for (int c = 0; c < d; ++c) v[static_cast<size_t>(c)] = k[c] - mu[c];
    const float n = lsh_norm(v.data(), d);
    const float mj = pl.run_max[static_cast<size_t>(j)];
    for (int c = 0; c < d; ++c) v[static_cast<size_t>(c)] /= mj;
    v[static_cast<size_t>(d)] = std::sqrt(std::max(0.0f, mj * mj - n * n)) / mj;
    thread_local std::vector<uint64_t> codes;
    codes.resize(static_cast<size_t>(tables));
    lsh_codes(v.data(), proj, d + 1, tables, bits, codes.data());
    const int w = pig_code_bytes_for(bits);
    auto* at = pl.blocks.record<std::byte>(j / n_block) +
               (static_cast<size_t>(g) * n_block + static_cast<size_t>(j % n_block)) * tables * w;
    for (int t = 0; t < tables; ++t) std::memcpy(at + static_cast<size_t>(t) * w, &codes[static_cast<size_t>(t)], w);  // little-endian: the low bytes
  }
  pl.done = static_cast<int64_t>(last) + 1;
}

const float* KeySummaries::projection(size_t masker, int layer) const {
  if (lsh_ != nullptr) return lsh_->projection[static_cast<size_t>(layer)].data();
  return per_masker_[masker].projections[static_cast<size_t>(layer)].data();
}

uint64_t KeySummaries::hat_signature(size_t masker, int layer, int64_t j, int h) const {
  const PerMasker& m = per_masker_[masker];
  const HatLayer& hl = m.hat[static_cast<size_t>(layer)];
  const int64_t n = m.keys_per_block;
  const size_t at = static_cast<size_t>(h) * n + static_cast<size_t>(j % n);
  return hat_word_bytes_ == 4 ? hl.blocks.record<uint32_t>(j / n)[at] : hl.blocks.record<uint64_t>(j / n)[at];
}

const void* KeySummaries::hat_block(size_t masker, int layer, int64_t block, int h) const {
  const PerMasker& m = per_masker_[masker];
  const auto* base = m.hat[static_cast<size_t>(layer)].blocks.record<std::byte>(block);
  return base + static_cast<size_t>(h) * m.keys_per_block * hat_word_bytes_;
}

const void* KeySummaries::pig_block(size_t masker, int layer, int64_t block, int g) const {
  const PerMasker& m = per_masker_[masker];
  return m.pig[static_cast<size_t>(layer)].blocks.record<std::byte>(block) +
         static_cast<size_t>(g) * m.keys_per_block * m.spec.lsh_l * pig_code_bytes_for(m.spec.lsh_k);
}

uint64_t KeySummaries::pig_code(size_t masker, int layer, int64_t j, int g, int t) const {
  const PerMasker& m = per_masker_[masker];
  const int64_t n = m.keys_per_block;
  const int w = pig_code_bytes_for(m.spec.lsh_k);
  const auto* at = static_cast<const std::byte*>(pig_block(masker, layer, j / n, g)) +
                   (static_cast<size_t>(j % n) * m.spec.lsh_l + static_cast<size_t>(t)) * w;
  uint64_t code = 0;
  std::memcpy(&code, at, w);  // little-endian: the low bytes
  return code;
}

const float* KeySummaries::quest_bounds(size_t masker, int layer, int64_t p, int g) const {
  return per_masker_[masker].quest[static_cast<size_t>(layer)].pages.record<float>(p) +
         static_cast<size_t>(g) * 2 * shape_.head_dim;
}

}  // namespace hotswap::masked
