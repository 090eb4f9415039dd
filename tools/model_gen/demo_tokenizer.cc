#include "model_gen/demo_tokenizer.h"

#include <cctype>
#include <map>
#include <nlohmann/json.hpp>

namespace hotswap {
namespace {

// GPT-2's reversible byte -> printable code point map used by byte-level BPE.
std::vector<std::string> byte_level_alphabet() {
  std::vector<int> cps(256, -1);
  for (int b = 0; b < 256; ++b)
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255)) cps[b] = b;
  int next = 256;
  for (int b = 0; b < 256; ++b)
    if (cps[b] < 0) cps[b] = next++;
  std::vector<std::string> out(256);
  for (int b = 0; b < 256; ++b) {
    const int cp = cps[b];
    std::string s;
    if (cp < 0x80) {
      s += static_cast<char>(cp);
    } else {
      s += static_cast<char>(0xC0 | (cp >> 6));
      s += static_cast<char>(0x80 | (cp & 0x3F));
    }
    out[b] = s;
  }
  return out;
}

constexpr const char* kTrainingText =
    "Hotswap serves one frozen base model to many users at once. Each request may pick an attention "
    "implementation and an adapter, a small set of trained attention weights that is uploaded to the "
    "running server and used from the next request on. The quick brown fox jumps over the lazy dog. "
    "Hello! How are you today? I am fine, thank you. What would you like to talk about? Tell me a story "
    "about a little robot who learned to read. Once upon a time there was a small robot that lived in a "
    "library. Every night it would open a book and look at the letters, trying to understand them. "
    "The server streams tokens as they are generated, and it keeps every adapter safe on disk. "
    "Questions and answers, numbers like 1, 2, 3, 10, 42 and 2026, and words such as attention, "
    "memory, cache, stream, model, token, request, response, user, assistant, system.";

constexpr const char* kChatTemplate =
    "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
    "'<|end_header_id|>\n\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}";

constexpr const char* kLlama3Split =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// Words as the pre-tokenizer would roughly cut them: an optional leading space + a run of
// letters, or single other bytes. Only used to learn merges, never to encode.
std::vector<std::vector<std::string>> training_words(const std::vector<std::string>& alphabet) {
  std::vector<std::vector<std::string>> words;
  const std::string text = kTrainingText;
  size_t i = 0;
  while (i < text.size()) {
    std::vector<std::string> w;
    if (text[i] == ' ') w.push_back(alphabet[static_cast<uint8_t>(text[i++])]);
    const size_t letters_start = i;
    while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i])))
      w.push_back(alphabet[static_cast<uint8_t>(text[i++])]);
    if (w.empty() && i == letters_start) w.push_back(alphabet[static_cast<uint8_t>(text[i++])]);
    words.push_back(std::move(w));
  }
  return words;
}

}  // namespace

DemoTokenizer make_demo_tokenizer(int num_merges) {
  using nlohmann::json;
  const std::vector<std::string> alphabet = byte_level_alphabet();
  json vocab = json::object();
  std::vector<std::string> id_to_token;
  for (int b = 0; b < 256; ++b) {
    vocab[alphabet[b]] = b;
    id_to_token.push_back(alphabet[b]);
  }

  // Classic BPE training: merge the most frequent adjacent pair (ties: smallest pair).
  auto words = training_words(alphabet);
  json merges = json::array();
  for (int m = 0; m < num_merges; ++m) {
    std::map<std::pair<std::string, std::string>, int> counts;
    for (const auto& w : words)
      for (size_t i = 0; i + 1 < w.size(); ++i) ++counts[{w[i], w[i + 1]}];
    const std::pair<std::string, std::string>* best = nullptr;
    int best_count = 1;
    for (const auto& [pair, count] : counts)
      if (count > best_count) best = &pair, best_count = count;
    if (!best) break;
    const auto [a, b] = *best;
    const std::string merged = a + b;
    if (!vocab.contains(merged)) {
      vocab[merged] = static_cast<int>(id_to_token.size());
      id_to_token.push_back(merged);
    }
    merges.push_back(json::array({a, b}));
    for (auto& w : words) {
      std::vector<std::string> next;
      for (size_t i = 0; i < w.size(); ++i) {
        if (i + 1 < w.size() && w[i] == a && w[i + 1] == b) next.push_back(merged), ++i;
        else next.push_back(w[i]);
      }
      w = std::move(next);
    }
  }

  DemoTokenizer out;
  const char* specials[] = {"<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                            "<|eot_id|>"};
  json added = json::array();
  const int first_special = static_cast<int>(id_to_token.size());
  for (int i = 0; i < 5; ++i) {
    added.push_back({{"id", first_special + i}, {"content", specials[i]}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", true}});
  }
  out.vocab_size = first_special + 5;
  out.bos_id = first_special;
  out.eos_ids = {first_special + 1, first_special + 4};

  json tok = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer",
       {{"type", "Sequence"},
        {"pretokenizers",
         json::array({{{"type", "Split"},
                       {"pattern", {{"Regex", kLlama3Split}}},
                       {"behavior", "Isolated"},
                       {"invert", false}},
                      {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}})}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", json::array({{{"SpecialToken", {{"id", specials[0]}, {"type_id", 0}}}},
                                {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}})},
        {"pair", json::array({{{"SpecialToken", {{"id", specials[0]}, {"type_id", 0}}}},
                              {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                              {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}})},
        {"special_tokens",
         {{specials[0], {{"id", specials[0]}, {"ids", json::array({first_special})}, {"tokens", json::array({specials[0]})}}}}}}},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", false},
        {"vocab", vocab},
        {"merges", merges}}}};
  out.tokenizer_json = tok.dump(1);
  json config = {{"bos_token", specials[0]},
                 {"eos_token", specials[4]},
                 {"chat_template", kChatTemplate},
                 {"model_max_length", 4096},
                 {"tokenizer_class", "PreTrainedTokenizerFast"},
                 {"clean_up_tokenization_spaces", false}};
  out.tokenizer_config_json = config.dump(1);
  return out;
}

}  // namespace hotswap
