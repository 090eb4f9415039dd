#!/usr/bin/env node
// Load test of a running `hotswap serve`: a sweep of concurrency levels, each a closed loop of
// `level` workers that send streaming /v1/completions requests back to back, with prompt and
// output lengths drawn from distributions and a mix of attention implementations and adapters.
// Node 20, no dependencies (node:http with keep-alive; SSE parsed by hand).
//
//   node load_tests/loadtest.mjs --url http://127.0.0.1:PORT --model-dir DIR --out DIR [options]
//
// Per level it reports requests/s, generated tokens/s (the server's own counter over the
// measurement window, and the client's count), time to first token, inter-token latency
// (gaps between streamed chunks), time per output token, end-to-end latency (p50/p90/p99)
// and errors. Writes <out>/results.json. See load_tests/README.md.
import http from 'node:http';
import { setMaxListeners } from 'node:events';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

// ------------------------------------------------------------------------------------------
// Options.

const DEFAULTS = {
  url: '',
  'model-dir': '',
  out: '',
  levels: '1,2,4,8,16,32,64',
  duration: 20, // seconds measured per level
  warmup: 3, // seconds per level at least before the measurement window opens
  'max-warmup': 120, // ... which waits for every stream's first token up to this many seconds
  drain: 10, // seconds in-flight requests may finish after the window before they are aborted
  prompt: 'uniform:32:256', // prompt length distribution (tokens)
  output: 'uniform:64:256', // max_tokens distribution (ignore_eos: every request generates it all)
  mix: 'eager=2,streaming=1,adapter=1', // request classes and weights
  streaming: '16,64,16', // sink_window_size,recent_window_size,block_size of the `streaming` class
  adapters: 3, // random mixed adapters uploaded before the sweep (the `adapter` class uses them)
  'adapter-window': '16,64,16', // sink,recent,block of the uploaded adapters
  temperature: 1.0,
  'top-p': 1.0,
  seed: 1,
  'ignore-eos': true,
  'idle-timeout': 60, // seconds to wait for the server to go idle between levels
  'ready-timeout': 300, // seconds to wait for /ready at the start
  'one-token-per-chunk': false, // count a chunk with text as one token (servers that stream token by token)
  'ready-path': '/ready', // what answers 200 once the server serves (another server: /health, /v1/models)
  logprobs: 'auto', // on | off | auto: ask for logprobs: 0 so that every chunk names its tokens (see usage)
  'engine-reference': '', // engine_throughput_bench output: server tokens/s at concurrency B is compared with its batch-B decode
  'server-pid': 0, // the server's pid (Linux): its threads' CPU time over the window, from /proc/PID/task/*/schedstat
  quiet: false,
};

function parseArgs(argv) {
  const o = { ...DEFAULTS };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--help' || a === '-h') {
      usage();
      process.exit(0);
    }
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    let key = a.slice(2);
    let value;
    const eq = key.indexOf('=');
    if (eq >= 0) {
      value = key.slice(eq + 1);
      key = key.slice(0, eq);
    }
    if (key.startsWith('no-') && typeof DEFAULTS[key.slice(3)] === 'boolean') {
      o[key.slice(3)] = false;
      continue;
    }
    if (!(key in DEFAULTS)) throw new Error(`unknown option --${key} (see --help)`);
    if (typeof DEFAULTS[key] === 'boolean' && value === undefined) {
      o[key] = true;
      continue;
    }
    if (value === undefined) {
      if (i + 1 >= argv.length) throw new Error(`--${key} needs a value`);
      value = argv[++i];
    }
    o[key] = typeof DEFAULTS[key] === 'number' ? Number(value) : typeof DEFAULTS[key] === 'boolean' ? value !== 'false' : value;
    if (typeof DEFAULTS[key] === 'number' && !Number.isFinite(o[key])) throw new Error(`--${key} must be a number`);
  }
  if (!o.url) throw new Error('--url is required');
  return o;
}

function usage() {
  process.stdout.write(`usage: node load_tests/loadtest.mjs --url URL [options]
  --url URL              the server (http://127.0.0.1:PORT)
  --model-dir DIR        the served model's directory (config.json: vocabulary, layers, KV heads)
  --out DIR              where results.json goes (default: load_tests/results/<timestamp>)
  --levels 1,2,4,...     concurrency levels (default ${DEFAULTS.levels})
  --duration S           measured seconds per level (default ${DEFAULTS.duration})
  --warmup S             unmeasured seconds per level first (default ${DEFAULTS.warmup}); the window also
                         waits until every stream has had its first token, up to --max-warmup S
                         (default ${DEFAULTS['max-warmup']}), so that it sees steady decoding
  --drain S              seconds in-flight requests may finish after the window (default ${DEFAULTS.drain})
  --prompt DIST          prompt tokens: fixed:N | uniform:A:B | normal:MEAN:SD | choice:A,B,C (default ${DEFAULTS.prompt})
  --output DIST          max_tokens, same forms (default ${DEFAULTS.output})
  --mix CLASSES          weights of plain (no attention field: what any OpenAI server takes), eager,
                         streaming, mixed (explicit "attention":"mixed") and adapter (attention
                         "auto" + an uploaded adapter) (default ${DEFAULTS.mix})
  --streaming S,R,B      streaming class window (default ${DEFAULTS.streaming})
  --adapters N           random mixed adapters to upload (default ${DEFAULTS.adapters})
  --adapter-window S,R,B the adapters' sink/recent/block sizes (default ${DEFAULTS['adapter-window']})
  --temperature T --top-p P --seed N --no-ignore-eos --quiet
  --logprobs on|off|auto ask for logprobs (0 alternatives): every chunk then names its tokens, so the
                         client sees every token even when its text is empty or held back. auto (default):
                         on when the model's tokenizer is smaller than its vocabulary (the random
                         benchmark models: ids past the tokenizer decode to no text, so without
                         logprobs most tokens would send no chunk at all)
  --engine-reference F   output of bench/engine_throughput_bench: each level is compared with the
                         engine's own decode at batch = concurrency (when the bench measured it)
  --server-pid PID       the server process (same machine, Linux): CPU time and run-queue wait of
                         its threads over the window, generated tokens per CPU-second
  --idle-timeout S       wait for the server to go idle between levels (default ${DEFAULTS['idle-timeout']})
  --ready-timeout S      wait for /ready at the start (default ${DEFAULTS['ready-timeout']})
  --one-token-per-chunk  count each chunk with text as one token, for servers that stream token by token
                         without logprobs (llama-server); Hotswap: use --logprobs on
  --ready-path P         the path that answers 200 once the server serves (default /ready; another
                         server: /health or /v1/models)
`);
}

// ------------------------------------------------------------------------------------------
// Random numbers and length distributions.

function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function parseDist(spec, name) {
  const [kind, ...rest] = spec.split(':');
  const nums = (s) => s.split(',').map(Number);
  let sample;
  if (kind === 'fixed' && rest.length === 1) {
    const n = Number(rest[0]);
    sample = () => n;
  } else if (kind === 'uniform' && rest.length === 2) {
    const [a, b] = rest.map(Number);
    sample = (rng) => a + Math.floor(rng() * (b - a + 1));
  } else if (kind === 'normal' && rest.length === 2) {
    const [mean, sd] = rest.map(Number);
    sample = (rng) => {
      const u = Math.max(rng(), 1e-12), v = rng();
      return Math.round(mean + sd * Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v));
    };
  } else if (kind === 'choice' && rest.length === 1) {
    const values = nums(rest[0]);
    sample = (rng) => values[Math.floor(rng() * values.length)];
  } else {
    throw new Error(`--${name}: cannot parse '${spec}' (fixed:N | uniform:A:B | normal:MEAN:SD | choice:A,B,C)`);
  }
  const out = (rng) => Math.max(1, sample(rng));
  out.spec = spec;
  return out;
}

function parseMix(spec, without = []) {
  const classes = [];
  for (const part of spec.split(',')) {
    const [name, w] = part.split('=');
    if (!['plain', 'eager', 'streaming', 'mixed', 'adapter'].includes(name)) throw new Error(`--mix: unknown class '${name}'`);
    const weight = w === undefined ? 1 : Number(w);
    if (!(weight >= 0)) throw new Error(`--mix: bad weight for ${name}`);
    if (weight > 0 && !without.includes(name)) classes.push({ name, weight });
  }
  if (!classes.length) throw new Error(`--mix selects no class${without.length ? ` once ${without.join(' and ')} are left out` : ''}`);
  const total = classes.reduce((s, c) => s + c.weight, 0);
  const pick = (rng) => {
    let r = rng() * total;
    for (const c of classes) if ((r -= c.weight) < 0) return c.name;
    return classes[classes.length - 1].name;
  };
  pick.names = classes.map((c) => c.name);
  return pick;
}

const triple = (s, name) => {
  const v = s.split(',').map(Number);
  if (v.length !== 3 || v.some((x) => !Number.isInteger(x) || x < 1)) throw new Error(`--${name} wants S,R,B`);
  return { sink_window_size: v[0], recent_window_size: v[1], block_size: v[2] };
};

// ------------------------------------------------------------------------------------------
// HTTP.

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function request(agent, url, { method = 'GET', path: p, body, headers = {}, timeoutMs = 60_000 }) {
  return new Promise((resolve, reject) => {
    const h = { ...headers };
    if (body !== undefined) h['content-length'] = Buffer.byteLength(body);
    const req = http.request(`${url}${p}`, { method, headers: h, agent }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`timeout after ${timeoutMs} ms`)));
    req.on('error', reject);
    if (body !== undefined) req.write(body);
    req.end();
  });
}

// CPU time and run-queue wait (ns) of every thread of a process, from schedstat.
function readThreadTimes(pid) {
  if (!pid) return null;
  const out = {};
  let tids;
  try {
    tids = fs.readdirSync(`/proc/${pid}/task`);
  } catch {
    return null;
  }
  for (const tid of tids) {
    try {
      const [run, wait] = fs.readFileSync(`/proc/${pid}/task/${tid}/schedstat`, 'utf8').trim().split(/\s+/).map(Number);
      out[tid] = { run, wait };
    } catch {}
  }
  return out;
}

function threadDelta(a, b) {
  if (!a || !b) return null;
  const threads = [];
  let cpu = 0, wait = 0;
  for (const [tid, end] of Object.entries(b)) {
    const start = a[tid] ?? { run: 0, wait: 0 };
    const t = { tid: Number(tid), cpu_s: (end.run - start.run) / 1e9, runqueue_wait_s: (end.wait - start.wait) / 1e9 };
    cpu += t.cpu_s;
    wait += t.runqueue_wait_s;
    if (t.cpu_s > 0.001 || t.runqueue_wait_s > 0.001) threads.push(t);
  }
  threads.sort((x, y) => y.cpu_s - x.cpu_s);
  const r3 = (x) => Math.round(x * 1000) / 1000;
  return {
    cpu_s: r3(cpu),
    runqueue_wait_s: r3(wait),
    threads: threads.map((t) => ({ tid: t.tid, cpu_s: r3(t.cpu_s), runqueue_wait_s: r3(t.runqueue_wait_s) })),
  };
}

async function scrapeMetrics(agent, url) {
  const r = await request(agent, url, { path: '/metrics' });
  const m = {};
  for (const line of r.body.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const match = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/);
    if (match && !match[2]) m[match[1]] = Number(match[3]);
  }
  return m;
}

// One streaming completion. Resolves a record (never rejects).
// oneTokenPerChunk: the server streams each token in its own chunk (llama-server does), so a
// chunk with text is one token even without logprobs.
function streamCompletion(agent, url, payload, abortSignal, onFirstToken = () => {}, oneTokenPerChunk = false) {
  return new Promise((resolve) => {
    const rec = {
      start: performance.now(),
      first: null, // first chunk with text
      chunks: [], // arrival times of chunks that carry tokens
      chunkTokens: [], // tokens in each chunk (known with --logprobs, else 0)
      tokens: null, // usage.completion_tokens (stream_options.include_usage)
      status: null,
      error: null,
      finish: null,
      kernel: null,
      aborted: false,
      end: null,
    };
    const body = JSON.stringify(payload);
    let settled = false;
    let removeAbort = () => {};
    const done = (err) => {
      if (settled) return;
      settled = true;
      removeAbort();
      rec.end = performance.now();
      if (err && !rec.aborted) rec.error = rec.error ?? String(err.message ?? err);
      resolve(rec);
    };
    const req = http.request(
      `${url}/v1/completions`,
      { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        rec.status = res.statusCode;
        let buf = '';
        if (res.statusCode !== 200) {
          res.on('data', (c) => (buf += c));
          res.on('end', () => {
            let msg = buf.slice(0, 300);
            try {
              msg = JSON.parse(buf).error?.message ?? msg;
            } catch {}
            rec.error = `HTTP ${res.statusCode}: ${msg}`;
            done();
          });
          res.on('error', done);
          return;
        }
        res.setEncoding('utf8');
        let sawDone = false;
        res.on('data', (c) => {
          const now = performance.now();
          buf += c;
          let cut;
          while ((cut = buf.indexOf('\n\n')) >= 0) {
            const event = buf.slice(0, cut);
            buf = buf.slice(cut + 2);
            for (const line of event.split('\n')) {
              if (!line.startsWith('data:')) continue;
              const data = line.slice(5).trim();
              if (data === '[DONE]') {
                sawDone = true;
                continue;
              }
              let j;
              try {
                j = JSON.parse(data);
              } catch {
                rec.error = `unparseable SSE data: ${data.slice(0, 100)}`;
                continue;
              }
              if (j.error) {
                rec.error = `stream error: ${j.error.message ?? JSON.stringify(j.error)}`;
                continue;
              }
              if (j.usage) {
                rec.tokens = j.usage.completion_tokens;
                rec.kernel = j.usage.attention_kernel ?? rec.kernel;
              }
              const ch = j.choices?.[0];
              if (ch) {
                // With --logprobs every chunk lists its tokens (also those whose text is held
                // back); without, a chunk is known to carry at least one token by its text.
                const n = ch.logprobs?.tokens?.length ?? (oneTokenPerChunk && ch.text ? 1 : 0);
                if (ch.text || n > 0) {
                  if (rec.first === null) {
                    rec.first = now;
                    onFirstToken();
                  }
                  rec.chunks.push(now);
                  rec.chunkTokens.push(n);
                }
                if (ch.finish_reason) rec.finish = ch.finish_reason;
              }
            }
          }
        });
        res.on('end', () => done(sawDone ? null : new Error('stream ended without [DONE]')));
        res.on('error', done);
        res.on('aborted', () => done(new Error('response aborted')));
      },
    );
    req.on('error', done);
    if (abortSignal) {
      const onAbort = () => {
        if (settled) return;
        rec.aborted = true;
        req.destroy();
        done();
      };
      if (abortSignal.aborted) onAbort();
      else {
        abortSignal.addEventListener('abort', onAbort, { once: true });
        removeAbort = () => abortSignal.removeEventListener('abort', onAbort);
      }
    }
    req.end(body);
  });
}

// ------------------------------------------------------------------------------------------
// Model description and adapters.

function readModelShape(o, modelsJson) {
  let cfg = {};
  if (o['model-dir']) cfg = JSON.parse(fs.readFileSync(path.join(o['model-dir'], 'config.json'), 'utf8'));
  const card = modelsJson?.data?.[0] ?? {};
  const pick = (...keys) => {
    for (const k of keys) {
      if (cfg[k] !== undefined) return cfg[k];
      if (card[k] !== undefined) return card[k];
    }
    return undefined;
  };
  let tokenizerSize = null;
  if (o['model-dir']) {
    try {
      const tok = JSON.parse(fs.readFileSync(path.join(o['model-dir'], 'tokenizer.json'), 'utf8'));
      let max = -1;
      const vocab = tok.model?.vocab;
      if (Array.isArray(vocab)) max = vocab.length - 1;
      else if (vocab) for (const id of Object.values(vocab)) max = Math.max(max, id);
      for (const t of tok.added_tokens ?? []) max = Math.max(max, t.id);
      tokenizerSize = max + 1;
    } catch {}
  }
  const shape = {
    id: card.id,
    tokenizer_size: tokenizerSize,
    vocab_size: pick('vocab_size'),
    num_layers: pick('num_hidden_layers', 'num_layers'),
    num_heads: pick('num_attention_heads', 'num_heads'),
    num_kv_heads: pick('num_key_value_heads', 'num_kv_heads') ?? pick('num_attention_heads', 'num_heads'),
    max_len: card.max_model_len ?? pick('max_position_embeddings'),
  };
  if (!shape.vocab_size || !shape.num_layers || !shape.num_kv_heads)
    throw new Error('cannot tell the model shape: pass --model-dir (its config.json gives vocabulary, layers and KV heads)');
  return shape;
}

function randomMixedAdapter(shape, window, rng, index) {
  const dict = {};
  for (let l = 0; l < shape.num_layers; l++) {
    const gates = [];
    for (let h = 0; h < shape.num_kv_heads; h++) {
      const r = rng();
      // A third dense, a third streaming, a third in between.
      gates.push(r < 1 / 3 ? 1 : r < 2 / 3 ? 0 : Math.round(rng() * 1000) / 1000);
    }
    dict[`model.layers.${l}.self_attn.adapter.weight`] = gates;
  }
  return { adapter_type: 'mixed', model_name: `loadtest-random-${index}`, ...window, adapter_weight_dict: dict };
}

// ------------------------------------------------------------------------------------------
// Statistics.

function percentile(sorted, p) {
  if (!sorted.length) return null;
  const idx = (sorted.length - 1) * p;
  const lo = Math.floor(idx), hi = Math.ceil(idx);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (idx - lo);
}

function summary(values) {
  const s = [...values].sort((a, b) => a - b);
  const r = (x) => (x === null ? null : Math.round(x * 100) / 100);
  return {
    n: s.length,
    mean: r(s.length ? s.reduce((a, b) => a + b, 0) / s.length : null),
    p50: r(percentile(s, 0.5)),
    p90: r(percentile(s, 0.9)),
    p99: r(percentile(s, 0.99)),
    max: r(s.length ? s[s.length - 1] : null),
  };
}

// ------------------------------------------------------------------------------------------
// One concurrency level.

async function runLevel(o, ctx, level) {
  const { url, shape, adapters, rng, promptDist, outputDist, pickClass, streamingWindow } = ctx;
  const agent = new http.Agent({ keepAlive: true, maxSockets: level + 4 });
  const metricsAgent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  const abort = new AbortController();
  setMaxListeners(level + 16, abort.signal); // one listener per in-flight request
  const records = [];
  const t0 = performance.now();
  // The window opens once --warmup seconds have passed and every worker has had a token
  // (all streams past their first prefill), or after --max-warmup seconds in any case.
  let windowEnd = Infinity;
  const streaming = new Set();
  let warmupCut = false;
  let metricsStart = null, metricsEnd = null, wStart = null, wEnd = null;
  let threadsStart = null, threadsEnd = null, clientStart = null, clientEnd = null;

  const makePayload = () => {
    const cls = pickClass(rng);
    const promptLen = Math.min(promptDist(rng), shape.max_len - 1);
    const maxTokens = Math.min(outputDist(rng), shape.max_len - promptLen);
    const prompt = new Array(promptLen);
    for (let i = 0; i < promptLen; i++) prompt[i] = Math.floor(rng() * shape.vocab_size);
    const payload = {
      model: shape.id,
      prompt,
      max_tokens: maxTokens,
      temperature: o.temperature,
      top_p: o['top-p'],
      stream: true,
      stream_options: { include_usage: true },
      ignore_eos: o['ignore-eos'],
    };
    if (o.logprobs === 'on') payload.logprobs = 0;
    let adapter = null;
    if (cls === 'plain') {
      // no attention field: the server's default (and a request any OpenAI server takes)
    } else if (cls === 'eager') payload.attention = 'eager';
    else if (cls === 'streaming') payload.attention = { impl: 'streaming', ...streamingWindow };
    else {
      adapter = adapters[Math.floor(rng() * adapters.length)];
      payload.adapter = adapter;
      payload.attention = cls === 'mixed' ? 'mixed' : 'auto';
    }
    return { payload, meta: { cls, adapter, prompt_tokens: promptLen, max_tokens: maxTokens } };
  };

  const worker = async (_, index) => {
    while (performance.now() < windowEnd && !abort.signal.aborted) {
      const { payload, meta } = makePayload();
      const rec = await streamCompletion(agent, url, payload, abort.signal, () => streaming.add(index), o['one-token-per-chunk']);
      Object.assign(rec, meta);
      records.push(rec);
      if (rec.error && !rec.aborted) await sleep(rec.status === 429 ? 200 : 50); // do not spin on errors
    }
  };

  // The measurement window's boundaries: the server's counters are read at both ends.
  const scraper = (async () => {
    await sleep(o.warmup * 1000);
    while (streaming.size < level) {
      if (performance.now() - t0 >= o['max-warmup'] * 1000) {
        warmupCut = true;
        break;
      }
      await sleep(50);
    }
    windowEnd = performance.now() + o.duration * 1000;
    metricsStart = await scrapeMetrics(metricsAgent, url);
    threadsStart = readThreadTimes(o['server-pid']);
    clientStart = process.cpuUsage();
    wStart = performance.now();
    await sleep(Math.max(0, windowEnd - performance.now()));
    metricsEnd = await scrapeMetrics(metricsAgent, url);
    threadsEnd = readThreadTimes(o['server-pid']);
    clientEnd = process.cpuUsage(clientStart);
    wEnd = performance.now();
  })();

  const workers = Array.from({ length: level }, worker);
  const warmupS = () => Math.round((wStart - t0) / 10) / 100;
  await scraper;
  // Let in-flight requests finish for up to --drain seconds, then abort the rest.
  const drainTimer = setTimeout(() => abort.abort(), o.drain * 1000);
  await Promise.all(workers);
  clearTimeout(drainTimer);
  abort.abort();
  agent.destroy();

  // Wait for the server to settle (aborted streams are cancelled at the engine's next step).
  const idleDeadline = performance.now() + o['idle-timeout'] * 1000;
  let m = null;
  for (;;) {
    m = await scrapeMetrics(metricsAgent, url).catch(() => null);
    if (m && !m.hotswap_running_sequences && !m.hotswap_queue_depth) break;
    if (performance.now() > idleDeadline) break;
    await sleep(200);
  }
  metricsAgent.destroy();
  const r = analyse(o, level, records, { wStart, wEnd, metricsStart, metricsEnd, t0 });
  r.warmup_s = warmupS();
  if (warmupCut) r.warmup_cut = `only ${streaming.size} of ${level} streams had a token after --max-warmup ${o['max-warmup']} s`;
  const windowS = (wEnd - wStart) / 1000;
  const server = threadDelta(threadsStart, threadsEnd);
  if (server) {
    server.cores_used = Math.round((server.cpu_s / windowS) * 100) / 100;
    server.generated_tokens_per_cpu_s = Math.round(((r.generated_tokens_per_s * windowS) / server.cpu_s) * 10) / 10;
    r.server_cpu = server;
  }
  if (clientEnd) r.client_cpu_s = Math.round(((clientEnd.user + clientEnd.system) / 1e6) * 1000) / 1000;
  return r;
}

function analyse(o, level, records, w) {
  const windowS = (w.wEnd - w.wStart) / 1000;
  const inWindow = (t) => t !== null && t >= w.wStart && t < w.wEnd;
  const ok = records.filter((r) => !r.error && !r.aborted);
  const errors = records.filter((r) => r.error && !r.aborted);
  const completedInWindow = ok.filter((r) => inWindow(r.end));
  const startedInWindow = records.filter((r) => inWindow(r.start));

  const ttft = startedInWindow.filter((r) => r.first !== null && !r.error).map((r) => r.first - r.start);
  const itl = [];
  let chunksInWindow = 0;
  for (const r of records) {
    for (let i = 1; i < r.chunks.length; i++) if (inWindow(r.chunks[i])) itl.push(r.chunks[i] - r.chunks[i - 1]);
    for (const t of r.chunks) if (inWindow(t)) chunksInWindow++;
  }
  // Time per output token of each completed request: (last chunk - first chunk) / (tokens - 1).
  const tpot = ok
    .filter((r) => inWindow(r.start) && r.tokens > 1 && r.chunks.length > 1)
    .map((r) => (r.chunks[r.chunks.length - 1] - r.first) / (r.tokens - 1));
  const e2e = ok.filter((r) => inWindow(r.start)).map((r) => r.end - r.start);

  // Client-side tokens in the window: exact with --logprobs; otherwise a completed request's
  // usage spread evenly over its chunks.
  let clientTokens = 0;
  for (const r of records) {
    if (!r.chunks.length) continue;
    const exact = r.chunkTokens.some((n) => n > 0);
    if (!exact && (!r.tokens || r.error || r.aborted)) continue;
    r.chunks.forEach((t, i) => {
      if (inWindow(t)) clientTokens += exact ? r.chunkTokens[i] : r.tokens / r.chunks.length;
    });
  }
  const d = (k) => (w.metricsEnd?.[k] ?? NaN) - (w.metricsStart?.[k] ?? NaN);
  const serverTokens = d('hotswap_generation_tokens_total');
  const serverPrompt = d('hotswap_prompt_tokens_total');
  const steps = d('hotswap_engine_steps_total');

  const byError = {};
  for (const r of errors) {
    const key = r.error.replace(/\d+(\.\d+)?/g, 'N').slice(0, 120);
    byError[key] = (byError[key] ?? 0) + 1;
  }
  const byClass = {};
  for (const r of records) {
    const c = (byClass[r.cls] ??= { requests: 0, errors: 0, kernels: {} });
    c.requests++;
    if (r.error && !r.aborted) c.errors++;
    if (r.kernel) c.kernels[r.kernel] = (c.kernels[r.kernel] ?? 0) + 1;
  }
  const round = (x, n = 2) => (Number.isFinite(x) ? Math.round(x * 10 ** n) / 10 ** n : null);
  return {
    concurrency: level,
    window_s: round(windowS, 3),
    requests: {
      sent: records.length,
      completed: ok.length,
      completed_in_window: completedInWindow.length,
      aborted_after_window: records.filter((r) => r.aborted).length,
      errors: errors.length,
    },
    requests_per_s: round(completedInWindow.length / windowS, 3),
    generated_tokens_per_s: round(serverTokens / windowS),
    generated_tokens_per_s_client: round(clientTokens / windowS),
    prompt_tokens_per_s: round(serverPrompt / windowS),
    engine_steps_per_s: round(steps / windowS),
    chunks_per_s: round(chunksInWindow / windowS),
    ttft_ms: summary(ttft),
    itl_ms: summary(itl),
    tpot_ms: summary(tpot),
    e2e_ms: summary(e2e),
    mean_prompt_tokens: round(records.reduce((s, r) => s + r.prompt_tokens, 0) / Math.max(1, records.length), 1),
    mean_max_tokens: round(records.reduce((s, r) => s + r.max_tokens, 0) / Math.max(1, records.length), 1),
    classes: byClass,
    error_kinds: byError,
  };
}

// The decode table of engine_throughput_bench's output (the first model in it):
//   batch best_ms median_ms tok/s_best tok/s_median tok/s_cpu cpu%
function readEngineReference(file) {
  const text = fs.readFileSync(file, 'utf8');
  const rows = {};
  let inDecode = false, model = null, context = null;
  const threads = Number(text.match(/engine_throughput_bench: (\d+) threads/)?.[1] ?? NaN);
  for (const line of text.split('\n')) {
    const m = line.match(/^== (\S+):/);
    if (m) {
      if (model) break;
      model = m[1];
    }
    const d = line.match(/^decode .*context (\d+)/);
    if (d) {
      inDecode = true;
      context = Number(d[1]);
      continue;
    }
    if (!inDecode) continue;
    const r = line.trim().split(/\s+/);
    if (r.length >= 6 && /^\d+$/.test(r[0])) {
      rows[r[0]] = { tokens_per_s_best_step: Number(r[3]), tokens_per_s_median_step: Number(r[4]), tokens_per_s_cpu_time: Number(r[5]) };
    } else if (Object.keys(rows).length) inDecode = false;
  }
  if (!Object.keys(rows).length) throw new Error(`--engine-reference ${file}: no decode table found`);
  return { file, model, context, threads, decode: rows };
}

// ------------------------------------------------------------------------------------------

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const url = o.url.replace(/\/$/, '');
  const levels = o.levels.split(',').map(Number);
  if (levels.some((l) => !Number.isInteger(l) || l < 1)) throw new Error('--levels wants positive integers');
  const out = o.out || path.join(path.dirname(new URL(import.meta.url).pathname), 'results', new Date().toISOString().replace(/[:.]/g, '-'));
  fs.mkdirSync(out, { recursive: true });
  const log = (...a) => o.quiet || console.log(...a);

  const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });
  const readyDeadline = performance.now() + o['ready-timeout'] * 1000;
  for (;;) {
    const ready = await request(agent, url, { path: o['ready-path'], timeoutMs: 5000 }).catch((e) => ({ status: 0, body: e.message }));
    if (ready.status === 200) break;
    if (performance.now() > readyDeadline)
      throw new Error(`${url}${o['ready-path']} answered ${ready.status || 'nothing'} for ${o['ready-timeout']} s: ${ready.body}`);
    await sleep(200);
  }
  const models = JSON.parse((await request(agent, url, { path: '/v1/models' })).body);
  const shape = readModelShape(o, models);
  log(`model ${shape.id}: vocabulary ${shape.vocab_size} (tokenizer ${shape.tokenizer_size ?? '?'}), ${shape.num_layers} layers, ${shape.num_kv_heads} KV heads`);
  if (!['on', 'off', 'auto'].includes(String(o.logprobs))) throw new Error('--logprobs wants on, off or auto');
  if (o.logprobs === 'auto') {
    o.logprobs = shape.tokenizer_size && shape.tokenizer_size < shape.vocab_size ? 'on' : 'off';
    if (o.logprobs === 'on')
      log(`logprobs on: the tokenizer covers ${shape.tokenizer_size} of ${shape.vocab_size} ids, so most generated tokens have no text`);
  }

  const rng = mulberry32(o.seed);
  let pickClass = parseMix(o.mix);
  const notes = [];
  const needsAdapters = pickClass.names.includes('adapter') || pickClass.names.includes('mixed');
  const adapters = [];
  if (needsAdapters) {
    if (o.adapters < 1) throw new Error('--mix uses adapters but --adapters is 0');
    const window = triple(o['adapter-window'], 'adapter-window');
    for (let i = 0; i < o.adapters; i++) {
      const name = `loadtest-mixed-${i}`;
      const doc = JSON.stringify(randomMixedAdapter(shape, window, rng, i));
      const r = await request(agent, url, {
        method: 'PUT',
        path: `/v1/adapters/${name}`,
        body: doc,
        headers: { 'content-type': 'application/json' },
      });
      if (r.status === 404 && r.body.includes('route_not_found')) {
        // A server without the adapter routes: run the rest of the mix and say so.
        const note = `PUT /v1/adapters is not served (404 route_not_found): the adapter and mixed classes are left out`;
        console.warn(`loadtest: warning: ${note}`);
        notes.push(note);
        pickClass = parseMix(o.mix, ['adapter', 'mixed']);
        break;
      }
      if (r.status !== 200 && r.status !== 201) throw new Error(`PUT /v1/adapters/${name}: ${r.status} ${r.body}`);
      adapters.push(name);
    }
    if (adapters.length) log(`uploaded ${adapters.length} random mixed adapters (${o['adapter-window']}): ${adapters.join(', ')}`);
  }
  agent.destroy();

  const ctx = {
    url,
    shape,
    adapters,
    rng,
    promptDist: parseDist(o.prompt, 'prompt'),
    outputDist: parseDist(o.output, 'output'),
    pickClass,
    streamingWindow: triple(o.streaming, 'streaming'),
  };
  const engineRef = o['engine-reference'] ? readEngineReference(o['engine-reference']) : null;
  const results = {
    started: new Date().toISOString(),
    url,
    model: shape,
    options: o,
    classes: pickClass.names,
    environment: Object.fromEntries(Object.entries(process.env).filter(([k]) => /^(OMP_|GOMP_|HOTSWAP_)/.test(k))),
    adapters,
    notes,
    engine_reference: engineRef,
    levels: [],
  };
  const fmt = (s) => (s.p50 === null ? '     -' : `${s.p50.toFixed(0).padStart(6)}/${s.p90.toFixed(0)}/${s.p99.toFixed(0)}`);
  log('level  req/s  gen tok/s (client)  prompt tok/s  TTFT ms p50/p90/p99   ITL ms p50/p90/p99  errors');
  for (const level of levels) {
    const r = await runLevel(o, ctx, level);
    const ref = engineRef?.decode[String(level)];
    if (ref)
      r.vs_engine_decode = {
        batch: level,
        engine_tokens_per_s_best_step: ref.tokens_per_s_best_step,
        engine_tokens_per_s_median_step: ref.tokens_per_s_median_step,
        ratio_to_best_step: Math.round((r.generated_tokens_per_s / ref.tokens_per_s_best_step) * 1000) / 1000,
        ratio_to_median_step: Math.round((r.generated_tokens_per_s / ref.tokens_per_s_median_step) * 1000) / 1000,
      };
    if (ref && r.server_cpu && engineRef.threads > 0) {
      // The bench's CPU-time rate is tokens / (process CPU seconds / threads).
      const engineTokPerCpuS = ref.tokens_per_s_cpu_time / engineRef.threads;
      r.vs_engine_decode.engine_tokens_per_cpu_s = Math.round(engineTokPerCpuS * 10) / 10;
      r.vs_engine_decode.server_tokens_per_cpu_s = r.server_cpu.generated_tokens_per_cpu_s;
      r.vs_engine_decode.ratio_by_cpu_time = Math.round((r.server_cpu.generated_tokens_per_cpu_s / engineTokPerCpuS) * 1000) / 1000;
    }
    results.levels.push(r);
    log(
      `${String(level).padStart(5)} ${r.requests_per_s.toFixed(2).padStart(6)} ${String(r.generated_tokens_per_s).padStart(10)} ` +
        `(${String(r.generated_tokens_per_s_client).padStart(7)}) ${String(r.prompt_tokens_per_s).padStart(12)}  ` +
        `${fmt(r.ttft_ms).padEnd(20)} ${fmt(r.itl_ms).padEnd(19)} ${r.requests.errors}`,
    );
    if (r.vs_engine_decode)
      log(
        `      server ${r.generated_tokens_per_s} tok/s at ${level} streams = ${(100 * r.vs_engine_decode.ratio_to_best_step).toFixed(1)}% ` +
          `of the engine's batch-${level} decode (${ref.tokens_per_s_best_step} tok/s best step; ` +
          `${(100 * r.vs_engine_decode.ratio_to_median_step).toFixed(1)}% of its median step, ${ref.tokens_per_s_median_step})`,
      );
    if (r.vs_engine_decode?.ratio_by_cpu_time)
      log(
        `      by CPU time: server ${r.vs_engine_decode.server_tokens_per_cpu_s} generated tokens per CPU-second ` +
          `(all its threads) = ${(100 * r.vs_engine_decode.ratio_by_cpu_time).toFixed(1)}% of the engine's ` +
          `${r.vs_engine_decode.engine_tokens_per_cpu_s} at batch ${level}`,
      );
    if (r.server_cpu)
      log(
        `      server threads: ${r.server_cpu.cpu_s} CPU-s in ${r.window_s} s (${r.server_cpu.cores_used} cores), ` +
          `${r.server_cpu.runqueue_wait_s} s waiting for a CPU; busiest: ` +
          r.server_cpu.threads.slice(0, 5).map((t) => `${t.tid} ${t.cpu_s}s`).join(', ') +
          `; client ${r.client_cpu_s} CPU-s`,
      );
    fs.writeFileSync(path.join(out, 'results.json'), JSON.stringify(results, null, 2));
  }
  results.finished = new Date().toISOString();
  fs.writeFileSync(path.join(out, 'results.json'), JSON.stringify(results, null, 2));
  log(`wrote ${path.join(out, 'results.json')}`);
}

main().catch((e) => {
  console.error(`loadtest: ${e.message}`);
  process.exit(1);
});
