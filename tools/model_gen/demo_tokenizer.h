// A small byte-level BPE tokenizer in tokenizer.json form (Llama-3 style pre-tokenizer and
// special tokens), with merges learned deterministically from a built-in English text.
// The `tokenizers` library loads the result as any other tokenizer.json.
#pragma once

#include <string>
#include <vector>

namespace hotswap {

struct DemoTokenizer {
  std::string tokenizer_json;
  std::string tokenizer_config_json;  // bos/eos tokens and a Llama-3-style chat template
  int vocab_size = 0;                 // bytes + merges + special tokens
  int bos_id = 0;
  std::vector<int> eos_ids;
};

DemoTokenizer make_demo_tokenizer(int num_merges = 400);

}  // namespace hotswap
