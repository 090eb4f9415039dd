#include "tokenizer/bpe_model.h"

#include <cstdio>
#include <queue>

#include "core/utf8.h"

namespace hotswap::tok {
namespace {

std::optional<std::string> optional_string(const JsonField& model, std::string_view key) {
  const auto field = model.find(key);
  if (!field) return std::nullopt;
  return field->as_string();
}

// One symbol of a word being merged: a doubly linked list over a vector, as in tokenizers'
// Word; a merged-away symbol keeps its slot with len 0.
struct Symbol {
  int32_t id;
  int32_t prev;
  int32_t next;
  size_t len;
};

struct QueuedMerge {
  int32_t rank;
  int32_t pos;
  int32_t new_id;
  // std::priority_queue pops the largest: make that the lowest rank, then the leftmost.
  bool operator<(const QueuedMerge& other) const {
    if (rank != other.rank) return rank > other.rank;
    return pos > other.pos;
  }
};

}  // namespace

std::unique_ptr<BpeModel> BpeModel::from_json(const JsonField& model, BpeTables& tables) {
  std::unique_ptr<BpeModel> bpe(new BpeModel());
  if (const auto dropout = model.find("dropout")) {
    if (!dropout->json().is_number()) dropout->fail("expected a number, found " + json_kind(dropout->json()));
    if (dropout->json().get<double>() != 0.0) {
      dropout->fail("BPE dropout is not supported: encoding must be deterministic");
    }
  }
  bpe->continuing_subword_prefix_ = optional_string(model, "continuing_subword_prefix");
  bpe->end_of_word_suffix_ = optional_string(model, "end_of_word_suffix");
  bpe->fuse_unk_ = model.get_bool("fuse_unk", false);
  bpe->byte_fallback_ = model.get_bool("byte_fallback", false);
  bpe->ignore_merges_ = model.get_bool("ignore_merges", false);

  if (!tables.has_vocab) {
    // Not diverted by the streaming parser: absent or not an object; report it.
    const JsonField vocab = model.at("vocab");
    vocab.fail("expected an object mapping tokens to ids, found " + json_kind(vocab.json()));
  }
  bpe->vocab_.reserve(tables.vocab.size());
  for (auto& [token, id] : tables.vocab) {
    if (!is_valid_utf8(token)) model.fail_child("vocab", "a token is not valid UTF-8");
    bpe->vocab_.insert_or_assign(std::move(token), static_cast<int32_t>(id));
  }
  tables.vocab = {};
  bpe->vocab_r_.reserve(bpe->vocab_.size());
  for (const auto& [token, id] : bpe->vocab_) {
    bpe->vocab_r_[id] = &token;
    bpe->max_id_ = std::max(bpe->max_id_, id);
  }

  if (const auto unk = model.find("unk_token")) {
    const std::string unk_token = unk->as_string();
    bpe->unk_id_ = bpe->find(unk_token);
    if (!bpe->unk_id_) unk->fail("unk_token '" + unk_token + "' is not in the vocabulary");
  }
  if (bpe->byte_fallback_) {
    bpe->byte_ids_.assign(256, -1);
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", b);
      if (const auto id = bpe->find(name)) bpe->byte_ids_[b] = *id;
    }
  }

  if (!tables.has_merges) {
    const JsonField merges = model.at("merges");
    merges.fail("expected an array of merges, found " + json_kind(merges.json()));
  }
  const size_t num_merges = tables.merges.size();
  bpe->merges_ = MergeTable(num_merges);
  const size_t prefix_len = bpe->continuing_subword_prefix_ ? bpe->continuing_subword_prefix_->size() : 0;
  auto fail = [&model](size_t rank, const std::string& what) {
    model.fail_child("merges[" + std::to_string(rank) + "]", what);
  };
  std::string merged;
  for (size_t rank = 0; rank < num_merges; ++rank) {
    const BpeTables::Merge& entry = tables.merges[rank];
    if (entry.is_pair != tables.merges[0].is_pair) {
      // tokenizers reads the list as all "a b" strings or all pairs, never a mix.
      fail(rank, "mixes \"<left> <right>\" strings and [\"<left>\", \"<right>\"] pairs in one list");
    }
    std::string_view left = entry.left;
    std::string_view right = entry.right;
    if (!entry.is_pair) {
      // "a b": exactly one space, as tokenizers requires.
      const size_t space = left.find(' ');
      if (space == std::string_view::npos || left.find(' ', space + 1) != std::string_view::npos) {
        fail(rank, "expected \"<left> <right>\" with exactly one space, found \"" + entry.left + "\"");
      }
      right = left.substr(space + 1);
      left = left.substr(0, space);
    }
    const auto left_id = bpe->find(left);
    const auto right_id = bpe->find(right);
    if (!left_id) fail(rank, "token '" + std::string(left) + "' is not in the vocabulary");
    if (!right_id) fail(rank, "token '" + std::string(right) + "' is not in the vocabulary");
    if (right.size() < prefix_len) {
      fail(rank, "token '" + std::string(right) + "' is shorter than continuing_subword_prefix");
    }
    merged.assign(left);
    merged.append(right.substr(prefix_len));
    const auto new_id = bpe->find(merged);
    if (!new_id) fail(rank, "merged token '" + merged + "' is not in the vocabulary");
    bpe->merges_.insert(*left_id, *right_id, {static_cast<int32_t>(rank), *new_id});
  }
  tables.merges = {};
  return bpe;
}

std::optional<int32_t> BpeModel::find(std::string_view token) const {
  const auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

std::optional<int32_t> BpeModel::token_to_id(std::string_view token) const { return find(token); }

const std::string* BpeModel::id_to_token(int32_t id) const {
  const auto it = vocab_r_.find(id);
  return it == vocab_r_.end() ? nullptr : it->second;
}

void BpeModel::tokenize(std::string_view word, std::vector<int32_t>& ids) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    // A pre-token that is itself a vocabulary entry is emitted whole, merges or not.
    if (const auto id = find(word)) {
      ids.push_back(*id);
      return;
    }
  }
  if (cache_.lookup(word, ids)) return;
  const size_t first = ids.size();
  merge_word(word, ids);
  cache_.store(word, std::span<const int32_t>(ids).subspan(first));
}

void BpeModel::merge_word(std::string_view word, std::vector<int32_t>& ids) const {
  std::vector<Symbol> symbols;
  symbols.reserve(word.size());
  auto add = [&symbols](int32_t id, size_t len) {
    const auto index = static_cast<int32_t>(symbols.size());
    symbols.push_back({id, index - 1, -1, len});
    if (index > 0) symbols[index - 1].next = index;
  };

  // An unknown character waiting to be added (so that fuse_unk can grow it).
  bool has_pending_unk = false;
  size_t pending_unk_len = 0;
  std::string affixed;
  for (size_t pos = 0; pos < word.size();) {
    const size_t byte_len = utf8_sequence_length(static_cast<uint8_t>(word[pos]));
    const bool is_first = pos == 0;
    const bool is_last = pos + byte_len >= word.size();
    std::string_view piece = word.substr(pos, byte_len);
    pos += byte_len;
    if ((!is_first && continuing_subword_prefix_) || (is_last && end_of_word_suffix_)) {
      affixed.clear();
      if (!is_first && continuing_subword_prefix_) affixed += *continuing_subword_prefix_;
      affixed += piece;
      if (is_last && end_of_word_suffix_) affixed += *end_of_word_suffix_;
      piece = affixed;
    }

    if (const auto id = find(piece)) {
      if (has_pending_unk) {
        add(*unk_id_, pending_unk_len);
        has_pending_unk = false;
      }
      add(*id, byte_len);
      continue;
    }
    if (byte_fallback_) {
      bool all_bytes_known = true;
      for (char b : piece) all_bytes_known = all_bytes_known && byte_ids_[static_cast<uint8_t>(b)] >= 0;
      if (all_bytes_known) {
        // tokenizers adds the byte tokens without flushing a pending unknown first; the
        // unknown then lands after them. Kept for identical ids.
        for (char b : piece) add(byte_ids_[static_cast<uint8_t>(b)], 1);
        continue;
      }
    }
    if (unk_id_) {
      if (has_pending_unk && fuse_unk_) {
        pending_unk_len += byte_len;
      } else {
        if (has_pending_unk) add(*unk_id_, pending_unk_len);
        has_pending_unk = true;
        pending_unk_len = byte_len;
      }
    }
  }
  if (has_pending_unk) add(*unk_id_, pending_unk_len);

  std::priority_queue<QueuedMerge> queue;
  for (size_t i = 0; i + 1 < symbols.size(); ++i) {
    if (const MergeTable::Merge* m = merges_.find(symbols[i].id, symbols[i + 1].id)) {
      queue.push({m->rank, static_cast<int32_t>(i), m->new_id});
    }
  }
  while (!queue.empty()) {
    const QueuedMerge top = queue.top();
    queue.pop();
    Symbol& current = symbols[static_cast<size_t>(top.pos)];
    if (current.len == 0 || current.next == -1) continue;
    const int32_t next_pos = current.next;
    const Symbol right = symbols[static_cast<size_t>(next_pos)];
    // Skip stale entries: the pair must still be there and still merge to the same id.
    const MergeTable::Merge* still = merges_.find(current.id, right.id);
    if (still == nullptr || still->new_id != top.new_id) continue;

    current.id = top.new_id;
    current.len += right.len;
    current.next = right.next;
    symbols[static_cast<size_t>(next_pos)].len = 0;
    if (right.next >= 0) symbols[static_cast<size_t>(right.next)].prev = top.pos;

    if (current.prev >= 0) {
      const Symbol& prev = symbols[static_cast<size_t>(current.prev)];
      if (const MergeTable::Merge* m = merges_.find(prev.id, current.id)) {
        queue.push({m->rank, current.prev, m->new_id});
      }
    }
    if (current.next >= 0) {
      const Symbol& next = symbols[static_cast<size_t>(current.next)];
      if (const MergeTable::Merge* m = merges_.find(current.id, next.id)) {
        queue.push({m->rank, top.pos, m->new_id});
      }
    }
  }
  for (const Symbol& s : symbols) {
    if (s.len != 0) ids.push_back(s.id);
  }
}

}  // namespace hotswap::tok
