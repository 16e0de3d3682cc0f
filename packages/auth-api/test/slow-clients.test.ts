import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestContext, type TestContext } from './helpers.js';

/** Slow clients are cut by the server's own timeouts, checked every second (HTTP_CONNECTIONS_CHECK_INTERVAL). */
let ctx: TestContext;
let port: number;
beforeAll(async () => {
  ctx = await createTestContext({ env: { HTTP_HEADERS_TIMEOUT: '1', HTTP_REQUEST_TIMEOUT: '2', HTTP_CONNECTIONS_CHECK_INTERVAL: '1', HTTP_MAX_CONNECTIONS: '3' } });
  await ctx.app.listen({ port: 0, host: '127.0.0.1' });
  port = (ctx.app.server.address() as { port: number }).port;
});
afterAll(() => ctx?.close());

/** Opens a connection, writes `first`, then one more byte of `drip` every 200 ms; resolves when the server ends it. */
function dripping(first: string, drip: string) {
  const started = performance.now();
  const socket: Socket = connect(port, '127.0.0.1');
  let received = '';
  socket.on('data', (d) => (received += d.toString()));
  socket.on('error', () => {});
  socket.write(first);
  let i = 0;
  const timer = setInterval(() => {
    if (!socket.destroyed && !socket.writableEnded) socket.write(drip[i++ % drip.length]!);
  }, 200);
  return new Promise<{ ms: number; received: string }>((resolve) =>
    socket.on('close', () => {
      clearInterval(timer);
      resolve({ ms: performance.now() - started, received });
    }),
  );
}

/** Bound: timeout + one check interval + a wide margin for a loaded machine. */
describe('slow clients', () => {
  it('headers sent a byte at a time are cut after HTTP_HEADERS_TIMEOUT', async () => {
    const { ms, received } = await dripping('POST /api/v1/oauth/token HTTP/1.1\r\nHost: a\r\n', 'x-slow: aaaa\r\n');
    expect(ms).toBeLessThan(1000 + 1000 + 1500);
    expect(received).toMatch(/^HTTP\/1\.1 408/);
    // In the management API's error format, not Fastify's default body, with the headers every error carries.
    expect(received).toMatch(/\r\ncontent-type: application\/json; charset=utf-8\r\n/i);
    for (const header of [/\r\nx-content-type-options: nosniff\r\n/i, /\r\ncache-control: no-store\r\n/i, /\r\nconnection: close\r\n/i, /\r\nx-request-id: [0-9a-f-]{36}\r\n/i]) expect(received).toMatch(header);
    expect(JSON.parse(received.slice(received.indexOf('\r\n\r\n') + 4))).toEqual({ error: 'request_timeout', message: 'The request did not arrive in time' });
  }, 15_000);

  it('a body sent a byte at a time is cut after HTTP_REQUEST_TIMEOUT', async () => {
    const { ms, received } = await dripping('POST /api/v1/oauth/token HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n', 'a');
    expect(ms).toBeLessThan(2000 + 1000 + 1500);
    expect(received).toMatch(/^HTTP\/1\.1 408/);
    expect(JSON.parse(received.slice(received.indexOf('\r\n\r\n') + 4))).toMatchObject({ error: 'request_timeout' });
  }, 15_000);

  it('connections past HTTP_MAX_CONNECTIONS are closed at once', async () => {
    const open: Socket[] = [];
    for (let i = 0; i < 3; i++) {
      const s = connect(port, '127.0.0.1');
      s.on('error', () => {});
      await new Promise((r) => s.once('connect', r));
      open.push(s);
    }
    await new Promise((r) => setTimeout(r, 100));
    const extra = connect(port, '127.0.0.1');
    extra.on('error', () => {});
    extra.write('GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n');
    let answered = '';
    extra.on('data', (d) => (answered += d.toString()));
    await new Promise((r) => extra.once('close', r));
    expect(answered).toBe('');
    for (const s of open) s.destroy();
  });
});
