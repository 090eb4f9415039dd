// The engine's own throughput against this machine's roofline, in one run (issue 7, item 2):
//  * memory read bandwidth (GB/s) and f32 FMA peak (GFLOP/s) as bench/roofline.h measures
//    them (a 1 GiB sum by all threads; register-only vfmadd231ps chains);
//  * per model (SmolLM2-135M and Llama-3.2-1B shapes, bf16, random weights written by the
//    project's generator into /tmp/hotswap-bench/<preset> when missing):
//      - decode steps of Model::forward with a ForwardBatch of B one-token chunks (B = 1, 4,
//        16, 64), every sequence at a context of --context tokens, logits for every sequence
//        (what the engine loop asks for); aggregate tokens/s = B / step time;
//      - batch-1 effective bandwidth = weight bytes read per decode token × tokens/s, and its
//        fraction of the measured read bandwidth;
//      - prefill of one 128- and one 512-token prompt (one chunk, logits of the last token),
//        tokens/s and model GFLOP/s (2·params per token for every projection + causal
//        attention QK^T and PV + the LM head row) as a fraction of the FMA peak.
// The decode context's K/V are not computed (the cache holds zeros there): the attention of a
// decode step reads and multiplies exactly as many keys and values as it would after a real
// prefill, which is what the timing needs, and it keeps the run short.
//
// The machine may be shared and its memory bandwidth drifts by tens of percent from one second
// to the next, so decode is measured in rounds: a read-bandwidth pass, then one step of every
// batch size, back to back. The headline ratios are per round (decode GB/s over that round's
// bandwidth; batch-B over batch-1 tokens/s of that round), reported as median and range.
// Best and median steps are printed too, with the share of wall time our threads were on a
// CPU and rates [by CPU time] (work / CPU time per thread: what it would take with the cores
// to itself; meaningful under contention only if waiting threads sleep, OMP_WAIT_POLICY=passive).
// Run it with the engine's own OpenMP settings (none) on an otherwise idle machine.
//
//   engine_throughput_bench [--presets smollm2-135m,llama-3.2-1b] [--root /tmp/hotswap-bench]
//                           [--context 128] [--batches 1,4,16,64] [--prompts 128,512]
//                           [--min-time 1.5] [--min-rounds 12] [--max-steps 40]
//                           [--prefill-reps 2] [--matmul-precision auto|f32|bf16] [--weights auto|q8|q4]
// --matmul-precision is the engine's setting (default auto: bf16 arithmetic for BF16 weights;
// f32: exact float32 products); --bf16-dot is an older spelling of bf16. --weights q8 / q4: 8- or
// 4-bit weights (docs/weights.md), cached next to the generated model after the first run.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <new>
#include <numeric>
#include <span>
#include <sstream>
#include <string>
#include <vector>

#include "roofline.h"
#include "kernels/isa.h"
#include "kernels/linear.h"
#include "kernels/q8.h"
#include "kv_cache/kv_storage.h"
#include "model/forward_batch.h"
#include "model/model.h"
#include "model_gen/random_model.h"

#ifdef _OPENMP
#include <omp.h>
#endif

// GCC 12's AVX-512 intrinsics self-initialise "undefined" operands; -Wuninitialized flags them.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace hotswap {
namespace {

using kernels::Isa;

using bench::CpuShare;
using bench::Elapsed;
using bench::load_average;
using bench::now_seconds;
using bench::Rate;
using bench::ReadBandwidthProbe;
using bench::Stopwatch;

volatile float g_sink[4];

// ---------------------------------------------------------------------------------------
// Options.

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

std::vector<int> split_ints(const std::string& s) {
  std::vector<int> out;
  for (const auto& item : split(s)) out.push_back(std::atoi(item.c_str()));
  return out;
}

struct Options {
  std::vector<std::string> presets = {"smollm2-135m", "llama-3.2-1b"};
  std::string root = "/tmp/hotswap-bench";
  int context = 128;
  std::vector<int> batches = {1, 4, 16, 64};
  std::vector<int> prompts = {128, 512};
  double min_time = 1.5;  // seconds of timed decode steps in all (and at least min_rounds rounds)
  int min_rounds = 12;
  int max_steps = 40;     // decode rounds at most
  int prefill_reps = 2;   // timed prefills per prompt length, after one warm-up
  // As the engine's engine.matmul_precision (auto: bf16 products for BF16 weights).
  MatmulPrecision precision = MatmulPrecision::kAuto;
  WeightFormat weights = WeightFormat::kAuto;  // --weights q8: quantised (cache next to the model)
};

bool parse_options(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--help" || k == "-h") return false;
    if (k == "--bf16-dot") {  // the older spelling of --matmul-precision bf16
      o.precision = MatmulPrecision::kBf16;
      continue;
    }
    if (i + 1 >= argc) {
      std::fprintf(stderr, "%s needs a value\n", k.c_str());
      return false;
    }
    const std::string v = argv[++i];
    if (k == "--presets") o.presets = split(v);
    else if (k == "--root") o.root = v;
    else if (k == "--matmul-precision") {
      if (!parse_matmul_precision(v, &o.precision)) {
        std::fprintf(stderr, "--matmul-precision: auto, f32 or bf16\n");
        return false;
      }
    }
    else if (k == "--weights") {
      if (!parse_weight_format(v, &o.weights)) {
        std::fprintf(stderr, "--weights: %s\n", kWeightFormatChoices);
        return false;
      }
    }
    else if (k == "--context") o.context = std::atoi(v.c_str());
    else if (k == "--batches") o.batches = split_ints(v);
    else if (k == "--prompts") o.prompts = split_ints(v);
    else if (k == "--min-time") o.min_time = std::atof(v.c_str());
    else if (k == "--max-steps") o.max_steps = std::atoi(v.c_str());
    else if (k == "--min-rounds") o.min_rounds = std::atoi(v.c_str());
    else if (k == "--prefill-reps") o.prefill_reps = std::atoi(v.c_str());
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return false;
    }
  }
  return true;
}

// ---------------------------------------------------------------------------------------
// Model accounting.

// Bytes of weights one decode token reads: every layer tensor, the final norm, the LM head
// (all of it: every vocabulary row is scored) and one embedding row.
double weight_bytes_per_token(const Model& m) {
  const ModelWeights& w = m.weights();
  double bytes = 0;
  for (const LayerWeights& l : w.layers) {
    for (const TensorView* t : {&l.input_norm, &l.q_proj, &l.k_proj, &l.v_proj, &l.q_bias, &l.k_bias, &l.v_bias,
                                &l.o_proj, &l.o_bias, &l.post_attention_norm, &l.gate_proj, &l.up_proj,
                                &l.down_proj, &l.gate_bias, &l.up_bias, &l.down_bias})
      if (!t->empty()) bytes += static_cast<double>(t->nbytes());
  }
  bytes += static_cast<double>(w.final_norm.nbytes() + w.lm_head.nbytes());
  bytes += static_cast<double>(w.embed_tokens.nbytes()) / static_cast<double>(w.embed_tokens.rows());
  if (const QuantizedWeights* q = m.quantized()) {  // the quantised projections replace the stored ones
    for (const LayerWeights& l : w.layers)
      for (const TensorView* t : {&l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.gate_proj, &l.up_proj, &l.down_proj})
        bytes -= static_cast<double>(t->nbytes());
    bytes += static_cast<double>(q->bytes()) - static_cast<double>(w.lm_head.nbytes());
  }
  return bytes;
}

// Multiply-adds of the layer projections per token (the LM head is counted separately).
double layer_params(const Model& m) {
  double n = 0;
  for (const LayerWeights& l : m.weights().layers)
    for (const TensorView* t : {&l.q_proj, &l.k_proj, &l.v_proj, &l.o_proj, &l.gate_proj, &l.up_proj, &l.down_proj})
      n += static_cast<double>(t->numel());
  return n;
}

// FLOPs of a prefill of P tokens from position 0 with logits for the last one.
double prefill_flops(const Model& m, int P) {
  const ModelConfig& c = m.config();
  const double p = P;
  const double projections = 2.0 * layer_params(m) * p;
  // Query i sees i + 1 keys: QK^T and PV are 2·d FLOPs per key each, for every query head.
  const double attention = 4.0 * c.head_dim * c.num_heads * c.num_layers * (p * (p + 1) / 2);
  const double lm_head = 2.0 * static_cast<double>(m.weights().lm_head.numel());
  return projections + attention + lm_head;
}

// ---------------------------------------------------------------------------------------
// Timing of forward steps.

struct Timing {
  std::vector<double> seconds;      // wall time of each timed step
  std::vector<double> cpu_seconds;  // process CPU time / threads of each timed step
  double cpu_share = 0;
  void add(Elapsed e) {
    seconds.push_back(e.wall);
    cpu_seconds.push_back(e.cpu);
  }
  double best() const { return *std::min_element(seconds.begin(), seconds.end()); }
  double best_cpu() const { return *std::min_element(cpu_seconds.begin(), cpu_seconds.end()); }
  double median() const {
    std::vector<double> s = seconds;
    std::sort(s.begin(), s.end());
    return s.size() % 2 ? s[s.size() / 2] : 0.5 * (s[s.size() / 2 - 1] + s[s.size() / 2]);
  }
};

uint32_t g_rng = 12345;
int32_t random_token(int vocab) {
  g_rng = g_rng * 1664525u + 1013904223u;
  return static_cast<int32_t>((g_rng >> 8) % static_cast<uint32_t>(vocab));
}

// Decode rounds (see ModelBench::decode): per batch size, the step of each round; and the
// read bandwidth measured at the start of each round.
struct DecodeRounds {
  std::map<int, Timing> steps;
  std::vector<double> bandwidth;  // GB/s, before each round and after the last (rounds + 1)
  double cpu_share = 0;
};

class ModelBench {
 public:
  ModelBench(const Model& model, const Options& o) : model_(model), opt_(o) {
    const int max_batch = *std::max_element(o.batches.begin(), o.batches.end());
    const int max_prompt = o.prompts.empty() ? 0 : *std::max_element(o.prompts.begin(), o.prompts.end());
    // Every decode sequence needs its context, the warm-up step and kStepCycle decode
    // positions; the prefill sequence has blocks of its own after them.
    const int64_t decode_blocks = (o.context + 1 + kStepCycle + kBlock - 1) / kBlock;
    const int64_t prefill_blocks = (max_prompt + kBlock - 1) / kBlock;
    kv_ = std::make_unique<KvStorage>(model.kv_layout(kBlock, max_batch * decode_blocks + prefill_blocks));
    tables_.resize(max_batch);
    for (int s = 0; s < max_batch; ++s) {
      tables_[s].resize(decode_blocks);
      std::iota(tables_[s].begin(), tables_[s].end(), static_cast<int32_t>(s * decode_blocks));
    }
    prefill_table_.resize(prefill_blocks);
    std::iota(prefill_table_.begin(), prefill_table_.end(), static_cast<int32_t>(max_batch * decode_blocks));
  }

  // Decode steps of every batch size, interleaved: each round sweeps the bandwidth probe
  // once and then runs one step of each batch size, so every ratio (decode GB/s over read
  // bandwidth, batch B over batch 1) can be taken within a round, under the conditions of
  // that moment. Each sequence of a step is at position context + step.
  DecodeRounds decode(const std::vector<int>& batches, ReadBandwidthProbe& probe) {
    const int vocab = model_.config().vocab_size;
    std::vector<int32_t> tokens;
    auto step = [&](int batch, int position) {
      tokens.resize(batch);
      ForwardBatch fb;
      for (int s = 0; s < batch; ++s) {
        tokens[s] = random_token(vocab);
        SequenceChunk ch;
        ch.tokens = std::span<const int32_t>(&tokens[s], 1);
        ch.first_position = position;
        ch.block_table = tables_[s];
        ch.logits = LogitsWanted::kLast;
        fb.chunks.push_back(ch);
      }
      return timed_forward(fb);
    };
    // Warm-up: scratch buffers grow, weights and KV pages are touched.
    for (int b : batches) step(b, opt_.context);
    DecodeRounds r;
    CpuShare share;
    double total = 0;
    for (int i = 0; i < opt_.max_steps && (i < opt_.min_rounds || total < opt_.min_time); ++i) {
      r.bandwidth.push_back(probe.pass().wall);
      for (int b : batches) {
        r.steps[b].add(step(b, opt_.context + 1 + i % kStepCycle));
        total += r.steps[b].seconds.back();
      }
    }
    r.bandwidth.push_back(probe.pass().wall);  // the closing pass of the last round
    r.cpu_share = share.share();
    return r;
  }

  // Prefill of one prompt of P tokens from position 0 (logits of the last token).
  Timing prefill(int P) {
    const int vocab = model_.config().vocab_size;
    std::vector<int32_t> prompt(P);
    auto run = [&]() {
      for (auto& id : prompt) id = random_token(vocab);
      ForwardBatch fb;
      SequenceChunk ch;
      ch.tokens = prompt;
      ch.first_position = 0;
      ch.block_table = prefill_table_;
      ch.logits = LogitsWanted::kLast;
      fb.chunks.push_back(ch);
      return timed_forward(fb);
    };
    // Warm-up once (weights, scratch); later, longer prompts only grow the scratch buffers.
    if (!prefill_warm_) run();
    prefill_warm_ = true;
    Timing t;
    CpuShare share;
    for (int i = 0; i < opt_.prefill_reps; ++i) t.add(run());
    t.cpu_share = share.share();
    return t;
  }

 private:
  // One model step, timed; a logit is kept so the work cannot be optimised away.
  Elapsed timed_forward(const ForwardBatch& fb) {
    const Stopwatch sw;
    Logits logits = model_.forward(fb, *kv_, ws_);
    const Elapsed e = sw.elapsed();
    g_sink[0] = logits.data[0];
    return e;
  }

  static constexpr int kBlock = 16;
  // Decode steps cycle over this many positions after the context (later steps overwrite the
  // K/V of earlier ones), so a long run keeps the context it was asked for.
  static constexpr int kStepCycle = 32;
  const Model& model_;
  const Options& opt_;
  std::unique_ptr<KvStorage> kv_;
  std::vector<std::vector<int32_t>> tables_;
  std::vector<int32_t> prefill_table_;
  bool prefill_warm_ = false;
  Workspace ws_;
};

// ---------------------------------------------------------------------------------------
// The run.

// Rates of one model; "cpu" = by CPU time per thread (see Stopwatch).
struct ModelSummary {
  std::string preset;
  double gb_per_token = 0;
  std::map<int, double> decode_tps, decode_tps_cpu;    // batch -> best aggregate tokens/s
  std::map<int, double> prefill_tps, prefill_tps_cpu;  // prompt -> best tokens/s
  std::map<int, double> prefill_gflop;                 // prompt -> GFLOP per prefill
  // Per decode round: batch-1 GB/s over the read bandwidth of that round, and batch-B
  // aggregate tokens/s over batch-1 tokens/s of that round.
  std::vector<double> round_bandwidth_fraction;
  std::map<int, std::vector<double>> round_batch_ratio;
};

std::string ensure_model(const Options& o, const std::string& preset) {
  const std::string dir = o.root + "/" + preset;
  if (!std::filesystem::exists(dir + "/model.safetensors")) {
    const double t0 = now_seconds();
    write_random_model(random_model_preset(preset), dir);
    std::printf("generated %s in %.1f s\n", dir.c_str(), now_seconds() - t0);
  }
  return dir;
}

ModelSummary bench_model(const Options& o, const std::string& preset, ReadBandwidthProbe& probe) {
  const std::string dir = ensure_model(o, preset);
  const double load_t0 = now_seconds();
  auto model = Model::load(dir, ModelLoadOptions{o.weights, {}, o.precision});
  if (const QuantizedWeights* q = model->quantized())
    std::printf("%s weights (%s): %s in %.1f s\n", kernels::quant_format_name(q->format()), kernels::linear_q8_isa(),
                q->source() == QuantizedWeights::Source::kCache ? "mapped from the cache" : "quantised",
                now_seconds() - load_t0);
  kernels::set_linear_precision(linear_precision_for(o.precision, *model));
  const ModelConfig& c = model->config();
  ModelSummary sum;
  sum.preset = preset;
  sum.gb_per_token = weight_bytes_per_token(*model) / 1e9;
  const double kv_mb = 2.0 * c.num_layers * c.num_kv_heads * c.head_dim * 4.0 * (o.context + 1) / 1e6;
  std::printf("\n== %s: %s, %d layers, D %d, I %d, H %d/%d, vocab %d, %s weights, linear() path %s ==\n",
              preset.c_str(), dir.c_str(),
              c.num_layers, c.hidden_size, c.intermediate_size, c.num_heads, c.num_kv_heads, c.vocab_size,
              std::string(dtype_name(model->weights().dominant_dtype())).c_str(), kernels::linear_isa());
  std::printf("weights read per decode token: %.3f GB (+ %.1f MB of f32 K/V at context %d)\n", sum.gb_per_token,
              kv_mb, o.context);
  std::fflush(stdout);

  ModelBench bench(*model, o);
  const DecodeRounds rounds = bench.decode(o.batches, probe);
  const size_t n_rounds = rounds.bandwidth.size() - 1;
  std::printf("decode (one token per sequence per step, context %d, logits for every sequence; %zu rounds, each\n"
              "one step of every batch size between two read-bandwidth passes; read bandwidth: median %.1f GB/s,\n"
              "range %.1f-%.1f):\n",
              o.context, n_rounds, bench::median(rounds.bandwidth.data(), rounds.bandwidth.size()),
              *std::min_element(rounds.bandwidth.begin(), rounds.bandwidth.end()),
              *std::max_element(rounds.bandwidth.begin(), rounds.bandwidth.end()));
  std::printf("  %5s %9s %9s %11s %11s %11s %5s\n", "batch", "best ms", "median ms", "tok/s best", "tok/s med",
              "tok/s cpu", "cpu");
  for (int b : o.batches) {
    const Timing& t = rounds.steps.at(b);
    sum.decode_tps[b] = b / t.best();
    sum.decode_tps_cpu[b] = b / t.best_cpu();
    std::printf("  %5d %9.2f %9.2f %11.1f %11.1f %11.1f %4.0f%%\n", b, 1e3 * t.best(), 1e3 * t.median(), b / t.best(),
                b / t.median(), b / t.best_cpu(), 100 * rounds.cpu_share);
  }
  if (rounds.steps.count(1)) {
    const Timing& one = rounds.steps.at(1);
    for (size_t i = 0; i < n_rounds; ++i) {
      // The bandwidth around the step: the mean of the passes before and after its round.
      const double bandwidth = 0.5 * (rounds.bandwidth[i] + rounds.bandwidth[i + 1]);
      sum.round_bandwidth_fraction.push_back(sum.gb_per_token / one.seconds[i] / bandwidth);
      for (int b : o.batches)
        if (b != 1) sum.round_batch_ratio[b].push_back(b * one.seconds[i] / rounds.steps.at(b).seconds[i]);
    }
  }
  std::fflush(stdout);
  std::printf("prefill (one sequence from position 0, one chunk, logits for the last token):\n");
  std::printf("  %6s %4s %9s %9s %11s %11s %9s %9s %5s\n", "prompt", "reps", "best ms", "median ms", "tok/s best",
              "tok/s cpu", "GFLOP/s", "[cpu]", "cpu");
  for (int p : o.prompts) {
    const Timing t = bench.prefill(p);
    const double gflop = prefill_flops(*model, p) / 1e9;
    sum.prefill_tps[p] = p / t.best();
    sum.prefill_tps_cpu[p] = p / t.best_cpu();
    sum.prefill_gflop[p] = gflop;
    std::printf("  %6d %4zu %9.1f %9.1f %11.1f %11.1f %9.1f %9.1f %4.0f%%\n", p, t.seconds.size(),
                1e3 * t.best(), 1e3 * t.median(), p / t.best(), p / t.best_cpu(), gflop / t.best(),
                gflop / t.best_cpu(), 100 * t.cpu_share);
    std::fflush(stdout);
  }
  return sum;
}

// "median 83.1% (range 79.0-86.2%)" of fractions.
std::string median_and_range(const std::vector<double>& v, double scale, const char* unit) {
  char buf[128];
  std::snprintf(buf, sizeof buf, "median %.2f%s (range %.2f-%.2f%s over %zu rounds)", scale * bench::median(v.data(), v.size()),
                unit, scale * *std::min_element(v.begin(), v.end()), scale * *std::max_element(v.begin(), v.end()), unit,
                v.size());
  return buf;
}

int run(const Options& o) {
  const CpuShare whole;
  const double t_start = now_seconds();
  const char* wait_policy = std::getenv("OMP_WAIT_POLICY");
  std::printf("engine_throughput_bench: %d threads (OMP_WAIT_POLICY=%s), best ISA %s (avx512_bf16: %s), "
              "matmul precision %s, load average %.2f\n",
              bench::bench_threads(), wait_policy ? wait_policy : "unset",
              kernels::isa_name(kernels::best_supported_isa()), kernels::cpu_has_avx512_bf16() ? "yes" : "no",
              matmul_precision_name(o.precision), load_average());
  ReadBandwidthProbe probe;
  Rate bandwidth = probe.best_of(8);
  Rate peak = bench::measure_fma_peak();
  std::printf("memory read bandwidth: %.1f GB/s (1 GiB sum, all threads, best of 8; by CPU time %.1f)\n",
              bandwidth.wall, bandwidth.cpu);
  std::printf("f32 FMA peak: %.1f GFLOP/s (register-only vfmadd231ps loop, %s, all threads, best of 5; by CPU time %.1f)\n",
              peak.wall, bench::fma_peak_method(), peak.cpu);
  std::fflush(stdout);

  std::vector<ModelSummary> models;
  for (const auto& preset : o.presets) models.push_back(bench_model(o, preset, probe));

  // The roofline once more, after the models: best of both measurements.
  const Rate bw2 = probe.best_of(8), peak2 = bench::measure_fma_peak();
  bandwidth.keep(bw2);
  peak.keep(peak2);

  const auto pct = [](double a, double b) { return b > 0 ? 100 * a / b : 0.0; };
  std::printf("\n== summary ==\n");
  std::printf("memory read bandwidth best %.1f GB/s [by CPU time %.1f] (end of run: %.1f); f32 FMA peak %.1f GFLOP/s [%.1f] "
              "(end of run: %.1f)\n",
              bandwidth.wall, bandwidth.cpu, bw2.wall, peak.wall, peak.cpu, peak2.wall);
  std::printf("Ratios marked 'per round' pair measurements taken within one decode round (a bandwidth pass and\n"
              "one step of each batch size, back to back): the headline figures on a machine whose bandwidth drifts.\n"
              "The bandwidth of a round is the mean of the passes before and after it.\n");
  for (const ModelSummary& m : models) {
    std::printf("%s:\n", m.preset.c_str());
    if (m.decode_tps.count(1)) {
      const double gbs = m.gb_per_token * m.decode_tps.at(1);
      std::printf("  batch-1 decode GB/s / read bandwidth, per round: %s (target >= 85%%)\n",
                  median_and_range(m.round_bandwidth_fraction, 100, "%").c_str());
      std::printf("  batch-1 decode best %.2f tok/s x %.3f GB/token = %.1f GB/s = %.1f%% of the best read bandwidth\n",
                  m.decode_tps.at(1), m.gb_per_token, gbs, pct(gbs, bandwidth.wall));
    }
    std::printf("  decode aggregate tok/s, best step:");
    for (const auto& [b, tps] : m.decode_tps) std::printf("  b%d %.1f [%.1f]", b, tps, m.decode_tps_cpu.at(b));
    std::printf("\n");
    for (const auto& [b, ratios] : m.round_batch_ratio)
      std::printf("  batch-%d / batch-1 aggregate tok/s, per round: %s%s\n", b, median_and_range(ratios, 1, "x").c_str(),
                  b == 16 ? " (target >= 6)" : "");
    for (const auto& [p, tps] : m.prefill_tps) {
      const double gflops = m.prefill_gflop.at(p) * tps / p, gflops_cpu = m.prefill_gflop.at(p) * m.prefill_tps_cpu.at(p) / p;
      std::printf("  prefill %d: %.1f tok/s, %.1f GFLOP/s = %.1f%% of f32 FMA peak [%.1f GFLOP/s = %.1f%%]%s\n", p,
                  tps, gflops, pct(gflops, peak.wall), gflops_cpu, pct(gflops_cpu, peak.cpu),
                  p == 512 ? " (target >= 50%)" : "");
    }
  }
  const double share = whole.share();
  std::printf("run: %.0f s wall, our threads on a CPU %.0f%% of it, load average now %.2f\n",
              now_seconds() - t_start, 100 * share, load_average());
  if (share < 0.6)
    std::printf("note: other processes held the CPUs for much of the run; the wall-time ratios are pessimistic. The\n"
                "      [CPU time] ratios are meaningful only if waiting threads do not spin: run with\n"
                "      OMP_WAIT_POLICY=passive (or OMP_NUM_THREADS=1) on a shared machine.\n");
  return 0;
}

}  // namespace
}  // namespace hotswap

int main(int argc, char** argv) {
  hotswap::Options o;
  if (!hotswap::parse_options(argc, argv, o)) {
    std::fprintf(stderr,
                 "usage: engine_throughput_bench [--presets smollm2-135m,llama-3.2-1b] [--root /tmp/hotswap-bench]\n"
                 "         [--context 128] [--batches 1,4,16,64] [--prompts 128,512] [--min-time 1.5]\n"
                 "         [--min-rounds 12] [--max-steps 40] [--prefill-reps 2] [--matmul-precision auto|f32|bf16]\n");
    return 2;
  }
  if (o.batches.empty() || o.presets.empty()) return 2;
  try {
    return hotswap::run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "engine_throughput_bench: %s\n", e.what());
    return 1;
  }
}
