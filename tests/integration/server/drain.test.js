// SIGTERM during load: /ready turns 503, new requests get 503, in-flight requests complete,
// and the process exits 0.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { baseModel, client, postJson, request, sleep, startServer, waitFor } from './helpers.js';

test('SIGTERM during load drains and exits 0', async () => {
  const server = await startServer(['--drain-timeout-ms', '120000']);
  const openai = client(server);
  const model = (await baseModel(server)).id;
  // Long enough (~1.5 s of batched decode here) that the requests are still in flight when the
  // checks below run right after the server has logged the signal.
  const maxTokens = 400;

  // Eight in-flight requests, half streamed; each has produced output before the signal.
  let started = 0;
  const inflight = Array.from({ length: 8 }, async (_, i) => {
    const body = { model, prompt: `Request number ${i}`, max_tokens: maxTokens, temperature: 0, ignore_eos: true };
    if (i % 2 === 0) {
      let tokens = 0;
      let finish = null;
      let counted = false;
      for await (const chunk of await openai.completions.create({ ...body, stream: true, stream_options: { include_usage: true } })) {
        if (chunk.usage) tokens = chunk.usage.completion_tokens;
        for (const c of chunk.choices) {
          if (c.text && !counted) {
            counted = true;
            started++;
          }
          if (c.finish_reason) finish = c.finish_reason;
        }
      }
      return { tokens, finish };
    }
    const r = await openai.completions.create(body);
    return { tokens: r.usage.completion_tokens, finish: r.choices[0].finish_reason };
  });
  // Wait until the engine is running them.
  const deadline = Date.now() + 60_000;
  for (;;) {
    const m = await request(server.url, { path: '/metrics' });
    const running = Number(/^hotswap_running_sequences (\d+)/m.exec(m.body)[1]);
    const waiting = Number(/^hotswap_queue_depth (\d+)/m.exec(m.body)[1]);
    if (running + waiting >= 8 && started >= 1) break;
    assert.ok(Date.now() < deadline, 'requests never started');
    await sleep(5);
  }

  server.proc.kill('SIGTERM');
  // Event-driven: the server logs event=signal right after it switches to draining (new
  // requests get 503 from then on). Wait for that line, not for a fixed time.
  await waitFor('the server to log the SIGTERM (event=signal)', () => /event=signal signal=SIGTERM action=drain/.test(server.logs()) ||
    server.proc.exitCode !== null, { timeoutMs: 30_000 });
  assert.equal(server.proc.exitCode, null, 'the server exited before the in-flight requests could have finished');
  const ready = await request(server.url, { path: '/ready' }).catch((e) => ({ status: `error ${e.code}` }));
  assert.equal(ready.status, 503, '/ready is 503 while draining');
  assert.equal(ready.json?.status, 'draining');
  const fresh = await postJson(server.url, '/v1/completions', { model, prompt: 'too late', max_tokens: 2 }).catch((e) => ({ status: `error ${e.code}` }));
  assert.equal(fresh.status, 503, 'new requests are refused while draining');
  assert.match(fresh.json.error.message, /shutting down/);

  const results = await Promise.all(inflight);
  for (const r of results) {
    assert.equal(r.finish, 'length', 'in-flight requests run to completion');
    assert.equal(r.tokens, maxTokens);
  }
  const { code, signal } = await server.exited;
  assert.equal(signal, null);
  assert.equal(code, 0, `exit code; logs:\n${server.logs().slice(-4000)}`);
  assert.match(server.logs(), /event=draining/);
  assert.match(server.logs(), /event=stopped/);
});

test('SIGINT when idle exits 0 promptly', async () => {
  const server = await startServer();
  const t0 = Date.now();
  const { code } = await server.stop('SIGINT');
  assert.equal(code, 0);
  assert.ok(Date.now() - t0 < 10_000);
});

test('access log: one line per request with id, route, status, tokens and latency', async () => {
  const server = await startServer();
  const model = (await baseModel(server)).id;
  const r = await postJson(server.url, '/v1/completions', { model, prompt: 'log me', max_tokens: 3, temperature: 0, ignore_eos: true });
  const id = r.headers['x-request-id'];
  // The access line is written once the last byte is; wait for it rather than a fixed time.
  await waitFor(`the access log line of ${id}`, () => server.logs().includes(`access id=${id}`), { timeoutMs: 30_000 });
  const { code } = await server.stop();
  assert.equal(code, 0);
  const line = server.logs().split('\n').find((l) => l.includes(`access id=${id}`));
  assert.ok(line, `no access line for ${id}`);
  assert.match(line, /method=POST route=\/v1\/completions/);
  assert.match(line, /status=200/);
  assert.match(line, /prompt_tokens=[1-9]\d* completion_tokens=3/);
  assert.match(line, /latency_ms=\d+(\.\d+)?/);
});
