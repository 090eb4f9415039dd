// One adapter set across replicas (issue 15, items 3 and 4; docs/adapters-shared-dir.md):
// three real `hotswap serve` processes on loopback share one adapter directory, as replicas
// behind a load balancer share a ReadWriteMany volume. An upload on A is usable on B and C
// (B at once, by looking in the directory; C's list shows it within the bound); a replacement
// on B while streams run on A and C leaves the running streams on the version they pinned
// (greedy output equal to the old version's alone) and gives new requests the new one; a
// delete on C is a 404 on A and B within the bound and the three lists agree; 20 concurrent
// PUTs of one name spread over the three end in one version that all three agree on and that
// is one of the uploaded documents; and kill -9 of a replica while a large upload's body
// streams in, or while it is being written, leaves the others serving the previous version
// with no torn file ever visible, and a restarted replica sees the same set.
//
// The bound: a change on one replica is visible on the others within `engine.adapter_rescan_ms`
// (the fallback period) plus one rescan; inotify makes it milliseconds on a local filesystem.
// Every wait below is a poll of what the replicas answer (waitFor), failing at BOUND_MS.
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { baseModel, CACHE_DIR, CROSS_BATCH_ARGS, postJson, request, rng, startServer, streamCompletion, waitFor } from './helpers.js';

const RESCAN_MS = 2000;
// One rescan period plus a second for the rescan itself and the polling on a loaded machine
// (HOTSWAP_REPLICA_BOUND_MS overrides it, e.g. for a sanitizer build).
const BOUND_MS = Number(process.env.HOTSWAP_REPLICA_BOUND_MS ?? RESCAN_MS + 1000);

// Three servers share the machine: one compute thread each. OMP_NUM_THREADS as well as the
// flag, because the flag's omp_set_num_threads() runs on the thread that builds the engine,
// not on the engine thread (which then runs OpenMP regions on every core and, with three
// servers on two cores, spin-waits at their barriers: 100x slower decoding).
process.env.OMP_NUM_THREADS ??= '1';

const adapterDir = fs.mkdtempSync(path.join(os.tmpdir(), 'hotswap-replicas-test-'));
const serverArgs = ['--adapter-dir', adapterDir, ...CROSS_BATCH_ARGS, '--adapter-rescan-ms', String(RESCAN_MS), '--engine-threads', '1'];
const replicas = []; // [A, B, C]
const names = ['A', 'B', 'C'];
let model;
let L;
let Hkv;
const latencies = [];

const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');

// A mixed adapter_weight.json text for the demo model; different seeds give different gates.
function mixedAdapter(seed, { sink = 4, recent = 8, block = 4 } = {}) {
  const r = rng(seed);
  const dict = {};
  for (let i = 0; i < L; i++) {
    dict[`model.layers.${i}.self_attn.adapter.weight`] = Array.from({ length: Hkv }, () => {
      const u = r();
      return u < 0.3 ? 0 : u < 0.5 ? 1 : Math.round(r() * 1000) / 1000;
    });
  }
  return JSON.stringify({ adapter_type: 'mixed', model_name: 'hotswap-demo', sink_window_size: sink, recent_window_size: recent, block_size: block, adapter_weight_dict: dict });
}

const put = (s, name, body) =>
  request(s.url, { method: 'PUT', path: `/v1/adapters/${name}`, body: Buffer.from(body), headers: { 'content-type': 'application/json' } });
const del = (s, name) => request(s.url, { method: 'DELETE', path: `/v1/adapters/${name}` });
const getOne = (s, name) => request(s.url, { path: `/v1/adapters/${name}` });
const shaOn = async (s, name) => {
  const r = await getOne(s, name);
  return r.status === 200 ? r.json.sha256 : null;
};
// GET /v1/adapters as the replicas must agree on it: everything but `resident` (each
// process's own memory).
async function list(s) {
  const r = await request(s.url, { path: '/v1/adapters' });
  assert.equal(r.status, 200, r.body);
  return r.json.adapters.map(({ resident, ...rest }) => rest).sort((a, b) => a.name.localeCompare(b.name));
}
async function assertListsAgree(what) {
  const lists = await Promise.all(replicas.map(list));
  assert.deepEqual(lists[1], lists[0], `${what}: B's list differs from A's`);
  assert.deepEqual(lists[2], lists[0], `${what}: C's list differs from A's`);
  return lists[0];
}
// Waits until `predicate` holds, failing at the bound; records how long it took.
async function withinBound(what, predicate) {
  const start = Date.now();
  await waitFor(`${what} (bound ${BOUND_MS} ms)`, predicate, { timeoutMs: BOUND_MS, intervalMs: 5 });
  latencies.push({ what, ms: Date.now() - start });
}
const tempFiles = (name) => fs.readdirSync(adapterDir).filter((f) => f.startsWith(`.${name}.`) && f.endsWith('.tmp'));

const prompts = [
  'The quick brown fox jumps over the lazy dog while the cat sleeps on the warm mat',
  'In a distant galaxy, far beyond the reach of any telescope, a small planet',
  'Recipe for bread: flour, water, salt, yeast. Mix, knead, rest, shape, bake',
];

async function textOn(s, body) {
  const r = await postJson(s.url, '/v1/completions', { temperature: 0, ignore_eos: true, ...body });
  assert.equal(r.status, 200, `completion on ${s.url} ${JSON.stringify(body).slice(0, 120)}: ${r.body}`);
  return r.json.choices[0].text;
}

const stream = (s, body) => streamCompletion(s.url, { temperature: 0, ignore_eos: true, ...body });

async function restart(i) {
  replicas[i] = await startServer(serverArgs);
}

before(async () => {
  // One at a time: each loads the model and would otherwise compete for two cores.
  for (let i = 0; i < 3; i++) await restart(i);
  model = (await baseModel(replicas[0])).id;
  const cfg = JSON.parse(fs.readFileSync(path.join(CACHE_DIR, 'demo-model', 'config.json'), 'utf8'));
  L = cfg.num_hidden_layers;
  Hkv = cfg.num_key_value_heads;
});

after(async (t) => {
  const exits = await Promise.all(replicas.map((s) => s?.stop()));
  fs.rmSync(adapterDir, { recursive: true, force: true });
  console.log(`# visibility across replicas (bound ${BOUND_MS} ms): ` + latencies.map((l) => `${l.what}: ${l.ms} ms`).join('; '));
  exits.forEach((e, i) => assert.equal(e?.code, 0, `replica ${names[i]} exit code; logs:\n${replicas[i]?.logs().slice(-3000)}`));
});

describe('three replicas, one adapter directory', { concurrency: false }, () => {
  test('an upload on A is used on B at once and listed by B and C within the bound, loaded on first use', async () => {
    const [A, B, C] = replicas;
    const doc = mixedAdapter(1);
    const r = await put(A, 'shared', doc);
    assert.equal(r.status, 201, r.body);
    // B has not rescanned necessarily: a request for a name it does not know looks in the directory.
    const onB = await textOn(B, { model: 'shared', prompt: prompts[0], max_tokens: 24 });
    await withinBound('upload on A listed on C', async () => (await shaOn(C, 'shared')) === sha256(doc));
    const c = await getOne(C, 'shared');
    assert.equal(c.json.resident, false, 'found in the directory, not loaded before its first use');
    const onC = await textOn(C, { model: 'shared', prompt: prompts[0], max_tokens: 24 });
    assert.equal((await getOne(C, 'shared')).json.resident, true, 'loaded by its first use');
    const onA = await textOn(A, { model: 'shared', prompt: prompts[0], max_tokens: 24 });
    assert.equal(onB, onA, 'B serves the same adapter as A');
    assert.equal(onC, onA, 'C serves the same adapter as A');
    const base = await textOn(A, { model, prompt: prompts[0], max_tokens: 24 });
    assert.notEqual(onA, base, 'the adapter changes the output (so equal outputs mean the same adapter)');
    await withinBound('B lists the upload', async () => (await shaOn(B, 'shared')) === sha256(doc));
    const agreed = await assertListsAgree('after the upload');
    assert.deepEqual(agreed.map((a) => [a.name, a.sha256]), [['shared', sha256(doc)]]);
  });

  test('a replacement on B while streams run on A and C: running requests keep their version, new ones get the new one', async () => {
    const [A, B, C] = replicas;
    const v1 = mixedAdapter(11);
    const v2 = mixedAdapter(12, { sink: 2, recent: 6, block: 2 });
    assert.equal((await put(A, 'swap', v1)).status, 201);
    for (const s of [B, C]) await withinBound('swap v1 listed', async () => (await shaOn(s, 'swap')) === sha256(v1));
    const LONG = 3000;
    const long = (i) => ({ model: 'swap', prompt: prompts[i], max_tokens: LONG });
    const short = { model: 'swap', prompt: prompts[2], max_tokens: 32 };
    // What each version gives alone (v2 under another name, on another replica).
    const expectedLong = [await textOn(A, long(0)), await textOn(A, long(1))];
    const shortV1 = await textOn(C, short);
    assert.equal((await put(C, 'swap-ref', v2)).status, 201);
    const shortV2 = await textOn(C, { ...short, model: 'swap-ref' });
    const longV2 = await textOn(C, { ...long(0), model: 'swap-ref' });
    assert.equal((await del(C, 'swap-ref')).status, 200);
    assert.notEqual(shortV2, shortV1, 'the two versions give different outputs');
    assert.notEqual(longV2, expectedLong[0], 'the two versions give different long outputs');

    const streams = [stream(A, long(0)), stream(A, long(1)), stream(C, long(0)), stream(C, long(1))];
    await Promise.all(streams.map((s) => s.started));
    const r = await put(B, 'swap', v2);
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.sha256, sha256(v2));
    const runningAtReplace = streams.filter((s) => !s.finished).length;
    for (const [s, n] of [[A, 'A'], [C, 'C']]) await withinBound(`replacement on B listed on ${n}`, async () => (await shaOn(s, 'swap')) === sha256(v2));
    const [newOnA, newOnC] = await Promise.all([textOn(A, short), textOn(C, short)]);
    const runningAfterNew = streams.filter((s) => !s.finished).length;
    assert.equal(newOnA, shortV2, 'a new request on A gets the new version');
    assert.equal(newOnC, shortV2, 'a new request on C gets the new version');
    const results = await Promise.all(streams.map((s) => s.done));
    assert.equal(runningAtReplace, 4, 'the replacement happened while all four streams ran');
    assert.ok(runningAfterNew > 0, `new requests were answered while streams still ran (${runningAfterNew} running)`);
    results.forEach((res, i) => {
      assert.equal(res.status, 200, `stream ${i}: ${res.body}`);
      assert.equal(res.text, expectedLong[i % 2], `stream ${i} (on ${i < 2 ? 'A' : 'C'}) kept the version it started with`);
    });
    await assertListsAgree('after the replacement');
  });

  test('a delete on C is a 404 on A and B within the bound, and the three lists agree', async () => {
    const [A, B, C] = replicas;
    const doc = mixedAdapter(21);
    assert.equal((await put(A, 'doomed', doc)).status, 201);
    for (const s of [B, C]) await withinBound('doomed listed', async () => (await shaOn(s, 'doomed')) === sha256(doc));
    assert.ok(await textOn(B, { model: 'doomed', prompt: prompts[1], max_tokens: 4 }));
    const r = await del(C, 'doomed');
    assert.equal(r.status, 200, r.body);
    for (const [s, n] of [[A, 'A'], [B, 'B']]) {
      await withinBound(`delete on C seen on ${n}`, async () => (await getOne(s, 'doomed')).status === 404);
      const c = await postJson(s.url, '/v1/completions', { model: 'doomed', prompt: prompts[1], max_tokens: 4 });
      assert.equal(c.status, 404, `completion on ${n} after the delete: ${c.body}`);
      assert.match(c.json.error.message, /doomed/);
    }
    assert.equal((await del(A, 'doomed')).status, 404, 'already deleted');
    const agreed = await assertListsAgree('after the delete');
    assert.ok(!agreed.some((a) => a.name === 'doomed'));
    assert.ok(!fs.existsSync(path.join(adapterDir, 'doomed.json')));
  });

  test('20 concurrent PUTs of one name spread over the three end in one version all agree on', async () => {
    const docs = Array.from({ length: 20 }, (_, i) => mixedAdapter(100 + i));
    const uploaded = new Set(docs.map(sha256));
    assert.equal(uploaded.size, 20);
    const responses = await Promise.all(docs.map((d, i) => put(replicas[i % 3], 'contended', d)));
    responses.forEach((r, i) => {
      assert.ok([200, 201].includes(r.status), `PUT ${i} on ${names[i % 3]}: ${r.status} ${r.body}`);
      assert.equal(r.json.sha256, sha256(docs[i]));
    });
    let final = null;
    await withinBound('the three agree after 20 concurrent PUTs', async () => {
      const shas = await Promise.all(replicas.map((s) => shaOn(s, 'contended')));
      final = shas[0];
      return final !== null && shas.every((x) => x === final);
    });
    assert.ok(uploaded.has(final), `the version all agree on (${final}) is one of the uploaded documents`);
    const onDisk = fs.readFileSync(path.join(adapterDir, 'contended.json'));
    assert.equal(sha256(onDisk), final, 'the file holds that version, complete');
    assert.deepEqual(tempFiles('contended'), [], 'no temporary file is left');
    const outputs = await Promise.all(replicas.map((s) => textOn(s, { model: 'contended', prompt: prompts[0], max_tokens: 16 })));
    assert.equal(outputs[1], outputs[0]);
    assert.equal(outputs[2], outputs[0]);
    await assertListsAgree('after the concurrent PUTs');
  });

  test('kill -9 of a replica mid-upload: the others keep the previous version, nothing torn is ever visible, a restart sees the same set', async (t) => {
    const [A, , C] = replicas;
    const oldDoc = mixedAdapter(50);
    assert.equal((await put(A, 'big', oldDoc)).status, 201);
    for (const s of replicas) await withinBound('big listed', async () => (await shaOn(s, 'big')) === sha256(oldDoc));
    // 64 MiB: a valid document padded with whitespace, so that receiving, parsing and writing
    // it take long enough to be interrupted.
    const newDoc = Buffer.alloc(64 << 20, 0x20);
    const small = Buffer.from(mixedAdapter(51));
    small.copy(newDoc, 0);
    const allowed = new Set([sha256(oldDoc), sha256(newDoc)]);
    const expectedOld = await textOn(A, { model: 'big', prompt: prompts[0], max_tokens: 16 });

    // What A and C list, watched throughout: only the old or the new version, never anything else.
    const seen = new Set();
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        for (const s of [A, C]) seen.add(await shaOn(s, 'big'));
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    })();

    // 1. Killed while the body streams in: nothing was written yet.
    {
      const B = replicas[1];
      const { hostname, port } = new URL(B.url);
      const socket = net.connect(Number(port), hostname);
      socket.on('error', () => {});
      await new Promise((resolve) => socket.on('connect', resolve));
      const head = `PUT /v1/adapters/big HTTP/1.1\r\nHost: ${hostname}\r\nContent-Type: application/json\r\nContent-Length: ${newDoc.length}\r\n\r\n`;
      await new Promise((resolve) => socket.write(Buffer.concat([Buffer.from(head), newDoc.subarray(0, newDoc.length / 2)]), resolve));
      B.proc.kill('SIGKILL');
      const exit = await B.exited;
      socket.destroy();
      assert.equal(exit.signal, 'SIGKILL');
      assert.equal(await textOn(A, { model: 'big', prompt: prompts[0], max_tokens: 16 }), expectedOld, 'A still serves the old version');
      assert.equal(await shaOn(C, 'big'), sha256(oldDoc));
      assert.equal(sha256(fs.readFileSync(path.join(adapterDir, 'big.json'))), sha256(oldDoc));
      await restart(1);
      assert.equal(await shaOn(replicas[1], 'big'), sha256(oldDoc), 'the restarted replica sees the old version');
      await assertListsAgree('after a kill while the body streamed');
    }

    // 2. Killed while the upload is written: as soon as its temporary file appears.
    {
      const B = replicas[1];
      let killedAt = null;
      const fsWatch = fs.watch(adapterDir, (event, file) => {
        if (killedAt === null && file && file.startsWith('.big.') && file.endsWith('.tmp')) {
          B.proc.kill('SIGKILL');
          killedAt = file;
        }
      });
      const upload = put(B, 'big', newDoc).catch((e) => ({ status: null, error: e.message }));
      const exit = await B.exited;
      fsWatch.close();
      const answer = await upload;
      assert.equal(exit.signal, 'SIGKILL');
      assert.ok(killedAt, `the kill landed after the temporary file was created (upload answered ${answer.status})`);
      // The outcome is the old version or the new one, complete, and A and C agree on it.
      let outcome = null;
      await withinBound('A and C agree after the kill', async () => {
        const [a, c] = await Promise.all([shaOn(A, 'big'), shaOn(C, 'big')]);
        outcome = a;
        return a !== null && a === c;
      });
      assert.ok(allowed.has(outcome), `after the kill: ${outcome}`);
      assert.equal(sha256(fs.readFileSync(path.join(adapterDir, 'big.json'))), outcome, 'the file is that version, complete');
      t.diagnostic(`killed while writing ${killedAt}; the outcome is the ${outcome === sha256(oldDoc) ? 'old' : 'new'} version`);
      // The killed writer's temporary file is abandoned (its process on this host is gone):
      // the next rescan of A or C removes it.
      await withinBound('the killed upload\'s temporary file removed', async () => tempFiles('big').length === 0);
      const serving = await textOn(A, { model: 'big', prompt: prompts[0], max_tokens: 16 });
      if (outcome === sha256(oldDoc)) assert.equal(serving, expectedOld, 'A still serves the old version');
      await restart(1);
      assert.equal(await shaOn(replicas[1], 'big'), outcome, 'the restarted replica sees the same version');
    }
    watching = false;
    await watcher;
    seen.delete(null);
    for (const sha of seen) assert.ok(allowed.has(sha), `A or C listed a version nobody uploaded: ${sha}`);
    await assertListsAgree('after the restart');
  });
});
