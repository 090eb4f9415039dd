#include "scheduler/scheduler.h"

#include <algorithm>

#include "core/check.h"

namespace hotswap {

bool ScheduledChunk::samples() const { return seq->num_computed + num_tokens == static_cast<int>(seq->tokens.size()); }

bool Scheduler::reserve(Sequence& seq, int num_tokens) {
  if (!kv_.prepare_write(seq.blocks, seq.num_computed, num_tokens).is_ok()) return false;
  // The state the step will grow to, beside the KV. On failure the KV just reserved stays in
  // the table; the caller frees or preempts the sequence, or keeps it for the next step.
  const int64_t state = seq.attention.backend == nullptr ? 0
                        : seq.attention.backend->state_bytes(seq.attention, shape_, seq.num_computed + num_tokens);
  return state == 0 || kv_.hold_state_bytes(seq.blocks, state).is_ok();
}

void Scheduler::preempt(std::unique_ptr<Sequence>& victim, StepPlan& plan) {
  kv_.free(victim->blocks);
  if (victim->attention_state) victim->attention_state->on_preempted();  // recomputed from position 0 with the KV
  victim->num_computed = 0;
  victim->num_cached_prompt = 0;
  plan.preempted.push_back(victim.get());
  waiting_.push_front(std::move(victim));
}

StepPlan Scheduler::schedule() {
  StepPlan plan;
  int budget = limits_.max_batch_tokens;
  // Prefill tokens this step may take; capped once the decodes are scheduled.
  int prefill_budget = budget;

  // Running sequences: decodes first (one token each, latency-critical), then prefills.
  for (int pass = 0; pass < 2; ++pass) {
    if (pass == 1 && !plan.chunks.empty() && limits_.max_prefill_tokens_while_decoding > 0)
      prefill_budget = limits_.max_prefill_tokens_while_decoding;
    for (size_t i = 0; i < running_.size() && std::min(budget, prefill_budget) > 0; ++i) {
      Sequence& seq = *running_[i];
      if (seq.decoding() != (pass == 0)) continue;
      const int n = std::min(seq.num_uncomputed(), pass == 0 ? budget : std::min(budget, prefill_budget));
      // Make room by preempting the youngest sequences; possibly this one.
      bool ok = reserve(seq, n);
      while (!ok && running_.size() - 1 > i) {
        auto& victim = running_.back();
        std::erase_if(plan.chunks, [&](const ScheduledChunk& c) { return c.seq == victim.get(); });
        preempt(victim, plan);
        running_.pop_back();
        ok = reserve(seq, n);
      }
      if (!ok) {
        preempt(running_[i], plan);
        running_.erase(running_.begin() + static_cast<long>(i));
        break;  // indices moved; the rest waits for the next step
      }
      plan.chunks.push_back({&seq, n});
      budget -= n;
      if (pass == 1) prefill_budget -= n;
    }
  }

  // Admit waiting requests in arrival order while resources last.
  while (!waiting_.empty() && std::min(budget, prefill_budget) > 0 &&
         static_cast<int>(running_.size()) < limits_.max_running) {
    Sequence& seq = *waiting_.front();
    // NSA's compressed cache must see every position from 0, so NSA sequences share no prefix.
    // A request that scores its prompt computes all of it (every position needs its logits).
    if (seq.num_computed == 0 && seq.blocks.blocks.empty() && !seq.attention.cache_namespace.empty() &&
        !seq.request.prompt_logprobs) {
      // A resumed (preempted) sequence finds its generated tokens' blocks too.
      const int cached = kv_.match_prefix(seq.blocks, seq.attention.cache_namespace, seq.tokens);
      seq.num_cached_prompt = std::min(cached, seq.num_prompt_tokens);
      seq.num_computed = cached;
      kv_.release_invisible(seq.blocks, seq.attention.release_rule, seq.attention.kept_lanes, seq.num_computed);
    }
    const int n = std::min(seq.num_uncomputed(), std::min(budget, prefill_budget));
    if (!reserve(seq, n)) {
      // The pool is full: wait for blocks to come back, holding none. A waiting sequence that
      // kept the prefix blocks it matched could starve the running ones, and two of them
      // could wait on each other forever. The blocks stay in the prefix cache, so the next
      // attempt finds them again unless they were reused meanwhile.
      kv_.free(seq.blocks);
      seq.num_computed = 0;
      seq.num_cached_prompt = 0;
      break;
    }
    plan.chunks.push_back({&seq, n});
    budget -= n;
    prefill_budget -= n;
    running_.push_back(std::move(waiting_.front()));
    waiting_.pop_front();
  }
  return plan;
}

void Scheduler::commit(const StepPlan& plan) {
  for (const ScheduledChunk& c : plan.chunks) {
    Sequence& seq = *c.seq;
    seq.num_computed += c.num_tokens;
    // Full blocks are now computed: later requests with the same prefix share them.
    if (!seq.attention.cache_namespace.empty()) {
      std::span<const int32_t> shared(seq.tokens);
      if (!seq.attention.share_generated_kv) shared = shared.first(static_cast<size_t>(seq.num_prompt_tokens));
      kv_.publish_full_blocks(seq.blocks, seq.attention.cache_namespace, shared);
    }
    // Streaming: pages no future query can see go back to the pool (mixed: per KV head).
    kv_.release_invisible(seq.blocks, seq.attention.release_rule, seq.attention.kept_lanes, seq.num_computed);
  }
}

void Scheduler::finish(Sequence* seq) {
  kv_.free(seq->blocks);
  auto same = [&](const std::unique_ptr<Sequence>& s) { return s.get() == seq; };
  if (auto it = std::find_if(running_.begin(), running_.end(), same); it != running_.end()) {
    running_.erase(it);
    return;
  }
  if (auto it = std::find_if(waiting_.begin(), waiting_.end(), same); it != waiting_.end()) waiting_.erase(it);
}

std::vector<Sequence*> Scheduler::all() {
  std::vector<Sequence*> out;
  for (auto& s : running_) out.push_back(s.get());
  for (auto& s : waiting_) out.push_back(s.get());
  return out;
}

}  // namespace hotswap
