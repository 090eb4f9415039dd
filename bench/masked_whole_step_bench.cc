// The whole decode step of a Llama-3.2-1B-shaped model (16 layers, H 32, Hkv 8, d 64, D 2048,
// bf16 random weights in /tmp/hotswap-bench/llama-3.2-1b, written when missing) at long
// context, `eager` beside `masked` with the three summarising configurations of issue 13
// (bench/long_context_util.h): Model::forward of one token of one sequence, every layer and
// the LM head. As nsa_bench's whole step, the context's K/V are random rather than computed
// (a real 16K prefill of a 1B model takes far too long on 2 cores); the step reads and
// multiplies as many keys as after one. For masked, the sequence's prompt is the context, so
// the first decode step signs / bounds / codes every prompt key of every layer (one-off, not
// timed, its time printed); then `--reps` decode steps are timed, median reported. Contexts
// ascending; at each, eager and the masked configurations back to back.
//
//   build/bin/masked_whole_step_bench [--contexts=4096,16384] [--reps=5] [--cpu_time] [--kv_dtype=bf16|f32|q8]
//                                     [--model_root=DIR]
// --kv_dtype: the KV cache's element type (engine.kv_cache_dtype; default bf16, the engine's
// default); the random K/V are drawn in float32 and stored as the engine writes them.
#include <algorithm>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include "attention/sequence_attention.h"
#include "bench_model.h"
#include "engine/attention_choice.h"
#include "kv_cache/kv_storage.h"
#include "long_context_util.h"
#include "model/forward_batch.h"
#include "model/model.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace hotswap {
namespace {

constexpr int kBlockSize = 16;

struct Masked {
  const char* name;
  const char* json;
  std::shared_ptr<const Adapter> adapter;
  SequenceAttention attention;
  std::unique_ptr<BackendResources> resources;
};

volatile float g_sink;
// --cpu_time: time steps by the process's CPU time (with OMP_NUM_THREADS=1 the work itself,
// immune to other processes' time slices on a shared machine) instead of wall time.
bool g_cpu_time = false;
KvDtype g_kv_dtype = KvDtype::kBf16;  // --kv_dtype

double clock_ms() {
  if (!g_cpu_time) return bench::now_ms();
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return 1e3 * static_cast<double>(ts.tv_sec) + 1e-6 * static_cast<double>(ts.tv_nsec);
}

int run(const std::vector<int>& contexts, int reps, const std::string& root) {
  const std::string dir = bench::ensure_random_model(root, "llama-3.2-1b");
  const std::unique_ptr<Model> model = Model::load(dir);
  const ModelConfig& mc = model->config();
  const int layers = mc.num_layers;
  const ModelShape shape{layers, mc.num_heads, mc.num_kv_heads, mc.head_dim, mc.hidden_size, ""};
  const int max_context = *std::max_element(contexts.begin(), contexts.end());
  const int capacity = max_context + 2 + reps;
  const int blocks = (capacity + kBlockSize - 1) / kBlockSize;
  KvStorage kv(model->kv_layout(kBlockSize, blocks, g_kv_dtype));
  std::vector<int32_t> table(static_cast<size_t>(blocks));
  std::iota(table.begin(), table.end(), 0);
  const size_t layer_floats = static_cast<size_t>(blocks) * mc.num_kv_heads * kBlockSize * mc.head_dim;
  const size_t ru = kv.layout().row_units();
  double t0 = bench::now_ms();
#pragma omp parallel for schedule(dynamic, 1)
  for (int l = 0; l < 2 * layers; ++l) {
    void* base = l % 2 ? kv.value_data(l / 2) : kv.key_data(l / 2);
    std::vector<float> chunk(1 << 20);  // a multiple of head_dim values: whole rows
    for (size_t i = 0; i < layer_floats; i += 1 << 20) {
      const size_t n = std::min<size_t>(1 << 20, layer_floats - i);
      bench::fill_normal(chunk.data(), n, 77 + 1000 * l + i / (1 << 20));
      for (size_t r = 0; r < n / mc.head_dim; ++r)
        store_kv_row(g_kv_dtype, chunk.data() + r * mc.head_dim, mc.head_dim, base, (i / mc.head_dim + r) * ru);
    }
  }
  std::printf("%s: %d layers, KV %.2f GiB %s, random fill %.1f s\n", dir.c_str(), layers,
              2.0 * layers * static_cast<double>(kv.layout().layer_elems()) * kv_dtype_size(g_kv_dtype) / (1u << 30),
              kv_dtype_name(g_kv_dtype), (bench::now_ms() - t0) / 1e3);

  std::vector<Masked> masked(3);
  masked[0].name = "hat", masked[0].json = bench::kHatJson, masked[0].adapter = bench::hat_adapter(layers);
  masked[1].name = "magic_pig", masked[1].json = bench::kPigJson;
  masked[2].name = "quest", masked[2].json = bench::kQuestJson;
  for (Masked& m : masked) {
    AttentionChoice choice;
    std::string error;
    if (!parse_attention_choice(m.json, &choice, &error)) std::abort();
    Result<SequenceAttention> r = resolve_attention(choice, m.adapter, shape);
    if (!r) {
      std::fprintf(stderr, "%s\n", r.status().message().c_str());
      return 1;
    }
    m.attention = std::move(r.value());
    m.resources = std::make_unique<BackendResources>(shape);
  }

  Workspace ws;
  int32_t token = 0;
  auto step = [&](int position, const SequenceAttention* attention, BackendSequenceState* state) {
    token = (token * 7919 + 13) % mc.vocab_size;
    ForwardBatch fb;
    SequenceChunk ch;
    ch.tokens = std::span<const int32_t>(&token, 1);
    ch.first_position = position;
    ch.block_table = table;
    ch.attention = attention;
    ch.state = state;
    ch.logits = LogitsWanted::kLast;
    fb.chunks.push_back(ch);
    const double start = clock_ms();
    const Logits logits = model->forward(fb, kv, ws);
    g_sink = logits.data[0];
    return clock_ms() - start;
  };
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };

  struct Row {
    int context;
    double eager;
    std::vector<double> ms, setup;
  };
  std::vector<Row> rows;
  std::vector<int> sorted = contexts;
  std::sort(sorted.begin(), sorted.end());
  for (int context : sorted) {
    Row row{context, 0, {}, {}};
    std::vector<double> e;
    for (int w = 0; w < 2; ++w) step(context, nullptr, nullptr);  // warm-up
    for (int r = 0; r < reps; ++r) e.push_back(step(context + 1 + r, nullptr, nullptr));
    row.eager = median(e);
    for (Masked& m : masked) {
      // A fresh sequence whose prompt is the context: its first decode step builds the
      // summaries of every prompt key (one-off), then the timed steps.
      auto state = m.attention.backend->new_state(m.attention, SequenceFacts{1, context}, *m.resources);
      row.setup.push_back(step(context, &m.attention, state.get()));
      std::vector<double> t;
      for (int r = 0; r < reps; ++r) t.push_back(step(context + 1 + r, &m.attention, state.get()));
      row.ms.push_back(median(t));
    }
    std::printf("context %d done (load average %.2f)\n", context, bench::load_average());
    std::fflush(stdout);
    rows.push_back(std::move(row));
  }
  int threads = 1;
#ifdef _OPENMP
  threads = omp_get_max_threads();
#endif
  std::printf(
      "\nWhole decode step (Model::forward of one token, 16 layers + LM head, bf16 weights), ms, median of %d, "
      "%s, %d thread(s), %s KV, load average now %.2f; ratio = eager / config; first = the first decode step, "
      "which builds the prompt's summaries (one-off)\n%7s %9s",
      reps, g_cpu_time ? "process CPU time" : "wall time", threads, kv_dtype_name(g_kv_dtype), bench::load_average(), "context", "eager");
  for (const Masked& m : masked) std::printf(" %10s %6s %9s", m.name, "ratio", "first");
  std::printf("\n");
  for (const Row& row : rows) {
    std::printf("%7d %9.1f", row.context, row.eager);
    for (size_t i = 0; i < masked.size(); ++i)
      std::printf(" %10.1f %5.2fx %9.0f", row.ms[i], row.eager / row.ms[i], row.setup[i]);
    std::printf("\n");
  }
  return 0;
}

}  // namespace
}  // namespace hotswap

int main(int argc, char** argv) {
  std::vector<int> contexts = {4096, 16384};
  int reps = 5;
  std::string root = "/tmp/hotswap-bench";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("--contexts=", 0) == 0) {
      contexts.clear();
      for (const char* p = arg.c_str() + 11; p != nullptr && *p; p = std::strchr(p, ',') ? std::strchr(p, ',') + 1 : nullptr)
        contexts.push_back(std::atoi(p));
    } else if (arg == "--cpu_time" || arg == "--cpu_time=true") {
      hotswap::g_cpu_time = true;
    } else if (arg.rfind("--kv_dtype=", 0) == 0) {
      if (!hotswap::bench::parse_kv_dtype(arg.substr(11), &hotswap::g_kv_dtype)) return 2;
    } else if (arg.rfind("--reps=", 0) == 0) {
      reps = std::max(1, std::atoi(arg.c_str() + 7));
    } else if (arg.rfind("--model_root=", 0) == 0) {
      root = arg.substr(13);
    } else {
      std::fprintf(stderr, "unknown argument %s (--contexts=A,B --reps=N --cpu_time --kv_dtype=f32|bf16|q8 --model_root=DIR)\n", arg.c_str());
      return 2;
    }
  }
  return hotswap::run(contexts, reps, root);
}
