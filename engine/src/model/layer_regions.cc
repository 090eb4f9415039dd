#include "model/layer_regions.h"

#include <algorithm>
#include <atomic>
#include <vector>

#include "kernels/add_inplace.h"
#include "kernels/linear_team.h"
#include "kernels/rms_norm.h"
#include "kernels/silu_mul.h"
#include "kernels/team.h"

namespace hotswap {
namespace {

enum Buffer { kNormed, kResidual, kActivation, kNumBuffers };

// A thread's own copy of a step's small vector (T rows of D or I floats), kept between steps.
float* thread_buffer(Buffer which, int64_t n) {
  thread_local std::vector<float> buffers[kNumBuffers];
  std::vector<float>& b = buffers[which];
  if (b.size() < static_cast<size_t>(n)) b.resize(static_cast<size_t>(n));
  return b.data();
}

// As Model::forward's project(): the AMX-packed form when it has one and it applies.
void project(const LayerProjection& p, const float* x, int64_t T, float* y, int index, int count) {
  if (const kernels::Bf16Packed* packed = p.packed_in_use())
    return kernels::linear_bf16_packed_team(x, T, *packed, p.bias, y, index, count);
  kernels::linear_team(x, T, *p.w, p.bias, y, index, count);
}

std::atomic<LayerRegions> g_mode{LayerRegions::kAuto};

}  // namespace

void set_layer_regions(LayerRegions mode) { g_mode.store(mode, std::memory_order_relaxed); }
LayerRegions layer_regions() { return g_mode.load(std::memory_order_relaxed); }

bool layer_regions_apply(int64_t T, const LayerProjections& p) {
  if (layer_regions() == LayerRegions::kOff) return false;
  for (const LayerProjection* q : {&p.q, &p.k, &p.v, &p.o, &p.gate, &p.up, &p.down}) {
    const bool packed = q->packed_in_use() != nullptr && T <= kernels::kBf16PackedTeamMaxRows;
    if (!packed && !kernels::linear_team_applies(T, *q->w)) return false;
  }
  return true;
}

void attention_inputs_region(const LayerProjections& p, int64_t T, int64_t D, Workspace& ws) {
  kernels::team_run(kernels::team_threads(), [&](int index, int count) {
    // Thread 0's copy is ws.normed, which attention backends may read (LayerInputs).
    float* normed = index == 0 ? ws.normed.data() : thread_buffer(kNormed, T * D);
    kernels::rms_norm(ws.hidden.data(), T, D, *p.input_norm, p.eps, normed);
    project(p.q, normed, T, ws.q.data(), index, count);
    project(p.k, normed, T, ws.k.data(), index, count);
    project(p.v, normed, T, ws.v.data(), index, count);
  });
}

void attention_output_and_mlp_region(const LayerProjections& p, int64_t T, int64_t D, int64_t I, Workspace& ws) {
  kernels::team_run(kernels::team_threads(), [&](int index, int count) {
    project(p.o, ws.attn.data(), T, ws.proj.data(), index, count);
    kernels::team_barrier();  // o_proj complete
    // The residual after attention, on every thread (ws.hidden is updated after the next
    // barrier, once no thread reads it any more).
    float* residual = thread_buffer(kResidual, T * D);
    std::copy_n(ws.hidden.data(), T * D, residual);
    kernels::add_inplace(residual, ws.proj.data(), T * D);
    float* normed = index == 0 ? ws.normed.data() : thread_buffer(kNormed, T * D);
    kernels::rms_norm(residual, T, D, *p.post_attention_norm, p.eps, normed);
    project(p.gate, normed, T, ws.gate.data(), index, count);
    project(p.up, normed, T, ws.up.data(), index, count);
    kernels::team_barrier();  // gate and up complete; ws.hidden and ws.proj no longer read
    if (index == 0) std::copy_n(residual, T * D, ws.hidden.data());
    float* act = thread_buffer(kActivation, T * I);
    kernels::silu_mul(ws.gate.data(), ws.up.data(), act, T * I);
    project(p.down, act, T, ws.proj.data(), index, count);
  });
  kernels::add_inplace(ws.hidden.data(), ws.proj.data(), T * D);
}

void all_layers_region(std::span<const LayerProjections> layers, int64_t T, int64_t D, int64_t I, Workspace& ws,
                       const std::function<void(int layer)>& attend) {
  kernels::team_run(kernels::team_threads(), [&](int index, int count) {
    float* residual = thread_buffer(kResidual, T * D);
    std::copy_n(ws.hidden.data(), T * D, residual);
    float* normed = index == 0 ? ws.normed.data() : thread_buffer(kNormed, T * D);
    float* act = thread_buffer(kActivation, T * I);
    for (size_t l = 0; l < layers.size(); ++l) {
      const LayerProjections& p = layers[l];
      kernels::rms_norm(residual, T, D, *p.input_norm, p.eps, normed);
      project(p.q, normed, T, ws.q.data(), index, count);
      project(p.k, normed, T, ws.k.data(), index, count);
      project(p.v, normed, T, ws.v.data(), index, count);
      kernels::team_barrier();  // q, k, v complete
      if (index == 0) attend(static_cast<int>(l));
      kernels::team_barrier();  // ws.attn complete
      project(p.o, ws.attn.data(), T, ws.proj.data(), index, count);
      kernels::team_barrier();  // o_proj complete
      kernels::add_inplace(residual, ws.proj.data(), T * D);
      kernels::rms_norm(residual, T, D, *p.post_attention_norm, p.eps, normed);
      project(p.gate, normed, T, ws.gate.data(), index, count);
      project(p.up, normed, T, ws.up.data(), index, count);
      kernels::team_barrier();  // gate and up complete
      kernels::silu_mul(ws.gate.data(), ws.up.data(), act, T * I);
      project(p.down, act, T, ws.proj.data(), index, count);
      kernels::team_barrier();  // down complete (ws.proj is written again only after two more)
      kernels::add_inplace(residual, ws.proj.data(), T * D);
    }
    if (index == 0) std::copy_n(residual, T * D, ws.hidden.data());
  });
}

}  // namespace hotswap
