import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestContext, type TestContext } from './helpers.js';

/**
 * Requests Node's HTTP parser refuses before any route sees them get the
 * management API's error format (docs/API.md, "Errors outside OAuth"), typed
 * JSON, and the connection is closed, as Node does.
 */
let ctx: TestContext;
let port: number;
beforeAll(async () => {
  ctx = await createTestContext();
  await ctx.app.listen({ port: 0, host: '127.0.0.1' });
  port = (ctx.app.server.address() as { port: number }).port;
});
afterAll(() => ctx?.close());

/** Writes `raw` on a new connection; resolves with everything received once the server closes it. */
function exchange(raw: string): Promise<{ status: number; headers: string; body: unknown }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let received = '';
    socket.on('data', (d) => (received += d.toString('latin1')));
    socket.on('error', () => {});
    socket.on('close', () => {
      const end = received.indexOf('\r\n\r\n');
      if (end < 0) return reject(new Error(`no answer: ${JSON.stringify(received)}`));
      resolve({ status: Number(received.slice(9, 12)), headers: received.slice(0, end).toLowerCase(), body: JSON.parse(received.slice(end + 4)) });
    });
    socket.write(raw);
  });
}

const TOKEN = 'POST /api/v1/oauth/token HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\n';

describe('requests that are not valid HTTP/1.1', () => {
  it.each([
    ['two different Content-Lengths', `${TOKEN}Content-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef`],
    ['Content-Length with chunked', `${TOKEN}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`],
    ['a chunk size that is not hexadecimal', `${TOKEN}Transfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n`],
    ['a request line that is not HTTP', 'HELLO THERE\r\n\r\n'],
  ])('%s: 400 validation_failed, typed JSON, connection closed', async (_name, raw) => {
    const { status, headers, body } = await exchange(raw);
    expect(status).toBe(400);
    expect(headers).toContain('\r\ncontent-type: application/json; charset=utf-8');
    expect(headers).toContain('\r\nx-content-type-options: nosniff');
    expect(headers).toContain('\r\nconnection: close');
    expect(body).toEqual({ error: 'validation_failed', message: 'The request is not valid HTTP/1.1' });
  });

  it('headers over the limit: 431 headers_too_large', async () => {
    const { status, headers, body } = await exchange(`GET /healthz HTTP/1.1\r\nHost: a\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    expect(status).toBe(431);
    expect(headers).toContain('\r\ncontent-type: application/json; charset=utf-8');
    expect(body).toEqual({ error: 'headers_too_large', message: 'The request headers are too large' });
  });

  it('a well-formed request on the same server is still answered normally', async () => {
    const { status, body } = await exchange('GET /healthz HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    expect(status).toBe(200);
    expect(body).toMatchObject({ status: 'ok' });
  });
});
