// The Gateway API Inference Extension's model-server protocol through the real server (issue 15
// item 2, docs/metrics.md): with one running slot, requests queue; while they run and wait,
// /metrics shows the queue depth (vllm:num_requests_waiting), the KV-cache utilisation
// (vllm:kv_cache_usage_perc, in (0, 1], = used / total blocks), and vllm:lora_requests_info
// with the adapters of the running and of the waiting requests by name (max_lora = --max-running,
// value = a current Unix time); a waiting adapter moves to running when the running request
// goes; everything is back to 0 / empty once the server is idle. Every wait is on a /metrics
// value (waitFor), never on a timer.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { baseModel, busy, CACHE_DIR, metrics, request, rng, startServer, waitFor } from './helpers.js';

const adapterDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hotswap-gateway-metrics-test-'));
const MAX_RUNNING = 1;
const KV_TOKENS = 4096;
// Long enough to still run while the test scrapes (the demo model decodes fast); the running
// ones are cancelled by disconnecting, not waited for.
const MAX_TOKENS = 3500;
const PROMPT = 'The lighthouse keeper climbed the stairs every evening and counted them one by one';

let server;
let model;

// A mixed adapter_weight.json text for the demo model (as in adapters.test.mjs).
function mixedAdapter(seed, layers, heads) {
  const r = rng(seed);
  const dict = {};
  for (let i = 0; i < layers; i++) {
    dict[`model.layers.${i}.self_attn.adapter.weight`] = Array.from({ length: heads }, () => {
      const u = r();
      return u < 0.3 ? 0 : u < 0.5 ? 1 : Math.round(r() * 1000) / 1000;
    });
  }
  return JSON.stringify({ adapter_type: 'mixed', model_name: 'hotswap-demo', sink_window_size: 4, recent_window_size: 8, block_size: 4, adapter_weight_dict: dict });
}

// The gateway's view of one scrape: the four gauges, and the LoRA info gauge's labels and value.
function gateway(m) {
  const lora = [...m.entries()].filter(([k]) => k.startsWith('vllm:lora_requests_info{'));
  assert.equal(lora.length, 1, `one vllm:lora_requests_info series: ${JSON.stringify(lora)}`);
  const [key, value] = lora[0];
  const labels = Object.fromEntries([...key.matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
  const names = (s) => (s === '' ? [] : s.split(','));
  return {
    waiting: m.get('vllm:num_requests_waiting'),
    running: m.get('vllm:num_requests_running'),
    kv: m.get('vllm:kv_cache_usage_perc'),
    kvOld: m.get('vllm:gpu_cache_usage_perc'),
    maxLora: labels.max_lora,
    runningAdapters: names(labels.running_lora_adapters),
    waitingAdapters: names(labels.waiting_lora_adapters),
    loraLabels: Object.keys(labels).sort(),
    stamp: value,
    m,
  };
}

// Invariants of every scrape: the vLLM-named gauges are the hotswap_* numbers of the same
// scrape, the utilisation is a fraction, the info gauge's value is a current Unix time.
function checkConsistent(g) {
  const m = g.m;
  assert.equal(g.waiting, m.get('hotswap_queue_depth'));
  assert.equal(g.running, m.get('hotswap_running_sequences'));
  const total = m.get('hotswap_kv_blocks_total');
  assert.ok(total > 0);
  assert.ok(Math.abs(g.kv - m.get('hotswap_kv_blocks_used') / total) < 1e-6, `kv ${g.kv} vs ${m.get('hotswap_kv_blocks_used')}/${total}`);
  assert.ok(g.kv >= 0 && g.kv <= 1, `kv utilisation ${g.kv} in [0, 1]`);
  assert.equal(g.kvOld, g.kv, 'the deprecated vllm:gpu_cache_usage_perc is the same number');
  assert.deepEqual(g.loraLabels, ['max_lora', 'running_lora_adapters', 'waiting_lora_adapters']);
  assert.equal(g.maxLora, String(MAX_RUNNING));
  assert.ok(Math.abs(g.stamp - Date.now() / 1000) < 60, `lora info value ${g.stamp} is a current Unix time`);
  assert.equal(m.get(`vllm:cache_config_info{block_size="16",num_gpu_blocks="${total}"}`), 1, 'cache_config_info');
}

async function scrape() {
  const g = gateway(await metrics(server.url));
  checkConsistent(g);
  return g;
}

// A streamed completion that the test ends by disconnecting (the server then cancels it).
function open(body) {
  const req = http.request(`${server.url}/v1/completions`, { method: 'POST', agent: false, headers: { 'content-type': 'application/json' } });
  const outcome = new Promise((resolve) => {
    req.on('response', (res) => {
      res.on('data', () => {});
      res.on('end', () => resolve({ status: res.statusCode, ended: true }));
      res.on('error', () => resolve({ status: res.statusCode, ended: false }));
      res.on('aborted', () => resolve({ status: res.statusCode, ended: false }));
    });
    req.on('error', () => resolve({ status: null, ended: false }));
  });
  req.end(JSON.stringify({ model, prompt: PROMPT, max_tokens: MAX_TOKENS, temperature: 0, ignore_eos: true, stream: true, ...body }));
  return { close: () => req.destroy(), outcome };
}

const sameSet = (a, b) => JSON.stringify([...a].sort()) === JSON.stringify([...b].sort());

before(async () => {
  server = await startServer(['--adapter-dir', adapterDir, '--max-running', String(MAX_RUNNING), '--max-queue', '8',
                              '--kv-cache-tokens', String(KV_TOKENS), '--max-new-tokens', String(MAX_TOKENS)]);
  model = (await baseModel(server)).id;
  const cfg = JSON.parse(fs.readFileSync(path.join(CACHE_DIR, 'demo-model', 'config.json'), 'utf8'));
  for (const [name, seed] of [['gw-a', 11], ['gw-b', 12]]) {
    const r = await request(server.url, { method: 'PUT', path: `/v1/adapters/${name}`, body: Buffer.from(mixedAdapter(seed, cfg.num_hidden_layers, cfg.num_key_value_heads)), headers: { 'content-type': 'application/json' } });
    assert.equal(r.status, 201, r.body);
  }
});

after(async () => {
  if (server) {
    const { code } = await server.stop();
    assert.equal(code, 0, `server exit code; logs:\n${server.logs().slice(-4000)}`);
  }
  fs.rmSync(adapterDir, { recursive: true, force: true });
});

describe('gateway metrics (model-server protocol)', { concurrency: false }, () => {
  test('idle: every gauge is 0 and both adapter lists are empty; types are gauge', async () => {
    const r = await request(server.url, { path: '/metrics' });
    for (const name of ['vllm:num_requests_waiting', 'vllm:num_requests_running', 'vllm:kv_cache_usage_perc', 'vllm:gpu_cache_usage_perc', 'vllm:lora_requests_info', 'vllm:cache_config_info'])
      assert.match(r.body, new RegExp(`^# TYPE ${name} gauge$`, 'm'), name);
    const g = await scrape();
    assert.deepEqual([g.waiting, g.running, g.kv, g.runningAdapters, g.waitingAdapters], [0, 0, 0, [], []]);
  });

  test('queued requests and KV use show up, the adapters listed by name; they move and return to 0', async () => {
    const streams = [];
    try {
      // One running request with gw-a.
      streams.push(open({ model: 'gw-a' }));
      let g = await waitFor('gw-a running', async () => {
        const s = await scrape();
        return s.running === 1 && sameSet(s.runningAdapters, ['gw-a']) && s;
      });
      assert.ok(g.kv > 0, `a running request holds KV blocks: ${g.kv}`);

      // Three behind it (max-running 1): gw-b twice (listed once) and the base model (not listed).
      // Opened one at a time, each counted as waiting before the next: the queue's order (and
      // so which request each close below admits) is the order written here.
      const first = g.stamp;
      for (const [i, body] of [{ model: 'gw-b' }, {}, { model: 'gw-b' }].entries()) {
        streams.push(open(body));
        g = await waitFor(`${i + 1} waiting behind gw-a`, async () => {
          const s = await scrape();
          return s.waiting === i + 1 && s;
        });
      }
      assert.ok(g.kv > 0 && g.kv <= 1, `KV utilisation ${g.kv}`);
      assert.deepEqual(g.runningAdapters, ['gw-a']);
      assert.deepEqual(g.waitingAdapters, ['gw-b']);
      assert.equal(g.running, 1);
      assert.ok(g.stamp >= first, `the info gauge's time does not go back: ${first} then ${g.stamp}`);

      // The running request goes (its client disconnects): gw-b is admitted and runs, the base
      // model request and the other gw-b wait.
      streams[0].close();
      g = await waitFor('gw-b running, 2 waiting', async () => {
        const s = await scrape();
        return s.running === 1 && s.waiting === 2 && sameSet(s.runningAdapters, ['gw-b']) && s;
      });
      assert.deepEqual(g.waitingAdapters, ['gw-b']);
      assert.ok(g.kv > 0 && g.kv <= 1, `KV utilisation ${g.kv}`);

      streams[1].close();
      g = await waitFor('base model request running, gw-b waiting', async () => {
        const s = await scrape();
        return s.running === 1 && s.waiting === 1 && s.runningAdapters.length === 0 && s;
      });
      assert.deepEqual(g.waitingAdapters, ['gw-b']);
    } finally {
      for (const s of streams) s.close();
    }
    for (const s of streams) {
      const o = await s.outcome;
      assert.notEqual(o.status, 429, 'no request was refused (max-queue 8)');
    }
    const g = await waitFor('idle', async () => {
      const s = await scrape();
      return s.waiting === 0 && s.running === 0 && s.kv === 0 && s.runningAdapters.length === 0 && s.waitingAdapters.length === 0 &&
        busy(s.m).length === 0 && s;
    });
    assert.equal(g.m.get('hotswap_kv_blocks_used'), 0);
  });
});
