// llama.cpp's side of bench/llama_cpp_compare.sh: the same measurements as
// engine_throughput_bench, made with llama.cpp's C API (libllama from the prebuilt
// @node-llama-cpp/linux-x64 npm package; llama.h from the llama.cpp source node-llama-cpp ships)
// on a GGUF conversion of the same model (scripts/tools/safetensors_to_gguf.py).
//
//  * decode, in rounds as engine_throughput_bench does it: a read-bandwidth pass
//    (bench/roofline.h's ReadBandwidthProbe, 1 GiB, all threads), then one decode step of
//    every batch size B, back to back. Each batch size has its own llama_context on the one
//    model: B sequences at a context of --context tokens (one prompt of random tokens,
//    prefilled once, copied to the other B-1 sequences with llama_memory_seq_cp in a unified
//    KV cache), each step decodes one token per sequence at position `context`, logits for
//    every sequence, and then removes that token again (llama_memory_seq_rm), so every step
//    runs at exactly the same context, as engine_throughput_bench's do;
//  * prefill: one sequence from position 0, one llama_decode of --prompt tokens
//    (n_batch = n_ubatch = prompt), logits of the last token only; best of --prefill-reps
//    after a warm-up, memory cleared before each.
// Threads: a ggml threadpool of --threads threads with llama-bench's defaults (poll 50),
// attached to every context, n_threads = n_threads_batch = --threads; the pool is paused
// (its workers sleep) before every bandwidth pass, and the next llama_decode resumes it.
// Rates are by wall time, plus "tok/s cpu" (best step, tokens / (process CPU seconds / threads))
// and "cpu" (share of the wall time this process's threads were on a CPU), laid out as
// engine_throughput_bench prints them. ggml's threads spin at barriers and poll before they
// sleep, so for llama.cpp the CPU-time rate counts spinning as work: it is a conservative
// figure, while Hotswap's passive OpenMP threads sleep when they wait.
//
//   llama_cpp_compare --model M.gguf --backend-dir DIR [--threads 2] [--context 128]
//       [--batches 1,16] [--prompt 512] [--min-rounds 12] [--min-time 1.5] [--max-steps 40]
//       [--prefill-reps 2] [--flash-attn auto|on|off]
#include <dlfcn.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "ggml-backend.h"
#include "ggml-cpu.h"
#include "llama.h"
#include "roofline.h"

using hotswap::bench::load_average;
using hotswap::bench::now_seconds;
using hotswap::bench::process_cpu_seconds;
using hotswap::bench::ReadBandwidthProbe;

namespace {

struct Options {
  std::string model, backend_dir;
  int threads = 2, context = 128, prompt = 512, min_rounds = 12, max_steps = 40, prefill_reps = 2;
  double min_time = 1.5;
  std::vector<int> batches{1, 16};
  llama_flash_attn_type fa = LLAMA_FLASH_ATTN_TYPE_AUTO;
  bool verbose = false;
};

[[noreturn]] void die(const std::string& m) {
  std::fprintf(stderr, "llama_cpp_compare: %s\n", m.c_str());
  std::exit(1);
}

std::vector<int> parse_list(const std::string& s) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(std::stoi(item));
  return out;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) die("missing value for " + a);
      return argv[++i];
    };
    if (a == "--model") o.model = next();
    else if (a == "--backend-dir") o.backend_dir = next();
    else if (a == "--threads") o.threads = std::stoi(next());
    else if (a == "--context") o.context = std::stoi(next());
    else if (a == "--batches") o.batches = parse_list(next());
    else if (a == "--prompt") o.prompt = std::stoi(next());
    else if (a == "--min-rounds") o.min_rounds = std::stoi(next());
    else if (a == "--min-time") o.min_time = std::stod(next());
    else if (a == "--max-steps") o.max_steps = std::stoi(next());
    else if (a == "--prefill-reps") o.prefill_reps = std::stoi(next());
    else if (a == "--verbose") o.verbose = true;
    else if (a == "--flash-attn") {
      std::string v = next();
      o.fa = v == "on" ? LLAMA_FLASH_ATTN_TYPE_ENABLED
             : v == "off" ? LLAMA_FLASH_ATTN_TYPE_DISABLED
                          : LLAMA_FLASH_ATTN_TYPE_AUTO;
    } else die("unknown option " + a);
  }
  if (o.model.empty()) die("--model is required");
  return o;
}

void quiet_log(ggml_log_level level, const char* text, void*) {
  if (level == GGML_LOG_LEVEL_ERROR || level == GGML_LOG_LEVEL_WARN) std::fputs(text, stderr);
}

// The ggml CPU backend variant the loader picked (from /proc/self/maps).
std::string loaded_cpu_variant_path() {
  std::ifstream maps("/proc/self/maps");
  std::string line, found;
  while (std::getline(maps, line)) {
    if (line.find("libggml-cpu") != std::string::npos) found = line.substr(line.find('/'));
  }
  return found;
}
std::string loaded_cpu_variant() {
  std::string p = loaded_cpu_variant_path();
  return p.empty() ? "?" : p.substr(p.rfind('/') + 1);
}

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct DecodeCtx {
  int batch = 0;
  llama_context* ctx = nullptr;
  llama_batch step{};
  std::vector<double> ms;  // per step
  double best_cpu_tps = 0;  // tokens / (process CPU seconds / threads), best step
  double cpu_s = 0, wall_s = 0;
};

void check(int rc, const char* what) {
  if (rc != 0) die(std::string(what) + " failed: llama_decode returned " + std::to_string(rc));
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse(argc, argv);
  if (!o.verbose) llama_log_set(quiet_log, nullptr);
  if (!o.backend_dir.empty()) ggml_backend_load_all_from_path(o.backend_dir.c_str());
  else ggml_backend_load_all();
  llama_backend_init();

  ggml_backend_dev_t cpu_dev = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
  if (!cpu_dev) die("no CPU backend loaded (--backend-dir?)");
  ggml_backend_reg_t cpu_reg = ggml_backend_dev_backend_reg(cpu_dev);
  auto* tp_new = (decltype(ggml_threadpool_new)*)ggml_backend_reg_get_proc_address(cpu_reg, "ggml_threadpool_new");
  auto* tp_free = (decltype(ggml_threadpool_free)*)ggml_backend_reg_get_proc_address(cpu_reg, "ggml_threadpool_free");
  // ggml_threadpool_pause is exported by the CPU backend library but not offered through
  // get_proc_address: look it up in the variant the loader picked.
  void* cpu_lib = dlopen(loaded_cpu_variant_path().c_str(), RTLD_NOW | RTLD_NOLOAD);
  auto* tp_pause = cpu_lib ? (decltype(ggml_threadpool_pause)*)dlsym(cpu_lib, "ggml_threadpool_pause") : nullptr;
  if (!tp_new || !tp_free || !tp_pause) die("CPU backend lacks ggml_threadpool_new/free/pause");

  llama_model_params mp = llama_model_default_params();
  mp.n_gpu_layers = 0;
  double t0 = now_seconds();
  llama_model* model = llama_model_load_from_file(o.model.c_str(), mp);
  if (!model) die("cannot load " + o.model);
  double load_s = now_seconds() - t0;
  const llama_vocab* vocab = llama_model_get_vocab(model);
  const int n_vocab = llama_vocab_n_tokens(vocab);
  char desc[256];
  llama_model_desc(model, desc, sizeof desc);
  const double weight_gb = double(llama_model_size(model)) / 1e9;

  std::printf("llama_cpp_compare: llama.cpp C API, CPU backend %s, %d threads (ggml threadpool, poll 50), load average %.2f\n",
              loaded_cpu_variant().c_str(), o.threads, load_average());
  std::printf("system info: %s\n", llama_print_system_info());
  std::printf("model: %s: %s, %.3f GB of tensors, %d layers, vocab %d, %.1f s to load (mmap)\n", o.model.c_str(), desc,
              weight_gb, llama_model_n_layer(model), n_vocab, load_s);

  ggml_threadpool_params tpp = ggml_threadpool_params_default(o.threads);
  tpp.poll = 50;
  ggml_threadpool* tp = tp_new(&tpp);
  if (!tp) die("threadpool");

  std::mt19937 rng(1234);
  auto token = [&]() { return llama_token(300 + rng() % (n_vocab - 300)); };

  auto make_ctx = [&](int n_ctx, int n_batch, int n_seq, bool unified) {
    llama_context_params cp = llama_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = n_batch;
    cp.n_ubatch = n_batch;
    cp.n_seq_max = n_seq;
    cp.kv_unified = unified;
    cp.n_threads = o.threads;
    cp.n_threads_batch = o.threads;
    cp.flash_attn_type = o.fa;
    cp.no_perf = true;
    llama_context* ctx = llama_init_from_model(model, cp);
    if (!ctx) die("cannot create a context");
    llama_attach_threadpool(ctx, tp, nullptr);
    return ctx;
  };

  ReadBandwidthProbe probe;
  probe.pass();  // first touch
  // ggml's workers poll for work for a while after each graph; park them before a bandwidth
  // pass so they do not take CPU from it (the next llama_decode resumes the pool).
  auto bandwidth_pass = [&]() {
    tp_pause(tp);
    return probe.pass().wall;
  };

  // ---- decode contexts: prefill the shared context once per batch size ----
  std::vector<DecodeCtx> dcs;
  std::vector<llama_token> prompt_tokens(o.context);
  for (auto& t : prompt_tokens) t = token();
  for (int b : o.batches) {
    DecodeCtx d;
    d.batch = b;
    const int n_ctx = ((o.context + b + 255) / 256) * 256;
    d.ctx = make_ctx(n_ctx, std::max(o.context, b), b, /*unified=*/true);
    check(llama_decode(d.ctx, llama_batch_get_one(prompt_tokens.data(), o.context)), "context prefill");
    llama_memory_t mem = llama_get_memory(d.ctx);
    for (int s = 1; s < b; ++s) llama_memory_seq_cp(mem, 0, s, -1, -1);
    d.step = llama_batch_init(b, 0, 1);
    d.step.n_tokens = b;
    for (int s = 0; s < b; ++s) {
      d.step.pos[s] = o.context;
      d.step.n_seq_id[s] = 1;
      d.step.seq_id[s][0] = s;
      d.step.logits[s] = 1;
    }
    dcs.push_back(std::move(d));
  }
  auto decode_step = [&](DecodeCtx& d) {
    for (int s = 0; s < d.batch; ++s) d.step.token[s] = token();
    double t = now_seconds(), c = process_cpu_seconds();
    check(llama_decode(d.ctx, d.step), "decode step");
    llama_synchronize(d.ctx);
    double ms = (now_seconds() - t) * 1e3;
    double cpu = (process_cpu_seconds() - c) / o.threads;
    d.best_cpu_tps = std::max(d.best_cpu_tps, cpu > 0 ? d.batch / cpu : 0.0);
    d.cpu_s += cpu;
    d.wall_s += ms / 1e3;
    llama_memory_t mem = llama_get_memory(d.ctx);
    for (int s = 0; s < d.batch; ++s) llama_memory_seq_rm(mem, s, o.context, -1);
    return ms;
  };
  for (auto& d : dcs) decode_step(d);  // warm-up

  std::vector<double> bw_rounds;
  std::vector<std::vector<double>> ratio_bw, ratio_b1;  // per batch: per round
  ratio_bw.resize(dcs.size());
  ratio_b1.resize(dcs.size());
  double start = now_seconds();
  int rounds = 0;
  while (rounds < o.max_steps && (rounds < o.min_rounds || now_seconds() - start < o.min_time * dcs.size())) {
    double bw = bandwidth_pass();
    bw_rounds.push_back(bw);
    std::vector<double> step_ms;
    for (auto& d : dcs) {
      double ms = decode_step(d);
      d.ms.push_back(ms);
      step_ms.push_back(ms);
    }
    for (size_t i = 0; i < dcs.size(); ++i) {
      double tps = dcs[i].batch / (step_ms[i] / 1e3);
      ratio_bw[i].push_back(tps / dcs[i].batch * weight_gb / bw);  // GB/s of weights per step / bandwidth
      ratio_b1[i].push_back(tps / (dcs[0].batch / (step_ms[0] / 1e3)));
    }
    ++rounds;
  }

  std::printf("memory read bandwidth during decode rounds: median %.1f GB/s (range %.1f-%.1f, %d passes)\n",
              median(bw_rounds), *std::min_element(bw_rounds.begin(), bw_rounds.end()),
              *std::max_element(bw_rounds.begin(), bw_rounds.end()), rounds);
  std::printf("decode (one token per sequence per step, context %d, logits for every sequence; %d rounds):\n",
              o.context, rounds);
  std::printf("  batch   best ms median ms  tok/s best   tok/s med   tok/s cpu   cpu\n");
  for (size_t i = 0; i < dcs.size(); ++i) {
    auto& d = dcs[i];
    double best = *std::min_element(d.ms.begin(), d.ms.end()), med = median(d.ms);
    std::printf("  %5d %9.2f %9.2f %11.1f %11.1f %11.1f %4.0f%%\n", d.batch, best, med,
                d.batch / (best / 1e3), d.batch / (med / 1e3), d.best_cpu_tps, 100 * d.cpu_s / d.wall_s);
  }
  for (size_t i = 0; i < dcs.size(); ++i) {
    auto& d = dcs[i];
    if (i == 0 && d.batch == 1)
      std::printf("batch-1 decode GB/s / read bandwidth, per round: median %.2f%% (%.3f GB/token)\n",
                  median(ratio_bw[i]) * 100, weight_gb);
    else if (i > 0)
      std::printf("batch-%d / batch-%d aggregate tok/s, per round: median %.2fx\n", d.batch, dcs[0].batch,
                  median(ratio_b1[i]));
  }
  for (auto& d : dcs) {
    llama_batch_free(d.step);
    llama_free(d.ctx);
  }
  dcs.clear();

  // ---- prefill ----
  if (o.prompt > 0) {
    llama_context* ctx = make_ctx(((o.prompt + 255) / 256) * 256, o.prompt, 1, false);
    std::vector<llama_token> toks(o.prompt);
    std::vector<double> ms;
    std::vector<double> bws;
    double best_cpu_tps = 0, cpu_sum = 0, wall_sum = 0;
    for (int rep = 0; rep <= o.prefill_reps; ++rep) {
      for (auto& t : toks) t = token();
      llama_memory_clear(llama_get_memory(ctx), false);
      if (rep > 0) bws.push_back(bandwidth_pass());
      double t = now_seconds(), c = process_cpu_seconds();
      check(llama_decode(ctx, llama_batch_get_one(toks.data(), o.prompt)), "prefill");
      llama_synchronize(ctx);
      if (rep > 0) {  // rep 0 is the warm-up
        double wall = now_seconds() - t, cpu = (process_cpu_seconds() - c) / o.threads;
        ms.push_back(wall * 1e3);
        best_cpu_tps = std::max(best_cpu_tps, o.prompt / cpu);
        cpu_sum += cpu;
        wall_sum += wall;
      }
    }
    double best = *std::min_element(ms.begin(), ms.end());
    std::printf("prefill (one sequence from position 0, one llama_decode, logits for the last token; read bandwidth before each: %.1f GB/s median):\n",
                median(bws));
    std::printf("  prompt reps   best ms median ms  tok/s best   tok/s cpu   cpu\n");
    std::printf("  %6d %4zu %9.1f %9.1f %11.1f %11.1f %4.0f%%\n", o.prompt, ms.size(), best, median(ms),
                o.prompt / (best / 1e3), best_cpu_tps, 100 * cpu_sum / wall_sum);
    llama_free(ctx);
  }
  std::printf("load average now %.2f\n", load_average());
  tp_free(tp);
  llama_model_free(model);
  llama_backend_free();
  return 0;
}
