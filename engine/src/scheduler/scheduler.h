// Continuous batching policy. Engine thread only; no locks inside.
//
// Each step has a token budget. Running sequences that decode come first (one token
// each), then running prefills continue in chunks, then waiting requests are admitted in
// arrival order while the budget, the sequence limit and the KV pool allow. While anything
// decodes, prefill tokens per step are capped lower (max_prefill_tokens_while_decoding): a
// long prefill chunk in the same step would stall every stream's next token for as long as
// it takes (on a CPU, a 512-token chunk of a 1B model is seconds). When the pool
// cannot hold a running sequence's next tokens, the most recently admitted sequence is
// preempted: its blocks are freed and it is recomputed later from its tokens, so nothing is
// lost or corrupted. A sequence's attention state outside the KV cache (key summaries,
// compressed caches: AttentionBackend::state_bytes) is charged against the same pool, so it
// is admitted, preempted and refused exactly like the KV.
#pragma once

#include <deque>
#include <memory>
#include <vector>

#include "kv_cache/kv_cache_manager.h"
#include "scheduler/sequence.h"
#include "scheduler/step_plan.h"

namespace hotswap {

struct SchedulerLimits {
  int max_batch_tokens = 512;
  int max_running = 64;
  int max_prefill_tokens_while_decoding = 0;  // 0 = max_batch_tokens
};

class Scheduler {
 public:
  // `shape`: the model's, for the backends' state sizes.
  Scheduler(KvCacheManager& kv, SchedulerLimits limits, const ModelShape& shape = {})
      : kv_(kv), limits_(limits), shape_(shape) {}

  void add(std::unique_ptr<Sequence> seq) { waiting_.push_back(std::move(seq)); }
  StepPlan schedule();
  // After the step: the chunk's tokens are computed; prefix blocks become shareable.
  void commit(const StepPlan& plan);
  // Removes a sequence (finished or cancelled) and frees its blocks.
  void finish(Sequence* seq);

  std::vector<Sequence*> all();  // running then waiting
  int num_waiting() const { return static_cast<int>(waiting_.size()); }
  int num_running() const { return static_cast<int>(running_.size()); }
  bool idle() const { return waiting_.empty() && running_.empty(); }
  // The two sets, for statistics (the adapters in use, publish_stats in engine.cc).
  const std::vector<std::unique_ptr<Sequence>>& running() const { return running_; }
  const std::deque<std::unique_ptr<Sequence>>& waiting() const { return waiting_; }

 private:
  bool reserve(Sequence& seq, int num_tokens);
  void preempt(std::unique_ptr<Sequence>& victim, StepPlan& plan);

  KvCacheManager& kv_;
  SchedulerLimits limits_;
  ModelShape shape_;
  std::deque<std::unique_ptr<Sequence>> waiting_;
  std::vector<std::unique_ptr<Sequence>> running_;  // in admission order
};

}  // namespace hotswap
