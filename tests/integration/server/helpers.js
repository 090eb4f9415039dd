// Shared helpers: start the real `hotswap serve` on a free loopback port, talk raw HTTP,
// read /metrics. The binary comes from $HOTSWAP_BIN (CTest passes it).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';

const here = path.dirname(new URL(import.meta.url).pathname);
export const BIN = process.env.HOTSWAP_BIN ?? path.resolve(here, '../../../build/bin/hotswap');
export const CACHE_DIR = process.env.HOTSWAP_TEST_CACHE_DIR ?? path.join(os.tmpdir(), 'hotswap-integration-cache');

// Server arguments for suites that compare greedy text across batch shapes (a request alone
// against the same request among others, or prefilled in other chunks): at most 7 tokens per
// step. From 8 rows the float32 projections take the packed form, whose last bit differs from
// the dot form's (ARCHITECTURE.md, "Arithmetic"); below 8 a row's result does not depend on the
// other rows, so a sequence's tokens are bitwise the same in any batch. Without this a last-bit
// difference can become another token, rarely with a float32 KV cache and often with the
// default bf16 one, whose rounding magnifies it.
export const CROSS_BATCH_ARGS = Object.freeze(['--max-batch-tokens', '7']);

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// Starts `hotswap serve --port 0 ...`, reads the port from the "listening on" line and waits
// for /ready. Returns { url, port, proc, exited, logs(), stop(signal) }.
export async function startServer(extraArgs = [], { readyTimeoutMs = 300_000 } = {}) {
  const args = ['serve', '--port', '0', '--cache-dir', CACHE_DIR, ...extraArgs];
  const proc = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let logs = '';
  proc.stderr.on('data', (d) => {
    logs += d.toString();
    if (logs.length > 400_000) logs = logs.slice(-200_000);
  });
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  const url = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no "listening on" line within 60 s; logs:\n${logs}`)), 60_000);
    proc.stdout.on('data', (d) => {
      out += d.toString();
      const m = out.match(/listening on (http:\/\/[0-9.:]+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    });
    proc.on('error', (e) => reject(new Error(`cannot start ${BIN}: ${e.message}`)));
    exited.then((r) => reject(new Error(`hotswap serve exited (code ${r.code}, signal ${r.signal}) before listening; logs:\n${logs}`)));
  });
  const server = {
    url,
    port: Number(new URL(url).port),
    proc,
    exited,
    logs: () => logs,
    async stop(signal = 'SIGTERM') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    const r = await request(url, { path: '/ready' }).catch(() => null);
    if (r && r.status === 200) break;
    if (proc.exitCode !== null) throw new Error(`hotswap serve exited while loading; logs:\n${logs}`);
    if (Date.now() > deadline) throw new Error(`not ready within ${readyTimeoutMs} ms; logs:\n${logs}`);
    await sleep(100);
  }
  return server;
}

export function client(server, options = {}) {
  return new OpenAI({ baseURL: `${server.url}/v1`, apiKey: options.apiKey ?? 'unused', maxRetries: 0, timeout: 120_000 });
}

// One HTTP request on a fresh connection. body: string | Buffer | object (sent as JSON).
// Resolves { status, headers, body (string), json (parsed or undefined) }.
export function request(url, { method = 'GET', path: p = '/', headers = {}, body, agent = false, timeoutMs = 120_000 } = {}) {
  return new Promise((resolve, reject) => {
    let payload = body;
    const h = { ...headers };
    if (payload !== undefined && !Buffer.isBuffer(payload) && typeof payload !== 'string') {
      payload = JSON.stringify(payload);
      h['content-type'] ??= 'application/json';
    }
    const req = http.request(`${url}${p}`, { method, headers: h, agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode, headers: res.headers, body: text, json, reusedSocket: req.reusedSocket });
      });
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`timeout after ${timeoutMs} ms: ${method} ${p}`)));
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

export const postJson = (url, p, body, extra = {}) => request(url, { method: 'POST', path: p, body, ...extra });

// Writes raw bytes on a new TCP connection and collects what comes back until the server
// closes the connection (FIN, or a reset after some bytes arrived), then resolves with the
// bytes as a latin1 string. With `until` (a predicate on the text so far), it resolves as soon
// as the predicate holds instead, for exchanges after which the server keeps the connection.
// Nothing resolves on a timer: if neither happens within `waitMs`, it rejects with what had
// arrived, so a test can never pass on a timeout. More than `maxBytes` also rejects (a server
// answering in a loop). 30 s stays below the server's 60 s idle timeout, so a server that
// keeps a connection it should close is caught rather than closed by the idle timer.
export function rawExchange(url, bytes, { waitMs = 30_000, until, maxBytes = 16 << 20 } = {}) {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname);
    const chunks = [];
    let settled = false;
    const text = () => Buffer.concat(chunks).toString('latin1');
    const settle = (fn, value) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      fn(value);
    };
    const timer = setTimeout(() => {
      const got = text();
      settle(reject, new Error(`rawExchange: ${until ? 'the expected bytes did not arrive' : 'the server did not close the connection'} ` +
                               `within ${waitMs} ms; received ${got.length} bytes: ${JSON.stringify(got.slice(0, 400))}`));
    }, waitMs);
    let received = 0;
    socket.on('data', (c) => {
      chunks.push(c);
      received += c.length;
      if (received > maxBytes) {
        settle(reject, new Error(`rawExchange: more than ${maxBytes} bytes received: ${JSON.stringify(text().slice(0, 400))}`));
      } else if (until && until(text())) {
        settle(resolve, text());
      }
    });
    socket.on('end', () => {
      if (until && !until(text())) {
        settle(reject, new Error(`rawExchange: the server closed the connection before the expected bytes; received: ${JSON.stringify(text().slice(0, 400))}`));
      } else {
        settle(resolve, text());
      }
    });
    socket.on('error', (e) => {
      // A reset once the server has answered (it closed with our unread bytes in its buffer)
      // is the server closing; a reset or any other error before that is a failure.
      if (!until && chunks.length && (e.code === 'ECONNRESET' || e.code === 'EPIPE')) settle(resolve, text());
      else settle(reject, new Error(`rawExchange: ${e.message}; received: ${JSON.stringify(text().slice(0, 400))}`));
    });
    socket.on('connect', () => socket.write(bytes));
  });
}

// Parses an SSE body into its data payloads (strings), checking the framing.
export function sseData(body) {
  if (!body.endsWith('\n\n')) throw new Error(`SSE body does not end with a blank line: ${JSON.stringify(body.slice(-40))}`);
  return body
    .slice(0, -2)
    .split('\n\n')
    .map((event) => {
      if (!event.startsWith('data: ')) throw new Error(`SSE event without "data: ": ${JSON.stringify(event)}`);
      return event.slice('data: '.length);
    });
}

// /metrics as a Map from "name{labels}" to number.
export async function metrics(url) {
  const r = await request(url, { path: '/metrics' });
  if (r.status !== 200) throw new Error(`/metrics answered ${r.status}`);
  const values = new Map();
  for (const line of r.body.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const i = line.lastIndexOf(' ');
    values.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return values;
}

export async function baseModel(server) {
  const r = await request(server.url, { path: '/v1/models' });
  return r.json.data[0];
}

// Polls `predicate` (async) until it returns true or `timeoutMs` passes; true if it held.
export async function eventually(predicate, { timeoutMs = 5000, intervalMs = 10 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await predicate()) return true;
    if (Date.now() > deadline) return false;
    await sleep(intervalMs);
  }
}

// Polls `predicate` (async) until it returns a truthy value, and returns that value; throws
// (failing the test) with `what` if it has not within `timeoutMs`. For waiting on an event the
// server makes observable (a log line, a /metrics value, a file) instead of sleeping.
export async function waitFor(what, predicate, { timeoutMs = 30_000, intervalMs = 5 } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await predicate();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(intervalMs);
  }
}

// Deterministic PRNG (mulberry32): seeded request mixes and adapters that are the same on every run.
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

// What keeps the server from being idle with everything given back, as readable reasons.
export function busy(m) {
  const reasons = [];
  for (const g of ['hotswap_running_sequences', 'hotswap_queue_depth', 'hotswap_kv_blocks_used', 'hotswap_active_generations'])
    if (m.get(g) !== 0) reasons.push(`${g} = ${m.get(g)}`);
  // 1: the connection of this scrape. More: sessions whose client has gone are still open.
  if (m.get('hotswap_open_connections') > 1) reasons.push(`hotswap_open_connections = ${m.get('hotswap_open_connections')} (connections of clients that hung up are still open)`);
  return reasons;
}
export const idle = (m) => busy(m).length === 0;

// Streams a completion over raw HTTP with `body` as given (stream: true is added): `started`
// resolves at the first data chunk (or the end), `done` with { status, text, finish } once the
// stream ends ({ status, text: null, body } for an error status or an error frame), and
// `finished` turns true then.
export function streamCompletion(url, body) {
  let onStart;
  const started = new Promise((resolve) => (onStart = resolve));
  const handle = { started, finished: false };
  handle.done = new Promise((resolve, reject) => {
    const req = http.request(`${url}/v1/completions`, { method: 'POST', agent: false, headers: { 'content-type': 'application/json' } }, (res) => {
      let raw = '';
      res.setEncoding('utf8');
      res.on('data', (c) => {
        raw += c;
        if (raw.includes('data: ')) onStart();
      });
      res.on('end', () => {
        handle.finished = true;
        onStart();
        if (res.statusCode !== 200) return resolve({ status: res.statusCode, text: null, body: raw });
        let text = '';
        let finish = null;
        const events = sseData(raw);
        assert.equal(events.at(-1), '[DONE]', 'stream ends with [DONE]');
        for (const e of events.slice(0, -1)) {
          const j = JSON.parse(e);
          if (j.error) return resolve({ status: 200, text: null, body: e });
          for (const c of j.choices) {
            text += c.text;
            if (c.finish_reason) finish = c.finish_reason;
          }
        }
        resolve({ status: 200, text, finish });
      });
      res.on('error', reject);
    });
    req.on('error', (e) => {
      handle.finished = true;
      onStart();
      reject(e);
    });
    req.end(JSON.stringify({ ...body, stream: true }));
  });
  return handle;
}

// A safetensors image: tensors [[name, {shape, values, dtype = 'F32'}]] with __metadata__ first.
export function safetensorsImage(metadata, tensors) {
  const header = metadata ? { __metadata__: metadata } : {};
  const blobs = [];
  let offset = 0;
  for (const [name, t] of tensors) {
    const dtype = t.dtype ?? 'F32';
    const size = dtype === 'BF16' ? 2 : 4;
    const buf = Buffer.alloc(size * t.values.length);
    const f = Buffer.alloc(4);
    t.values.forEach((v, i) => {
      if (dtype === 'F32') buf.writeFloatLE(v, 4 * i);
      else if (dtype === 'I32') buf.writeInt32LE(Math.round(v), 4 * i);
      else { f.writeFloatLE(v); buf.writeUInt16LE(f.readUInt32LE() >>> 16, 2 * i); }  // BF16, truncated
    });
    header[name] = { dtype, shape: t.shape, data_offsets: [offset, offset + buf.length] };
    blobs.push(buf);
    offset += buf.length;
  }
  const h = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([len, h, ...blobs]);
}
// A tensor of this shape with values uniform in [-0.5, 0.5) from rng `r`.
export const randomTensor = (r, shape, dtype) => ({ shape, dtype, values: Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => r() - 0.5) });

// The demo model's shape, from the config.json the servers load (the suites build adapters for it).
export function demoModelShape() {
  const cfg = JSON.parse(fs.readFileSync(path.join(CACHE_DIR, 'demo-model', 'config.json'), 'utf8'));
  return {
    L: cfg.num_hidden_layers, H: cfg.num_attention_heads, Hkv: cfg.num_key_value_heads,
    D: cfg.head_dim ?? cfg.hidden_size / cfg.num_attention_heads,
  };
}
