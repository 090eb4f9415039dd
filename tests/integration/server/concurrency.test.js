// Many clients at once: with temperature 0 every output equals the same request served
// alone (batching never changes results), and a client that disconnects mid-stream gets its
// request cancelled and its KV blocks returned.
import assert from 'node:assert/strict';
import http from 'node:http';
import { after, before, describe, test } from 'node:test';
import { baseModel, client, eventually, metrics, postJson, startServer } from './helpers.js';

let server;
let openai;
let model;
let contextLength;

before(async () => {
  server = await startServer();
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
    const maxTokens = Math.max(64, Math.min(3000, contextLength - 64));
    const body = JSON.stringify({ model, prompt: 'Tell me a very long story', max_tokens: maxTokens, temperature: 0, ignore_eos: true, stream: true });

    let usedWhileRunning = 0;
    await new Promise((resolve, reject) => {
      const req = http.request(`${server.url}/v1/completions`, { method: 'POST', agent: false, headers: { 'content-type': 'application/json' } }, (res) => {
        assert.equal(res.statusCode, 200);
        let frames = 0;
        res.on('data', async (chunk) => {
          frames += (chunk.toString().match(/^data: /gm) ?? []).length;
          if (frames >= 3 && !req.destroyed) {
            const m = await metrics(server.url);
            usedWhileRunning = m.get('hotswap_kv_blocks_used');
            req.destroy();
            resolve();
          }
        });
        res.on('error', () => {});
      });
      req.on('error', () => {});
      req.end(body);
      setTimeout(() => reject(new Error('no stream frames within 60 s')), 60_000);
    });
    assert.ok(usedWhileRunning > baselineUsed, `the running request holds KV blocks (${usedWhileRunning} vs ${baselineUsed})`);
    const disconnectedAt = Date.now();
    const atDisconnect = await metrics(server.url);
    const tokensAtDisconnect = atDisconnect.get('hotswap_generation_tokens_total');
    let stepsWhenFreed = 0;
    const freed = await eventually(async () => {
      const now = await metrics(server.url);
      stepsWhenFreed = now.get('hotswap_engine_steps_total');
      return now.get('hotswap_kv_blocks_used') === baselineUsed;
    }, { timeoutMs: 5000, intervalMs: 2 });
    assert.ok(freed, 'KV blocks return to the pool after the client disconnects');
    // "Within one engine step": the step running when the disconnect was seen, plus the one
    // that retires the request; a third allows for the sample of /metrics racing a step.
    const steps = stepsWhenFreed - atDisconnect.get('hotswap_engine_steps_total');
    assert.ok(steps <= 3, `KV blocks came back ${steps} engine steps after the disconnect`);
    const freedAfterMs = Date.now() - disconnectedAt;
    const m = await metrics(server.url);
    assert.equal(m.get('hotswap_running_sequences'), 0);
    assert.equal(m.get('hotswap_requests_cancelled_by_client_total'), cancelledBefore + 1);
    assert.equal(m.get('hotswap_requests_total{route="/v1/completions",status="499"}') ?? 0, (idle.get('hotswap_requests_total{route="/v1/completions",status="499"}') ?? 0) + 1);
    // Cancelled, not run to completion: far fewer than max_tokens were generated after the disconnect.
    assert.ok(m.get('hotswap_generation_tokens_total') - tokensAtDisconnect < Math.min(32, maxTokens / 2),
              `generation continued after the disconnect (${m.get('hotswap_generation_tokens_total') - tokensAtDisconnect} tokens)`);
    assert.ok(freedAfterMs < 2000, `blocks freed ${freedAfterMs} ms after the disconnect`);
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
