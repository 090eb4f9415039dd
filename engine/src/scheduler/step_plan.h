// What the scheduler decided for one engine step: which sequences run and how many of
// their uncomputed tokens each computes (1 for a decode, up to the budget for a prefill
// chunk), vLLM-style: prefill and decode are the same thing at different sizes.
#pragma once

#include <vector>

namespace hotswap {

struct Sequence;

struct ScheduledChunk {
  Sequence* seq = nullptr;
  int num_tokens = 0;
  bool samples() const;  // the chunk reaches the end of the sequence's tokens
};

struct StepPlan {
  std::vector<ScheduledChunk> chunks;
  std::vector<Sequence*> preempted;  // gave their blocks back this step; recomputed later
  bool empty() const { return chunks.empty(); }
};

}  // namespace hotswap
