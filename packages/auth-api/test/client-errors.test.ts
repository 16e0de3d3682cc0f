import { connect } from 'node:net';
import { Duplex } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serverLoggerOptions } from '../src/app.js';
import { answerClientError } from '../src/plugins/error-handler.js';
import { createTestContext, type TestContext } from './helpers.js';

/**
 * Requests Node's HTTP parser refuses before any route sees them get the
 * management API's error format (docs/API.md, "Errors outside OAuth"), typed
 * JSON with the headers every error carries, and the connection is closed, as
 * Node does. app.inject() bypasses the parser: these tests speak raw TCP.
 */
const lines: string[] = [];
let ctx: TestContext;
let port: number;
beforeAll(async () => {
  // The server's own logger at debug, where the client-error line is written.
  ctx = await createTestContext({ logger: { ...serverLoggerOptions('debug'), stream: { write: (line: string) => void lines.push(line) } } });
  await ctx.app.listen({ port: 0, host: '127.0.0.1' });
  port = (ctx.app.server.address() as { port: number }).port;
});
afterAll(() => ctx?.close());

interface Exchange {
  status: number;
  /** Header names lower-cased, values as sent. */
  headers: Map<string, string>;
  body: string;
  raw: string;
}

/** Writes `raw` on a new connection; resolves with everything received once the server has closed it. */
function exchange(raw: string): Promise<Exchange> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let received = '';
    socket.on('data', (d) => (received += d.toString('latin1')));
    socket.on('error', () => {});
    socket.on('close', () => {
      const end = received.indexOf('\r\n\r\n');
      if (end < 0) return reject(new Error(`no answer: ${JSON.stringify(received)}`));
      const [statusLine, ...fields] = received.slice(0, end).split('\r\n');
      const headers = new Map(fields.map((field) => [field.slice(0, field.indexOf(':')).toLowerCase(), field.slice(field.indexOf(':') + 1).trim()]));
      resolve({ status: Number(statusLine!.split(' ')[1]), headers, body: received.slice(end + 4), raw: received });
    });
    socket.write(raw);
  });
}

/** Sent in every refused request (path, header value or body): it must never come back, nor reach the log. */
const MARK = '<script>echo-MARK-7f3a</script>';
const ENC = encodeURIComponent(MARK);
const TOKEN = 'POST /api/v1/oauth/token HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\n';

const NOT_HTTP_BODY = { error: 'validation_failed', message: 'The request is not valid HTTP/1.1' };
const NOT_HTTP = { status: 400, ...NOT_HTTP_BODY };
const cases: [string, string, typeof NOT_HTTP][] = [
  ['a request line that is not HTTP', `HELLO ${MARK}\r\n\r\n`, NOT_HTTP],
  ['an unknown method', `BREW /api/v1/oauth/token?x=${ENC} HTTP/1.1\r\nHost: a\r\n\r\n`, NOT_HTTP],
  ['a space inside the request target', `GET /healthz ${MARK} HTTP/1.1\r\nHost: a\r\n\r\n`, NOT_HTTP],
  ['an HTTP version that does not exist', `GET /healthz?x=${ENC} HTTP/7.3\r\nHost: a\r\n\r\n`, NOT_HTTP],
  ['two different Content-Lengths', `${TOKEN}X-Mark: ${MARK}\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef`, NOT_HTTP],
  ['Content-Length with chunked', `${TOKEN}X-Mark: ${MARK}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, NOT_HTTP],
  ['chunked that is not the last transfer coding', `${TOKEN}X-Mark: ${MARK}\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n`, NOT_HTTP],
  ['a chunk size that is not hexadecimal', `${TOKEN}Transfer-Encoding: chunked\r\n\r\nzz\r\n${MARK}\r\n0\r\n\r\n`, NOT_HTTP],
  ['chunk data longer than its size', `${TOKEN}Transfer-Encoding: chunked\r\n\r\n3\r\n${MARK}\r\n0\r\n\r\n`, NOT_HTTP],
  ['lines ended by a bare LF', `GET /healthz HTTP/1.1\nHost: a\nX-Mark: ${MARK}\n\n`, NOT_HTTP],
  ['a folded header line (obs-fold)', `GET /healthz HTTP/1.1\r\nHost: a\r\nX-Mark: a\r\n ${MARK}\r\n\r\n`, NOT_HTTP],
  ['whitespace between a header name and its colon', `GET /healthz HTTP/1.1\r\nHost : a\r\nX-Mark: ${MARK}\r\n\r\n`, NOT_HTTP],
  ['a control character in a header value', `GET /healthz HTTP/1.1\r\nHost: a\r\nX-Mark: ${MARK}\u0001\r\n\r\n`, NOT_HTTP],
  ['headers over the limit (16 KiB)', `GET /healthz HTTP/1.1\r\nHost: a\r\nX-Mark: ${MARK}${'a'.repeat(20_000)}\r\n\r\n`, { status: 431, error: 'headers_too_large', message: 'The request headers are too large' }],
  [
    'chunk extensions over the limit (16 KiB)',
    `${TOKEN}X-Mark: ${MARK}\r\nTransfer-Encoding: chunked\r\n\r\n1;x=${'a'.repeat(20_000)}\r\na\r\n0\r\n\r\n`,
    { status: 413, error: 'payload_too_large', message: 'The request body is too large' },
  ],
];

describe('requests that are not valid HTTP/1.1', () => {
  it.each(cases)('%s: documented code, typed JSON, security headers, nothing echoed, connection closed; the next request is served', async (_name, raw, expected) => {
    lines.length = 0;
    // The promise resolves only once the server has closed the connection.
    const answer = await exchange(raw);
    expect(answer.status).toBe(expected.status);
    expect(JSON.parse(answer.body)).toEqual({ error: expected.error, message: expected.message });
    expect(answer.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(Number(answer.headers.get('content-length'))).toBe(Buffer.byteLength(answer.body));
    expect(answer.headers.get('x-content-type-options')).toBe('nosniff');
    expect(answer.headers.get('cache-control')).toBe('no-store');
    expect(answer.headers.get('connection')).toBe('close');
    expect(answer.headers.get('x-request-id')).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(answer.raw).not.toContain('echo-MARK');
    // One debug line, under the id the client was given, with Node's error code and nothing of the request.
    const logged = lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((entry) => entry.msg === 'client error');
    expect(logged).toEqual([expect.objectContaining({ level: 20, reqId: answer.headers.get('x-request-id'), code: expect.stringMatching(/^(HPE|ERR)_[A-Z_]+$/) })]);
    expect(lines.join('')).not.toContain('echo-MARK');

    const next = await exchange('GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    expect(next.status).toBe(200);
    expect(JSON.parse(next.body)).toMatchObject({ status: 'ok' });
  });

  it('the token endpoint answers them in the same (management) format: the route is not known yet', async () => {
    const { status, body } = await exchange(`${TOKEN}Content-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef`);
    expect(status).toBe(400);
    expect(JSON.parse(body)).toEqual(NOT_HTTP_BODY);
  });

  it('on a keep-alive connection, after a request already answered: the error follows that answer, then the close', async () => {
    const raw = await new Promise<string>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      let received = '';
      socket.on('data', (d) => {
        const first = received === '';
        received += d.toString('latin1');
        // The first answer is complete (its body is one small chunk): now the bad request.
        if (first) socket.write(`GET /healthz HTTP/1.1\r\nHost: a\r\nX-Mark: a\r\n ${MARK}\r\n\r\n`);
      });
      socket.on('error', () => {});
      socket.on('close', () => resolve(received));
      socket.write('GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n');
    });
    const second = raw.indexOf('HTTP/1.1 400 ');
    expect(raw).toMatch(/^HTTP\/1\.1 200 /);
    expect(second).toBeGreaterThan(0);
    expect(JSON.parse(raw.slice(raw.indexOf('\r\n\r\n', second) + 4))).toEqual(NOT_HTTP_BODY);
    expect(raw).not.toContain('echo-MARK');
  });
});

describe('the client-error handler, on a connection whose state it must respect', () => {
  /** A connection recording what is written to it, attached (as Node does) to the response in flight, if any. */
  const fakeSocket = (httpMessage?: { headersSent: boolean }) => {
    let written = '';
    const socket = new Duplex({
      read() {},
      write(chunk: Buffer, _encoding, done) {
        written += chunk.toString('latin1');
        done();
      },
    });
    Object.assign(socket, { _httpMessage: httpMessage ?? null });
    return { socket, written: () => written };
  };
  const parseError = Object.assign(new Error('Parse Error: Invalid header value char'), { code: 'HPE_INVALID_HEADER_TOKEN' });

  it('writes nothing into a response that has begun (its headers sent), and closes the connection', () => {
    const { socket, written } = fakeSocket({ headersSent: true });
    answerClientError.call(ctx.app, parseError, socket);
    expect(written()).toBe('');
    expect(socket.destroyed).toBe(true);
  });

  it('answers when a response is pending but none of it was sent', () => {
    const { socket, written } = fakeSocket({ headersSent: false });
    answerClientError.call(ctx.app, parseError, socket);
    expect(written()).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(socket.destroyed).toBe(true);
  });

  it('writes nothing to a connection that is no longer writable, or was reset', () => {
    const ended = fakeSocket();
    ended.socket.end();
    answerClientError.call(ctx.app, parseError, ended.socket);
    expect(ended.written()).toBe('');
    expect(ended.socket.destroyed).toBe(true);

    const reset = fakeSocket();
    answerClientError.call(ctx.app, Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }), reset.socket);
    expect(reset.written()).toBe('');
  });
});
