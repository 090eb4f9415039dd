// Per-KV-head release through the real server (issue 16 item 4, DuoAttention deployment):
// `mixed` with gate_threshold and a gate set that makes half the KV heads of every layer
// streaming holds fewer KV blocks (hotswap_kv_blocks_used) at a long prompt than eager does,
// because the streaming heads' KV outside their window goes back to the pool while the dense
// heads keep theirs; and every block comes back when the request ends.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';

import { CACHE_DIR, baseModel, busy, metrics, request, startServer, streamCompletion, waitFor } from './helpers.js';

const adapterDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hotswap-head-release-test-'));
let server;
let model;
let shape;

const PROMPT_TOKENS = 1200;
const prompt = Array.from({ length: PROMPT_TOKENS }, (_, i) => 10 + ((i * 37) % 200));

before(async () => {
  server = await startServer(['--adapter-dir', adapterDir]);
  model = (await baseModel(server)).id;
  const cfg = JSON.parse(fs.readFileSync(path.join(CACHE_DIR, 'demo-model', 'config.json'), 'utf8'));
  shape = { L: cfg.num_hidden_layers, Hkv: cfg.num_key_value_heads };
  assert.ok(shape.Hkv >= 2 && shape.Hkv % 2 === 0, `demo model KV heads: ${shape.Hkv}`);
  assert.ok(cfg.max_position_embeddings > PROMPT_TOKENS + 100, `context ${cfg.max_position_embeddings}`);
});

after(async () => {
  if (server) {
    const { code } = await server.stop();
    assert.equal(code, 0, `server exit code; logs:\n${server.logs().slice(-4000)}`);
  }
  fs.rmSync(adapterDir, { recursive: true, force: true });
});

// The most hotswap_kv_blocks_used seen while the request runs (sampled from its first token to
// its end), then waits until the server is idle with every block back.
async function peakBlocksUsed(body) {
  const s = streamCompletion(server.url, { model, prompt, temperature: 0, ignore_eos: true, ...body });
  await s.started;
  let peak = 0;
  while (!s.finished) {
    peak = Math.max(peak, (await metrics(server.url)).get('hotswap_kv_blocks_used'));
  }
  const r = await s.done;
  assert.equal(r.status, 200, r.body);
  const m = await waitFor('every KV block back', async () => {
    const now = await metrics(server.url);
    return busy(now).length === 0 ? now : null;
  });
  assert.equal(m.get('hotswap_kv_blocks_used'), 0);
  return peak;
}

describe('per-KV-head release (mixed with gate_threshold)', { concurrency: false }, () => {
  test('half the KV heads streaming hold fewer KV blocks than eager at a long prompt, and all come back', async (t) => {
    // Per layer, alternate KV heads dense (0.9) and streaming (0.1): half of all (layer, KV head) lanes.
    const dict = {};
    for (let l = 0; l < shape.L; ++l)
      dict[`model.layers.${l}.self_attn.adapter.weight`] = Array.from({ length: shape.Hkv }, (_, h) => (h % 2 === 0 ? 0.9 : 0.1));
    const doc = { adapter_type: 'mixed', model_name: 'hotswap-demo', sink_window_size: 16, recent_window_size: 64, block_size: 16, adapter_weight_dict: dict };
    const put = await request(server.url, { method: 'PUT', path: '/v1/adapters/half', body: Buffer.from(JSON.stringify(doc)), headers: { 'content-type': 'application/json' } });
    assert.equal(put.status, 201, put.body);

    const max_tokens = 200;
    const eager = await peakBlocksUsed({ max_tokens, attention: 'eager' });
    const half = await peakBlocksUsed({ max_tokens, adapter: 'half', attention: { impl: 'mixed', gate_threshold: 0.5 } });
    // Without a threshold the gates are continuous (none is 0): every lane keeps all its KV.
    const continuous = await peakBlocksUsed({ max_tokens, adapter: 'half', attention: 'mixed' });
    t.diagnostic(`peak hotswap_kv_blocks_used: eager ${eager}, mixed continuous ${continuous}, mixed gate_threshold 0.5 (half the KV heads streaming) ${half}`);
    const blockSize = 16;  // engine.kv_block_size's default (configs/server.json)
    const eagerBlocks = Math.ceil((PROMPT_TOKENS + max_tokens) / blockSize);
    assert.ok(eager >= eagerBlocks - 1, `eager holds every position: ${eager} blocks of ${eagerBlocks}`);
    assert.ok(continuous >= eagerBlocks - 1, `continuous gates hold every position: ${continuous}`);
    // Half the lanes of the pages outside the window (in carved blocks) plus the windows' whole pages.
    assert.ok(half < eager * 0.65, `half-streaming held ${half} blocks at most, eager ${eager}`);
    assert.ok(half > eager * 0.4, `the dense heads keep theirs: ${half} blocks against eager ${eager}`);
  });
});
