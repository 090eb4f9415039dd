// Prompt scoring and `hotswap eval` through a running server (issue 14): completions with
// echo + logprobs score every prompt token (max_tokens 0: score only), equal to the reference
// logits (transformers) of the tiny golden model within float32 rounding, through the official
// OpenAI client and streamed alike; a prompt-scoring request reuses no cached prefix; and
// `hotswap eval --server` reports the same perplexity over HTTP as in process, with an adapter
// uploaded by the command itself.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { BIN, client, postJson, sseData, startServer } from './helpers.js';

const golden = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../golden');
const modelDir = path.join(golden, 'models', 'llama_f32');
const reference = JSON.parse(fs.readFileSync(path.join(modelDir, 'reference.json'), 'utf8'));
const prompt = reference.prompts.reduce((a, b) => (b.ids.length > a.ids.length ? b : a));

// log_softmax(logits[i])[ids[i + 1]] in float64 from the reference's float32 logits.
function referenceLogprobs() {
  const raw = fs.readFileSync(path.join(modelDir, prompt.logits_file));
  const [rows, vocab] = prompt.shape;
  const out = [];
  for (let i = 0; i + 1 < rows; i++) {
    let m = -Infinity;
    for (let v = 0; v < vocab; v++) m = Math.max(m, raw.readFloatLE(4 * (i * vocab + v)));
    let s = 0;
    for (let v = 0; v < vocab; v++) s += Math.exp(raw.readFloatLE(4 * (i * vocab + v)) - m);
    out.push(raw.readFloatLE(4 * (i * vocab + prompt.ids[i + 1])) - m - Math.log(s));
  }
  return out;
}

let server;
let model;
before(async () => {
  server = await startServer(['--model', modelDir, '--matmul-precision', 'f32', '--kv-cache-dtype', 'f32']);
  model = (await (await fetch(`${server.url}/v1/models`)).json()).data[0].id;
});
after(async () => {
  const { code } = await server.stop();
  assert.equal(code, 0, `server exit code; logs:\n${server.logs().slice(-3000)}`);
});

describe('prompt scoring: echo + logprobs', () => {
  test('max_tokens 0 scores every prompt token like the reference logits (OpenAI client)', async () => {
    const want = referenceLogprobs();
    const r = await client(server).completions.create({ model, prompt: prompt.ids, max_tokens: 0, echo: true, logprobs: 2 });
    const lp = r.choices[0].logprobs;
    assert.equal(lp.token_logprobs.length, prompt.ids.length);
    assert.equal(lp.token_logprobs[0], null, 'nothing predicts the first token');
    assert.equal(r.usage.completion_tokens, 0);
    assert.equal(r.choices[0].finish_reason, 'length');
    let worst = 0;
    for (let i = 1; i < prompt.ids.length; i++) worst = Math.max(worst, Math.abs(lp.token_logprobs[i] - want[i - 1]));
    assert.ok(worst < 2e-4, `max |logprob - reference| ${worst}`);
    assert.ok(lp.top_logprobs.slice(1).every((t) => Object.keys(t).length >= 1), 'top alternatives for prompt tokens');
  });

  test('streamed, and with generated tokens after the prompt, the prompt scores are the same', async () => {
    const plain = await postJson(server.url, '/v1/completions', { model, prompt: prompt.ids, max_tokens: 0, echo: true, logprobs: 0 });
    const streamed = await postJson(server.url, '/v1/completions', { model, prompt: prompt.ids, max_tokens: 3, echo: true, logprobs: 0, stream: true, temperature: 0 });
    const first = JSON.parse(sseData(streamed.body)[0]);
    const n = prompt.ids.length;
    assert.deepEqual(first.choices[0].logprobs.token_logprobs.slice(0, n), plain.json.choices[0].logprobs.token_logprobs);
  });

  test('text_offset indexes the returned text: the generated tokens follow the echoed prompt', async () => {
    const r = await postJson(server.url, '/v1/completions', { model, prompt: prompt.ids, max_tokens: 3, echo: true, logprobs: 0, temperature: 0, ignore_eos: true });
    const { text, logprobs: lp } = r.json.choices[0];
    const n = prompt.ids.length;
    assert.equal(lp.text_offset.length, n + 3);
    const plain = await postJson(server.url, '/v1/completions', { model, prompt: prompt.ids, max_tokens: 3, temperature: 0, ignore_eos: true });
    // Offsets count UTF-8 bytes of the returned text (server/README.md).
    const bytes = Buffer.from(text);
    const promptBytes = bytes.length - Buffer.byteLength(plain.json.choices[0].text);
    for (let i = 0; i < 3; i++) {
      const at = lp.text_offset[n + i];
      const token = Buffer.from(lp.tokens[n + i]);
      assert.ok(at >= promptBytes, `generated token ${i} at ${at}, inside the ${promptBytes}-byte prompt`);
      assert.ok(bytes.subarray(at, at + token.length).equals(token), `token ${i} at its offset`);
    }
  });

  test('max_tokens 0 without echo and logprobs is a 400 naming max_tokens', async () => {
    const r = await postJson(server.url, '/v1/completions', { model, prompt: prompt.ids, max_tokens: 0 });
    assert.equal(r.status, 400, r.body);
    assert.equal(r.json.error.param, 'max_tokens');
  });

  test('a scoring request computes its whole prompt: no prefix reuse', async () => {
    await postJson(server.url, '/v1/completions', { model, prompt: prompt.ids, max_tokens: 1 });  // caches the prefix
    const r = await postJson(server.url, '/v1/completions', { model, prompt: prompt.ids, max_tokens: 0, echo: true, logprobs: 0 });
    assert.equal(r.json.usage.prompt_tokens_details.cached_tokens, 0);
    assert.equal(r.json.choices[0].logprobs.token_logprobs.filter((x) => x === null).length, 1);
  });
});

describe('hotswap eval --server', () => {
  test('the same perplexity over HTTP as in process, adapters uploaded by the command', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hotswap-eval-test-'));
    const mixedDir = path.join(golden, 'attention', 'llama_f32_mixed');
    const mixedPrompt = JSON.parse(fs.readFileSync(path.join(mixedDir, 'reference.json'), 'utf8')).prompts.at(-1).ids;
    fs.writeFileSync(path.join(dir, 'corpus.jsonl'), `${JSON.stringify({ ids: prompt.ids })}\n${JSON.stringify({ ids: mixedPrompt })}\n`);
    fs.writeFileSync(path.join(dir, 'retrieval.jsonl'), `${JSON.stringify({ prompt: 'the key is 42. the key is', answer: '42', context_tokens: 16 })}\n`);
    fs.writeFileSync(path.join(dir, 'configs.json'), JSON.stringify({ configs: [
      { name: 'eager', attention: 'eager' },
      { name: 'mixed', attention: { impl: 'mixed' }, adapter: path.join(mixedDir, 'adapter_weight.json') },
      { name: 'quest', attention: { impl: 'masked', maskers: [{ type: 'quest_top_k', heavy_size: 32, page_size: 8 }], sparse_prefill: true } },
    ] }));
    const run = (extra, out) => execFileSync(BIN, ['eval', '--model', modelDir, '--configs', path.join(dir, 'configs.json'),
      '--corpus', path.join(dir, 'corpus.jsonl'), '--retrieval', path.join(dir, 'retrieval.jsonl'), '--answer-tokens', '4',
      '--json', path.join(dir, out), ...extra], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    const table = run(['--server', server.url], 'http.json');
    assert.match(table, /^config\s+perplexity/m);
    run([], 'local.json');
    const http = JSON.parse(fs.readFileSync(path.join(dir, 'http.json'), 'utf8'));
    const local = JSON.parse(fs.readFileSync(path.join(dir, 'local.json'), 'utf8'));
    assert.match(http.target, /^server http/);
    for (let i = 0; i < 3; i++) {
      const [h, l] = [http.configs[i], local.configs[i]];
      assert.equal(h.error, undefined, h.error);
      assert.equal(h.scored_tokens, prompt.ids.length - 1 + mixedPrompt.length - 1);
      assert.ok(Math.abs(h.perplexity - l.perplexity) <= 1e-9 * l.perplexity, `${h.name}: ${h.perplexity} vs ${l.perplexity}`);
      assert.equal(h.retrieval_by_context.length, 1);
    }
    assert.ok(http.configs[2].attention_density > 0 && http.configs[2].attention_density < 1, 'quest reports its density');
    assert.notEqual(http.configs[0].perplexity, http.configs[1].perplexity, 'the mixed adapter changes the scores');
  });
});
