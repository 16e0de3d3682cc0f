import { connect } from 'node:net';
import Fastify from 'fastify';
import { jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serverLoggerOptions } from '../src/app.js';
import { clientAddressOf, serveFirst } from '../src/lib/serve-first.js';
import { AUDIENCE, createClient, createTestContext, ISSUER, TEST_SECRET, type TestContext } from './helpers.js';

// The token endpoint (src/modules/oauth/token-endpoint.ts) is served two ways: a request that
// arrives over the network goes straight from Node to it (src/lib/serve-first.ts), one that
// reaches Fastify (`inject`, which every other test file uses, or an unusual URL) goes through
// Fastify's route, which hands it over. These tests hold the first way to what the second answers.

const lines: string[] = [];
const stream = { write: (line: string) => void lines.push(line) };
let ctx: TestContext;
let base: string;
let clientId: string;
let secret: string;
const url = '/api/v1/oauth/token';
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

beforeAll(async () => {
  ctx = await createTestContext({ logger: { ...serverLoggerOptions('info'), stream } });
  base = await ctx.app.listen({ port: 0, host: '127.0.0.1' });
  const created = await createClient(ctx, { client_id: 'dispatch-svc', name: 'Dispatch', scopes: ['gsku:publish', 'gsku:read'] });
  clientId = created.client.client_id;
  secret = created.client_secret;
});
afterAll(() => ctx?.close());

interface Answer {
  status: number;
  headers: Record<string, string | undefined>;
  body: Record<string, unknown>;
}

/** One request over a real connection, its answer as sent. */
async function overHttp(headers: Record<string, string>, body: string | undefined, path = url): Promise<Answer> {
  const res = await fetch(`${base}${path}`, { method: 'POST', headers, ...(body === undefined ? {} : { body }) });
  return { status: res.status, headers: Object.fromEntries(res.headers), body: (await res.json()) as Record<string, unknown> };
}

/** The same request through Fastify (`inject`). */
async function throughFastify(headers: Record<string, string>, body: string | undefined): Promise<Answer> {
  const res = await ctx.app.inject({ method: 'POST', url, headers, ...(body === undefined ? {} : { payload: body }) });
  return { status: res.statusCode, headers: res.headers as Record<string, string>, body: res.json() };
}

const form = { 'content-type': 'application/x-www-form-urlencoded' };
const json = { 'content-type': 'application/json' };
const basic = () => ({ authorization: `Basic ${Buffer.from(`${clientId}:${secret}`).toString('base64')}` });
/** Headers both ways must answer alike (Date and the request id differ by nature; Fastify's inject adds no Connection). */
const COMPARED = ['content-type', 'cache-control', 'pragma', 'www-authenticate', 'retry-after', 'accept', 'x-content-type-options'];

describe('the token endpoint over the network answers as through Fastify', () => {
  const cases: { name: string; headers: () => Record<string, string>; body: () => string | undefined; status: number; error?: string }[] = [
    { name: 'a grant, form-encoded', headers: () => form, body: () => `grant_type=client_credentials&client_id=${clientId}&client_secret=${secret}`, status: 200 },
    { name: 'a grant, JSON', headers: () => json, body: () => JSON.stringify({ grant_type: 'client_credentials', client_id: clientId, client_secret: secret, scope: 'gsku:read' }), status: 200 },
    { name: 'a grant, HTTP Basic', headers: () => ({ ...form, ...basic() }), body: () => 'grant_type=client_credentials', status: 200 },
    { name: 'a wrong secret', headers: () => form, body: () => `grant_type=client_credentials&client_id=${clientId}&client_secret=${secret}x`, status: 401, error: 'invalid_client' },
    { name: 'no client authentication', headers: () => form, body: () => 'grant_type=client_credentials', status: 401, error: 'invalid_client' },
    { name: 'another grant type', headers: () => form, body: () => 'grant_type=password', status: 400, error: 'unsupported_grant_type' },
    { name: 'a repeated parameter', headers: () => form, body: () => `grant_type=client_credentials&client_id=${clientId}&client_id=${clientId}`, status: 400, error: 'invalid_request' },
    { name: 'a scope not held', headers: () => form, body: () => `grant_type=client_credentials&client_id=${clientId}&client_secret=${secret}&scope=admin`, status: 400, error: 'invalid_scope' },
    { name: 'both authentication methods', headers: () => ({ ...form, ...basic() }), body: () => `grant_type=client_credentials&client_secret=${secret}`, status: 400, error: 'invalid_request' },
    { name: 'a text/plain body', headers: () => ({ 'content-type': 'text/plain' }), body: () => 'grant_type=client_credentials', status: 415, error: 'invalid_request' },
    { name: 'a content type with parameters and capitals', headers: () => ({ 'content-type': 'Application/X-WWW-Form-URLEncoded; charset=UTF-8' }), body: () => `grant_type=client_credentials&client_id=${clientId}&client_secret=${secret}`, status: 200 },
    { name: 'a body without a content type', headers: () => ({}), body: () => 'grant_type=client_credentials', status: 415, error: 'invalid_request' },
    { name: 'no body at all', headers: () => ({}), body: () => undefined, status: 400, error: 'invalid_request' },
    { name: 'an empty JSON body', headers: () => json, body: () => '', status: 400, error: 'invalid_request' },
    { name: 'malformed JSON', headers: () => json, body: () => '{"grant_type":', status: 400, error: 'invalid_request' },
    { name: 'JSON that is not an object', headers: () => json, body: () => '["client_credentials"]', status: 400, error: 'invalid_request' },
    { name: 'a __proto__ key (prototype poisoning)', headers: () => json, body: () => '{"grant_type":"client_credentials","__proto__":{"client_id":"x"}}', status: 400, error: 'invalid_request' },
    { name: 'a body over 8 KiB', headers: () => form, body: () => `grant_type=client_credentials&pad=${'x'.repeat(9000)}`, status: 413, error: 'invalid_request' },
  ];

  for (const c of cases) {
    it(`${c.name}: ${c.status}`, async () => {
      const direct = await overHttp(c.headers(), c.body());
      const routed = await throughFastify(c.headers(), c.body());
      expect(direct.status).toBe(c.status);
      expect(routed.status).toBe(c.status);
      if (c.error) expect(direct.body.error).toBe(c.error);
      // The same body, but for the token itself (each grant mints its own).
      const shape = (b: Record<string, unknown>) => ({ ...b, ...(typeof b.access_token === 'string' ? { access_token: 'minted' } : {}) });
      expect(shape(direct.body)).toEqual(shape(routed.body));
      for (const name of COMPARED) expect([name, direct.headers[name]]).toEqual([name, routed.headers[name]]);
      expect(direct.headers['cache-control']).toBe('no-store');
      expect(direct.headers['x-request-id']).toMatch(UUID);
      expect(routed.headers['x-request-id']).toMatch(UUID);
      if (c.status === 200) {
        const { payload } = await jwtVerify(direct.body.access_token as string, new TextEncoder().encode(TEST_SECRET), { issuer: ISSUER, audience: AUDIENCE });
        expect(payload).toMatchObject({ token_type: 'service', client_id: clientId });
      }
    });
  }

  it('a query string or a trailing slash changes nothing', async () => {
    const body = `grant_type=client_credentials&client_id=${clientId}&client_secret=${secret}`;
    for (const path of [`${url}?x=1`, `${url}/`]) {
      const answer = await overHttp(form, body, path);
      expect([path, answer.status, answer.body.token_type]).toEqual([path, 200, 'Bearer']);
    }
  });

  it('a body streamed in chunks past 8 KiB without a Content-Length is refused as it grows, and the connection closed', async () => {
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(new URL(base).port), '127.0.0.1', () => {
        socket.write(`POST ${url} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n`);
        const chunk = 'a'.repeat(4096);
        for (let i = 0; i < 3; i++) socket.write(`${chunk.length.toString(16)}\r\n${chunk}\r\n`);
      });
      let received = '';
      socket.on('data', (d) => (received += d));
      socket.on('close', () => resolve(received));
      socket.on('error', reject);
    });
    expect(raw).toMatch(/^HTTP\/1\.1 413 /);
    expect(raw.toLowerCase()).toContain('connection: close');
    expect(raw).toContain('"error":"invalid_request"');
  });

  it('fifty grants at once each get their own answer (answers written together are not mixed up)', async () => {
    const scopes = ['gsku:publish', 'gsku:read', 'gsku:publish gsku:read'];
    const answers = await Promise.all(
      Array.from({ length: 50 }, async (_, i) => {
        const scope = scopes[i % scopes.length]!;
        const answer = await overHttp(form, `grant_type=client_credentials&client_id=${clientId}&client_secret=${secret}&scope=${encodeURIComponent(scope)}`);
        return { scope, answer };
      }),
    );
    const ids = new Set<string>();
    for (const { scope, answer } of answers) {
      expect(answer.status).toBe(200);
      expect(answer.body.scope).toBe(scope);
      const { payload } = await jwtVerify(answer.body.access_token as string, new TextEncoder().encode(TEST_SECRET), { issuer: ISSUER, audience: AUDIENCE });
      expect(payload.scope).toBe(scope);
      ids.add(answer.headers['x-request-id']!);
    }
    expect(ids.size).toBe(50);
  });

  it('logs one request line with the token fields and no secret', async () => {
    lines.length = 0;
    const granted = await overHttp(form, `grant_type=client_credentials&client_id=${clientId}&client_secret=${secret}`);
    const refused = await overHttp({ ...form, 'x-forwarded-for': '203.0.113.7' }, `grant_type=client_credentials&client_id=${clientId}&client_secret=wrong-${secret}`);
    const logged = lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((e) => e.msg === 'request completed');
    expect(logged).toEqual([
      {
        level: 30,
        time: expect.any(Number),
        pid: process.pid,
        hostname: expect.any(String),
        reqId: granted.headers['x-request-id'],
        method: 'POST',
        path: url,
        status: 200,
        durationMs: expect.any(Number),
        client_id: clientId,
        auth_method: 'client_secret_post',
        outcome: 'granted',
        // No TRUST_PROXY here: X-Forwarded-For is not believed.
        address: '127.0.0.1',
        msg: 'request completed',
      },
      expect.objectContaining({ reqId: refused.headers['x-request-id'], status: 401, outcome: 'invalid_client', address: '127.0.0.1' }),
    ]);
    expect(lines.join('\n')).not.toContain(secret);
  });
});

describe('hostile clients (attacker review 6)', () => {
  const port = () => Number(new URL(base).port);

  it('a client that resets right after a request Fastify routes (a trailing slash) is neither answered nor logged as a server error', async () => {
    lines.length = 0;
    const body = `grant_type=client_credentials&client_id=${clientId}&client_secret=${secret}`;
    await Promise.all(
      Array.from(
        { length: 10 },
        () =>
          new Promise<void>((resolve) => {
            const socket = connect(port(), '127.0.0.1', () => {
              socket.write(`POST ${url}/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
              socket.resetAndDestroy();
            });
            socket.on('error', () => {});
            socket.on('close', () => resolve());
          }),
      ),
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    // Before: the route handed the endpoint request.ip (undefined once the connection is gone), and
    // every such request logged a TypeError with its stack at error level (addressKey(undefined)).
    const logged = lines.map((line) => JSON.parse(line) as { level: number; msg: string });
    expect(logged.filter((entry) => entry.level >= 40)).toEqual([]);
    expect((await overHttp(form, body, `${url}/`)).status).toBe(200);
  });

  it('a grant sent a byte per chunk, or with a Content-Length in pieces, is read whole', async () => {
    const body = `grant_type=client_credentials&client_id=${clientId}&client_secret=${secret}&scope=gsku%3Aread`;
    const send = (parts: string[]) =>
      new Promise<string>((resolve, reject) => {
        const socket = connect(port(), '127.0.0.1', async () => {
          for (const part of parts) {
            socket.write(part);
            await new Promise((r) => setTimeout(r, 5));
          }
        });
        let received = '';
        socket.on('data', (d) => {
          received += d;
          if (received.includes('"token_type"') || received.includes('"error"')) socket.end();
        });
        socket.on('close', () => resolve(received));
        socket.on('error', reject);
      });
    const head = `POST ${url} HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n`;
    const bytewise = [`${head}Transfer-Encoding: chunked\r\n\r\n`, [...body].map((c) => `1\r\n${c}\r\n`).join(''), '0\r\n\r\n'];
    const pieces = [`${head}Content-Length: ${body.length}\r\n\r\n`, body.slice(0, 7), body.slice(7, 50), body.slice(50)];
    for (const parts of [bytewise, pieces]) {
      const answer = await send(parts);
      expect(answer).toMatch(/^HTTP\/1\.1 200 /);
      const token = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)) as { access_token: string; scope: string };
      expect(token.scope).toBe('gsku:read');
      const { payload } = await jwtVerify(token.access_token, new TextEncoder().encode(TEST_SECRET), { issuer: ISSUER, audience: AUDIENCE });
      expect(payload).toMatchObject({ client_id: clientId, scope: 'gsku:read' });
    }
  });

  it('revocation reads a body sent a byte per chunk, and refuses one growing past 8 KiB, as the token endpoint does', async () => {
    const head = `POST /api/v1/oauth/revoke HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n`;
    const exchange = (payload: string) =>
      new Promise<string>((resolve, reject) => {
        // Written, not ended: a client that half-closes is answered only if the answer is ready before its
        // FIN arrives (Node ends a connection whose client has ended it), and on PostgreSQL counting the
        // failure is a database write, so the 413 sometimes was not.
        const socket = connect(port(), '127.0.0.1', () => socket.write(payload));
        let received = '';
        socket.on('data', (d) => (received += d));
        socket.on('close', () => resolve(received));
        socket.on('error', reject);
      });
    const body = `token=not-a-token&client_id=${clientId}&client_secret=${secret}`;
    const revoked = await exchange(`${head}${[...body].map((c) => `1\r\n${c}\r\n`).join('')}0\r\n\r\n`);
    expect(revoked).toMatch(/^HTTP\/1\.1 200 /);
    expect(revoked.endsWith('\r\n\r\n{}')).toBe(true);
    const tooLarge = await exchange(`${head}${'1000\r\n' + 'a'.repeat(4096) + '\r\n'}${'1000\r\n' + 'a'.repeat(4096) + '\r\n'}1\r\na\r\n0\r\n\r\n`);
    expect(tooLarge).toMatch(/^HTTP\/1\.1 413 /);
    expect(tooLarge).toContain('{"error":"invalid_request","error_description":"The request body is too large"}');
  });
});

describe('the client address with TRUST_PROXY is the one Fastify reads', () => {
  const chains = ['203.0.113.7', '198.51.100.1, 203.0.113.7', '203.0.113.7, 10.0.0.2', 'not-an-ip', ''];
  const trusts: (string[] | undefined)[] = [undefined, ['127.0.0.1'], ['loopback'], ['127.0.0.1', '10.0.0.0/8'], ['10.0.0.0/8']];
  for (const trust of trusts) {
    it(`TRUST_PROXY=${trust?.join(',') ?? '(unset)'}`, async () => {
      const fastify = Fastify(trust === undefined ? {} : { trustProxy: trust });
      fastify.post('/ip', async (request) => ({ ip: request.ip }));
      const addressOf = clientAddressOf(trust);
      for (const chain of chains) {
        const headers = chain === '' ? {} : { 'x-forwarded-for': chain };
        const res = await fastify.inject({ method: 'POST', url: '/ip', headers, remoteAddress: '127.0.0.1' });
        const request = { headers, socket: { remoteAddress: '127.0.0.1' }, connection: { remoteAddress: '127.0.0.1' } };
        expect([chain, addressOf(request as never)]).toEqual([chain, res.json().ip]);
      }
      await fastify.close();
    });
  }

  it('a grant behind a trusted proxy is counted and logged for the forwarded address', async () => {
    const proxied = await createTestContext({ env: { TRUST_PROXY: '127.0.0.1' }, logger: { ...serverLoggerOptions('info'), stream } });
    try {
      const proxiedBase = await proxied.app.listen({ port: 0, host: '127.0.0.1' });
      const created = await createClient(proxied, { client_id: 'proxied-svc', name: 'Proxied', scopes: ['gsku:read'] });
      lines.length = 0;
      const res = await fetch(`${proxiedBase}${url}`, {
        method: 'POST',
        headers: { ...form, 'x-forwarded-for': '198.51.100.1, 203.0.113.9' },
        body: `grant_type=client_credentials&client_id=${created.client.client_id}&client_secret=${created.client_secret}`,
      });
      expect(res.status).toBe(200);
      const line = lines.map((l) => JSON.parse(l) as Record<string, unknown>).find((e) => e.msg === 'request completed');
      expect(line).toMatchObject({ reqId: res.headers.get('x-request-id'), outcome: 'granted', address: '203.0.113.9' });
    } finally {
      await proxied.close();
    }
  });
});

describe('serveFirst', () => {
  it('a fault thrown by the endpoint itself is logged and answered 500, and the server goes on serving', async () => {
    const logged: string[] = [];
    const fastify = Fastify({ logger: { level: 'error', stream: { write: (line: string) => void logged.push(line) } } });
    fastify.get('/other', async () => ({ ok: true }));
    serveFirst(
      fastify,
      '/t',
      () => {
        throw new Error('endpoint fault');
      },
      clientAddressOf(undefined),
    );
    const at = await fastify.listen({ port: 0, host: '127.0.0.1' });
    try {
      for (let i = 0; i < 2; i++) {
        const res = await fetch(`${at}/t`, { method: 'POST', body: 'x' });
        expect([res.status, res.headers.get('cache-control'), await res.json()]).toEqual([500, 'no-store', { error: 'server_error', error_description: 'The authorization server encountered an error' }]);
        expect(res.headers.get('x-request-id')).toMatch(UUID);
      }
      expect((await fetch(`${at}/other`)).status).toBe(200);
      const errors = logged.map((line) => JSON.parse(line) as { msg: string; err?: { message: string } });
      expect(errors.map((e) => [e.msg, e.err?.message])).toEqual([
        ['token request failed', 'endpoint fault'],
        ['token request failed', 'endpoint fault'],
      ]);
    } finally {
      await fastify.close();
    }
  });
});
