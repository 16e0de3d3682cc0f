import { connect, type Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestContext, type TestContext } from './helpers.js';

// Bodies are read into one buffer (src/lib/read-body.ts), by the token endpoint, revocation and
// introspection, and every JSON route. Fastify's own reader, and the token endpoint's first one,
// kept a body as the chunks it came in: chunked encoding lets a client send a byte per chunk, and
// each kept chunk cost some 190 bytes of heap until the request timed out (attacker review 6:
// 600 logins sent that way from one address took the server past its heap limit).

let ctx: TestContext;
let port: number;

beforeAll(async () => {
  ctx = await createTestContext();
  port = Number(new URL(await ctx.app.listen({ port: 0, host: '127.0.0.1' })).port);
  setFlagsFromString('--expose-gc');
});
afterAll(() => ctx?.close());

/** Heap held (after a full GC) by `connections` bodies of `bytes` one-byte chunks that never end. */
async function heldByTrickledBodies(path: string, contentType: string, connections: number, bytes: number): Promise<number> {
  const gc = runInNewContext('gc') as () => void;
  const heap = () => {
    gc();
    return process.memoryUsage().heapUsed;
  };
  const trickle = '1\r\nx\r\n'.repeat(bytes);
  const before = heap();
  const sockets: Socket[] = [];
  await Promise.all(
    Array.from(
      { length: connections },
      () =>
        new Promise<void>((resolve) => {
          const socket = connect(port, '127.0.0.1', () => {
            socket.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: ${contentType}\r\nTransfer-Encoding: chunked\r\n\r\n`);
            socket.write(trickle, () => resolve());
          });
          socket.on('error', () => {});
          sockets.push(socket);
        }),
    ),
  );
  // Until the server has read it all: the heap stops growing.
  let held = heap() - before;
  for (let i = 0; i < 20; i++) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    const now = heap() - before;
    const settled = Math.abs(now - held) < 512 * 1024;
    held = now;
    if (settled) break;
  }
  await Promise.all(sockets.map((socket) => new Promise((resolve) => socket.once('close', resolve).destroy())));
  return held;
}

describe('a body sent a byte per chunk and never finished holds about its size in memory', () => {
  // 8000 one-byte chunks: within the 8 KiB limit of the OAuth endpoints. Kept as chunks: ~1.5 MB each.
  for (const path of ['/api/v1/oauth/token', '/api/v1/oauth/revoke', '/api/v1/oauth/introspect']) {
    it(`${path}, form-encoded`, async () => {
      expect(await heldByTrickledBodies(path, 'application/x-www-form-urlencoded', 50, 8000)).toBeLessThan(50 * 64 * 1024);
    });
  }

  // 65000 one-byte chunks: within the 64 KiB limit of the JSON routes. Kept as chunks: ~12 MB each.
  it('/api/v1/auth/login, JSON', async () => {
    expect(await heldByTrickledBodies('/api/v1/auth/login', 'application/json', 10, 65000)).toBeLessThan(10 * 256 * 1024);
  });
});

describe('a declared Content-Length reserves nothing by itself', () => {
  it('200 logins declaring 65,000 bytes and sending two, a byte at a time, hold about a kilobyte each', async () => {
    const gc = runInNewContext('gc') as () => void;
    // Buffers over 4 KiB live outside the JS heap: counted with it.
    const held = () => {
      gc();
      const { heapUsed, arrayBuffers } = process.memoryUsage();
      return heapUsed + arrayBuffers;
    };
    const before = held();
    const sockets: Socket[] = [];
    await Promise.all(
      Array.from(
        { length: 200 },
        () =>
          new Promise<void>((resolve) => {
            const socket = connect(port, '127.0.0.1', async () => {
              socket.write('POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 65000\r\n\r\n{');
              // A second chunk, read apart from the first: where the reader sizes its buffer.
              await new Promise((r) => setTimeout(r, 50));
              socket.write('"', () => resolve());
            });
            socket.on('error', () => {});
            sockets.push(socket);
          }),
      ),
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    const grown = held() - before;
    await Promise.all(sockets.map((socket) => new Promise((resolve) => socket.once('close', resolve).destroy())));
    // Sized by the declared length, 200 × 65,000 bytes = 13 MB.
    expect(grown).toBeLessThan(4 * 1024 * 1024);
  });
});

describe('the JSON routes answer as with Fastify\'s reader', () => {
  const login = (headers: Record<string, string>, payload: string) => ctx.app.inject({ method: 'POST', url: '/api/v1/auth/login', headers, payload });
  it('a body over 64 KiB: 413 payload_too_large, before it is read when Content-Length says so', async () => {
    const res = await login({ 'content-type': 'application/json' }, JSON.stringify({ email: 'a@b.c', password: 'x'.repeat(70_000) }));
    expect([res.statusCode, res.json().error]).toEqual([413, 'payload_too_large']);
  });
  it('an empty body, malformed JSON and a __proto__ key: 400 validation_failed', async () => {
    for (const payload of ['', '{"email":', '{"email":"a@b.c","password":"x","__proto__":{"admin":true}}']) {
      const res = await login({ 'content-type': 'application/json' }, payload);
      expect([payload, res.statusCode, res.json().error]).toEqual([payload, 400, 'validation_failed']);
    }
  });
  it('a JSON body sent in pieces is read whole', async () => {
    const body = JSON.stringify({ email: 'nobody@example.com', password: 'not the password at all' });
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', async () => {
        socket.write(`POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n`);
        for (const c of body) {
          socket.write(`${Buffer.byteLength(c).toString(16)}\r\n${c}\r\n`);
          await new Promise((r) => setImmediate(r));
        }
        socket.write('0\r\n\r\n');
      });
      let received = '';
      socket.on('data', (d) => (received += d));
      socket.on('close', () => resolve(received));
      socket.on('error', reject);
    });
    // Parsed and checked: a wrong password, not a malformed body.
    expect(answer).toMatch(/^HTTP\/1\.1 401 /);
  });
});
