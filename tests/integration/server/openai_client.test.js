// The official OpenAI Node client against the real server: completions and chat,
// streamed and not, token-id prompts, stop strings, n > 1, logprobs, echo, errors.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import OpenAI from 'openai';
import { baseModel, client, startServer } from './helpers.js';

let server;
let openai;
let model;

before(async () => {
  server = await startServer();
  openai = client(server);
  model = (await baseModel(server)).id;
});

after(async () => {
  const { code } = await server.stop();
  assert.equal(code, 0, `server exit code; logs:\n${server.logs().slice(-4000)}`);
});

async function collect(stream) {
  const chunks = [];
  for await (const chunk of stream) chunks.push(chunk);
  return chunks;
}

describe('models', () => {
  test('lists the base model', async () => {
    const list = await openai.models.list();
    assert.equal(list.data.length, 1);
    assert.equal(list.data[0].id, model);
    assert.equal(list.data[0].object, 'model');
  });
});

describe('completions', () => {
  test('non-streamed: OpenAI shape and usage', async () => {
    const r = await openai.completions.create({ model, prompt: 'Once upon a time', max_tokens: 8, temperature: 0, ignore_eos: true });
    assert.match(r.id, /^cmpl-/);
    assert.equal(r.object, 'text_completion');
    assert.equal(r.model, model);
    assert.ok(Number.isInteger(r.created));
    assert.equal(r.choices.length, 1);
    const [choice] = r.choices;
    assert.equal(choice.index, 0);
    assert.equal(typeof choice.text, 'string');
    assert.equal(choice.finish_reason, 'length');
    assert.equal(choice.logprobs, null);
    assert.equal(r.usage.completion_tokens, 8);
    assert.ok(r.usage.prompt_tokens > 0);
    assert.equal(r.usage.total_tokens, r.usage.prompt_tokens + 8);
  });

  test('streamed text equals the non-streamed text at temperature 0', async () => {
    const body = { model, prompt: 'The weather today is', max_tokens: 12, temperature: 0 };
    const whole = await openai.completions.create(body);
    const chunks = await collect(await openai.completions.create({ ...body, stream: true }));
    assert.ok(chunks.length >= 1);
    for (const c of chunks) {
      assert.equal(c.object, 'text_completion');
      assert.equal(c.id, chunks[0].id);
    }
    assert.equal(chunks.map((c) => c.choices[0]?.text ?? '').join(''), whole.choices[0].text);
    assert.equal(chunks.at(-1).choices[0].finish_reason, whole.choices[0].finish_reason);
    for (const c of chunks.slice(0, -1)) assert.equal(c.choices[0].finish_reason, null);
  });

  test('stream_options.include_usage adds a final usage chunk', async () => {
    const chunks = await collect(
      await openai.completions.create({ model, prompt: 'Hi', max_tokens: 5, temperature: 0, ignore_eos: true, stream: true,
                                        stream_options: { include_usage: true } }));
    const last = chunks.at(-1);
    assert.deepEqual(last.choices, []);
    assert.equal(last.usage.completion_tokens, 5);
    for (const c of chunks.slice(0, -1)) assert.equal(c.usage, null);
  });

  test('token-id prompt', async () => {
    const ids = [10, 20, 30, 40, 50];
    const r = await openai.completions.create({ model, prompt: ids, max_tokens: 4, temperature: 0, ignore_eos: true });
    assert.equal(r.usage.prompt_tokens, ids.length);
    assert.equal(r.usage.completion_tokens, 4);
    const echoed = await openai.completions.create({ model, prompt: ids, max_tokens: 4, temperature: 0, ignore_eos: true, echo: true });
    assert.ok(echoed.choices[0].text.endsWith(r.choices[0].text));
    assert.ok(echoed.choices[0].text.length > r.choices[0].text.length, 'echo prepends the decoded prompt');
  });

  test('a batch of prompts gives prompt-major choice indices', async () => {
    const r = await openai.completions.create({ model, prompt: ['Alpha', 'Beta'], n: 2, max_tokens: 3, temperature: 0 });
    assert.deepEqual(r.choices.map((c) => c.index).sort(), [0, 1, 2, 3]);
    const byIndex = Object.fromEntries(r.choices.map((c) => [c.index, c.text]));
    assert.equal(byIndex[0], byIndex[1], 'greedy choices of one prompt agree');
    assert.equal(byIndex[2], byIndex[3]);
  });

  test('echo returns the prompt followed by the completion', async () => {
    const prompt = 'Echo this prompt';
    const plain = await openai.completions.create({ model, prompt, max_tokens: 5, temperature: 0 });
    const echoed = await openai.completions.create({ model, prompt, max_tokens: 5, temperature: 0, echo: true });
    assert.equal(echoed.choices[0].text, prompt + plain.choices[0].text);
  });

  test('stop string ends the text before its first occurrence', async () => {
    const body = { model, prompt: 'In the beginning', max_tokens: 32, temperature: 0, ignore_eos: true };
    const full = (await openai.completions.create(body)).choices[0].text;
    // A two-character stop taken from the middle of the greedy text.
    let at = -1;
    for (let i = 2; i + 2 <= full.length; i++) {
      const s = full.slice(i, i + 2);
      if (s.trim().length === 2 && full.indexOf(s) === i) {
        at = i;
        break;
      }
    }
    assert.ok(at > 0, `no usable stop string in ${JSON.stringify(full)}`);
    const stop = full.slice(at, at + 2);
    const r = await openai.completions.create({ ...body, stop: [stop, 'never-appears-xyz'] });
    assert.equal(r.choices[0].text, full.slice(0, at));
    assert.equal(r.choices[0].finish_reason, 'stop');
    const streamed = await collect(await openai.completions.create({ ...body, stop, stream: true }));
    assert.equal(streamed.map((c) => c.choices[0]?.text ?? '').join(''), full.slice(0, at));
    assert.equal(streamed.at(-1).choices[0].finish_reason, 'stop');
  });

  test('n > 1 gives distinct choice indices, streamed and not', async () => {
    const r = await openai.completions.create({ model, prompt: 'Pick a word:', n: 3, max_tokens: 6, temperature: 1, seed: 11 });
    assert.deepEqual(r.choices.map((c) => c.index).sort(), [0, 1, 2]);
    for (const c of r.choices) assert.ok(['stop', 'length'].includes(c.finish_reason));
    const chunks = await collect(
      await openai.completions.create({ model, prompt: 'Pick a word:', n: 3, max_tokens: 6, temperature: 1, seed: 11, stream: true }));
    const texts = ['', '', ''];
    const finished = [null, null, null];
    for (const c of chunks)
      for (const choice of c.choices) {
        texts[choice.index] += choice.text;
        if (choice.finish_reason) finished[choice.index] = choice.finish_reason;
      }
    assert.ok(finished.every((f) => f !== null), 'every choice finishes');
    const sorted = (a) => [...a].sort();
    assert.deepEqual(sorted(texts), sorted(r.choices.map((c) => c.text)), 'a seed makes n choices reproducible');
  });

  test('the same seed gives the same sample', async () => {
    const body = { model, prompt: 'Random:', max_tokens: 10, temperature: 1, seed: 1234 };
    const a = await openai.completions.create(body);
    const b = await openai.completions.create(body);
    assert.equal(a.choices[0].text, b.choices[0].text);
  });

  test('logprobs: one entry per generated token', async () => {
    const r = await openai.completions.create({ model, prompt: 'Score me', max_tokens: 5, temperature: 0, logprobs: 2, ignore_eos: true });
    const lp = r.choices[0].logprobs;
    assert.equal(lp.tokens.length, 5);
    assert.equal(lp.token_logprobs.length, 5);
    assert.equal(lp.top_logprobs.length, 5);
    assert.equal(lp.text_offset.length, 5);
    for (const v of lp.token_logprobs) assert.ok(v <= 0);
    for (const top of lp.top_logprobs) assert.ok(Object.keys(top).length <= 2);
    assert.equal(lp.tokens.join(''), r.choices[0].text);
  });

  test('errors come back as OpenAI APIError with the status and a message naming the field', async () => {
    await assert.rejects(openai.completions.create({ model, prompt: 'x', max_tokens: -5 }), (e) => {
      assert.ok(e instanceof OpenAI.APIError);
      assert.equal(e.status, 400);
      assert.match(e.message, /max_tokens must be an integer between 1 and \d+ \(the server's max_new_tokens\), got -5/);
      return true;
    });
    await assert.rejects(openai.completions.create({ model: 'no-such-model', prompt: 'x', max_tokens: 2 }), (e) => {
      assert.equal(e.status, 404);
      assert.match(e.message, /no-such-model/);
      return true;
    });
  });
});

describe('chat completions', () => {
  const messages = [
    { role: 'system', content: 'You are terse.' },
    { role: 'user', content: 'Say something.' },
  ];

  test('non-streamed: OpenAI shape', async () => {
    const r = await openai.chat.completions.create({ model, messages, max_tokens: 8, temperature: 0, ignore_eos: true });
    assert.match(r.id, /^chatcmpl-/);
    assert.equal(r.object, 'chat.completion');
    assert.equal(r.choices[0].message.role, 'assistant');
    assert.equal(typeof r.choices[0].message.content, 'string');
    assert.equal(r.choices[0].finish_reason, 'length');
    assert.equal(r.usage.completion_tokens, 8);
  });

  test('streamed: role first, then content equal to the non-streamed message', async () => {
    const body = { model, messages, max_tokens: 10, temperature: 0 };
    const whole = await openai.chat.completions.create(body);
    const chunks = await collect(await openai.chat.completions.create({ ...body, stream: true }));
    assert.equal(chunks[0].object, 'chat.completion.chunk');
    assert.equal(chunks[0].choices[0].delta.role, 'assistant');
    const content = chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('');
    assert.equal(content, whole.choices[0].message.content);
    assert.equal(chunks.at(-1).choices[0].finish_reason, whole.choices[0].finish_reason);
  });

  test('max_completion_tokens and n > 1', async () => {
    const r = await openai.chat.completions.create({ model, messages, max_completion_tokens: 4, n: 2, temperature: 0, ignore_eos: true });
    assert.deepEqual(r.choices.map((c) => c.index).sort(), [0, 1]);
    assert.equal(r.choices[0].message.content, r.choices[1].message.content);
    assert.equal(r.usage.completion_tokens, 8);
  });

  test('content given as text parts equals the same content as a string', async () => {
    const a = await openai.chat.completions.create({ model, messages: [{ role: 'user', content: 'Hello there' }], max_tokens: 6, temperature: 0 });
    const b = await openai.chat.completions.create({
      model, max_tokens: 6, temperature: 0,
      messages: [{ role: 'user', content: [{ type: 'text', text: 'Hello ' }, { type: 'text', text: 'there' }] }],
    });
    assert.equal(a.choices[0].message.content, b.choices[0].message.content);
  });

  test('logprobs with top_logprobs', async () => {
    const r = await openai.chat.completions.create({ model, messages, max_tokens: 4, temperature: 0, logprobs: true, top_logprobs: 2, ignore_eos: true });
    const content = r.choices[0].logprobs.content;
    assert.equal(content.length, 4);
    for (const entry of content) {
      assert.equal(typeof entry.token, 'string');
      assert.ok(entry.logprob <= 0);
      assert.ok(Array.isArray(entry.bytes));
      assert.ok(entry.top_logprobs.length <= 2);
    }
  });

  test('streamed chat with include_usage', async () => {
    const chunks = await collect(
      await openai.chat.completions.create({ model, messages, max_tokens: 3, temperature: 0, ignore_eos: true, stream: true,
                                             stream_options: { include_usage: true } }));
    assert.equal(chunks.at(-1).usage.completion_tokens, 3);
    assert.deepEqual(chunks.at(-1).choices, []);
  });
});
