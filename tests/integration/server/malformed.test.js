// A table of malformed requests: each gets the right status and an OpenAI-shaped error whose
// message names the problem, and the server keeps serving after every one of them.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { baseModel, postJson, rawExchange, request, startServer } from './helpers.js';

let server;
let model;

before(async () => {
  // A small body limit keeps the oversize case cheap; everything else is default.
  server = await startServer(['--max-body-bytes', '65536']);
  model = (await baseModel(server)).id;
});

after(async () => {
  const { code } = await server.stop();
  assert.equal(code, 0, `server exit code; logs:\n${server.logs().slice(-4000)}`);
});

const C = '/v1/completions';
const CHAT = '/v1/chat/completions';
const user = [{ role: 'user', content: 'hi' }];

// [name, method, path, body (object | string | Buffer | undefined), status, message pattern, param]
const cases = () => [
  ['bad JSON', 'POST', C, '{"prompt": "hi", ', 400, /not valid JSON/],
  ['empty body', 'POST', C, '', 400, /not valid JSON/],
  ['number overflowing a double', 'POST', C, '{"prompt": "hi", "max_tokens": 1e400}', 400, /not valid JSON: number overflow/],
  ['body is an array', 'POST', C, '[1, 2]', 400, /must be a JSON object, got an array/],
  ['missing prompt', 'POST', C, { model }, 400, /prompt is required/, 'prompt'],
  ['prompt of the wrong type', 'POST', C, { model, prompt: 42 }, 400, /prompt must be a string/, 'prompt'],
  ['negative max_tokens', 'POST', C, { model, prompt: 'x', max_tokens: -5 }, 400, /max_tokens must be an integer between 1 and \d+ \(the server's max_new_tokens\), got -5/, 'max_tokens'],
  ['huge max_tokens', 'POST', C, { model, prompt: 'x', max_tokens: 1e9 }, 400, /max_tokens must be an integer between 1 and \d+ \(the server's max_new_tokens\), got 1000000000/, 'max_tokens'],
  ['max_tokens as a string', 'POST', C, { model, prompt: 'x', max_tokens: '10' }, 400, /max_tokens must be an integer/, 'max_tokens'],
  ['temperature as a string', 'POST', C, { model, prompt: 'x', temperature: 'hot' }, 400, /temperature must be a number/, 'temperature'],
  ['temperature out of range', 'POST', C, { model, prompt: 'x', temperature: 5 }, 400, /temperature .* got 5/, 'temperature'],
  ['top_p zero', 'POST', C, { model, prompt: 'x', top_p: 0 }, 400, /top_p must be a number > 0/, 'top_p'],
  ['n zero', 'POST', C, { model, prompt: 'x', n: 0 }, 400, /n must be an integer between 1 and \d+, got 0/, 'n'],
  ['n too large', 'POST', C, { model, prompt: 'x', n: 1000 }, 400, /got 1000/, 'n'],
  ['stop of the wrong type', 'POST', C, { model, prompt: 'x', stop: 7 }, 400, /stop must be a string or an array of strings/, 'stop'],
  ['too many stop strings', 'POST', C, { model, prompt: 'x', stop: Array.from({ length: 40 }, (_, i) => `s${i}`) }, 400, /stop has 40 entries/, 'stop'],
  ['logprobs out of range', 'POST', C, { model, prompt: 'x', logprobs: 100 }, 400, /logprobs must be an integer between 0 and 20/, 'logprobs'],
  ['stream not a boolean', 'POST', C, { model, prompt: 'x', stream: 'yes' }, 400, /stream must be a boolean/, 'stream'],
  ['seed not an integer', 'POST', C, { model, prompt: 'x', seed: 'abc' }, 400, /seed must be an integer/, 'seed'],
  ['unknown attention', 'POST', C, { model, prompt: 'x', attention: 'flash' }, 400, /attention/, 'attention'],
  ['unknown attention impl in the object form', 'POST', C, { model, prompt: 'x', attention: { impl: 'bogus' } }, 400, /attention/, 'attention'],
  ['attention of the wrong type', 'POST', C, { model, prompt: 'x', attention: 3 }, 400, /attention must be a string/, 'attention'],
  ['negative token id', 'POST', C, { model, prompt: [1, -1] }, 400, /prompt\[1\] must be a token id/, 'prompt[1]'],
  ['token id beyond the vocabulary', 'POST', C, { model, prompt: [1, 99999999] }, 400, /token id 99999999.*vocabulary/, 'prompt'],
  ['unknown model', 'POST', C, { model: 'no-such-model', prompt: 'x' }, 404, /model 'no-such-model' does not exist/, 'model'],
  ['empty messages', 'POST', CHAT, { model, messages: [] }, 400, /messages must be a non-empty array/, 'messages'],
  ['missing messages', 'POST', CHAT, { model }, 400, /messages is required/, 'messages'],
  ['unknown role', 'POST', CHAT, { model, messages: [{ role: 'wizard', content: 'hi' }] }, 400, /messages\[0\]\.role must be one of/, 'messages[0].role'],
  ['content of the wrong type', 'POST', CHAT, { model, messages: [{ role: 'user', content: 5 }] }, 400, /messages\[0\]\.content must be a string/, 'messages[0].content'],
  ['image content part', 'POST', CHAT, { model, messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'x' } }] }] }, 400, /only supported content part/],
  ['top_logprobs without logprobs', 'POST', CHAT, { model, messages: user, top_logprobs: 2 }, 400, /top_logprobs needs logprobs/, 'top_logprobs'],
  ['negative max_completion_tokens', 'POST', CHAT, { model, messages: user, max_completion_tokens: -1 }, 400, /max_completion_tokens must be an integer between 1 and \d+ \(the server's max_new_tokens\)/],
  ['oversize body', 'POST', C, { model, prompt: 'x'.repeat(200_000) }, 413, /larger than the limit of 65536 bytes/],
  ['bad UTF-8', 'POST', C, Buffer.concat([Buffer.from('{"prompt": "caf'), Buffer.from([0xc3, 0x28]), Buffer.from('"}')]), 400, /not valid UTF-8/],
  ['unsupported method', 'DELETE', C, undefined, 405, /method DELETE is not allowed on \/v1\/completions/],
  ['GET on a POST route', 'GET', CHAT, undefined, 405, /allowed: POST/],
  ['POST on a GET route', 'POST', '/v1/models', '{}', 405, /allowed: GET/],
  ['unknown route', 'GET', '/v1/nothing-here', undefined, 404, /no route for GET \/v1\/nothing-here/],
  ['logit_bias', 'POST', C, { model, prompt: 'x', logit_bias: { 5: 10 } }, 400, /logit_bias is not supported/, 'logit_bias'],
];

describe('malformed requests', () => {
  test('the table has at least 25 cases', () => assert.ok(cases().length >= 25));

  for (const [name, method, path, body, status, pattern, param] of cases()) {
    test(`${name} -> ${status}`, async () => {
      const r = await request(server.url, { method, path, body, headers: typeof body === 'string' || Buffer.isBuffer(body) ? { 'content-type': 'application/json' } : {} });
      assert.equal(r.status, status, `body: ${r.body}`);
      assert.ok(r.json?.error, `OpenAI error shape expected, got: ${r.body}`);
      assert.match(r.json.error.message, pattern);
      assert.equal(typeof r.json.error.type, 'string');
      assert.equal(typeof r.json.error.code, 'string');
      if (param) assert.equal(r.json.error.param, param);
      if (status === 405) assert.ok(r.headers.allow, 'a 405 names the allowed methods');
      const health = await request(server.url, { path: '/health' });
      assert.equal(health.status, 200, 'the server keeps serving');
    });
  }

  test('malformed request line -> 400', async () => {
    const text = await rawExchange(server.url, 'THIS IS NOT HTTP\r\n\r\n');
    assert.match(text, /^HTTP\/1\.1 400 /);
    assert.match(text, /malformed HTTP request/);
  });

  test('oversize header -> 431', async () => {
    const text = await rawExchange(server.url, `GET /health HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(40_000)}\r\n\r\n`);
    assert.match(text, /^HTTP\/1\.1 431 /);
    assert.match(text, /header is larger than the limit/);
  });

  test('oversize body announced by Content-Length is refused before it is read', async () => {
    const head = `POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n`;
    const text = await rawExchange(server.url, head + '{"prompt": "');
    assert.match(text, /^HTTP\/1\.1 413 /);
    assert.match(text, /Connection: close/i);
  });

  test('still serving a real request after all of that', async () => {
    const r = await postJson(server.url, C, { model, prompt: 'still alive', max_tokens: 3, temperature: 0 });
    assert.equal(r.status, 200);
    assert.equal(r.json.choices.length, 1);
  });
});
