// Adapter upload latency (issue 5): PUT latency (median/p90 over 50 uploads) and
// upload-to-first-use latency (PUT, then at once a 1-token completion using it) against a
// server on a Llama-3.2-1B-shaped model. Also checks that the base is never reloaded.
// usage: node load_tests/adapter_upload_latency.mjs [--model DIR] [--bin PATH] [--n 50]
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

const here = path.dirname(new URL(import.meta.url).pathname);
const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : def;
};
const BIN = arg('bin', process.env.HOTSWAP_BIN ?? path.resolve(here, '../build/bin/hotswap'));
const MODEL = arg('model', '/tmp/hotswap-bench/llama-3.2-1b');
const N = Number(arg('n', 50));

if (!fs.existsSync(path.join(MODEL, 'config.json'))) {
  console.error(`creating ${MODEL}`);
  execFileSync(BIN, ['make-demo-model', '--preset', 'llama-3.2-1b', '--out', MODEL], { stdio: 'inherit' });
}
const cfg = JSON.parse(fs.readFileSync(path.join(MODEL, 'config.json'), 'utf8'));
const L = cfg.num_hidden_layers;
const Hkv = cfg.num_key_value_heads;

function req(url, method, p, body, headers = {}) {
  return new Promise((resolve, reject) => {
    const r = http.request(`${url}${p}`, { method, headers, agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString() }));
    });
    r.on('error', reject);
    r.end(body);
  });
}
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

let seed = 1;
function adapter() {
  const dict = {};
  for (let i = 0; i < L; i++) dict[`model.layers.${i}.self_attn.adapter.weight`] = Array.from({ length: Hkv }, () => ((seed = (seed * 1103515245 + 12345) % 2147483648) % 1000) / 1000);
  return JSON.stringify({ adapter_type: 'mixed', model_name: 'meta-llama/Llama-3.2-1B', adapter_weight_dict: dict });
}
const stats = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  return { median: q(0.5), p90: q(0.9), min: s[0], max: s.at(-1) };
};
const fmt = (o) => `median ${o.median.toFixed(2)} ms, p90 ${o.p90.toFixed(2)} ms (min ${o.min.toFixed(2)}, max ${o.max.toFixed(2)})`;

const adapterDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hotswap-latency-adapters-'));
const proc = spawn(BIN, ['serve', '--port', '0', '--model', MODEL, '--adapter-dir', adapterDir], { stdio: ['ignore', 'pipe', 'pipe'] });
let logs = '';
proc.stderr.on('data', (d) => (logs += d));
const url = await new Promise((resolve, reject) => {
  let out = '';
  proc.stdout.on('data', (d) => {
    out += d;
    const m = out.match(/listening on (http:\/\/[0-9.:]+)/);
    if (m) resolve(m[1]);
  });
  proc.on('exit', (c) => reject(new Error(`server exited ${c}:\n${logs}`)));
});
for (;;) {
  const r = await req(url, 'GET', '/ready').catch(() => null);
  if (r?.status === 200) break;
  await new Promise((r) => setTimeout(r, 100));
}
const rssBefore = Number(fs.readFileSync(`/proc/${proc.pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]);

const bodies = Array.from({ length: N }, adapter);
// warm-up
await req(url, 'PUT', '/v1/adapters/warm', bodies[0], { 'content-type': 'application/json' });
await req(url, 'POST', '/v1/completions', JSON.stringify({ adapter: 'warm', prompt: 'Hello', max_tokens: 1, temperature: 0 }), { 'content-type': 'application/json' });

const putMs = [];
for (let i = 0; i < N; i++) {
  const t = performance.now();
  const r = await req(url, 'PUT', `/v1/adapters/put-${i % 5}`, bodies[i], { 'content-type': 'application/json' });
  putMs.push(performance.now() - t);
  if (r.status !== 200 && r.status !== 201) throw new Error(`PUT ${r.status}: ${r.body}`);
}
const firstPut = [];
const firstAll = [];
const complOnly = [];
for (let i = 0; i < N; i++) {
  const name = `first-use-${i}`;
  const t0 = performance.now();
  const r = await req(url, 'PUT', `/v1/adapters/${name}`, bodies[(i + 7) % N], { 'content-type': 'application/json' });
  const t1 = performance.now();
  const c = await req(url, 'POST', '/v1/completions', JSON.stringify({ adapter: name, prompt: 'The quick brown fox', max_tokens: 1, temperature: 0 }), { 'content-type': 'application/json' });
  const t2 = performance.now();
  if (r.status !== 201 || c.status !== 200) throw new Error(`first use ${r.status}/${c.status}: ${r.body} ${c.body}`);
  firstPut.push(t1 - t0);
  complOnly.push(t2 - t1);
  firstAll.push(t2 - t0);
}
const base = [];
for (let i = 0; i < 20; i++) {
  const t = performance.now();
  await req(url, 'POST', '/v1/completions', JSON.stringify({ prompt: 'The quick brown fox', max_tokens: 1, temperature: 0 }), { 'content-type': 'application/json' });
  base.push(performance.now() - t);
}
const metricsText = (await req(url, 'GET', '/metrics')).body;
const rssAfter = Number(fs.readFileSync(`/proc/${proc.pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]);
proc.kill('SIGTERM');
await new Promise((r) => proc.on('exit', r));
const modelLoads = (logs.match(/event=model_loading/g) ?? []).length;

console.log(`model ${MODEL}: ${L} layers, ${Hkv} KV heads; adapter JSON ~${Buffer.byteLength(bodies[0])} bytes; N=${N}`);
console.log(`PUT (replace/create, keep-alive):        ${fmt(stats(putMs))}`);
console.log(`upload-to-first-use, PUT part:           ${fmt(stats(firstPut))}`);
console.log(`upload-to-first-use, 1-token completion: ${fmt(stats(complOnly))}`);
console.log(`upload-to-first-use, whole:              ${fmt(stats(firstAll))}`);
console.log(`reference: 1-token completion, no adapter: ${fmt(stats(base))}`);
console.log(`base model loads in the log: ${modelLoads} (1 = loaded once at start, never reloaded)`);
console.log(`RSS before/after: ${(rssBefore / 1024).toFixed(1)} / ${(rssAfter / 1024).toFixed(1)} MiB`);
for (const l of metricsText.split('\n')) if (/^hotswap_(adapter|model)/.test(l) && !/_bucket/.test(l)) console.log(`  ${l}`);
fs.rmSync(adapterDir, { recursive: true, force: true });
if (modelLoads !== 1) process.exitCode = 1;
