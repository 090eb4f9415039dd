// The `masked` attention implementation through the real server (specs/maskers.md Part 1,
// issue 12): the OpenAI client gets usage.attention_density (and attention_output_error when
// asked), every bad masker configuration is a 400 that names the masker and the parameter
// while the server keeps serving, seeded sampling maskers give the same tokens alone, inside a
// batch of 16 mixed requests and with the prompt chunked differently, the int/float size
// distinction survives the HTTP layer, `masked` works as the server's default attention, and
// /metrics has the density histogram by masker configuration. The summarising maskers (issue
// 13): a hashattention adapter uploaded to the running server serves hashattention_top_k (and
// `auto` with it means masked), magic_pig and quest_top_k report their density, a request gives
// the same tokens alone and in a batch, and the summaries' memory shows in /metrics while a
// sequence runs and is all returned after.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { baseModel, client, CROSS_BATCH_ARGS, demoModelShape, eventually, metrics, postJson, randomTensor, request, rng, safetensorsImage, startServer, streamCompletion } from './helpers.js';

const PROMPT = 'The lighthouse keeper climbed the stairs every evening and counted them';
const TOPK = { impl: 'masked', maskers: [{ type: 'sink', sink_size: 4 }, { type: 'local', window_size: 8 }, { type: 'oracle_top_k', heavy_size: 0.1 }] };
const SAMPLED = {
  impl: 'masked',
  maskers: [{ type: 'sink', sink_size: 2 }, { type: 'local', window_size: 4 },
    { type: 'adaptive_sampling', base_rate_sampling: 0.2, epsilon: 0.25, delta: 0.25, init_offset: 2, local_offset: 4 }],
  sparse_prefill: true,
};

let server;
let model;
let openai;

before(async () => {
  server = await startServer([...CROSS_BATCH_ARGS]);
  model = (await baseModel(server)).id;
  openai = client(server);
});

after(async () => {
  const { code } = await server.stop();
  assert.equal(code, 0, `server exit code; logs:\n${server.logs().slice(-4000)}`);
});

const complete = (url, body) => postJson(url, '/v1/completions', { model, prompt: PROMPT, max_tokens: 24, temperature: 0, ignore_eos: true, ...body });

describe('masked through the OpenAI client', () => {
  test('usage reports the density, the kernel, and the error against dense when asked', async () => {
    const r = await openai.completions.create({ model, prompt: PROMPT, max_tokens: 24, temperature: 0, attention: { ...TOPK, report_error: true } });
    const u = r.usage;
    assert.match(u.attention_kernel, /^sparse_gather_(avx512|avx2|scalar)$/);
    assert.ok(u.attention_density > 0 && u.attention_density < 1, `density ${u.attention_density}`);
    assert.ok(u.attention_output_error > 0 && u.attention_output_error < 1, `error ${u.attention_output_error}`);
    const plain = await openai.completions.create({ model, prompt: PROMPT, max_tokens: 24, temperature: 0, attention: TOPK });
    assert.equal(plain.usage.attention_output_error, undefined, 'no error unless report_error');
    assert.equal(plain.choices[0].text, r.choices[0].text, 'report_error does not change the tokens');
    const eager = await openai.completions.create({ model, prompt: PROMPT, max_tokens: 24, temperature: 0 });
    assert.equal(eager.usage.attention_density, undefined, 'eager reports no density');
  });

  test('chat completions stream with masked attention and report usage', async () => {
    const stream = await openai.chat.completions.create({
      model, messages: [{ role: 'user', content: PROMPT }], max_tokens: 12, temperature: 0, stream: true,
      stream_options: { include_usage: true }, attention: TOPK,
    });
    let usage = null;
    let text = '';
    for await (const chunk of stream) {
      if (chunk.usage) usage = chunk.usage;
      for (const c of chunk.choices) text += c.delta?.content ?? '';
    }
    assert.ok(text.length > 0);
    assert.ok(usage && usage.attention_density > 0 && usage.attention_density <= 1, JSON.stringify(usage));
  });
});

describe('bad masker configurations', () => {
  const m = (maskers, extra = {}) => ({ impl: 'masked', maskers, ...extra });
  // [configuration, words the message must contain]
  const cases = [
    [m([]), ['maskers']],
    [{ impl: 'masked' }, ['maskers']],
    [m('sink'), ['maskers']],
    [m([{ type: 'nope' }]), ['maskers[0]', "'nope'"]],
    [m([{ sink_size: 4 }]), ['maskers[0]', 'type']],
    [m([{ type: 'sink' }]), ['maskers[0]', 'sink', 'sink_size']],
    [m([{ type: 'sink', sink_size: 0 }]), ['maskers[0]', 'sink', 'sink_size']],
    [m([{ type: 'sink', sink_size: -3 }]), ['maskers[0]', 'sink', 'sink_size']],
    [m([{ type: 'sink', sink_size: '4' }]), ['maskers[0]', 'sink', 'sink_size']],
    [m([{ type: 'sink', sink_size: true }]), ['maskers[0]', 'sink', 'sink_size']],
    [m([{ type: 'sink', sink_size: 4, window_size: 2 }]), ['maskers[0]', 'sink', 'window_size']],
    [m([{ type: 'sink', sink_size: 4 }, { type: 'local', window_size: -1 }]), ['maskers[1]', 'local', 'window_size']],
    [m([{ type: 'local', window_size: 4 }, { type: 'oracle_top_k', heavy_size: 0 }]), ['maskers[1]', 'oracle_top_k', 'heavy_size']],
    [m([{ type: 'oracle_top_p', top_p: 1.5 }]), ['maskers[0]', 'oracle_top_p', 'top_p']],
    [m([{ type: 'oracle_top_p', top_p: -0.1 }]), ['maskers[0]', 'oracle_top_p', 'top_p']],
    [m([{ type: 'random_sampling', sampling_rate: 0 }]), ['maskers[0]', 'random_sampling', 'sampling_rate']],
    [m([{ type: 'random_sampling', sampling_rate: 1.5 }]), ['maskers[0]', 'random_sampling', 'sampling_rate']],
    [m([{ type: 'adaptive_sampling', base_rate_sampling: 0.1, epsilon: 0, delta: 0.25, init_offset: 4, local_offset: 4 }]), ['maskers[0]', 'adaptive_sampling', 'epsilon']],
    [m([{ type: 'adaptive_sampling', base_rate_sampling: 0.1, epsilon: 0.25, delta: 1, init_offset: 4, local_offset: 4 }]), ['maskers[0]', 'adaptive_sampling', 'delta']],
    [m([{ type: 'adaptive_sampling', base_rate_sampling: 0.1, epsilon: 0.25, delta: 0.25, init_offset: -1, local_offset: 4 }]), ['maskers[0]', 'adaptive_sampling', 'init_offset']],
    [m([{ type: 'adaptive_sampling', epsilon: 0.25, delta: 0.25, init_offset: 4, local_offset: 4 }]), ['maskers[0]', 'adaptive_sampling', 'base_rate_sampling']],
    [m([{ type: 'random_sampling', sampling_rate: 0.1 }, { type: 'random_sampling', sampling_rate: 0.2 }]), ['maskers[1]', 'sampling']],
    [m([{ type: 'sink', sink_size: 4 }], { sparse_prefill: 'yes' }), ['sparse_prefill']],
    [m([{ type: 'sink', sink_size: 4 }], { report_error: 1 }), ['report_error']],
    [m([{ type: 'sink', sink_size: 4 }], { window: 3 }), ['window']],
    [m([{ type: 'hashattention_top_k', heavy_size: 0.1 }]), ['maskers[0]', 'hashattention_top_k', 'needs a hashattention adapter']],
    [m([{ type: 'magic_pig', lsh_l: 8, lsh_k: 65 }]), ['maskers[0]', 'magic_pig', 'lsh_k']],
    [m([{ type: 'quest_top_k', heavy_size: 64 }]), ['maskers[0]', 'quest_top_k', 'page_size is required']],
  ];

  test(`${cases.length} bad configurations each get a 400 that names the masker and the parameter`, async () => {
    assert.ok(cases.length >= 20);
    for (const [attention, words] of cases) {
      const r = await complete(server.url, { attention });
      const what = JSON.stringify(attention);
      assert.equal(r.status, 400, `${what}: ${r.body}`);
      assert.equal(r.json.error.param, 'attention', what);
      for (const w of words) assert.ok(r.json.error.message.includes(w), `${what}: "${r.json.error.message}" lacks "${w}"`);
    }
  });

  test('the server keeps serving, masked and eager alike', async () => {
    assert.equal((await complete(server.url, { attention: TOPK })).status, 200);
    assert.equal((await complete(server.url, {})).status, 200);
  });
});

describe('sizes keep the JSON literal', () => {
  // JSON.stringify writes 1.0 as 1, so these bodies are written by hand.
  const body = (size) => `{"model":"${model}","prompt":"${PROMPT}","max_tokens":4,"temperature":0,` +
    `"attention":{"impl":"masked","maskers":[{"type":"sink","sink_size":${size}}]}}`;
  test('sink_size 1 is one token, 1.0 is every key (dense)', async () => {
    const one = await request(server.url, { method: 'POST', path: '/v1/completions', body: body('1'), headers: { 'content-type': 'application/json' } });
    const all = await request(server.url, { method: 'POST', path: '/v1/completions', body: body('1.0'), headers: { 'content-type': 'application/json' } });
    assert.equal(one.status, 200, one.body);
    assert.equal(all.status, 200, all.body);
    assert.equal(all.json.usage.attention_density, 1, 'sink 1.0 covers every key: FULL, dense');
    assert.ok(one.json.usage.attention_density < 0.2, `sink 1 reads one key of ${PROMPT.length}+: ${one.json.usage.attention_density}`);
  });
});

describe('seeded sampling maskers', () => {
  test('the same seed gives the same tokens alone and in a batch of 16 mixed requests; another seed changes the draws', async () => {
    const alone = await complete(server.url, { attention: SAMPLED, seed: 11 });
    assert.equal(alone.status, 200, alone.body);
    assert.equal(alone.json.usage.attention_seed, 11);
    const mixed = await Promise.all(Array.from({ length: 16 }, (_, i) => {
      if (i === 5) return complete(server.url, { attention: SAMPLED, seed: 11 });
      if (i % 3 === 0) return complete(server.url, { attention: SAMPLED, seed: 100 + i });
      if (i % 3 === 1) return complete(server.url, { attention: TOPK, prompt: `${PROMPT} ${i}` });
      return complete(server.url, { prompt: `${i} ${PROMPT}`, max_tokens: 8 + i });
    }));
    for (const r of mixed) assert.equal(r.status, 200, r.body);
    assert.equal(mixed[5].json.choices[0].text, alone.json.choices[0].text, 'seed 11 inside the batch');
    assert.equal(mixed[5].json.usage.attention_density, alone.json.usage.attention_density, 'same draws, same density');
    const densities = new Set(mixed.filter((_, i) => i % 3 === 0).map((r) => r.json.usage.attention_density));
    assert.ok(densities.size > 1, `different seeds draw differently: ${[...densities]}`);
  });

  test('the prompt chunked 5 tokens at a time gives the same tokens (sparse_prefill: every query is its own step)', async () => {
    const chunked = await startServer(['--max-batch-tokens', '5']);
    try {
      const a = await complete(server.url, { attention: SAMPLED, seed: 11 });
      const b = await complete(chunked.url, { attention: SAMPLED, seed: 11 });
      assert.equal(b.status, 200, b.body);
      assert.equal(b.json.choices[0].text, a.json.choices[0].text);
      assert.equal(b.json.usage.attention_density, a.json.usage.attention_density);
    } finally {
      assert.equal((await chunked.stop()).code, 0);
    }
  });
});

describe('masked as the server default, and its metrics', () => {
  test('a request without attention gets the configured masked default', async () => {
    const s = await startServer(['--default-attention', JSON.stringify(TOPK)]);
    try {
      const r = await complete(s.url, {});
      assert.equal(r.status, 200, r.body);
      assert.ok(r.json.usage.attention_density > 0 && r.json.usage.attention_density < 1, JSON.stringify(r.json.usage));
      const explicit = await complete(s.url, { attention: 'eager' });
      assert.equal(explicit.json.usage.attention_density, undefined, 'an explicit eager request stays eager');
    } finally {
      assert.equal((await s.stop()).code, 0);
    }
  });

  test('/metrics has the density histogram by masker configuration', async () => {
    const r = await request(server.url, { path: '/metrics' });
    assert.match(r.body, /# TYPE hotswap_attention_density histogram/);
    const counts = r.body.split('\n').filter((l) => l.startsWith('hotswap_attention_density_count{config='));
    assert.ok(counts.length >= 2, `one series per configuration:\n${counts.join('\n')}`);
    assert.ok(counts.some((l) => l.includes('oracle_top_k') && Number(l.split(' ').at(-1)) >= 3), counts.join('\n'));
  });
});

describe('summarising maskers (hashattention_top_k, magic_pig, quest_top_k)', () => {
  const LONG = `${PROMPT}. ${PROMPT}, and wrote the number on the wall of the lamp room each night`;
  const HAT = { impl: 'masked', maskers: [{ type: 'sink', sink_size: 4 }, { type: 'local', window_size: 8 }, { type: 'hashattention_top_k', heavy_size: 0.2 }] };
  const PIG = { impl: 'masked', maskers: [{ type: 'sink', sink_size: 4 }, { type: 'local', window_size: 8 }, { type: 'magic_pig', lsh_l: 8, lsh_k: 4 }] };
  const QUEST = { impl: 'masked', maskers: [{ type: 'quest_top_k', heavy_size: 16, page_size: 4 }] };
  const hatAdapter = () => {
    const { L, H, D } = demoModelShape();
    const r = rng(13);
    const tensors = [];
    for (let l = 0; l < L; l++)
      for (const side of ['query', 'key'])
        for (const [i, [a, b]] of [[D, 16], [16, 32]].entries()) {
          tensors.push([`layers.${l}.${side}.${i}.weight`, randomTensor(r, [H, a, b])]);
          tensors.push([`layers.${l}.${side}.${i}.bias`, randomTensor(r, [H, b])]);
        }
    return safetensorsImage({ type: 'hashattention', activation: 'silu' }, tensors);
  };
  const run = (body) => openai.completions.create({ model, prompt: LONG, max_tokens: 16, temperature: 0, ...body });

  test('a hashattention adapter uploaded to the running server serves hashattention_top_k; auto means masked with it', async () => {
    const put = await request(server.url, { method: 'PUT', path: '/v1/adapters/hat', body: hatAdapter(), headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(put.status, 201, put.body);
    const r = await run({ adapter: 'hat', attention: HAT });
    assert.ok(r.usage.attention_density > 0 && r.usage.attention_density < 1, `density ${r.usage.attention_density}`);
    const byModel = await openai.completions.create({ model: 'hat', prompt: LONG, max_tokens: 16, temperature: 0, attention: HAT });
    assert.equal(byModel.choices[0].text, r.choices[0].text, 'the adapter by `model` is the adapter by `adapter`');
    // auto + hashattention adapter: [sink 128, local 128, hashattention_top_k 0.1], dense at this length
    const auto = await run({ adapter: 'hat' });
    assert.equal(auto.usage.attention_density, 1, 'sink 128 covers the whole short prompt: FULL');
    const labels = [...(await metrics(server.url)).keys()].filter((k) => k.startsWith('hotswap_attention_density_count{'));
    assert.ok(labels.some((k) => k.includes('sink_size\\":128') && k.includes('hashattention_top_k\\",\\"heavy_size\\":0.1')),
      `the default list is a metric label: ${labels.join('\n')}`);
    const without = await complete(server.url, { attention: HAT });
    assert.equal(without.status, 400, without.body);
    assert.equal(without.json.error.param, 'attention');
    assert.match(without.json.error.message, /maskers\[2\] \(hashattention_top_k\) needs a hashattention adapter/);
  });

  test('magic_pig and quest_top_k report their density; a request alone equals it in a batch of 8', async () => {
    for (const attention of [PIG, QUEST]) {
      const alone = await run({ attention });
      const d = alone.usage.attention_density;
      assert.ok(d > 0 && d < 1, `${attention.maskers.at(-1).type} density ${d}`);
      const batch = await Promise.all(Array.from({ length: 8 }, (_, i) =>
        run({ attention: i % 2 ? attention : TOPK, prompt: i % 3 ? LONG : `${LONG} again` })));
      const same = batch.filter((_, i) => i % 2 && i % 3);
      for (const b of same) assert.equal(b.choices[0].text, alone.choices[0].text);
    }
  });

  test('the summaries are counted in /metrics while a sequence runs and returned after', async () => {
    const stateBytes = async () => (await metrics(server.url)).get('hotswap_attention_state_bytes');
    // The previous test's sequences free their pages in the engine step after their last
    // event (see the end of this test), so idle is waited for, not assumed at once.
    assert.ok(await eventually(async () => (await stateBytes()) === 0), `nothing held while idle (${await stateBytes()} bytes)`);
    const h = streamCompletion(server.url, { model, prompt: LONG, max_tokens: 400, temperature: 0, ignore_eos: true, attention: QUEST });
    await h.started;
    let seen = 0;
    while (!h.finished && seen === 0) seen = await stateBytes();
    const done = await h.done;
    assert.equal(done.status, 200, done.body);
    assert.ok(seen >= 65536, `a running quest_top_k sequence holds summary pages (saw ${seen} bytes)`);
    // The last event reaches the client before the scheduler's step that frees the sequence
    // ends, so the pages come back shortly after the response, not with it.
    const settled = await eventually(async () => (await stateBytes()) === 0);
    assert.ok(settled, `every page back after the sequence ends (still ${await stateBytes()} bytes)`);
  });
});
