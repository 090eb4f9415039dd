// streaming and mixed attention through the real forward pass, against the PyTorch
// reference (scripts/reference/attention_reference.py -> tests/golden/attention/<case>/):
// logits at every position within 1e-4 and greedy continuations token for token. The
// streaming cases also decode through KvCacheManager with pages released as the window
// moves, which must not change a single token.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "adapters/mixed_adapter_codec.h"
#include "attention/sequence_attention.h"
#include "kv_cache/kv_cache_manager.h"
#include "model/model.h"
#include "runner/sequence_session.h"

namespace hotswap {
namespace {

namespace fs = std::filesystem;

std::string read_file(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  if (!f) throw std::runtime_error("cannot read " + p.string());
  std::stringstream s;
  s << f.rdbuf();
  return s.str();
}

std::vector<float> read_f32(const fs::path& p) {
  const std::string bytes = read_file(p);
  std::vector<float> v(bytes.size() / sizeof(float));
  std::memcpy(v.data(), bytes.data(), v.size() * sizeof(float));
  return v;
}

const fs::path kFixtureDir = fs::path(HOTSWAP_SOURCE_DIR) / "tests/golden/attention";

// Listed, not discovered: a fixture that goes missing fails (its tests cannot load it, and
// AttentionGoldenFixtures.FolderHoldsExactlyTheListedFixtures says which), never turns into
// zero tests.
std::vector<std::string> fixture_names() {
  std::vector<std::string> names;
  for (const char* model : {"llama_f32", "phi3_f32", "qwen2_f32"})
    for (const char* pattern : {"mixed", "streaming_block", "streaming_token"})
      names.push_back(std::string(model) + "_" + pattern);
  return names;
}

TEST(AttentionGoldenFixtures, FolderHoldsExactlyTheListedFixtures) {
  ASSERT_TRUE(fs::is_directory(kFixtureDir)) << kFixtureDir << " is missing";
  std::vector<std::string> present;
  for (const auto& e : fs::directory_iterator(kFixtureDir))
    if (e.is_directory()) present.push_back(e.path().filename().string());
  std::sort(present.begin(), present.end());
  EXPECT_EQ(present, fixture_names()) << "tests/golden/attention differs from the list in this file";
  for (const std::string& name : fixture_names())
    EXPECT_TRUE(fs::exists(kFixtureDir / name / "reference.json")) << name << "/reference.json is missing";
}

int argmax(const float* row, int n) { return static_cast<int>(std::max_element(row, row + n) - row); }

struct Fixture {
  nlohmann::json ref;
  fs::path dir;
  std::unique_ptr<Model> model;
  SequenceAttention attention;
};

Fixture load_fixture(const std::string& name) {
  Fixture f;
  f.dir = kFixtureDir / name;
  if (!fs::exists(f.dir / "reference.json"))
    throw std::runtime_error("missing fixture " + (f.dir / "reference.json").string());
  f.ref = nlohmann::json::parse(read_file(f.dir / "reference.json"));
  f.model = Model::load((fs::path(HOTSWAP_SOURCE_DIR) / f.ref["model_dir"].get<std::string>()).string());
  const ModelConfig& c = f.model->config();
  const ModelShape shape{c.num_layers, c.num_heads, c.num_kv_heads, c.head_dim, c.hidden_size, ""};
  AttentionChoice choice;
  std::string error;
  EXPECT_TRUE(parse_attention_choice(f.ref["attention"].dump(), &choice, &error)) << error;
  std::shared_ptr<const Adapter> adapter;
  if (f.ref["adapter_file"].is_string()) {
    auto parsed = parse_mixed_adapter(read_file(f.dir / f.ref["adapter_file"].get<std::string>()), shape, name);
    EXPECT_TRUE(parsed.is_ok()) << parsed.status().message();
    adapter = parsed.value();
  }
  Result<SequenceAttention> r = resolve_attention(choice, adapter, shape);
  EXPECT_TRUE(r.is_ok()) << r.status().message();
  f.attention = r.value();
  return f;
}

class AttentionGolden : public ::testing::TestWithParam<std::string> {};

TEST_P(AttentionGolden, LogitsMatchThePyTorchReferenceWithBothKernels) {
  Fixture f = load_fixture(GetParam());
  const int V = f.model->config().vocab_size;
  for (AttentionKernel kernel : {AttentionKernel::kFast, AttentionKernel::kReference}) {
    SequenceAttention attn = f.attention;
    attn.kernel = kernel;
    for (int kv_block : {16, 5}) {
      for (const auto& p : f.ref["prompts"]) {
        const std::vector<int32_t> ids = p["ids"].get<std::vector<int32_t>>();
        const std::vector<float> want = read_f32(f.dir / p["logits_file"].get<std::string>());
        SequenceSession session(*f.model, static_cast<int>(ids.size()), &attn, kv_block);
        const std::vector<float> got = session.append(ids, /*all_positions=*/true);
        ASSERT_EQ(got.size(), want.size());
        float max_abs = 0;
        for (size_t i = 0; i < got.size(); ++i) max_abs = std::max(max_abs, std::fabs(got[i] - want[i]));
        EXPECT_LT(max_abs, 1e-4f) << ids.size() << "-token prompt, kernel "
                                  << (kernel == AttentionKernel::kFast ? "fast" : "reference") << ", KV block "
                                  << kv_block;
        for (size_t pos = 0; pos < ids.size(); ++pos) {
          EXPECT_EQ(argmax(&got[pos * V], V), argmax(&want[pos * V], V)) << "position " << pos;
        }
      }
    }
  }
}

TEST_P(AttentionGolden, GreedyContinuationMatchesTokenForToken) {
  Fixture f = load_fixture(GetParam());
  const int V = f.model->config().vocab_size;
  for (const auto& c : f.ref["greedy"]) {
    const std::vector<int32_t> prompt = c["prompt_ids"].get<std::vector<int32_t>>();
    const std::vector<int32_t> want = c["output_ids"].get<std::vector<int32_t>>();
    SequenceSession session(*f.model, static_cast<int>(prompt.size() + want.size()), &f.attention);
    std::vector<float> logits = session.append(prompt, false);
    std::vector<int32_t> out;
    while (out.size() < want.size()) {
      out.push_back(argmax(logits.data(), V));
      logits = session.append(std::span<const int32_t>(&out.back(), 1), false);
    }
    EXPECT_EQ(out, want) << prompt.size() << "-token prompt";
  }
}

// Decoding through the paged cache manager: chunked prefill, then one token per step, with
// streaming release after every step. Same tokens as the reference, and (for streaming) a
// bounded number of held blocks.
TEST_P(AttentionGolden, GreedyThroughKvCacheManagerWithReleaseMatches) {
  Fixture f = load_fixture(GetParam());
  const int V = f.model->config().vocab_size;
  const int kv_block = 4;
  KvCacheManager kv(f.model->kv_layout(kv_block, 200));
  Workspace ws;
  for (const auto& c : f.ref["greedy"]) {
    const std::vector<int32_t> prompt = c["prompt_ids"].get<std::vector<int32_t>>();
    const std::vector<int32_t> want = c["output_ids"].get<std::vector<int32_t>>();
    std::vector<int32_t> tokens = prompt;
    BlockTable table;
    const int cached = kv.match_prefix(table, f.attention.cache_namespace, tokens);
    ASSERT_EQ(cached % kv_block, 0);
    int64_t peak = 0;
    std::vector<int32_t> out;
    auto step = [&](int first, int count) {
      ASSERT_TRUE(kv.prepare_write(table, first, count).is_ok());
      ForwardBatch batch;
      SequenceChunk chunk;
      chunk.tokens = std::span<const int32_t>(tokens).subspan(first, count);
      chunk.first_position = first;
      chunk.block_table = table.blocks;
      chunk.lane_pages = table.lane_pages;
      chunk.attention = &f.attention;
      chunk.logits = LogitsWanted::kLast;
      batch.chunks.push_back(chunk);
      const Logits logits = f.model->forward(batch, kv.storage(), ws);
      kv.publish_full_blocks(table, f.attention.cache_namespace, tokens);
      kv.release_invisible(table, f.attention.release_rule, f.attention.kept_lanes, table.num_tokens);
      peak = std::max<int64_t>(peak, table.num_held());
      out.push_back(argmax(logits.row(0), V));
    };
    for (int first = cached; first < static_cast<int>(prompt.size()); first += 64) {
      out.clear();
      step(first, std::min<int>(64, static_cast<int>(prompt.size()) - first));
    }
    while (out.size() < want.size()) {
      tokens.push_back(out.back());
      step(static_cast<int>(tokens.size()) - 1, 1);
    }
    EXPECT_EQ(out, want) << prompt.size() << "-token prompt";
    if (f.attention.release_rule) {
      int kept = 0;
      for (uint8_t k : f.attention.kept_lanes) kept += k != 0;
      EXPECT_LE(peak, kv.peak_blocks(f.attention.release_rule, static_cast<int64_t>(tokens.size()), 64, kept));
      const StreamingRule& rule = *f.attention.release_rule;
      EXPECT_LE(table.num_held(),
                kv.blocks_for_positions(rule.sink_end) + kv.blocks_for_positions(rule.max_local_span()) + 1);
      if (tokens.size() > 100) {
        EXPECT_LT(table.num_held(), kv.blocks_for_positions(table.num_tokens) / 2);
      }
    }
    kv.free(table);
  }
  EXPECT_EQ(kv.num_used_blocks(), 0);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, AttentionGolden, ::testing::ValuesIn(fixture_names()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace hotswap
