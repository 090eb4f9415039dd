// A decode-sized step's transformer layer in two OpenMP parallel regions instead of seven
// (issue 16). Model::forward otherwise calls linear() once per projection, each call a
// fork/join of the thread team; for a small model those fixed costs, not the weight bytes,
// bound a decode step. Here the threads stay in one region for the norm and q/k/v, and in one
// for o_proj and the whole MLP block (two barriers); each thread normalises the residual
// itself instead of waiting for one thread to do it. The results are bitwise those of the
// per-kernel path: the same kernels, the same column split (kernels/linear_team.h).
#pragma once

#include <cstdint>
#include <functional>
#include <span>

#include "core/tensor.h"
#include "kernels/bf16_packed.h"
#include "model/model.h"

namespace hotswap {

struct LayerProjection {
  const TensorView* w;
  const float* bias;                          // null if none
  const kernels::Bf16Packed* packed = nullptr;  // W packed for AMX, used when it applies

  // The packed form when it exists and the kernels multiply bf16 products with AMX, else null.
  const kernels::Bf16Packed* packed_in_use() const {
    return packed != nullptr && !packed->empty() && kernels::bf16_packed_applies() ? packed : nullptr;
  }
};

struct LayerProjections {
  LayerProjection q, k, v, o, gate, up, down;
  const TensorView* input_norm;
  const TensorView* post_attention_norm;
  float eps;
};

// Whether a step of T tokens runs the layer this way: enabled, and every projection a team
// one: AMX-packed up to kBf16PackedTeamMaxRows rows, else linear_team's (weights as stored,
// not quantised; T below kBf16DotMinRows).
bool layer_regions_apply(int64_t T, const LayerProjections& p);

// kAuto (the default): one region for all layers when the attention is cheap, else two a layer.
// The others, for tests and A/B benchmarks: kPerLayer always two a layer, kOff kernel by
// kernel. Process-wide; not while a step runs.
enum class LayerRegions { kAuto, kPerLayer, kOff };
void set_layer_regions(LayerRegions mode);
LayerRegions layer_regions();

// ws.normed = rms_norm(ws.hidden) (input_norm); ws.q, ws.k, ws.v its projections.
void attention_inputs_region(const LayerProjections& p, int64_t T, int64_t D, Workspace& ws);

// ws.hidden += o_proj(ws.attn); then ws.hidden += down(silu(gate(n)) * up(n)) with
// n = rms_norm(ws.hidden) (post_attention_norm). Uses ws.proj, ws.gate, ws.up and ws.normed.
void attention_output_and_mlp_region(const LayerProjections& p, int64_t T, int64_t D, int64_t I, Workspace& ws);

// Every layer of a step in one region (a decode step whose attention is cheap enough for one
// thread): per layer the threads compute q/k/v, thread 0 runs attend(layer) (RoPE, the K/V
// write, the attention into ws.attn) while the others wait, then o_proj and the MLP block, five
// barriers a layer. Each thread keeps its own copy of the residual stream; ws.hidden holds it
// at the end. Needs layer_regions_apply for every layer.
void all_layers_region(std::span<const LayerProjections> layers, int64_t T, int64_t D, int64_t I, Workspace& ws,
                       const std::function<void(int layer)>& attend);

}  // namespace hotswap
