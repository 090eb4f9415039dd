#include "tokenizer/tokenizer.h"

#include "tokenizer/decoders.h"

namespace hotswap {

// The approach of tokenizers' DecodeStream: decode a short window of recent ids and return
// what it adds beyond the text already returned for the window's earlier ids. Each window
// starts where an earlier emission started, so decoders that treat the first token
// specially (Strip, Metaspace) treat it the same way in both decodes.

IncrementalDecoder::IncrementalDecoder(const Tokenizer& tok, bool skip_special_tokens)
    : tok_(tok), skip_special_tokens_(skip_special_tokens) {}

std::string IncrementalDecoder::push(int32_t id) {
  window_.push_back(id);
  return take_new_text(/*at_end=*/false);
}

std::string IncrementalDecoder::flush() { return take_new_text(/*at_end=*/true); }

std::string IncrementalDecoder::take_new_text(bool at_end) {
  if (!at_end && tok_.decoder_ && tok_.decoder_->merges_byte_runs()) {
    // A ByteFallback run can still turn from text into U+FFFD...U+FFFD when a later byte
    // makes it invalid, so nothing is final while the last decoded token is a byte token.
    for (auto it = window_.rbegin(); it != window_.rend(); ++it) {
      const std::string* token = tok_.token_for_decode(*it, skip_special_tokens_);
      if (token == nullptr) continue;
      if (tok::parse_byte_token(*token) >= 0) return "";
      break;
    }
  }
  const std::string text = tok_.decode(window_, skip_special_tokens_);
  if (text.size() <= prefix_.size()) return "";
  // A trailing U+FFFD may be the start of a character the next token completes.
  if (!at_end && text.size() >= 3 && text.compare(text.size() - 3, 3, "\xEF\xBF\xBD") == 0) return "";
  size_t cut = prefix_.size();
  if (text.compare(0, cut, prefix_) != 0) {
    // Only a decoder that rewrites across token boundaries gets here; keep the output valid
    // UTF-8 by starting at the next character boundary.
    while (cut < text.size() && (static_cast<uint8_t>(text[cut]) & 0xC0) == 0x80) ++cut;
  }
  std::string new_text = text.substr(cut);
  window_.erase(window_.begin(), window_.begin() + static_cast<std::ptrdiff_t>(prefix_length_));
  prefix_ = tok_.decode(window_, skip_special_tokens_);
  prefix_length_ = window_.size();
  return new_text;
}

}  // namespace hotswap
