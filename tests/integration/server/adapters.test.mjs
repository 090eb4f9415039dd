// Adapter hot-loading against the real `hotswap serve` on the demo model (issue 5): upload /
// replace / list / get / delete, per-request selection, heterogeneous batches that equal the
// requests served alone, uploads/replacements/deletions while 16 streams generate (pinned
// versions), persistence across a restart, and a table of bad uploads that change nothing;
// hashattention and lsh adapters (safetensors, issue 13) upload, list and persist the same way.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { baseModel, CACHE_DIR, CROSS_BATCH_ARGS, metrics, postJson, randomTensor, request, rng, safetensorsImage, startServer, streamCompletion } from './helpers.js';

const adapterDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hotswap-adapters-test-'));
let server;
let model;
let L;
let H;
let Hkv;
let D;  // head_dim

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');


// A mixed adapter_weight.json text: gates random in [0,1] with some exact 0 and 1.
function mixedAdapter(seed, { layers = L, heads = Hkv, sink = 4, recent = 8, block = 4, override } = {}) {
  const r = rng(seed);
  const dict = {};
  for (let i = 0; i < layers; i++) {
    dict[`model.layers.${i}.self_attn.adapter.weight`] = Array.from({ length: heads }, () => {
      const u = r();
      return u < 0.3 ? 0 : u < 0.5 ? 1 : Math.round(r() * 1000) / 1000;
    });
  }
  const doc = { adapter_type: 'mixed', model_name: 'hotswap-demo', sink_window_size: sink, recent_window_size: recent, block_size: block, adapter_weight_dict: dict };
  if (override) override(doc);
  return JSON.stringify(doc);
}

// A safetensors image of just this header (its tensors' data absent).
const headerOnly = (header) => {
  const h = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([len, h]);
};

// hashattention adapter tensors for the demo model: per layer, query and key MLPs with these
// widths (first = head_dim, last = bits). `edit(tensors)` may break them.
function hashTensors(seed, { query = [D, 16, 8], key = [D, 8], layers = L, heads = H, dtype } = {}) {
  const r = rng(seed);
  const out = [];
  for (let l = 0; l < layers; l++) {
    for (const [side, w] of [['query', query], ['key', key]]) {
      for (let i = 0; i + 1 < w.length; i++) {
        out.push([`layers.${l}.${side}.${i}.weight`, randomTensor(r, [heads, w[i], w[i + 1]], dtype)]);
        out.push([`layers.${l}.${side}.${i}.bias`, randomTensor(r, [heads, w[i + 1]], dtype)]);
      }
    }
  }
  return out;
}
const hashAdapter = (seed, opts = {}, { activation = 'silu', edit } = {}) => {
  const t = hashTensors(seed, opts);
  if (edit) edit(t);
  return safetensorsImage({ type: 'hashattention', activation }, t);
};
const lshAdapter = (seed, { columns = 32, rows = D + 1, layers = L, edit } = {}) => {
  const r = rng(seed);
  const t = Array.from({ length: layers }, (_, l) => [`layers.${l}.projection`, randomTensor(r, [rows, columns])]);
  if (edit) edit(t);
  return safetensorsImage({ type: 'lsh' }, t);
};

const put = (name, body, contentType = 'application/json') =>
  request(server.url, { method: 'PUT', path: `/v1/adapters/${name}`, body: Buffer.from(body), headers: { 'content-type': contentType } });
const list = async () => {
  const r = await request(server.url, { path: '/v1/adapters' });
  assert.equal(r.status, 200, r.body);
  return r.json.adapters.map((a) => ({ name: a.name, sha256: a.sha256, type: a.type, layers: a.layers, bytes: a.bytes })).sort((a, b) => a.name.localeCompare(b.name));
};

// Long enough (> sink + recent) that mixed/streaming attention differs from dense.
const prompts = [
  'The quick brown fox jumps over the lazy dog while the cat sleeps on the warm mat',
  'In a distant galaxy, far beyond the reach of any telescope, a small planet',
  'Recipe for bread: flour, water, salt, yeast. Mix, knead, rest, shape, bake',
  'def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1)',
  'Dear diary, today was a long day at the office and the coffee machine broke',
  'Once upon a midnight dreary, while I pondered, weak and weary, over many a quaint',
  'The capital of France is Paris, the capital of Italy is Rome, and the capital of',
  'Numbers: one two three four five six seven eight nine ten eleven twelve',
  'A short story about a robot who learned to paint sunsets over the sea',
];

async function complete(body) {
  const r = await postJson(server.url, '/v1/completions', { model, temperature: 0, ...body });
  assert.equal(r.status, 200, `completion ${JSON.stringify(body).slice(0, 200)}: ${r.body}`);
  return r.json;
}
const textOf = async (body) => (await complete(body)).choices[0].text;
const stream = (body) => streamCompletion(server.url, { model, temperature: 0, ...body });

before(async () => {
  server = await startServer(['--adapter-dir', adapterDir, ...CROSS_BATCH_ARGS]);
  model = (await baseModel(server)).id;
  const cfg = JSON.parse(fs.readFileSync(path.join(CACHE_DIR, 'demo-model', 'config.json'), 'utf8'));
  L = cfg.num_hidden_layers;
  H = cfg.num_attention_heads;
  Hkv = cfg.num_key_value_heads;
  D = cfg.head_dim ?? cfg.hidden_size / cfg.num_attention_heads;
  assert.ok(L >= 2 && Hkv >= 2 && H % Hkv === 0, `demo model shape L=${L} H=${H} Hkv=${Hkv}`);
});

after(async () => {
  if (server) {
    const { code } = await server.stop();
    assert.equal(code, 0, `server exit code; logs:\n${server.logs().slice(-4000)}`);
  }
  fs.rmSync(adapterDir, { recursive: true, force: true });
});

describe('adapters', { concurrency: false }, () => {
  test('PUT creates (201) then replaces (200); list, get, /v1/models, delete', async () => {
    const v1 = mixedAdapter(1);
    let r = await put('life', v1);
    assert.equal(r.status, 201, r.body);
    assert.equal(r.json.name, 'life');
    assert.equal(r.json.type, 'mixed');
    assert.equal(r.json.layers, L);
    assert.equal(r.json.sha256, sha256(v1));
    assert.equal(typeof r.json.description, 'string');
    assert.match(r.json.description, /mixed/);
    const v2 = mixedAdapter(2);
    r = await put('life', v2);
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.sha256, sha256(v2));
    const entry = (await list()).find((a) => a.name === 'life');
    assert.ok(entry, 'listed');
    assert.equal(entry.sha256, sha256(v2));
    assert.equal(entry.bytes, Buffer.byteLength(v2));
    r = await request(server.url, { path: '/v1/adapters/life' });
    assert.equal(r.status, 200, r.body);
    for (const k of ['name', 'type', 'layers', 'parameters', 'bytes', 'sha256', 'created']) assert.ok(k in r.json, `GET one has ${k}`);
    assert.equal(r.json.sha256, sha256(v2));
    r = await request(server.url, { path: '/v1/models' });
    assert.ok(r.json.data.some((m) => m.id === 'life'), `/v1/models lists the adapter: ${r.body}`);
    assert.equal(r.json.data[0].id, model);
    const m = await metrics(server.url);
    assert.ok(m.get('hotswap_adapters_resident') >= 1, 'hotswap_adapters_resident');
    r = await request(server.url, { method: 'DELETE', path: '/v1/adapters/life' });
    assert.equal(r.status, 200, r.body);
    r = await request(server.url, { path: '/v1/adapters/life' });
    assert.equal(r.status, 404, r.body);
    assert.match(r.json.error.message, /life/);
    r = await request(server.url, { method: 'DELETE', path: '/v1/adapters/life' });
    assert.equal(r.status, 404, r.body);
    r = await request(server.url, { path: '/v1/models' });
    assert.ok(!r.json.data.some((m) => m.id === 'life'), 'deleted adapter gone from /v1/models');
    assert.ok(!(await list()).some((a) => a.name === 'life'));
  });

  test('selection by adapter and by model; auto = mixed; errors', async () => {
    assert.equal((await put('sel', mixedAdapter(7, { override: (d) => { for (const k in d.adapter_weight_dict) d.adapter_weight_dict[k] = d.adapter_weight_dict[k].map(() => 0); } }))).status, 201);
    const prompt = prompts[0];
    const base = await textOf({ prompt, max_tokens: 16, ignore_eos: true });
    const byAdapter = await complete({ prompt, max_tokens: 16, ignore_eos: true, adapter: 'sel' });
    const byModel = await complete({ model: 'sel', prompt, max_tokens: 16, ignore_eos: true });
    const explicitMixed = await textOf({ prompt, max_tokens: 16, ignore_eos: true, adapter: 'sel', attention: 'mixed' });
    const auto = await textOf({ prompt, max_tokens: 16, ignore_eos: true, adapter: 'sel', attention: 'auto' });
    const eager = await textOf({ prompt, max_tokens: 16, ignore_eos: true, adapter: 'sel', attention: 'eager' });
    const streaming = await textOf({ prompt, max_tokens: 16, ignore_eos: true, attention: { impl: 'streaming', sink_window_size: 4, recent_window_size: 8, block_size: 4 } });
    assert.equal(byAdapter.choices[0].text, byModel.choices[0].text, 'adapter field and model = adapter name select the same');
    assert.equal(byModel.model, 'sel', 'response model names the adapter');
    assert.equal(auto, explicitMixed, 'attention auto with a mixed adapter runs mixed');
    assert.equal(byAdapter.choices[0].text, explicitMixed);
    assert.equal(eager, base, 'eager with an adapter ignores its gates');
    assert.notEqual(explicitMixed, base, 'all-zero gates (all streaming) differ from dense on a prompt longer than sink+recent');
    assert.equal(explicitMixed, streaming, 'all-zero gates = streaming attention with the same windows');
    assert.equal(typeof byAdapter.usage.attention_kernel, 'string', 'usage reports the kernel');
    // explicit mixed without an adapter
    let r = await postJson(server.url, '/v1/completions', { model, prompt, max_tokens: 4, attention: 'mixed' });
    assert.equal(r.status, 400, r.body);
    assert.match(r.json.error.message, /mixed/);
    assert.match(r.json.error.message, /adapter/);
    // unknown adapter, by field and by model
    r = await postJson(server.url, '/v1/completions', { model, prompt, max_tokens: 4, adapter: 'no-such-adapter' });
    assert.equal(r.status, 404, r.body);
    assert.match(r.json.error.message, /no-such-adapter/);
    r = await postJson(server.url, '/v1/completions', { model: 'no-such-adapter', prompt, max_tokens: 4 });
    assert.equal(r.status, 404, r.body);
    r = await postJson(server.url, '/v1/chat/completions', { model: 'sel', messages: [{ role: 'user', content: prompt }], max_tokens: 4, temperature: 0 });
    assert.equal(r.status, 200, `chat with model = adapter: ${r.body}`);
    assert.equal((await request(server.url, { method: 'DELETE', path: '/v1/adapters/sel' })).status, 200);
  });

  test('eight adapters plus none in one batch each equal the request served alone', async () => {
    const names = Array.from({ length: 8 }, (_, i) => `batch-${i}`);
    for (let i = 0; i < 8; i++) assert.equal((await put(names[i], mixedAdapter(100 + i))).status, 201);
    const body = (i) => ({ prompt: prompts[i], max_tokens: 24, ignore_eos: true, ...(i < 8 ? { adapter: names[i] } : {}) });
    const alone = [];
    for (let i = 0; i < 9; i++) alone.push(await textOf(body(i)));
    // The same prompt under different adapters must not all coincide (the gates matter).
    const sameprompt = new Set();
    for (let i = 0; i < 8; i++) sameprompt.add(await textOf({ prompt: prompts[0], max_tokens: 24, ignore_eos: true, adapter: names[i] }));
    assert.ok(sameprompt.size > 1, 'different adapters give different outputs on one prompt');
    for (let round = 0; round < 3; round++) {
      const together = await Promise.all(Array.from({ length: 9 }, (_, i) => (i % 2 ? textOf(body(i)) : stream(body(i)).done.then((s) => {
        assert.equal(s.status, 200, s.body);
        return s.text;
      }))));
      for (let i = 0; i < 9; i++) assert.equal(together[i], alone[i], `round ${round}: request ${i} (${i < 8 ? names[i] : 'no adapter'}) differs from alone`);
    }
    for (const n of names) assert.equal((await request(server.url, { method: 'DELETE', path: `/v1/adapters/${n}` })).status, 200);
  });

  test('uploads, replacements and deletions while 16 streams generate change nothing they pinned', async () => {
    const names = Array.from({ length: 8 }, (_, i) => `live-${i}`);
    const vA = names.map((_, i) => mixedAdapter(200 + i));
    const vB = names.map((_, i) => mixedAdapter(300 + i, { sink: 2, recent: 6, block: 2 }));
    for (let i = 0; i < 8; i++) assert.equal((await put(names[i], vA[i])).status, 201);
    const body = (i) => ({ prompt: prompts[i % prompts.length], max_tokens: 320, ignore_eos: true, ...(i < 14 ? { adapter: names[i % 8] } : {}) });
    const expectedA = [];
    for (let i = 0; i < 16; i++) expectedA.push(await textOf(body(i)));
    // Outputs of version B, recorded under other names.
    const expectedB = [];
    for (let i = 0; i < 8; i++) {
      assert.equal((await put(`ref-${i}`, vB[i])).status, 201);
      expectedB.push(await textOf({ ...body(i), adapter: `ref-${i}` }));
      await request(server.url, { method: 'DELETE', path: `/v1/adapters/ref-${i}` });
    }
    for (let round = 0; round < 2; round++) {
      const streams = Array.from({ length: 16 }, (_, i) => stream(body(i)));
      await Promise.all(streams.map((s) => s.started));
      let changes = 0;
      const churn = (async () => {
        const statuses = [];
        for (let k = 0; k < 4; k++) {
          for (let i = 0; i < 8; i++) {
            statuses.push((await put(names[i], k % 2 ? vA[i] : vB[i])).status);
            changes++;
            statuses.push((await put(`extra-${i}`, mixedAdapter(400 + k * 8 + i))).status);
            statuses.push((await request(server.url, { method: 'DELETE', path: `/v1/adapters/extra-${i}` })).status);
            if (k === 3) statuses.push((await request(server.url, { method: 'DELETE', path: `/v1/adapters/${names[i]}` })).status);
            changes++;
          }
        }
        return statuses;
      })();
      let changesWhileRunning = -1;
      const allDone = Promise.all(streams.map((s) => s.done)).then((r) => ((changesWhileRunning = changes), r));
      const [results, statuses] = await Promise.all([allDone, churn]);
      assert.ok(changesWhileRunning >= 2, `adapter changes happened while the streams ran (${changesWhileRunning})`);
      assert.ok(statuses.every((s) => s === 200 || s === 201), `churn statuses: ${statuses.join(',')}`);
      assert.ok(changes > 0);
      for (let i = 0; i < 16; i++) {
        assert.equal(results[i].status, 200, `stream ${i} failed: ${results[i].body}`);
        assert.equal(results[i].text, expectedA[i], `round ${round}: stream ${i} (${i < 14 ? names[i % 8] : 'no adapter'}) changed by concurrent adapter churn`);
        assert.equal(results[i].finish, 'length');
      }
      // Deleted now: a new request for it is a 404; re-upload version B and it gives B's output.
      const r = await postJson(server.url, '/v1/completions', { model, ...body(0) });
      assert.equal(r.status, 404, r.body);
      for (let i = 0; i < 8; i++) assert.equal((await put(names[i], vB[i])).status, 201);
      for (let i = 0; i < 8; i++) assert.equal(await textOf(body(i)), expectedB[i], `after churn ${names[i]} version B`);
      for (let i = 0; i < 8; i++) assert.equal((await put(names[i], vA[i])).status, 200);
    }
    for (const n of names) await request(server.url, { method: 'DELETE', path: `/v1/adapters/${n}` });
  });

  test('a table of bad uploads: each 4xx with a specific message, nothing stored changes', async () => {
    for (let i = 0; i < 3; i++) assert.ok([200, 201].includes((await put(`keep-${i}`, mixedAdapter(500 + i))).status));
    const before = await list();
    const files = fs.readdirSync(adapterDir).sort();
    const good = mixedAdapter(600);
    const safetensors = (header, data = Buffer.alloc(0), declaredLen) => {
      const h = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(declaredLen ?? h.length));
      return Buffer.concat([len, h, data]);
    };
    const setLayer = (i, v) => (d) => (d.adapter_weight_dict[`model.layers.${i}.self_attn.adapter.weight`] = v);
    const cases = [
      { what: 'wrong layer count (one short)', body: mixedAdapter(1, { layers: L - 1 }), status: 400, re: new RegExp(`layers\\.${L - 1}|layer ${L - 1}|${L}`) },
      { what: 'wrong layer count (one extra)', body: mixedAdapter(1, { layers: L + 1 }), status: 400, re: new RegExp(`${L}`) },
      { what: 'wrong head count', body: mixedAdapter(1, { heads: Hkv + 1 }), status: 400, re: new RegExp(`${Hkv + 1}`) },
      { what: 'NaN gate', body: mixedAdapter(1).replace(/\[([^\]]*)\]/, (_, a) => `[NaN${a.slice(a.indexOf(','))}]`), status: 400, re: /nan|finite|JSON|parse|invalid/i },
      { what: 'gate 1.5', body: mixedAdapter(1, { override: setLayer(1, Array(Hkv).fill(1.5)) }), status: 400, re: /1\.5/ },
      { what: 'negative gate', body: mixedAdapter(1, { override: setLayer(0, Array(Hkv).fill(-0.25)) }), status: 400, re: /-0\.25/ },
      { what: 'gate as a string', body: mixedAdapter(1, { override: setLayer(0, Array(Hkv).fill('x')) }), status: 400, re: /layers\.0|layer 0/ },
      { what: 'unknown adapter_type', body: mixedAdapter(1, { override: (d) => (d.adapter_type = 'lora') }), status: 400, re: /lora|adapter_type/ },
      { what: 'missing tensors (layer 1 absent)', body: mixedAdapter(1, { override: (d) => delete d.adapter_weight_dict['model.layers.1.self_attn.adapter.weight'] }), status: 400, re: /1/ },
      { what: 'layer index out of range', body: mixedAdapter(1, { override: setLayer(L + 5, Array(Hkv).fill(0)) }), status: 400, re: new RegExp(`${L + 5}`) },
      { what: 'non-JSON body', body: 'this is not json', status: 400, re: /json|parse/i },
      { what: 'empty body', body: '', status: 400, re: /empty|body|json/i },
      { what: 'JSON with Content-Type text/plain', body: good, ct: 'text/plain', status: [400, 415], re: /content-type|text\/plain/i },
      { what: 'bad safetensors header', body: safetensors('{not json at all'), ct: 'application/octet-stream', status: 400, re: /safetensors|header/i },
      { what: 'safetensors header length beyond the body', body: safetensors('{}', Buffer.alloc(0), 1e12), ct: 'application/octet-stream', status: 400, re: /safetensors|header|size|length/i },
      { what: 'huge declared tensor sizes in safetensors', body: safetensors({ __metadata__: { adapter_config: '{"adapter_type":"nsa"}' }, 'model.layers.0.self_attn.nsa.k_compress.pos_emb': { dtype: 'F32', shape: [100000000, 100000000], data_offsets: [0, 4e16] } }), ct: 'application/octet-stream', status: 400, re: /safetensors|offset|size|bytes|shape|exceed|beyond/i },
      { what: 'mixed JSON sent as octet-stream', body: good, ct: 'application/octet-stream', status: 400, re: /safetensors|header/i },
      { what: 'name ".."', name: '..', body: good, status: [400, 404], re: /name|not found|route/i },
      { what: 'name with encoded slash', name: 'a%2Fb', body: good, status: [400, 404], re: /name/i },
      { what: 'name with encoded newline', name: 'x%0A', body: good, status: 400, re: /name/i },
      { what: '65-character name', name: 'a'.repeat(65), body: good, status: 400, re: /name/i },
      { what: 'name starting with "."', name: '.hidden', body: good, status: 400, re: /name/i },
      { what: 'name with a space', name: 'a%20b', body: good, status: 400, re: /name/i },
      { what: 'PUT to the collection', path: '/v1/adapters', body: good, status: [404, 405], re: /./ },
      { what: 'POST to an adapter', method: 'POST', name: 'post-me', body: good, status: 405, re: /./ },
    ];
    assert.ok(cases.length >= 15);
    const failures = [];
    for (const c of cases) {
      const r = await request(server.url, {
        method: c.method ?? 'PUT',
        path: c.path ?? `/v1/adapters/${c.name ?? 'bad-upload'}`,
        body: Buffer.from(c.body),
        headers: { 'content-type': c.ct ?? 'application/json' },
      });
      const statuses = [c.status].flat();
      const message = r.json?.error?.message ?? '';
      if (!statuses.includes(r.status)) failures.push(`${c.what}: status ${r.status}, expected ${statuses.join('/')}: ${r.body.slice(0, 300)}`);
      else if (!c.re.test(message)) failures.push(`${c.what}: message ${JSON.stringify(message)} does not match ${c.re}`);
      else if (r.json?.error?.type === undefined) failures.push(`${c.what}: not the OpenAI error shape: ${r.body}`);
    }
    assert.deepEqual(failures, [], failures.join('\n'));
    assert.deepEqual(await list(), before, 'adapter list and sha256 unchanged by bad uploads');
    assert.equal((await request(server.url, { path: '/v1/adapters/bad-upload' })).status, 404);
    assert.deepEqual(fs.readdirSync(adapterDir).sort(), files, 'adapter directory unchanged');
    assert.equal((await request(server.url, { path: '/health' })).status, 200);
  });

  test('hashattention and lsh adapters (safetensors): upload and list with their types; bad ones 400, nothing changes', async () => {
    const octet = 'application/octet-stream';
    const hat = hashAdapter(800);
    const hatBf16 = hashAdapter(801, { dtype: 'BF16' }, { activation: 'gelu' });
    const lsh = lshAdapter(802);
    assert.equal((await put('hat', hat, octet)).status, 201);
    assert.equal((await put('hat-bf16', hatBf16, octet)).status, 201);
    assert.equal((await put('proj', lsh, octet)).status, 201);
    const listed = await list();
    for (const [name, type, bytes] of [['hat', 'hashattention', hat], ['hat-bf16', 'hashattention', hatBf16], ['proj', 'lsh', lsh]]) {
      const e = listed.find((a) => a.name === name);
      assert.deepEqual(e, { name, sha256: sha256(bytes), type, layers: L, bytes: bytes.length });
    }
    const got = (await request(server.url, { path: '/v1/adapters/hat' })).json;
    assert.match(got.description, new RegExp(`^hashattention adapter 'hat': ${L} layers, ${H} heads, 8 bits, query MLP ${D}->16->8, key MLP ${D}->8, activation silu$`));
    assert.deepEqual(got.parameters, { layers: L, heads: H, bits: 8, activation: 'silu', query_widths: [D, 16, 8], key_widths: [D, 8] });
    const gotLsh = (await request(server.url, { path: '/v1/adapters/proj' })).json;
    assert.deepEqual(gotLsh.parameters, { layers: L, rows: D + 1, columns: 32 });
    assert.equal(fs.readFileSync(path.join(adapterDir, 'hat.safetensors')).compare(hat), 0, 'stored byte for byte');

    const before = await list();
    const files = fs.readdirSync(adapterDir).sort();
    const setTensor = (name, t) => (ts) => { ts.find(([n]) => n === name)[1] = t; };
    const cases = [
      { what: 'one layer short', body: hashAdapter(1, { layers: L - 1 }), re: new RegExp(`layer ${L - 1}: no query MLP.*num_hidden_layers ${L}`) },
      { what: 'wrong head count', body: hashAdapter(1, { heads: H - 1 }), re: new RegExp(`'layers\\.0\\.query\\.0\\.weight' \\(layer 0\\).*num_attention_heads ${H}\\), got \\[${H - 1}, ${D}, 16\\]`) },
      { what: 'first d_in is not head_dim', body: hashAdapter(1, { query: [D + 1, 8] }), re: new RegExp(`head_dim ${D}\\), got \\[${H}, ${D + 1}, 8\\]`) },
      { what: 'broken chain of shapes', body: hashAdapter(1, {}, { edit: setTensor('layers.1.query.1.weight', randomTensor(rng(1), [H, 12, 8])) }), re: /'layers\.1\.query\.1\.weight' \(layer 1\).*d_out 16 of 'layers\.1\.query\.0\.weight'\), got \[\d+, 12, 8\]/ },
      { what: 'more than 64 bits', body: hashAdapter(1, { query: [D, 80], key: [D, 80] }), re: /signature bits; expected 1\.\.64, got 80/ },
      { what: 'query and key bits differ', body: hashAdapter(1, { key: [D, 16] }), re: /signature bits \(the last d_out\) 16 differ from 8/ },
      { what: 'NaN', body: hashAdapter(1, {}, { edit: (ts) => { ts[3][1].values[2] = NaN; } }), re: /'layers\.0\.query\.1\.bias' \(layer 0\): element 2 is NaN/ },
      { what: 'I32 dtype', body: hashAdapter(1, {}, { edit: (ts) => { ts[0][1].dtype = 'I32'; } }), re: /'layers\.0\.query\.0\.weight' \(layer 0\): dtype I32; expected F32, F16 or BF16/ },
      { what: 'unknown activation', body: hashAdapter(1, {}, { activation: 'softmax' }), re: /__metadata__ key 'activation'.*got 'softmax'/ },
      { what: 'lsh wrong rows', body: lshAdapter(1, { rows: D }), re: new RegExp(`'layers\\.0\\.projection' \\(layer 0\\): expected shape \\[${D + 1}, C\\]`) },
      { what: 'lsh columns differ', body: lshAdapter(1, { edit: setTensor(`layers.${L - 1}.projection`, randomTensor(rng(2), [D + 1, 16])) }), re: /the same lsh_l \* lsh_k columns as 'layers\.0\.projection'\), got \[\d+, 16\]/ },
      { what: 'lsh layer missing', body: lshAdapter(1, { layers: L - 1 }), re: new RegExp(`'layers\\.${L - 1}\\.projection' \\(layer ${L - 1}\\): missing`) },
      { what: 'huge declared size', body: headerOnly({ __metadata__: { type: 'lsh' }, 'layers.0.projection': { dtype: 'F32', shape: [D + 1, 1e12], data_offsets: [0, 4 * (D + 1) * 1e12] } }), re: /layers\.0\.projection.*outside the data region/ },
    ];
    const failures = [];
    for (const c of cases) {
      for (const name of ['hat', 'new-bad']) {
        const r = await put(name, c.body, octet);
        const message = r.json?.error?.message ?? '';
        if (r.status !== 400) failures.push(`${c.what} (${name}): status ${r.status}: ${r.body.slice(0, 300)}`);
        else if (!c.re.test(message)) failures.push(`${c.what} (${name}): message ${JSON.stringify(message)} does not match ${c.re}`);
      }
    }
    assert.deepEqual(failures, [], failures.join('\n'));
    assert.deepEqual(await list(), before, 'adapter list and sha256 unchanged by bad uploads');
    assert.deepEqual(fs.readdirSync(adapterDir).sort(), files, 'adapter directory unchanged');
    assert.equal(fs.readFileSync(path.join(adapterDir, 'hat.safetensors')).compare(hat), 0, 'stored adapter unchanged');
  });

  test('restart on the same adapter dir: same list and sha256; base never reloaded', async () => {
    assert.equal((await put('persist-me', mixedAdapter(700))).status, 201);
    assert.equal((await put('persist-me', mixedAdapter(701))).status, 200);
    const before = await list();
    assert.ok(before.some((a) => a.name === 'persist-me' && a.sha256 === sha256(mixedAdapter(701))));
    const loads = (server.logs().match(/event=model_loading/g) ?? []).length;
    assert.equal(loads, 1, 'the base model was loaded once, never again for adapter changes');
    const { code } = await server.stop('SIGTERM');
    assert.equal(code, 0, `exit code after SIGTERM; logs:\n${server.logs().slice(-3000)}`);
    server = await startServer(['--adapter-dir', adapterDir, ...CROSS_BATCH_ARGS]);
    assert.deepEqual(await list(), before, 'adapter list and sha256 after restart');
    for (const a of before) {
      const r = await request(server.url, { path: `/v1/adapters/${a.name}` });
      assert.equal(r.status, 200);
      assert.equal(r.json.sha256, a.sha256);
    }
    assert.equal((await complete({ adapter: 'persist-me', prompt: prompts[1], max_tokens: 4 })).choices.length, 1);
  });
});
