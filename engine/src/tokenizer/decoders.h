// The `decoder` stage of tokenizer.json: turns the token strings of a decode() call back
// into text, as tokenizers' Decoder::decode_chain does. Immutable; thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tokenizer/json_field.h"

namespace hotswap::tok {

class Decoder {
 public:
  virtual ~Decoder() = default;
  // Rewrites the token strings in place (a step may merge them, e.g. Fuse).
  virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
  // True for ByteFallback: a run of <0xNN> tokens can still change when the run grows.
  virtual bool merges_byte_runs() const { return false; }
};

// Supported types: ByteLevel, Sequence, Replace, ByteFallback, Fuse, Strip, Metaspace,
// BPEDecoder. Anything else is a LoadError naming the field.
std::unique_ptr<Decoder> make_decoder(const JsonField& config, int depth = 0);

// The decoded text: the chain's output concatenated; without a decoder the tokens joined
// by spaces (tokenizers' behaviour).
std::string run_decoder(const Decoder* decoder, std::vector<std::string> tokens);

// "<0xNN>" -> NN, else -1 (the byte-fallback token form).
int parse_byte_token(std::string_view token);

}  // namespace hotswap::tok
