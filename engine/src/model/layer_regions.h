// A decode-sized step's transformer layer in two OpenMP parallel regions instead of seven
// (issue 16). Model::forward otherwise calls linear() once per projection, each call a
// fork/join of the thread team; for a small model those fixed costs, not the weight bytes,
// bound a decode step. Here the threads stay in one region for the norm and q/k/v, and in one
// for o_proj and the whole MLP block (two barriers); each thread normalises the residual
// itself instead of waiting for one thread to do it. The results are bitwise those of the
// per-kernel path: the same kernels, the same column split (kernels/linear_team.h).
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "model/model.h"

namespace hotswap {

struct LayerProjection {
  const TensorView* w;
  const float* bias;  // null if none
};

struct LayerProjections {
  LayerProjection q, k, v, o, gate, up, down;
  const TensorView* input_norm;
  const TensorView* post_attention_norm;
  float eps;
};

// Whether a step of T tokens runs the layer this way: enabled, T below kBf16DotMinRows and
// every projection a linear_team one (weights as stored, not quantised).
bool layer_regions_apply(int64_t T, const LayerProjections& p);

// On by default; off runs every step kernel by kernel (for tests and A/B benchmarks; process-wide,
// not while a step runs).
void set_layer_regions_enabled(bool on);
bool layer_regions_enabled();

// ws.normed = rms_norm(ws.hidden) (input_norm); ws.q, ws.k, ws.v its projections.
void attention_inputs_region(const LayerProjections& p, int64_t T, int64_t D, Workspace& ws);

// ws.hidden += o_proj(ws.attn); then ws.hidden += down(silu(gate(n)) * up(n)) with
// n = rms_norm(ws.hidden) (post_attention_norm). Uses ws.proj, ws.gate, ws.up and ws.normed.
void attention_output_and_mlp_region(const LayerProjections& p, int64_t T, int64_t D, int64_t I, Workspace& ws);

}  // namespace hotswap
