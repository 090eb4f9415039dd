// Raw HTTP against the real server: health, readiness, metrics, SSE framing byte by byte,
// keep-alive and pipelining, 100-continue, the API key, and a model without a chat template.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CACHE_DIR, baseModel, eventually, metrics, postJson, rawExchange, request, sseData, startServer } from './helpers.js';

let server;
let model;

before(async () => {
  server = await startServer();
  model = (await baseModel(server)).id;
});

after(async () => {
  const { code } = await server.stop();
  assert.equal(code, 0, `server exit code; logs:\n${server.logs().slice(-4000)}`);
});

describe('health and readiness', () => {
  test('GET /health', async () => {
    const r = await request(server.url, { path: '/health' });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, { status: 'ok' });
    assert.match(r.headers['x-request-id'], /^[0-9a-f]{16}$/);
  });

  test('GET /ready', async () => {
    const r = await request(server.url, { path: '/ready' });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json, { status: 'ready' });
  });

  test('GET /v1/models', async () => {
    const r = await request(server.url, { path: '/v1/models' });
    assert.equal(r.status, 200);
    assert.equal(r.json.object, 'list');
    assert.equal(r.json.data[0].object, 'model');
    assert.ok(r.json.data[0].max_model_len > 0);
  });
});

describe('metrics', () => {
  test('exposes every series the spec lists', async () => {
    await postJson(server.url, '/v1/completions', { model, prompt: 'metrics please', max_tokens: 3, temperature: 0, stream: true });
    // The request counter moves once the last byte is written, which may trail the response
    // the client already has (so the next test starts from a settled count).
    let r;
    assert.ok(await eventually(async () => {
      r = await request(server.url, { path: '/metrics' });
      return r.body.includes('hotswap_requests_total{route="/v1/completions",status="200"}');
    }, { timeoutMs: 30_000 }), 'the completion is counted');
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /^text\/plain; version=0\.0\.4/);
    for (const series of [
      '# TYPE hotswap_requests_total counter',
      'hotswap_requests_total{route="/v1/completions",status="200"}',
      'hotswap_queue_depth ',
      'hotswap_running_sequences ',
      'hotswap_prompt_tokens_total ',
      'hotswap_generation_tokens_total ',
      '# TYPE hotswap_time_to_first_token_seconds histogram',
      'hotswap_time_to_first_token_seconds_bucket{le="+Inf"}',
      '# TYPE hotswap_inter_token_latency_seconds histogram',
      'hotswap_kv_blocks_used ',
      'hotswap_kv_blocks_free ',
      'hotswap_adapters_resident ',
      'hotswap_adapter_loads_total ',
    ])
      assert.ok(r.body.includes(series), `missing ${series}`);
  });

  test('request counters and token counters move', async () => {
    const before = await metrics(server.url);
    const key = 'hotswap_requests_total{route="/v1/completions",status="200"}';
    await postJson(server.url, '/v1/completions', { model, prompt: 'count me', max_tokens: 4, temperature: 0, ignore_eos: true });
    // Engine counters are updated at the end of the engine step and the request counter once
    // the last byte is written: both may trail the response the client already has.
    let after;
    assert.ok(await eventually(async () => {
      after = await metrics(server.url);
      return after.get('hotswap_generation_tokens_total') >= before.get('hotswap_generation_tokens_total') + 4 &&
             after.get(key) >= (before.get(key) ?? 0) + 1;
    }, { timeoutMs: 30_000 }), 'token and request counters');
    assert.equal(after.get(key), (before.get(key) ?? 0) + 1);
    assert.ok(after.get('hotswap_prompt_tokens_total') > before.get('hotswap_prompt_tokens_total'));
    assert.ok(after.get('hotswap_time_to_first_token_seconds_count') > before.get('hotswap_time_to_first_token_seconds_count'));
  });
});

describe('streaming over SSE', () => {
  test('completions: data frames, then [DONE], chunked, event-stream', async () => {
    const r = await postJson(server.url, '/v1/completions', { model, prompt: 'Stream it', max_tokens: 6, temperature: 0, ignore_eos: true, stream: true });
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /^text\/event-stream/);
    assert.equal(r.headers['transfer-encoding'], 'chunked');
    const data = sseData(r.body);
    assert.equal(data.at(-1), '[DONE]');
    const chunks = data.slice(0, -1).map((d) => JSON.parse(d));
    assert.ok(chunks.length >= 1);
    for (const c of chunks) assert.equal(c.object, 'text_completion');
    assert.equal(chunks.at(-1).choices[0].finish_reason, 'length');
  });

  test('chat: the first chunk carries the role', async () => {
    const r = await postJson(server.url, '/v1/chat/completions', {
      model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 4, temperature: 0, stream: true,
    });
    assert.equal(r.status, 200);
    const data = sseData(r.body);
    assert.equal(data.at(-1), '[DONE]');
    const first = JSON.parse(data[0]);
    assert.equal(first.object, 'chat.completion.chunk');
    assert.deepEqual(first.choices[0].delta, { role: 'assistant', content: '' });
  });

  test('errors before streaming starts are plain JSON, not SSE', async () => {
    const r = await postJson(server.url, '/v1/completions', { model, prompt: 'x', max_tokens: -1, stream: true });
    assert.equal(r.status, 400);
    assert.match(r.headers['content-type'], /^application\/json/);
    assert.match(r.json.error.message, /max_tokens/);
  });
});

describe('connections', () => {
  test('keep-alive: two requests share one connection', async () => {
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
    try {
      const a = await request(server.url, { path: '/health', agent });
      const b = await postJson(server.url, '/v1/completions', { model, prompt: 'again', max_tokens: 2 }, { agent });
      const c = await request(server.url, { path: '/health', agent });
      assert.equal(a.status, 200);
      assert.equal(b.status, 200);
      assert.equal(c.status, 200);
      assert.equal(c.reusedSocket, true);
    } finally {
      agent.destroy();
    }
  });

  test('pipelined requests are answered in order', async () => {
    const one = 'GET /health HTTP/1.1\r\nHost: x\r\n\r\n';
    const two = 'GET /ready HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';
    const text = await rawExchange(server.url, one + two);
    const statuses = [...text.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1]);
    assert.deepEqual(statuses, ['200', '200']);
    assert.ok(text.indexOf('"ok"') < text.indexOf('"ready"'));
  });

  test('Expect: 100-continue', async () => {
    const body = JSON.stringify({ model, prompt: 'continue', max_tokens: 2 });
    const head = `POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n` +
                 'Expect: 100-continue\r\nConnection: close\r\n\r\n';
    const text = await rawExchange(server.url, head + body);
    assert.match(text, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK/);
  });

  test('HTTP/1.0 without a body', async () => {
    const text = await rawExchange(server.url, 'GET /health HTTP/1.0\r\n\r\n');
    assert.match(text, /^HTTP\/1\.1 200 OK/);
    assert.match(text, /"status":"ok"/);
  });

  test('HTTP/1.0 streaming: no chunked coding, the body ends at close', async () => {
    const body = JSON.stringify({ model, prompt: 'old client', max_tokens: 3, temperature: 0, stream: true });
    const text = await rawExchange(server.url,
      `POST /v1/completions HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    );
    const [head, payload] = text.split('\r\n\r\n', 2);
    assert.match(head, /^HTTP\/1\.1 200 OK/);
    assert.doesNotMatch(head, /Transfer-Encoding/i);
    assert.equal(sseData(text.slice(head.length + 4)).at(-1), '[DONE]');
    assert.ok(payload.startsWith('data: '));
  });
});

describe('API key', () => {
  let keyed;
  before(async () => {
    keyed = await startServer(['--api-key', 'sekret']);
  });
  after(async () => {
    assert.equal((await keyed.stop()).code, 0);
  });

  test('/v1 routes need the bearer key; health and metrics do not', async () => {
    const missing = await request(keyed.url, { path: '/v1/models' });
    assert.equal(missing.status, 401);
    assert.equal(missing.json.error.type, 'authentication_error');
    assert.match(missing.json.error.message, /API key/);
    const wrong = await request(keyed.url, { path: '/v1/models', headers: { authorization: 'Bearer nope' } });
    assert.equal(wrong.status, 401);
    const right = await request(keyed.url, { path: '/v1/models', headers: { authorization: 'Bearer sekret' } });
    assert.equal(right.status, 200);
    assert.equal((await request(keyed.url, { path: '/health' })).status, 200);
    assert.equal((await request(keyed.url, { path: '/metrics' })).status, 200);
  });
});

describe('a model without a chat template', () => {
  let plain;
  let dir;
  before(async () => {
    // The demo model, copied without tokenizer_config.json's chat_template.
    const demo = fs.readdirSync(CACHE_DIR, { recursive: true })
      .map((p) => path.join(CACHE_DIR, p))
      .find((p) => p.endsWith('config.json') && !p.endsWith('tokenizer_config.json') && !p.endsWith('generation_config.json') &&
                   fs.existsSync(path.join(path.dirname(p), 'tokenizer.json')));
    assert.ok(demo, `no demo model under ${CACHE_DIR}`);
    const src = path.dirname(demo);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hotswap-no-template-'));
    for (const f of fs.readdirSync(src)) fs.copyFileSync(path.join(src, f), path.join(dir, f));
    const configPath = path.join(dir, 'tokenizer_config.json');
    const config = JSON.parse(fs.readFileSync(configPath, 'utf8'));
    delete config.chat_template;
    fs.writeFileSync(configPath, JSON.stringify(config));
    plain = await startServer(['--model', dir]);
  });
  after(async () => {
    assert.equal((await plain.stop()).code, 0);
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('chat is a 400 that says so; completions still work', async () => {
    const m = (await baseModel(plain)).id;
    const chat = await postJson(plain.url, '/v1/chat/completions', { model: m, messages: [{ role: 'user', content: 'hi' }] });
    assert.equal(chat.status, 400);
    assert.match(chat.json.error.message, /no chat template/);
    assert.equal(chat.json.error.code, 'no_chat_template');
    const completion = await postJson(plain.url, '/v1/completions', { model: m, prompt: 'hi', max_tokens: 2 });
    assert.equal(completion.status, 200);
  });
});
