// Raw TCP clients that hang up on the server at chosen moments (issue 11): after sending a
// whole request, after reading exactly N bytes of the response, before sending anything, or
// in the middle of the request, each either by closing the socket (FIN) or by resetting it
// (SO_LINGER 0: RST, through Node's socket.resetAndDestroy()).
//
// Every helper settles deterministically: it resolves once the client itself has hung up as
// asked (the socket's 'close' event after our own destroy), and rejects on anything else
// that happens first (connection refused or reset, the server closing before the chosen
// point, or the deadline). A timeout is always an error; nothing resolves "with whatever
// arrived" when a timer fires.
import net from 'node:net';

const DEFAULT_TIMEOUT_MS = 60_000;

// How the client hangs up: 'close' = socket.destroy() (close(2): FIN, or RST if unread
// bytes sit in the kernel's receive queue), 'reset' = socket.resetAndDestroy() (RST).
export const HOW = ['close', 'reset'];

// Bytes of one HTTP/1.1 request. body: object (sent as JSON), string or Buffer.
export function requestBytes({ method = 'POST', path, body, headers = {}, host = '127.0.0.1' } = {}) {
  let payload = body;
  const h = { host, ...headers };
  if (payload !== undefined && !Buffer.isBuffer(payload) && typeof payload !== 'string') {
    payload = JSON.stringify(payload);
    h['content-type'] ??= 'application/json';
  }
  if (payload !== undefined) {
    payload = Buffer.isBuffer(payload) ? payload : Buffer.from(payload, 'utf8');
    h['content-length'] = String(payload.length);
  }
  const head = `${method} ${path} HTTP/1.1\r\n` + Object.entries(h).map(([k, v]) => `${k}: ${v}\r\n`).join('') + '\r\n';
  return payload === undefined ? Buffer.from(head, 'latin1') : Buffer.concat([Buffer.from(head, 'latin1'), payload]);
}

function target(url) {
  const { hostname, port } = new URL(url);
  return { host: hostname, port: Number(port) };
}

function hangUp(socket, how) {
  if (how === 'reset') socket.resetAndDestroy();
  else if (how === 'close') socket.destroy();
  else throw new Error(`unknown way to hang up: ${how}`);
}

const preview = (buf) => JSON.stringify(buf.subarray(0, 300).toString('latin1'));

// The state machine every helper below uses. `plan(socket, api)` runs once connected; it
// calls api.write(bytes) (resolves once the bytes are handed to the kernel), api.hangUp()
// (settles the helper with api.result once the socket is closed), and may set api.onData
// to see the response bytes. Anything the server does that the plan did not wait for
// (closing, resetting, an error) and the deadline reject.
function rude(url, what, plan, { timeoutMs = DEFAULT_TIMEOUT_MS, how = 'close' } = {}) {
  if (!HOW.includes(how)) throw new Error(`how must be one of ${HOW.join(', ')}, not ${how}`);
  return new Promise((resolve, reject) => {
    const socket = net.connect(target(url));
    const received = [];
    let receivedBytes = 0;
    let hungUp = false;
    let settled = false;
    const api = {
      result: {},
      onData: null,
      write: (bytes) => new Promise((res, rej) => socket.write(bytes, (err) => (err ? rej(err) : res()))),
      hangUp: () => {
        if (hungUp) return;
        hungUp = true;
        hangUp(socket, how);
      },
    };
    const fail = (message) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (!socket.destroyed) socket.destroy();
      reject(new Error(`${what} (${how}): ${message}; ${receivedBytes} response bytes received: ${preview(Buffer.concat(received))}`));
    };
    const timer = setTimeout(() => fail(`no outcome within ${timeoutMs} ms`), timeoutMs);
    socket.setNoDelay(true);
    socket.on('data', (chunk) => {
      if (hungUp) return;
      received.push(chunk);
      receivedBytes += chunk.length;
      if (api.onData) api.onData(chunk, receivedBytes, received);
      else fail('the server answered before the client hung up');
    });
    socket.on('end', () => {
      if (!hungUp) fail('the server closed the connection first');
    });
    socket.on('error', (e) => {
      if (!hungUp) fail(`socket error ${e.code ?? e.message}`);
    });
    socket.on('close', () => {
      if (!hungUp) return fail('the connection closed before the client hung up');
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(api.result);
    });
    socket.on('connect', () => {
      Promise.resolve()
        .then(() => plan(socket, api))
        .catch((e) => fail(`plan failed: ${e.message}`));
    });
  });
}

// (a)/(b): sends the whole request, then hangs up at once (as soon as the bytes are in the
// kernel's send queue; on loopback they are already in the server's receive queue).
export function sendThenHangUp(url, bytes, options = {}) {
  return rude(url, 'send the request, then hang up', async (socket, api) => {
    await api.write(bytes);
    api.hangUp();
  }, options);
}

// (c): sends the request, reads exactly n bytes of the response (n >= 1), then hangs up.
// Resolves { head: the first n response bytes, complete: false }. The bytes after the n-th
// that arrived in the same read are dropped unread. n = 0 is sendThenHangUp. Rejects if the
// server ends the connection before n bytes arrived (the response is shorter than n).
// With `orWhen` (a predicate on the bytes so far, e.g. endOfChunkedResponse), it hangs up as
// soon as that holds if it does before n bytes, and resolves { head: all bytes, complete: true }:
// for a response of unknown length on a connection the server keeps open.
export function readThenHangUp(url, bytes, n, options = {}) {
  if (!Number.isInteger(n) || n < 0) throw new Error(`n must be a non-negative integer, not ${n}`);
  if (n === 0) return sendThenHangUp(url, bytes, options).then(() => ({ head: Buffer.alloc(0), complete: false }));
  const { orWhen } = options;
  return rude(url, `read ${n} response bytes, then hang up`, async (socket, api) => {
    api.onData = (chunk, total, received) => {
      if (total >= n) {
        api.result = { head: Buffer.concat(received).subarray(0, n), complete: false };
        api.hangUp();
      } else if (orWhen) {
        const all = Buffer.concat(received);
        if (orWhen(all)) {
          api.result = { head: all, complete: true };
          api.hangUp();
        }
      }
    };
    await api.write(bytes);
  }, options);
}

// True when `raw` ends with the last chunk of a chunked response (no trailers): "\r\n0\r\n\r\n"
// can only be the zero-size chunk, since every chunk's data is followed by CRLF.
export function endOfChunkedResponse(raw) {
  return raw.length >= 7 && raw.subarray(raw.length - 7).toString('latin1') === '\r\n0\r\n\r\n';
}

// (d): connects and hangs up without sending a byte.
export function connectThenHangUp(url, options = {}) {
  return rude(url, 'connect, then hang up', (socket, api) => api.hangUp(), options);
}

// (d): sends the first `cut` bytes of the request (0 < cut < bytes.length), then hangs up.
export function partialRequestThenHangUp(url, bytes, cut, options = {}) {
  if (!(cut > 0 && cut < bytes.length)) throw new Error(`cut ${cut} must lie inside the ${bytes.length}-byte request`);
  return rude(url, `send ${cut} of ${bytes.length} request bytes, then hang up`, async (socket, api) => {
    await api.write(bytes.subarray(0, cut));
    api.hangUp();
  }, options);
}

// A polite exchange for comparison: sends the request and reads until the server closes
// (send `connection: close`). Resolves the whole response as a Buffer; rejects on a socket
// error or at the deadline.
export function fullExchange(url, bytes, { timeoutMs = DEFAULT_TIMEOUT_MS } = {}) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(target(url));
    const received = [];
    let settled = false;
    const settle = (fn, v) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      fn(v);
    };
    const timer = setTimeout(() => {
      socket.destroy();
      settle(reject, new Error(`full exchange: no end of response within ${timeoutMs} ms; got ${preview(Buffer.concat(received))}`));
    }, timeoutMs);
    socket.on('data', (c) => received.push(c));
    socket.on('end', () => {
      socket.end();
      settle(resolve, Buffer.concat(received));
    });
    socket.on('error', (e) => settle(reject, new Error(`full exchange: socket error ${e.code ?? e.message}`)));
    socket.on('connect', () => socket.write(bytes));
  });
}

// Splits a raw HTTP/1.1 response into { status, headers (lower-case names), body (Buffer,
// de-chunked when chunked) }. Throws on anything malformed or incomplete.
export function parseResponse(raw) {
  const end = raw.indexOf('\r\n\r\n');
  if (end < 0) throw new Error(`no end of headers in ${preview(raw)}`);
  const lines = raw.subarray(0, end).toString('latin1').split('\r\n');
  const m = lines[0].match(/^HTTP\/1\.[01] (\d{3}) /);
  if (!m) throw new Error(`bad status line ${JSON.stringify(lines[0])}`);
  const headers = {};
  for (const line of lines.slice(1)) {
    const i = line.indexOf(':');
    headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  let body = raw.subarray(end + 4);
  if ((headers['transfer-encoding'] ?? '').toLowerCase() === 'chunked') {
    const parts = [];
    let at = 0;
    for (;;) {
      const eol = body.indexOf('\r\n', at);
      if (eol < 0) throw new Error('truncated chunked body (no chunk size line)');
      const size = parseInt(body.subarray(at, eol).toString('latin1'), 16);
      if (!Number.isInteger(size) || size < 0) throw new Error('bad chunk size');
      at = eol + 2;
      if (size === 0) {
        if (body.subarray(at, at + 2).toString('latin1') !== '\r\n') throw new Error('chunked body without the final CRLF');
        break;
      }
      if (at + size + 2 > body.length) throw new Error('truncated chunk');
      parts.push(body.subarray(at, at + size));
      at += size;
      if (body.subarray(at, at + 2).toString('latin1') !== '\r\n') throw new Error('chunk without its CRLF');
      at += 2;
    }
    body = Buffer.concat(parts);
  } else if (headers['content-length'] !== undefined && Number(headers['content-length']) !== body.length) {
    throw new Error(`content-length ${headers['content-length']} but ${body.length} body bytes`);
  }
  return { status: Number(m[1]), headers, body };
}
