// Many clients at once: with temperature 0 every output equals the same request served
// alone (batching never changes results), and a client that disconnects mid-stream gets its
// request cancelled and its KV blocks returned.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { baseModel, client, CROSS_BATCH_ARGS, metrics, postJson, startServer, waitFor } from './helpers.js';

let server;
let openai;
let model;
let contextLength;

before(async () => {
  server = await startServer([...CROSS_BATCH_ARGS]);
  openai = client(server);
  const card = await baseModel(server);
  model = card.id;
  contextLength = card.max_model_len;
});

after(async () => {
  const { code } = await server.stop();
  assert.equal(code, 0, `server exit code; logs:\n${server.logs().slice(-4000)}`);
});

const prompts = [
  'The quick brown fox',
  'In a distant galaxy',
  'Recipe for bread:',
  'def fibonacci(n):',
  'Dear diary, today',
  'The capital of France is',
  'Once upon a midnight dreary, while I pondered, weak and weary, over many a quaint and curious volume',
  'A',
];

async function streamText(body) {
  let text = '';
  let finish = null;
  for await (const chunk of await openai.completions.create({ ...body, stream: true })) {
    for (const c of chunk.choices) {
      text += c.text;
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  return { text, finish };
}

describe('concurrency', () => {
  test('32 concurrent clients at temperature 0 each equal the request served alone', async () => {
    const body = (i) => ({ model, prompt: prompts[i % prompts.length], max_tokens: 24 + (i % 3) * 8, temperature: 0 });
    const alone = [];
    for (let i = 0; i < 32; i++) {
      const r = await openai.completions.create(body(i));
      alone.push({ text: r.choices[0].text, finish: r.choices[0].finish_reason });
    }
    const together = await Promise.all(
      Array.from({ length: 32 }, async (_, i) => {
        if (i % 2 === 0) return streamText(body(i));
        const r = await openai.completions.create(body(i));
        return { text: r.choices[0].text, finish: r.choices[0].finish_reason };
      }));
    for (let i = 0; i < 32; i++) {
      assert.equal(together[i].text, alone[i].text, `client ${i} (${i % 2 ? 'plain' : 'streamed'}) differs from the request served alone`);
      assert.equal(together[i].finish, alone[i].finish, `client ${i} finish_reason`);
    }
  });

  test('32 concurrent chat clients all complete', async () => {
    const results = await Promise.all(
      Array.from({ length: 32 }, (_, i) =>
        openai.chat.completions.create({ model, messages: [{ role: 'user', content: prompts[i % prompts.length] }], max_tokens: 8, temperature: 0 })));
    for (const r of results) assert.ok(['stop', 'length'].includes(r.choices[0].finish_reason));
    for (let i = 0; i < 32; i++) assert.equal(results[i].choices[0].message.content, results[i % prompts.length].choices[0].message.content);
  });

  test('a client that disconnects mid-stream: request cancelled, KV blocks back', async () => {
    const idle = await metrics(server.url);
    const baselineUsed = idle.get('hotswap_kv_blocks_used');
    const cancelledBefore = idle.get('hotswap_requests_cancelled_by_client_total');
    const maxTokens = Math.max(64, Math.min(1000, contextLength - 64));
    // n = 16 choices make an engine step (~7 ms here) several times longer than a /metrics
    // sample (~1 ms), so the samples below resolve single steps.
    const n = 16;
    const body = JSON.stringify({ model, prompt: 'Tell me a very long story', n, max_tokens: maxTokens, temperature: 0, ignore_eos: true, stream: true });

    // Every error fails the test, except the ones our own destroy() causes afterwards; the
    // deadline timer is cleared however the wait ends.
    let usedWhileRunning = 0;
    let timer;
    try {
      await new Promise((resolve, reject) => {
        let hungUp = false;
        const fail = (e) => {
          if (!hungUp) reject(new Error(`before the client hung up: ${e.message}`, { cause: e }));
        };
        timer = setTimeout(() => fail(new Error(`no ${n + 1} stream frames within 60 s`)), 60_000);
        const req = http.request(`${server.url}/v1/completions`, { method: 'POST', agent: false, headers: { 'content-type': 'application/json' } }, (res) => {
          if (res.statusCode !== 200) return fail(new Error(`status ${res.statusCode}, expected 200`));
          let frames = 0;
          let sampling = false;
          res.on('data', (chunk) => {
            frames += (chunk.toString().match(/^data: /gm) ?? []).length;
            // The engine publishes its metrics after emitting a step's tokens, so frames of the
            // first step alone (n of them, one per choice) may arrive before that step's
            // snapshot; a frame of the second step means the first step's snapshot is out.
            if (frames <= n || sampling) return;
            sampling = true;  // the stream is running: sample the blocks it holds, then hang up
            metrics(server.url).then((m) => {
              usedWhileRunning = m.get('hotswap_kv_blocks_used');
              hungUp = true;
              req.destroy();
              resolve();
            }, fail);
          });
          res.on('end', () => fail(new Error(`the stream ended after ${frames} frames, before the client hung up`)));
          res.on('error', fail);
        });
        req.on('error', fail);
        req.end(body);
      });
    } finally {
      clearTimeout(timer);
    }
    assert.ok(usedWhileRunning > baselineUsed, `the running request holds KV blocks (${usedWhileRunning} vs ${baselineUsed})`);
    const disconnectedAt = Date.now();
    // Event-driven: the first sample in which the server has seen the disconnect (it counts
    // it, then cancels the request's streams), and the first in which the blocks are back.
    // engine_steps_total, kv_blocks_used and generation_tokens_total come from one snapshot
    // the engine publishes per step, and once the request is retired the engine has nothing
    // to do and takes no further steps, so the second sample's counts are those of the
    // release however late it is taken. A late first sample can only undercount (it never
    // fails a correct server); sampling back to back keeps it within a step.
    const seen = await waitFor('the server to count the client disconnect', async () => {
      const m = await metrics(server.url);
      return m.get('hotswap_requests_cancelled_by_client_total') === cancelledBefore + 1 ? m : null;
    }, { timeoutMs: 30_000, intervalMs: 1 });
    const freed = await waitFor('the KV blocks to return to the pool after the disconnect', async () => {
      const m = await metrics(server.url);
      return m.get('hotswap_kv_blocks_used') === baselineUsed ? m : null;
    }, { timeoutMs: 30_000, intervalMs: 1 });
    // "Within one engine step" of the server seeing the disconnect: the step running when it
    // cancelled the stream, plus the one that retires the request; a third allows for the
    // first sample landing between the count and the cancel.
    const steps = freed.get('hotswap_engine_steps_total') - seen.get('hotswap_engine_steps_total');
    assert.ok(steps <= 3, `KV blocks came back ${steps} engine steps after the server saw the disconnect`);
    // Cancelled, not run to completion: at most one token per choice and step after the
    // disconnect was seen.
    const generatedAfter = freed.get('hotswap_generation_tokens_total') - seen.get('hotswap_generation_tokens_total');
    assert.ok(generatedAfter <= 3 * n, `generation continued after the disconnect was seen (${generatedAfter} tokens)`);
    const m = await metrics(server.url);
    assert.equal(m.get('hotswap_kv_blocks_used'), baselineUsed);
    assert.equal(m.get('hotswap_running_sequences'), 0);
    assert.equal(m.get('hotswap_engine_steps_total'), freed.get('hotswap_engine_steps_total'), 'no engine steps after the release');
    assert.equal(m.get('hotswap_requests_cancelled_by_client_total'), cancelledBefore + 1);
    assert.equal(m.get('hotswap_requests_total{route="/v1/completions",status="499"}') ?? 0, (idle.get('hotswap_requests_total{route="/v1/completions",status="499"}') ?? 0) + 1);
    console.log(`disconnect: blocks back ${steps} engine steps and ${generatedAfter} tokens after the server saw it ` +
                `(${Date.now() - disconnectedAt} ms after the client hung up, for information)`);
  });

  test('the server still serves after the disconnect', async () => {
    const r = await postJson(server.url, '/v1/completions', { model, prompt: 'after', max_tokens: 2 });
    assert.equal(r.status, 200);
  });
});

describe('queue limits', () => {
  let small;
  before(async () => {
    small = await startServer(['--max-queue', '1', '--max-running', '1']);
  });
  after(async () => {
    assert.equal((await small.stop()).code, 0);
  });

  test('a full queue answers 429 with Retry-After', async () => {
    const m = (await baseModel(small)).id;
    const long = { model: m, prompt: 'busy', max_tokens: 256, temperature: 0, ignore_eos: true };
    const results = await Promise.all(Array.from({ length: 12 }, () => postJson(small.url, '/v1/completions', long)));
    const statuses = results.map((r) => r.status);
    assert.ok(statuses.includes(200), `some requests are served: ${statuses}`);
    const refused = results.filter((r) => r.status === 429);
    assert.ok(refused.length > 0, `with room for 2, 12 at once must overflow: ${statuses}`);
    for (const r of refused) {
      assert.ok(Number(r.headers['retry-after']) >= 1);
      assert.equal(r.json.error.code, 'queue_full');
    }
  });
});
