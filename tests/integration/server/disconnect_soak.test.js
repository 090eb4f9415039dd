// A bounded disconnect soak (issue 11, item 3). 12 concurrent clients send streamed
// requests (default 2,000 after a 300-request warm-up) to /v1/completions and
// /v1/chat/completions, over five attention set-ups: eager, streaming, mixed with an
// uploaded mixed adapter (explicit `attention: "mixed"`, and `model: <adapter>` = auto with a
// second mixed adapter), nsa with an uploaded NSA adapter. The prompts share a long prefix, so
// the prefix cache takes part. A seeded PRNG decides every request; 30% of the clients hang
// up: a third of those before any response byte (after the whole request, or in its
// middle), the rest after a random number of response bytes (up to the end of the stream);
// about a third of all hang-ups are resets (RST). Every client that stays gets exactly the
// greedy (temperature 0) text the same request got alone before the soak. At the end: the
// server is alive, nothing runs or waits, no KV block is held by a sequence
// (hotswap_kv_blocks_used counts referenced blocks; the prefix cache's blocks of finished
// sequences count as free), no connection is left open, RSS is flat (bound below) and every
// greedy reference is answered identically again.
//
// Environment: HOTSWAP_SOAK_REQUESTS (default 2000; keep >= 1000 in CI), HOTSWAP_SOAK_WARMUP
// (default 300), HOTSWAP_SOAK_SEED, HOTSWAP_SOAK_RSS_BOUND_MIB (default 16; not checked
// against a sanitizer build unless set), HOTSWAP_TEST_TIME_SCALE (multiplies every deadline,
// e.g. 10 for a sanitizer build).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BIN, CACHE_DIR, CROSS_BATCH_ARGS, baseModel, busy, idle, metrics, request, rng, sleep, sseData, startServer } from './helpers.js';
import {
  endOfChunkedResponse, fullExchange, parseResponse, partialRequestThenHangUp, readThenHangUp, requestBytes, sendThenHangUp,
} from './rude_clients.js';

const TOTAL = Number(process.env.HOTSWAP_SOAK_REQUESTS ?? 2000);
const WARMUP = Number(process.env.HOTSWAP_SOAK_WARMUP ?? 300);
const SEED = Number(process.env.HOTSWAP_SOAK_SEED ?? 0x5eed11);
const TIME_SCALE = Number(process.env.HOTSWAP_TEST_TIME_SCALE ?? 1);
const CLIENTS = 12;
const DISCONNECT_SHARE = 0.3;
// The RSS bound. Measured on the demo model (Release build, 2 cores, 12 clients): VmRSS is
// about 290 MiB after the warm-up (the 256 MiB KV cache is allocated and zeroed up front, so
// using its blocks adds nothing), and it then grew by 0.02, 0.06, 0.3 MiB over 2,000 requests,
// by 4.7 MiB over 1,200, 0.7 MiB over 3,000 and 5.2 MiB over 6,000: allocator noise (malloc
// arenas of the I/O and engine threads), not growth with the request count. 16 MiB is three
// times the largest of these and still fails on anything kept per request from 8 KiB up (a
// session's buffers, a token stream, a sequence's tokens and sampler) over 2,000 requests.
// A sanitizer's allocator (ASan's quarantine alone is 256 MiB) makes RSS meaningless: there
// the bound applies only if HOTSWAP_SOAK_RSS_BOUND_MIB is set, and LeakSanitizer at the
// server's exit (the exit code is checked) catches what leaks.
const RSS_BOUND_MIB = process.env.HOTSWAP_SOAK_RSS_BOUND_MIB === undefined ? undefined : Number(process.env.HOTSWAP_SOAK_RSS_BOUND_MIB);
const SANITIZED = /__asan_init|__tsan_init/.test(fs.readFileSync(BIN).toString('latin1'));
const RSS_BOUND_KIB = (RSS_BOUND_MIB ?? (SANITIZED ? Infinity : 16)) * 1024;

const adapterDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hotswap-soak-adapters-'));
let server;
let model;
let cfg;


function mixedAdapter(seed) {
  const r = rng(seed);
  const dict = {};
  for (let i = 0; i < cfg.num_hidden_layers; i++) {
    dict[`model.layers.${i}.self_attn.adapter.weight`] = Array.from({ length: cfg.num_key_value_heads }, () => {
      const u = r();
      return u < 0.3 ? 0 : u < 0.5 ? 1 : Math.round(r() * 1000) / 1000;
    });
  }
  return JSON.stringify({ adapter_type: 'mixed', sink_window_size: 4, recent_window_size: 8, block_size: 4, adapter_weight_dict: dict });
}

// An NSA adapter (JSON encoding, specs/adapters.md): max-pool keys, MLP values with a small
// hidden size, small windows so that the sparse branches matter on these prompts.
function nsaAdapter(seed) {
  const r = rng(seed);
  const L = cfg.num_hidden_layers;
  const H = cfg.num_attention_heads;
  const Hkv = cfg.num_key_value_heads;
  const d = cfg.head_dim ?? cfg.hidden_size / H;
  const D = cfg.hidden_size;
  const l = 8;
  const hidden = 8;
  const tensor = (shape, scale) => ({ shape, data: Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => Math.round((r() * 2 - 1) * scale * 1e4) / 1e4) });
  const dict = {};
  for (let i = 0; i < L; i++) {
    const p = `model.layers.${i}.self_attn.nsa.`;
    dict[`${p}k_compress.pos_emb`] = tensor([Hkv, l, d], 0.1);
    dict[`${p}v_compress.pos_emb`] = tensor([Hkv, l, d], 0.1);
    for (let h = 0; h < Hkv; h++) {
      dict[`${p}v_compress.compress_mlps.${h}.0.weight`] = tensor([hidden, l * d], 0.05);
      dict[`${p}v_compress.compress_mlps.${h}.2.weight`] = tensor([d, hidden], 0.3);
    }
    dict[`${p}compress_mem_kv`] = tensor([2, Hkv, 1, d], 0.1);
    dict[`${p}strategy_combiner.0.weight`] = tensor([3 * H, D], 0.05);
    dict[`${p}strategy_combiner.0.bias`] = tensor([3 * H], 0.5);
  }
  return JSON.stringify({
    adapter_type: 'nsa', compress_block_size: l, compress_stride: 4, selection_block_size: 8, num_selected_blocks: 2,
    sliding_window_size: 16, k_compress: 'max_pool', v_compress: 'mlp', mlp_hidden_size: hidden, num_mem_tokens: 1,
    adapter_weight_dict: dict,
  });
}

// Attention set-ups (request fields) and prompts. The prompts share a long prefix (several
// KV blocks), so later requests reuse cached blocks.
const setups = [
  { name: 'eager', fields: () => ({ attention: 'eager' }) },
  { name: 'streaming', fields: () => ({ attention: { impl: 'streaming', sink_window_size: 4, recent_window_size: 8, block_size: 4 } }) },
  { name: 'mixed', fields: () => ({ adapter: 'soak-mixed', attention: 'mixed' }) },
  { name: 'mixed-b (model = adapter, auto)', fields: () => ({ model: 'soak-mixed-b' }) },
  { name: 'nsa', fields: () => ({ adapter: 'soak-nsa', attention: 'nsa' }) },
];
const prefix = 'You are a helpful assistant on a lighthouse. Answer in full sentences and keep to the topic. ';
const prompts = [
  `${prefix}Tell me about the sea.`,
  `${prefix}What does the keeper eat?`,
  `${prefix}Describe a storm at night, with the waves breaking on the rocks below the lamp room.`,
  'A short one.',
  `${prefix}${prefix}Repeat the instructions twice and then say what the light is for.`,
];
const routes = ['/v1/completions', '/v1/chat/completions'];
const maxTokensOf = (p) => 8 + 8 * (p % 3);

function body(route, p, s) {
  const b = { model, max_tokens: maxTokensOf(p), temperature: 0, ignore_eos: true, stream: true, ...setups[s].fields() };
  if (route === '/v1/completions') b.prompt = prompts[p];
  else b.messages = [{ role: 'user', content: prompts[p] }];
  return b;
}
const key = (r, p, s) => `${r} | prompt ${p} | ${setups[s].name}`;

// The text of a complete streamed response; throws on anything malformed.
function streamedText(raw, route) {
  const r = parseResponse(raw);
  if (r.status !== 200) throw new Error(`status ${r.status}: ${r.body.toString().slice(0, 300)}`);
  const events = sseData(r.body.toString('utf8'));
  if (events.at(-1) !== '[DONE]') throw new Error('stream does not end with [DONE]');
  let text = '';
  let finish = null;
  for (const e of events.slice(0, -1)) {
    const j = JSON.parse(e);
    if (j.error) throw new Error(`error event: ${e}`);
    for (const c of j.choices) {
      text += route === '/v1/completions' ? c.text : (c.delta.content ?? '');
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  if (finish !== 'length') throw new Error(`finish_reason ${finish}`);
  return text;
}

// Resolves true when `promise` settles within `ms`, false otherwise; leaves no timer behind.
function within(promise, ms) {
  let timer;
  const late = new Promise((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  return Promise.race([promise.then(() => true, () => true), late]).finally(() => clearTimeout(timer));
}

const alive = () => server.proc.exitCode === null && server.proc.signalCode === null;

// The text of a complete streamed response and its length in bytes (the clients that hang
// up after N bytes pick N below it; the same response can be shorter when the server
// packs several tokens into one event, so they also hang up at its end).
async function complete(route, p, s) {
  const raw = await fullExchange(server.url, requestBytes({ path: route, body: body(route, p, s), headers: { connection: 'close' } }), { timeoutMs: 60_000 * TIME_SCALE });
  return { text: streamedText(raw, route), bytes: raw.length };
}

// Every (route, prompt, set-up) served alone, one after the other.
async function references() {
  const out = {};
  for (const r of routes)
    for (let p = 0; p < prompts.length; p++)
      for (let s = 0; s < setups.length; s++) out[key(r, p, s)] = await complete(r, p, s);
  return out;
}

function rssKiB() {
  const status = fs.readFileSync(`/proc/${server.proc.pid}/status`, 'utf8');
  const m = status.match(/^VmRSS:\s+(\d+) kB/m);
  assert.ok(m, 'VmRSS in /proc/<pid>/status');
  return Number(m[1]);
}


async function waitIdle(what, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs * TIME_SCALE;
  let last;
  for (;;) {
    if (!alive()) assert.fail(`server died before ${what}: ${JSON.stringify(await server.exited)}`);
    last = await metrics(server.url);
    if (idle(last)) return last;
    if (Date.now() > deadline) {
      assert.fail(`${what}: not idle within ${timeoutMs * TIME_SCALE} ms: ${busy(last).join(', ')}`);
    }
    await sleep(20);
  }
}

// One phase of `count` requests decided by `random`, CLIENTS at a time. Returns counts;
// throws at the first death of the server, listing what failed.
async function run(label, count, random, refs) {
  // Decide every request up front, so the plan does not depend on completion order.
  const plan = Array.from({ length: count }, () => {
    const route = routes[Math.floor(random() * routes.length)];
    const p = Math.floor(random() * prompts.length);
    const s = Math.floor(random() * setups.length);
    const u = random();
    const how = random() < 0.35 ? 'reset' : 'close';
    const v = random();
    let action = 'read';
    if (u < DISCONNECT_SHARE / 3) action = v < 0.25 ? 'mid-request' : 'after-send';
    else if (u < DISCONNECT_SHARE) action = 'mid-response';
    return { route, p, s, action, how, v };
  });
  const stats = { read: 0, 'after-send': 0, 'mid-request': 0, 'mid-response': 0, 'of which at the end': 0, resets: 0 };
  const errors = [];
  let next = 0;
  let done = 0;
  const one = async (i) => {
    const { route, p, s, action, how, v } = plan[i];
    const bytes = requestBytes({ path: route, body: body(route, p, s), headers: action === 'read' ? { connection: 'close' } : {} });
    const ref = refs[key(route, p, s)];
    if (action === 'read') {
      const raw = await fullExchange(server.url, bytes, { timeoutMs: 60_000 * TIME_SCALE });
      const text = streamedText(raw, route);
      if (text !== ref.text) throw new Error(`${key(route, p, s)}: ${JSON.stringify(text)} differs from the request served alone ${JSON.stringify(ref.text)}`);
    } else if (action === 'after-send') {
      await sendThenHangUp(server.url, bytes, { how, timeoutMs: 60_000 * TIME_SCALE });
    } else if (action === 'mid-request') {
      await partialRequestThenHangUp(server.url, bytes, 1 + Math.floor(v * (bytes.length - 1)), { how, timeoutMs: 60_000 * TIME_SCALE });
    } else {
      // Anywhere from the first byte of the header to the end of the stream.
      const { complete } = await readThenHangUp(server.url, bytes, 1 + Math.floor(v * (ref.bytes - 1)), { how, orWhen: endOfChunkedResponse, timeoutMs: 60_000 * TIME_SCALE });
      if (complete) stats['of which at the end']++;
    }
    stats[action]++;
    if (action !== 'read' && how === 'reset') stats.resets++;
  };
  const worker = async () => {
    while (next < count && alive()) {
      const i = next++;
      try {
        await one(i);
      } catch (e) {
        errors.push(`#${i} (${plan[i].action}, ${plan[i].how}): ${e.message}`);
      }
      done++;
    }
  };
  const started = Date.now();
  await Promise.all(Array.from({ length: CLIENTS }, worker));
  if (errors.length) await within(server.exited, 3000 * TIME_SCALE);  // a crash shows as client errors first
  if (!alive()) {
    const { code, signal } = await server.exited;
    assert.fail(`the server died during ${label} (exit code ${code}, signal ${signal}) after ${done} of ${count} requests; ` +
                `first errors: ${errors.slice(0, 3).join(' | ')}; log tail:\n${server.logs().slice(-1500)}`);
  }
  assert.equal(errors.length, 0, `${errors.length} of ${count} requests of ${label} failed, first: ${errors.slice(0, 3).join(' | ')}`);
  return { ...stats, ms: Date.now() - started };
}

before(async () => {
  // The idle, header and body timeouts are 10 minutes: a connection whose client has hung
  // up must be closed because the server noticed, never by a timer within the deadlines here.
  server = await startServer(['--adapter-dir', adapterDir, ...CROSS_BATCH_ARGS, '--idle-timeout-ms', '600000', '--header-timeout-ms', '600000', '--body-timeout-ms', '600000']);
  model = (await baseModel(server)).id;
  cfg = JSON.parse(fs.readFileSync(path.join(CACHE_DIR, 'demo-model', 'config.json'), 'utf8'));
  for (const [name, doc] of [['soak-mixed', mixedAdapter(11)], ['soak-mixed-b', mixedAdapter(12)], ['soak-nsa', nsaAdapter(13)]]) {
    const r = await request(server.url, { method: 'PUT', path: `/v1/adapters/${name}`, body: Buffer.from(doc), headers: { 'content-type': 'application/json' } });
    assert.equal(r.status, 201, `upload ${name}: ${r.body}`);
  }
});

after(async () => {
  if (server && alive()) {
    // SIGTERM drains and exits at once when nothing runs; a server that does not exit within
    // the deadline is killed and fails the suite.
    const stopped = server.stop();
    const inTime = await within(stopped, 60_000 * TIME_SCALE);
    if (!inTime) server.proc.kill('SIGKILL');
    const { code, signal } = await stopped;
    assert.ok(inTime, `the server did not exit within ${60 * TIME_SCALE} s of SIGTERM; logs:\n${server.logs().slice(-4000)}`);
    assert.equal(code, 0, `server exit code (signal ${signal}); logs:\n${server.logs().slice(-4000)}`);
  }
  fs.rmSync(adapterDir, { recursive: true, force: true });
});

describe('disconnect soak', { concurrency: false }, () => {
  test(`${TOTAL} streamed requests from ${CLIENTS} clients, ${DISCONNECT_SHARE * 100}% hanging up at random points`, { timeout: 900_000 * TIME_SCALE }, async () => {
    assert.ok(TOTAL >= 1 && WARMUP >= 0);
    const t0 = Date.now();
    const before = await references();
    const distinct = new Set(Object.values(before).map((r) => r.text));
    assert.ok(distinct.size >= prompts.length * 2, `the set-ups give different answers (${distinct.size} distinct of ${Object.keys(before).length})`);
    for (const [k, r] of Object.entries(before)) assert.ok(r.text.length > 0 && r.bytes > 200, `${k}: reference ${JSON.stringify(r)}`);
    const tRefs = Date.now() - t0;

    const warm = await run('the warm-up', WARMUP, rng(SEED ^ 0xa5a5a5), before);
    await waitIdle('after the warm-up');
    const rssWarm = rssKiB();
    const m0 = await metrics(server.url);

    let rssMax = rssWarm;
    const sampler = setInterval(() => {
      if (alive()) rssMax = Math.max(rssMax, rssKiB());
    }, 250);
    let soak;
    try {
      soak = await run('the soak', TOTAL, rng(SEED), before);
    } finally {
      clearInterval(sampler);
    }
    const m1 = await waitIdle('after the soak');
    const rssAfter = rssKiB();

    const after = await references();
    const m2 = await waitIdle('after the final greedy requests');
    const rssEnd = rssKiB();
    console.log(`soak: references ${tRefs} ms; warm-up ${JSON.stringify(warm)}; soak ${JSON.stringify(soak)}; ` +
                `VmRSS KiB: after warm-up ${rssWarm}, max during soak ${rssMax}, after soak ${rssAfter}, at the end ${rssEnd} ` +
                `(growth ${rssAfter - rssWarm} / ${rssEnd - rssWarm}, bound ${RSS_BOUND_KIB}); kv blocks total ${m2.get('hotswap_kv_blocks_total')}, ` +
                `cancelled by client ${m1.get('hotswap_requests_cancelled_by_client_total') - m0.get('hotswap_requests_cancelled_by_client_total')}; total ${Date.now() - t0} ms`);

    const hangUps = soak['after-send'] + soak['mid-request'] + soak['mid-response'];
    assert.equal(soak.read + hangUps, TOTAL);
    if (TOTAL >= 100) {
      assert.ok(Math.abs(hangUps / TOTAL - DISCONNECT_SHARE) < 0.05, `${hangUps} of ${TOTAL} hang up`);
      assert.ok(soak['after-send'] + soak['mid-request'] > 0.25 * hangUps, 'about a third hang up before any response byte');
      assert.ok(soak.resets > 0.2 * hangUps, 'some hang up by reset');
    }
    // Each exchange is cancelled at most once, and never one that was read to the end.
    const cancelled = m1.get('hotswap_requests_cancelled_by_client_total') - m0.get('hotswap_requests_cancelled_by_client_total');
    assert.ok(cancelled <= hangUps, `${cancelled} cancellations for ${hangUps} hang-ups`);
    // Most hang-ups reach a running generation (measured: 510 of 611); the soak tests that.
    if (TOTAL >= 100) assert.ok(cancelled >= hangUps / 4, `only ${cancelled} of ${hangUps} hang-ups cancelled a generation`);
    assert.equal(m1.get('hotswap_kv_blocks_used'), 0, 'no KV block held by a sequence after the soak');
    assert.equal(m1.get('hotswap_running_sequences'), 0);
    assert.ok(rssAfter - rssWarm <= RSS_BOUND_KIB, `VmRSS grew by ${rssAfter - rssWarm} KiB over the soak (bound ${RSS_BOUND_KIB} KiB)`);
    assert.ok(rssEnd - rssWarm <= RSS_BOUND_KIB, `VmRSS grew by ${rssEnd - rssWarm} KiB by the end (bound ${RSS_BOUND_KIB} KiB)`);
    assert.deepEqual(Object.fromEntries(Object.entries(after).map(([k, r]) => [k, r.text])),
                     Object.fromEntries(Object.entries(before).map(([k, r]) => [k, r.text])), 'greedy answers before and after the soak');
    assert.equal((await request(server.url, { path: '/health' })).status, 200);
  });
});
