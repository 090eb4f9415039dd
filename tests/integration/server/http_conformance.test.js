// Connection slots and HTTP conformance of the real server (issue 11, items 5 and 6): each
// case checks the exact status and message. Raw sockets where the HTTP client would hide
// what is on the wire; every wait is bounded and a timeout fails the test.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { baseModel, metrics, postJson, request, startServer } from './helpers.js';

// Sends `bytes` on a new connection and resolves with everything the server sends until it
// closes. Rejects if it has not closed within `deadlineMs`.
function exchangeUntilClose(port, bytes, { deadlineMs = 10_000, localAddress } = {}) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress });
    const chunks = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`server did not close within ${deadlineMs} ms; got ${JSON.stringify(Buffer.concat(chunks).toString('latin1').slice(0, 300))}`));
    }, deadlineMs);
    socket.on('data', (c) => chunks.push(c));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks).toString('latin1'));
    });
    socket.on('error', () => {});  // 'close' follows and settles
    socket.on('connect', () => bytes && socket.write(bytes));
  });
}

// Opens a connection and waits until it is established; the caller closes it.
function openConnection(port, { localAddress } = {}) {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ port, host: '127.0.0.1', localAddress });
    socket.once('connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

function parseResponse(raw) {
  const split = raw.indexOf('\r\n\r\n');
  assert.ok(split > 0, `no HTTP response head in ${JSON.stringify(raw.slice(0, 200))}`);
  const lines = raw.slice(0, split).split('\r\n');
  const status = Number(lines[0].split(' ')[1]);
  const headers = {};
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    headers[line.slice(0, i).toLowerCase()] = line.slice(i + 1).trim();
  }
  const body = raw.slice(split + 4);
  return { status, headers, body, json: JSON.parse(body) };
}

// The server's open-connection gauge, scraped from `localAddress` (so that a per-address
// cap on 127.0.0.1 does not refuse the scrape).
// A connection the server has admitted and holds (keep-alive, idle): it answered a request on
// it with 200. A refused one (503: the slot of a connection that just closed may not be free
// yet on a slow server) is closed and the connection retried. Returns the socket and how
// many refusals it took (the server counts them in hotswap_connections_refused_total).
async function openAdmittedConnection(port, { deadlineMs = 10_000 } = {}) {
  const deadline = Date.now() + deadlineMs;
  for (let refused = 0; ; ++refused) {
    const socket = await openConnection(port);
    const status = await new Promise((resolve, reject) => {
      let raw = '';
      const onData = (chunk) => {
        raw += chunk.toString('latin1');
        const split = raw.indexOf('\r\n\r\n');
        if (split < 0) return;
        const length = Number(/content-length: *(\d+)/i.exec(raw.slice(0, split))?.[1] ?? 0);
        if (raw.length < split + 4 + length) return;
        socket.off('data', onData);
        resolve(Number(raw.split(' ')[1]));
      };
      socket.on('data', onData);
      socket.once('error', reject);
      socket.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
    });
    if (status === 200) return { socket, refused };
    socket.destroy();
    assert.ok(Date.now() < deadline, `no connection admitted within ${deadlineMs} ms (last status ${status})`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

// The server's open-connection gauge, or null when the scrape itself was refused (503: every
// slot taken, e.g. while the previous scrape's connection is still giving its slot back).
async function openConnectionsGauge(port, localAddress) {
  const raw = await exchangeUntilClose(port, 'GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', { localAddress });
  if (raw.startsWith('HTTP/1.1 503 ')) return null;
  const line = raw.split('\n').find((l) => l.startsWith('hotswap_open_connections '));
  assert.ok(line, `no hotswap_open_connections in ${raw.slice(0, 300)}`);
  return Number(line.split(' ')[1]);
}

// Resolves once the server sees `count` open connections (its own gauge), or fails. Returns
// how many of its scrapes were refused (503: every slot still taken), which the server counts
// in hotswap_connections_refused_total like any other refusal.
async function waitForOpenConnections(port, count, { deadlineMs = 10_000, scrapeFrom = '127.0.0.1' } = {}) {
  const deadline = Date.now() + deadlineMs;
  for (let refused = 0; ; ) {
    const open = await openConnectionsGauge(port, scrapeFrom);
    if (open === null) ++refused;
    // The /metrics request itself is one open connection.
    if (open === count + 1) return refused;
    if (Date.now() > deadline)
      assert.fail(`expected ${count} open connections besides the scrape, /metrics says ${open === null ? 'nothing (refused)' : open - 1}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('HTTP conformance', () => {
  let server;
  let model;
  before(async () => {
    server = await startServer(['--max-new-tokens', '64']);
    model = (await baseModel(server)).id;
  });
  after(async () => {
    const { code } = await server.stop();
    assert.equal(code, 0, `server exit code; logs:\n${server.logs().slice(-3000)}`);
  });

  test('absolute-form request targets are accepted (RFC 9112 §3.2.2)', async () => {
    const raw = await exchangeUntilClose(server.port, `GET http://127.0.0.1:${server.port}/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    const r = parseResponse(raw);
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, { status: 'ok' });
    const models = parseResponse(await exchangeUntilClose(server.port, 'GET HTTP://localhost/v1/models?x=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n'));
    assert.equal(models.status, 200);
    assert.equal(models.json.object, 'list');
  });

  for (const coding of ['gzip', 'gzip, chunked', 'deflate']) {
    test(`Transfer-Encoding: ${coding} is 501`, async () => {
      const raw = await exchangeUntilClose(server.port,
        `POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: ${coding}\r\n\r\n`);
      const r = parseResponse(raw);
      assert.equal(r.status, 501);
      assert.equal(r.headers.connection, 'close');
      assert.deepEqual(r.json.error, {
        message: `Transfer-Encoding '${coding}' is not implemented: the only transfer coding accepted is 'chunked'`,
        type: 'invalid_request_error', param: 'Transfer-Encoding', code: 'unsupported_transfer_coding',
      });
    });
  }

  test('chunked request bodies still work', async () => {
    const body = JSON.stringify({ model, prompt: 'chunked', max_tokens: 2, temperature: 0 });
    const raw = await exchangeUntilClose(server.port,
      `POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n` +
      `${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`);
    const r = parseResponse(raw);
    assert.equal(r.status, 200);
    assert.equal(r.json.object, 'text_completion');
  });

  for (const [route, body] of [
    ['/v1/completions', () => ({ model, prompt: 'x', max_tokens: 1 })],
    ['/v1/chat/completions', () => ({ model, messages: [{ role: 'user', content: 'x' }], max_tokens: 1 })],
  ]) {
    test(`POST ${route} without application/json is 415`, async () => {
      const json = JSON.stringify(body());
      const plain = await request(server.url, { method: 'POST', path: route, body: json, headers: { 'content-type': 'text/plain' } });
      assert.equal(plain.status, 415);
      assert.deepEqual(plain.json.error, {
        message: `Content-Type must be application/json for POST ${route}; got 'text/plain'`,
        type: 'invalid_request_error', param: 'Content-Type', code: 'unsupported_media_type',
      });
      const none = await request(server.url, { method: 'POST', path: route, body: json });
      assert.equal(none.status, 415);
      assert.equal(none.json.error.message, `Content-Type must be application/json for POST ${route}; no Content-Type was sent`);
      const form = await request(server.url, { method: 'POST', path: route, body: json, headers: { 'content-type': 'application/x-www-form-urlencoded' } });
      assert.equal(form.status, 415);
      const ok = await request(server.url, { method: 'POST', path: route, body: json, headers: { 'content-type': 'Application/JSON; charset=utf-8' } });
      assert.equal(ok.status, 200, ok.body);
    });
  }

  for (const [method, target] of [['GET', '//v1/models'], ['GET', '/v1//models'], ['GET', '/health/'], ['POST', '/v1/completions/']]) {
    test(`${method} ${target} is not collapsed onto another route`, async () => {
      const r = await request(server.url, { method, path: target, body: method === 'POST' ? { model, prompt: 'x' } : undefined });
      assert.equal(r.status, 404);
      assert.deepEqual(r.json.error, { message: `no route for ${method} ${target}`, type: 'not_found_error', param: null, code: 'route_not_found' });
    });
  }

  test('an out-of-range max_tokens names the limit it exceeds', async () => {
    for (const value of [65, 1e9, 3e12]) {
      const r = await postJson(server.url, '/v1/completions', { model, prompt: 'x', max_tokens: value });
      assert.equal(r.status, 400);
      assert.equal(r.json.error.param, 'max_tokens');
      assert.equal(r.json.error.message,
        `max_tokens must be an integer between 1 and 64 (the server's max_new_tokens), got ${JSON.stringify(value)}`);
    }
    const chat = await postJson(server.url, '/v1/chat/completions', { model, messages: [{ role: 'user', content: 'x' }], max_completion_tokens: 100 });
    assert.equal(chat.status, 400);
    assert.equal(chat.json.error.message,
      "max_completion_tokens must be an integer between 1 and 64 (the server's max_new_tokens), got 100");
  });
});

const TIME_SCALE = Number(process.env.HOTSWAP_TEST_TIME_SCALE ?? 1);
const NO_TIMEOUTS = ['--header-timeout-ms', '600000', '--idle-timeout-ms', '600000'];

describe('connection slots', () => {
  test('beyond max_connections a new client gets 503 with Retry-After, not a reset', async () => {
    const config = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'hotswap-slots-')), 'server.json');
    fs.writeFileSync(config, JSON.stringify({ retry_after_s: 7, limits: { max_connections: 3 } }));
    // Held connections send nothing: the header and idle timeouts must not free their slots
    // during the test, however slow the server (sanitizers) or the machine.
    const server = await startServer(['--config', config, ...NO_TIMEOUTS]);
    try {
      // Start from no open connection: the start-up probes' sessions may still be closing.
      // Refusals the test itself causes: scrapes and admissions that found every slot taken.
      let incidental = await waitForOpenConnections(server.port, 0);
      const held = await Promise.all([0, 1].map(() => openConnection(server.port)));
      incidental += await waitForOpenConnections(server.port, 2);  // the third slot is the scrape's
      // All three slots taken: the two held and a third we hold now, once the scrape's
      // connection has given its slot back (the server answered the third with 200).
      const { socket: third, refused: retried } = await openAdmittedConnection(server.port);
      incidental += retried;
      const raw = await exchangeUntilClose(server.port, 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
      const r = parseResponse(raw);
      assert.equal(r.status, 503);
      assert.equal(r.headers['retry-after'], '7');
      assert.equal(r.headers.connection, 'close');
      assert.deepEqual(r.json.error, {
        message: 'the server has 3 open connections, its limit (limits.max_connections); retry later',
        type: 'server_error', param: null, code: 'too_many_connections',
      });
      // A refused client that sends a body too still reads the answer (no reset).
      const withBody = parseResponse(await exchangeUntilClose(server.port,
        `POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 20000\r\n\r\n${'x'.repeat(20000)}`));
      assert.equal(withBody.status, 503);
      for (const s of [...held, third]) s.destroy();
      incidental += await waitForOpenConnections(server.port, 0);
      const m = await metrics(server.url);
      assert.equal(m.get('hotswap_connections_refused_total{reason="max_connections"}'), 2 + incidental);
      assert.equal((await request(server.url, { path: '/health' })).status, 200);
    } finally {
      await server.stop();
    }
  });

  test('max_connections_per_client caps one address and leaves others in (429)', async () => {
    const server = await startServer(['--max-connections-per-client', '2', ...NO_TIMEOUTS]);
    try {
      // Start from no open connection: the start-up probes (from 127.0.0.1) may still be closing.
      await waitForOpenConnections(server.port, 0, { scrapeFrom: '127.0.0.3' });
      const held = await Promise.all([0, 1].map(() => openConnection(server.port, { localAddress: '127.0.0.1' })));
      await waitForOpenConnections(server.port, 2, { scrapeFrom: '127.0.0.3' });
      const r = parseResponse(await exchangeUntilClose(server.port, 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n', { localAddress: '127.0.0.1' }));
      assert.equal(r.status, 429);
      assert.equal(r.headers['retry-after'], '1');
      assert.deepEqual(r.json.error, {
        message: 'client 127.0.0.1 already has 2 open connections, the limit per client address ' +
          '(limits.max_connections_per_client); close one or retry later',
        type: 'rate_limit_error', param: null, code: 'too_many_connections_from_client',
      });
      // Another loopback address is another client.
      const other = parseResponse(await exchangeUntilClose(server.port, 'GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', { localAddress: '127.0.0.2' }));
      assert.equal(other.status, 200);
      for (const s of held) s.destroy();
      await waitForOpenConnections(server.port, 0, { scrapeFrom: '127.0.0.3' });
      const again = await exchangeUntilClose(server.port, 'GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', { localAddress: '127.0.0.1' });
      assert.equal(parseResponse(again).status, 200, 'the client address was not let in again after closing its connections');
      assert.equal((await metrics(server.url)).get('hotswap_connections_refused_total{reason="max_connections_per_client"}'), 1);
    } finally {
      await server.stop();
    }
  });

  test('a connection that sends nothing is closed at the header timeout, not the idle timeout', async () => {
    const server = await startServer(['--header-timeout-ms', '300', '--idle-timeout-ms', '120000']);
    try {
      const started = Date.now();
      const silent = await exchangeUntilClose(server.port, '', { deadlineMs: 20_000 });
      assert.equal(silent, '', 'nothing is answered to a connection that sent nothing');
      assert.ok(Date.now() - started < 20_000);
      // A keep-alive connection that has been served waits for the idle timeout instead: still
      // open after several header timeouts, and it serves a second request.
      const socket = await openConnection(server.port);
      const responses = [];
      let closed = false;
      socket.on('data', (c) => responses.push(c.toString('latin1')));
      socket.on('close', () => { closed = true; });
      socket.write('GET /health HTTP/1.1\r\nHost: x\r\n\r\n');
      const until = async (predicate, what) => {
        const deadline = Date.now() + 10_000;
        while (!predicate()) {
          assert.ok(Date.now() < deadline, `timed out waiting for ${what}`);
          await new Promise((r) => setTimeout(r, 10));
        }
      };
      await until(() => responses.join('').includes('{"status":"ok"}'), 'the first response');
      await new Promise((r) => setTimeout(r, 1500));  // five header timeouts
      assert.equal(closed, false, 'a served keep-alive connection was closed at the header timeout');
      socket.write('GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
      await until(() => closed, 'the second response and close');
      assert.equal(responses.join('').split('{"status":"ok"}').length - 1, 2);
    } finally {
      await server.stop();
    }
  });

  test('a client that never reads a stream is cut at the write timeout and its sequence cancelled', async () => {
    const server = await startServer(['--write-timeout-ms', '1000']);
    try {
      const model = (await baseModel(server)).id;
      const before = await metrics(server.url);
      // Loopback buffers absorb about 4 MB (the server's send buffer autotunes up to
      // tcp_wmem's 4 MiB), so the stream must be larger: 16 choices x 1000 tokens with 20
      // alternatives each (about 1 KB per token) make ~17 MB, and ~4,000 tokens fill them.
      const body = JSON.stringify({ model, prompt: 'never read', max_tokens: 1000, n: 16, temperature: 1, seed: 1, ignore_eos: true, logprobs: 20, stream: true });
      const socket = net.connect({ port: server.port, host: '127.0.0.1' });
      let closedByServer = false;
      socket.on('close', () => { closedByServer = true; });
      socket.on('error', () => {});
      await new Promise((resolve) => socket.on('connect', resolve));
      socket.pause();  // never read: the kernel buffers fill, then the server's writes stall
      socket.write(`POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
      // ~4,000 tokens must be generated before the buffers fill: minutes for a sanitizer build.
      const deadline = Date.now() + Math.min(120_000 * TIME_SCALE, 600_000);
      for (;;) {
        const m = await metrics(server.url);
        const cancelled = m.get('hotswap_requests_cancelled_by_client_total') - before.get('hotswap_requests_cancelled_by_client_total');
        if (cancelled === 1 && m.get('hotswap_running_sequences') === 0 && m.get('hotswap_active_generations') === 0) break;
        assert.ok(Date.now() < deadline, `the stalled stream was not cut: ${JSON.stringify([...m].filter(([k]) => /running|active|cancelled/.test(k)))}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const disconnect = server.logs().split('\n').find((l) => l.includes('event=client_disconnected'));
      assert.match(disconnect ?? 'no client_disconnected line', /reason="client stopped reading \(write timeout\)"/);
      assert.match(server.logs(), /access id=\w+ method=POST route=\/v1\/completions path=\/v1\/completions status=499 /);
      assert.ok(!/completion_tokens=16000 /.test(server.logs()), 'the generation ran to its end instead of being cancelled');
      socket.resume();
      const closeDeadline = Date.now() + 10_000;
      while (!closedByServer) {
        assert.ok(Date.now() < closeDeadline, 'the server did not close the stalled connection');
        await new Promise((r) => setTimeout(r, 10));
      }
      assert.equal((await request(server.url, { path: '/health' })).status, 200);
    } finally {
      await server.stop();
    }
  });
});
