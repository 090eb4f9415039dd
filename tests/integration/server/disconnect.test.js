// Clients that hang up at every point of an exchange (issue 11, item 2). For
// /v1/completions and /v1/chat/completions, streamed and not: 64 clients that close (FIN)
// right after sending the request, 64 that reset (RST) right after sending it, clients that
// read exactly N bytes of the response and then close, for every N in 0..2047, and clients
// that reset after N bytes for every 8th N; every response is longer than 2 KB. Then
// clients that hang up before or while sending a request. After each batch: the server
// process is alive, /metrics shows no running or queued sequence, no active generation, no
// KV block held by a sequence (hotswap_kv_blocks_used counts blocks with a reference; blocks
// the prefix cache keeps after their sequences ended count as free) and no connection left
// open, each exchange is counted at most once, and greedy requests answer exactly what they
// answered before any client misbehaved.
//
// Before the fix of issue 11 (commit cef29af) the server died with SIGSEGV in the first
// batches of both streamed routes: "close right after sending" (every run), and "close
// after N bytes" a few clients in (N of a few bytes: the client hangs up once the header
// arrives): the probe's EOF handler destroyed the SSE header serializer while
// http::async_write_header was still using it. A server that dies, or does not settle idle,
// is replaced before the next test, so each test reports its own outcome.
//
// Streamed sweeps run one client at a time (the server's state at the hang-up then depends
// on N alone); a non-streamed answer is one write after the whole generation, so those
// clients overlap. Environment: HOTSWAP_DISCONNECT_CONCURRENCY (clients at once in the
// non-streamed sweeps, default 4), HOTSWAP_DISCONNECT_OFFSET_STEP (default 1 = every offset;
// e.g. 4 against a sanitizer build, where the suite takes some 10 minutes with 1),
// HOTSWAP_TEST_TIME_SCALE (multiplies every deadline, e.g. 10 for a sanitizer build).
import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { baseModel, busy, CROSS_BATCH_ARGS, idle, metrics, postJson, request, sleep, sseData, startServer } from './helpers.js';
import {
  connectThenHangUp, endOfChunkedResponse, fullExchange, parseResponse, partialRequestThenHangUp, readThenHangUp, requestBytes, sendThenHangUp,
} from './rude_clients.js';

const CONCURRENCY = Number(process.env.HOTSWAP_DISCONNECT_CONCURRENCY ?? 4);
const TIME_SCALE = Number(process.env.HOTSWAP_TEST_TIME_SCALE ?? 1);
const OFFSETS = 2048;           // close after every byte offset of the first 2 KB
const OFFSET_STEP = Number(process.env.HOTSWAP_DISCONNECT_OFFSET_STEP ?? 1);  // > 1 only for slow (sanitizer) builds
const RESET_OFFSET_STRIDE = 8;  // reset after one offset in every 8
const REPEATS = 64;             // close / reset right after sending, per case

// The idle, header and body timeouts are 10 minutes: a connection whose client has hung up
// must be closed because the server noticed, never by a timer within a test's deadline.
// Every client of a sweep expects the same greedy response (its length bounds the sweep), while
// the clients run in batches of different shapes: CROSS_BATCH_ARGS (helpers.js).
const SERVER_ARGS = [...CROSS_BATCH_ARGS, '--idle-timeout-ms', '600000', '--header-timeout-ms', '600000', '--body-timeout-ms', '600000'];

let server = null;
let model;
const deaths = [];    // servers that died: { during, code, signal, clientsDone, disconnectsLogged }
const restarts = [];  // why a server was replaced before a test
let reference;        // greedy answers of the healthy server, taken before any client hung up

// Resolves true when `promise` settles within `ms`, false otherwise; leaves no timer behind.
function within(promise, ms) {
  let timer;
  const late = new Promise((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  return Promise.race([promise.then(() => true, () => true), late]).finally(() => clearTimeout(timer));
}

const alive = (s) => s.proc.exitCode === null && s.proc.signalCode === null;

// Starts the server, or a new one if the last one died, stopped answering or did not settle
// idle (a connection or a sequence a failed test left behind): a test that broke the server
// fails itself and does not take the next ones with it.
async function ensureServer() {
  if (server && alive(server)) {
    const health = await request(server.url, { path: '/health', timeoutMs: 10_000 * TIME_SCALE }).catch(() => null);
    if (health?.status === 200) {
      const deadline = Date.now() + 5000 * TIME_SCALE;
      for (;;) {
        const m = await metrics(server.url).catch(() => null);
        if (m && idle(m)) return;
        if (!m || Date.now() > deadline) break;
        await sleep(20);
      }
      restarts.push('not idle');
    } else {
      await within(server.exited, 3000 * TIME_SCALE);
      restarts.push(alive(server) ? 'not answering' : 'dead');
    }
    if (alive(server)) await server.stop('SIGKILL');
  }
  server = await startServer(SERVER_ARGS);
  model = (await baseModel(server)).id;
}

// Greedy requests whose answers must never change.
const probeCompletion = () => ({ model, prompt: 'The lighthouse keeper opened the door and', max_tokens: 24, temperature: 0, ignore_eos: true });
const probeChat = () => ({ model, messages: [{ role: 'user', content: 'Describe the sea at night.' }], max_tokens: 24, temperature: 0, ignore_eos: true });

async function greedyAnswers() {
  const a = await postJson(server.url, '/v1/completions', probeCompletion());
  assert.equal(a.status, 200, a.body);
  const b = await postJson(server.url, '/v1/chat/completions', { ...probeChat(), stream: true });
  assert.equal(b.status, 200, b.body);
  const events = sseData(b.body);
  assert.equal(events.at(-1), '[DONE]', 'a streamed answer ends with [DONE]');
  const chat = events.slice(0, -1).map((e) => JSON.parse(e).choices[0].delta.content ?? '').join('');
  return { completion: a.json.choices[0].text, chat };
}

// The four kinds of request under test; each response is longer than 2 KB (checked below).
// A streamed response is several times longer than 2 KB, so that it still is when the server
// packs several tokens into one event (a client hanging up within 2 KB cancels the rest).
const cases = [
  { route: '/v1/completions', stream: true, body: () => ({ model, prompt: 'Tell me a long story about a lighthouse keeper', max_tokens: 128, temperature: 0, ignore_eos: true, stream: true }) },
  { route: '/v1/completions', stream: false, body: () => ({ model, prompt: 'Tell me a long story about a lighthouse keeper', max_tokens: 16, temperature: 0, ignore_eos: true, logprobs: 5 }) },
  // logprobs: one event per token, so its length does not hang on how the greedy text groups
  // into chunks (a few long words would make a few events).
  { route: '/v1/chat/completions', stream: true, body: () => ({ model, messages: [{ role: 'user', content: 'Tell me a long story about a lighthouse keeper' }], max_tokens: 96, temperature: 0, ignore_eos: true, logprobs: true, stream: true }) },
  { route: '/v1/chat/completions', stream: false, body: () => ({ model, messages: [{ role: 'user', content: 'Tell me a long story about a lighthouse keeper' }], max_tokens: 10, temperature: 0, ignore_eos: true, logprobs: true, top_logprobs: 5 }) },
];
const caseName = (c) => `${c.route} ${c.stream ? 'streamed' : 'not streamed'}`;

const STATUS_LINE = 'HTTP/1.1 200 OK\r\n';

// Waits for a condition on /metrics, polling until it holds; fails at the deadline with
// the last values seen.
async function waitForMetrics(what, predicate, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs * TIME_SCALE;
  let last;
  for (;;) {
    if (!alive(server)) assert.fail(`server died while waiting for ${what}: ${JSON.stringify(await server.exited)}`);
    last = await metrics(server.url);
    if (predicate(last)) return last;
    if (Date.now() > deadline) {
      assert.fail(`${what}: not reached within ${timeoutMs * TIME_SCALE} ms; last /metrics: ${busy(last).join(', ') || 'idle'}`);
    }
    await sleep(20);
  }
}


const requestsOf = (m, route) => [...m].filter(([k]) => k.startsWith(`hotswap_requests_total{route="${route}",`)).reduce((s, [, v]) => s + v, 0);

// Runs client(i) for i in 0..count-1, `concurrency` at a time, stopping at the first death of
// the server. Then checks that the server survived, settles idle with everything returned,
// counted each exchange at most once, and answers as before.
async function batch(label, route, count, client, concurrency = 1) {
  await ensureServer();
  const s = server;
  let finished = 0;
  try {
    return await batchOn(s, label, route, count, client, concurrency, () => finished++);
  } catch (e) {
    // A crash shows as failed clients or a failed scrape a moment before the exit status.
    await within(s.exited, 3000 * TIME_SCALE);
    if (alive(s)) throw e;
    const { code, signal } = await s.exited;
    // How far it got: the hang-ups it logged before dying.
    const noticed = (s.logs().match(/event=client_disconnected/g) ?? []).length;
    deaths.push({ during: label, code, signal, clientsDone: finished, disconnectsLogged: noticed });
    assert.fail(`the server died during "${label}" (exit code ${code}, signal ${signal}) after ${finished} of ${count} clients ` +
                `(${noticed} hang-ups logged by this server): ` +
                `${e.message.slice(0, 1500)}\nserver log tail:\n${s.logs().slice(-1500)}`);
  }
}

async function batchOn(s, label, route, count, client, concurrency, onFinished) {
  const before = await waitForMetrics(`idle before "${label}"`, idle);
  const errors = [];
  let next = 0;
  const worker = async () => {
    while (next < count && alive(s)) {
      const i = next++;
      try {
        await client(i);
      } catch (e) {
        errors.push(`#${i}: ${e.message}`);
      }
      onFinished();
    }
  };
  const started = Date.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const ms = Date.now() - started;
  assert.equal(errors.length, 0, `${errors.length} of ${count} clients of "${label}" failed, first: ${errors.slice(0, 3).join(' | ')}`);
  assert.ok(alive(s), 'server alive');
  const settled = await waitForMetrics(`idle after "${label}"`, idle);
  if (route) {
    const counted = requestsOf(settled, route) - requestsOf(before, route);
    assert.ok(counted <= count, `"${label}": ${counted} exchanges counted for ${count} clients (counted twice?)`);
  }
  const cancelled = settled.get('hotswap_requests_cancelled_by_client_total') - before.get('hotswap_requests_cancelled_by_client_total');
  assert.ok(cancelled <= count, `"${label}": ${cancelled} cancellations for ${count} clients`);
  assert.deepEqual(await greedyAnswers(), reference, `greedy answers after "${label}"`);
  await waitForMetrics(`idle after the greedy requests that followed "${label}"`, idle);
  return { ms, cancelled };
}

before(async () => {
  await ensureServer();
  reference = await greedyAnswers();
  assert.ok(reference.completion.length > 0 && reference.chat.length > 0, 'greedy reference answers are not empty');
});

beforeEach(async () => {
  await ensureServer();  // a test that killed the server does not take the next ones with it
});

after(async () => {
  if (deaths.length) console.log(`server deaths: ${JSON.stringify(deaths)}`);
  if (restarts.length) console.log(`servers replaced before a test: ${JSON.stringify(restarts)}`);
  if (server && alive(server)) {
    // SIGTERM drains and exits at once when nothing runs; a server that does not exit within
    // the deadline is killed and fails the suite.
    const stopped = server.stop();
    const inTime = await within(stopped, 60_000 * TIME_SCALE);
    if (!inTime) server.proc.kill('SIGKILL');
    const { code, signal } = await stopped;
    assert.ok(inTime, `the server did not exit within ${60 * TIME_SCALE} s of SIGTERM; logs:\n${server.logs().slice(-4000)}`);
    assert.equal(code, 0, `server exit code (signal ${signal}); logs:\n${server.logs().slice(-4000)}`);
  }
});

for (const c of cases) {
  describe(caseName(c), { concurrency: false }, () => {
    let bytes;
    let responseLength = 0;
    const sweepConcurrency = c.stream ? 1 : CONCURRENCY;

    before(() => {
      bytes = requestBytes({ path: c.route, body: c.body() });  // `model` is known now
    });

    test('a polite client gets a complete response longer than 2 KB', async () => {
      const raw = await fullExchange(server.url, requestBytes({ path: c.route, body: c.body(), headers: { connection: 'close' } }), { timeoutMs: 60_000 * TIME_SCALE });
      const r = parseResponse(raw);
      assert.equal(r.status, 200, r.body.toString());
      const text = r.body.toString('utf8');
      if (c.stream) {
        assert.match(r.headers['content-type'], /^text\/event-stream/);
        const events = sseData(text);
        assert.equal(events.at(-1), '[DONE]');
        assert.ok(events.length > 16, `${events.length} SSE events`);
      } else {
        assert.match(r.headers['content-type'], /^application\/json/);
        assert.ok(JSON.parse(text).choices[0].logprobs, 'logprobs present');
      }
      responseLength = raw.length;
      assert.ok(responseLength >= OFFSETS + 512, `response of ${responseLength} bytes; the offset sweep needs more than ${OFFSETS}`);
    });

    test(`close right after sending (x${REPEATS})`, async () => {
      await batch(`${caseName(c)}: close right after sending`, c.route, REPEATS, () => sendThenHangUp(server.url, bytes, { how: 'close' }));
    });

    test(`reset right after sending (x${REPEATS})`, async () => {
      await batch(`${caseName(c)}: reset right after sending`, c.route, REPEATS, () => sendThenHangUp(server.url, bytes, { how: 'reset' }));
    });

    const readAndCheck = async (n, how) => {
      const { head, complete } = await readThenHangUp(server.url, bytes, n, { how, orWhen: endOfChunkedResponse, timeoutMs: 60_000 * TIME_SCALE });
      assert.ok(!complete, `offset ${n}: the whole response (${head.length} bytes) is shorter than ${n} bytes`);
      assert.equal(head.length, n);
      const k = Math.min(n, STATUS_LINE.length);
      assert.equal(head.subarray(0, k).toString('latin1'), STATUS_LINE.slice(0, k), `offset ${n}: the response starts with 200 OK`);
    };

    test(`close after reading each of the first ${OFFSETS} byte offsets of the response${OFFSET_STEP > 1 ? ` (every ${OFFSET_STEP}th)` : ''}`, async () => {
      assert.ok(responseLength > OFFSETS, 'response longer than the sweep');
      await batch(`${caseName(c)}: close after N bytes, N = 0..${OFFSETS - 1} step ${OFFSET_STEP}`, c.route, Math.ceil(OFFSETS / OFFSET_STEP),
                  (i) => readAndCheck(i * OFFSET_STEP, 'close'), sweepConcurrency);
    });

    // N = 0, 9, 18, .., 63, 64, 73, ..: one offset in each 8-byte block, each position of a
    // block in turn.
    test(`reset after reading N bytes, one N in every ${RESET_OFFSET_STRIDE} of the first ${OFFSETS}`, async () => {
      assert.ok(responseLength > OFFSETS, 'response longer than the sweep');
      const count = OFFSETS / RESET_OFFSET_STRIDE;
      await batch(`${caseName(c)}: reset after N bytes, one N in every ${RESET_OFFSET_STRIDE}`, c.route, count,
                  (i) => readAndCheck(i * RESET_OFFSET_STRIDE + (i % RESET_OFFSET_STRIDE), 'reset'), sweepConcurrency);
    });
  });
}

describe('hanging up before the request is complete', { concurrency: false }, () => {
  test('connect, then close or reset without sending a byte', async () => {
    await batch('connect then hang up', null, 64, (i) => connectThenHangUp(server.url, { how: i % 2 ? 'reset' : 'close' }));
  });

  for (const c of cases) {
    test(`${caseName(c)}: close or reset at cuts through the request line, headers and body`, async () => {
      const bytes = requestBytes({ path: c.route, body: c.body() });
      const text = bytes.toString('latin1');
      const headEnd = text.indexOf('\r\n\r\n') + 4;
      const cuts = [1, 5, text.indexOf('\r\n'), text.indexOf('\r\n') + 2, Math.floor(headEnd / 2), headEnd - 2, headEnd - 1, headEnd,
                    headEnd + 1, Math.floor((headEnd + bytes.length) / 2), bytes.length - 1];
      const jobs = cuts.flatMap((cut) => [['close', cut], ['reset', cut]]);
      await batch(`${caseName(c)}: hang up mid-request`, c.route, jobs.length, (i) => partialRequestThenHangUp(server.url, bytes, jobs[i][1], { how: jobs[i][0] }));
    });
  }
});
