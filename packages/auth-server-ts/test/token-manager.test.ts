import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { inspect } from 'node:util';
import { MockAgent } from 'undici';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AuthServerError,
  ServiceTokenManager,
  TokenRequestError,
  type ServiceTokenEvent,
  type ServiceTokenManagerOptions,
} from '../src/index.js';
import { systemClock } from '../src/clock.js';
import { closedPortUrl, drive, FakeClock, startServer, tokenReply, until, type Reply, type SeenRequest, type TestServer } from './helpers.js';

const CLIENT_SECRET = 'sk_live_s3cr3t:with&odd chars+/=';
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

async function server(handler: (request: SeenRequest, n: number) => Reply | Promise<Reply>): Promise<TestServer> {
  const started = await startServer(handler);
  cleanups.push(() => started.close());
  return started;
}

function manager(options: Partial<ServiceTokenManagerOptions> & { tokenEndpoint?: string | URL; serverUrl?: string | URL }) {
  const events: ServiceTokenEvent[] = [];
  const created = new ServiceTokenManager({
    clientId: 'billing-svc',
    clientSecret: CLIENT_SECRET,
    random: () => 0,
    onEvent: (event) => events.push(event),
    ...options,
  } as ServiceTokenManagerOptions);
  cleanups.push(() => created.close());
  return { manager: created, events };
}

async function rejection(promise: Promise<unknown>): Promise<any> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected a rejection');
}

const form = (body: string) => Object.fromEntries(new URLSearchParams(body));

describe('ServiceTokenManager: requests and cache', () => {
  it('authenticates with client_secret_basic (form-urlencoded before base64) and caches the token', async () => {
    const auth = await server((_, n) => tokenReply(n));
    const { manager: tokens } = manager({ tokenEndpoint: `${auth.url}/oauth/token`, clientId: 'billing svc:1', scopes: ['b:read', 'a:write'] });

    expect(await tokens.getToken()).toBe('tok-1');
    expect(await tokens.getToken()).toBe('tok-1');
    expect(await tokens.authorizationHeader()).toBe('Bearer tok-1');

    expect(auth.requests).toHaveLength(1);
    const [request] = auth.requests;
    const expected = Buffer.from('billing+svc%3A1:sk_live_s3cr3t%3Awith%26odd+chars%2B%2F%3D').toString('base64');
    expect(request!.headers.authorization).toBe(`Basic ${expected}`);
    expect(request!.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(form(request!.body)).toEqual({ grant_type: 'client_credentials', scope: 'a:write b:read' });
  });

  it('authenticates with client_secret_post and sends the audience', async () => {
    const auth = await server((_, n) => tokenReply(n));
    const { manager: tokens } = manager({ tokenEndpoint: `${auth.url}/oauth/token`, authMethod: 'client_secret_post', audience: 'catalog-api' });

    await tokens.getToken();
    expect(auth.requests[0]!.headers.authorization).toBeUndefined();
    expect(form(auth.requests[0]!.body)).toEqual({
      grant_type: 'client_credentials',
      client_id: 'billing-svc',
      client_secret: CLIENT_SECRET,
      audience: 'catalog-api',
    });
  });

  it('caches per sorted scopes and audience', async () => {
    const auth = await server((_, n) => tokenReply(n));
    const { manager: tokens } = manager({ tokenEndpoint: `${auth.url}/oauth/token` });

    expect(await tokens.getToken({ scopes: ['b', 'a'] })).toBe('tok-1');
    expect(await tokens.getToken({ scopes: ['a', 'b', 'a'] })).toBe('tok-1');
    expect(await tokens.getToken({ scopes: ['a'] })).toBe('tok-2');
    expect(await tokens.getToken({ scopes: ['a'], audience: 'x' })).toBe('tok-3');
    expect(await tokens.getToken()).toBe('tok-4');
    expect(auth.requests.map((r) => form(r.body).scope ?? '')).toEqual(['a b', 'a', 'a', '']);
  });

  it('discovers the token endpoint once via RFC 8414 metadata', async () => {
    const auth = await server((request, n) =>
      request.url === '/.well-known/oauth-authorization-server'
        ? { status: 200, body: { issuer: auth.url, token_endpoint: `${auth.url}/api/v1/oauth/token` } }
        : tokenReply(n),
    );
    const { manager: tokens } = manager({ serverUrl: auth.url });

    expect(await tokens.getToken({ scopes: ['a'] })).toBe('tok-2');
    expect(await tokens.getToken({ scopes: ['b'] })).toBe('tok-3');
    expect(auth.requests.map((r) => r.url)).toEqual([
      '/.well-known/oauth-authorization-server',
      '/api/v1/oauth/token',
      '/api/v1/oauth/token',
    ]);
  });

  it('refuses metadata naming another issuer, or a token endpoint on another origin (RFC 8414 §3.3)', async () => {
    for (const body of [
      (url: string) => ({ issuer: 'https://evil.example', token_endpoint: `${url}/api/v1/oauth/token` }),
      (url: string) => ({ issuer: url, token_endpoint: 'http://127.0.0.2:9/steal' }),
    ]) {
      const auth = await server((request, n) => (request.url === '/.well-known/oauth-authorization-server' ? { status: 200, body: body(auth.url) } : tokenReply(n)));
      const { manager: tokens } = manager({ serverUrl: auth.url });
      const err = await rejection(tokens.getToken());
      expect(err.code).toBe('discovery_failed');
      expect(auth.requests.map((r) => r.url)).toEqual(['/.well-known/oauth-authorization-server']);
    }
  });

  it('says which issuer the metadata names and which one was expected', async () => {
    const auth = await server((request, n) =>
      request.url === '/.well-known/oauth-authorization-server' ? { status: 200, body: { issuer: 'http://127.0.0.1:3000', token_endpoint: 'http://127.0.0.1:3000/api/v1/oauth/token' } } : tokenReply(n),
    );
    const { manager: tokens } = manager({ serverUrl: auth.url });
    const err = await rejection(tokens.getToken());
    expect(err.code).toBe('discovery_failed');
    expect(err.message).toContain('names the issuer "http://127.0.0.1:3000"');
    expect(err.message).toContain(`expected "${auth.url}"`);
  });

  it('fails discovery with discovery_failed when the metadata has no token_endpoint', async () => {
    const auth = await server(() => ({ status: 200, body: { issuer: 'x' } }));
    const { manager: tokens } = manager({ serverUrl: auth.url });
    const err = await rejection(tokens.getToken());
    expect(err).toBeInstanceOf(TokenRequestError);
    expect(err.code).toBe('discovery_failed');
    expect(auth.requests).toHaveLength(1);
  });

  it('shares one request among 1,000 concurrent callers on an empty cache', async () => {
    const auth = await server(async (_, n) => {
      await new Promise((resolve) => setTimeout(resolve, 20));
      return tokenReply(n);
    });
    const { manager: tokens } = manager({ tokenEndpoint: `${auth.url}/oauth/token` });

    const results = await Promise.all(Array.from({ length: 1000 }, () => tokens.getToken()));
    expect(new Set(results)).toEqual(new Set(['tok-1']));
    expect(auth.requests).toHaveLength(1);
  });

  it('uses the injected undici dispatcher (MockAgent)', async () => {
    const agent = new MockAgent();
    agent.disableNetConnect();
    cleanups.push(() => agent.close());
    agent
      .get('https://auth.example.com')
      .intercept({ path: '/oauth/token', method: 'POST' })
      .reply(200, { access_token: 'mocked', token_type: 'bearer', expires_in: '300' })
      .times(1);
    const { manager: tokens } = manager({ tokenEndpoint: 'https://auth.example.com/oauth/token', dispatcher: agent });

    const results = await Promise.all([tokens.getToken(), tokens.getToken(), tokens.getToken()]);
    expect(results).toEqual(['mocked', 'mocked', 'mocked']);
    agent.assertNoPendingInterceptors();
  });
});

describe('ServiceTokenManager: renewal (fake clock)', () => {
  it('renews in the background before expiry (at 80% of the lifetime), not after', async () => {
    const clock = new FakeClock();
    const auth = await server((_, n) => tokenReply(n, 900));
    const { manager: tokens } = manager({ tokenEndpoint: `${auth.url}/t`, clock });
    const start = clock.now();

    expect(await tokens.getToken()).toBe('tok-1');
    clock.advance(719_999);
    expect(await tokens.getToken()).toBe('tok-1');
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(auth.requests).toHaveLength(1);

    clock.advance(1); // 720 s = min(900 − 60, 0.8 · 900)
    await until(() => auth.requests.length === 2);
    expect(clock.now() - start).toBeLessThan(900_000);
    await until(() => clock.pendingTimers === 1); // the next renewal is scheduled
    expect(await tokens.getToken()).toBe('tok-2');
    expect(auth.requests).toHaveLength(2);
  });

  it('caches a token for at most 24 h whatever expires_in says (115 days here)', async () => {
    const clock = new FakeClock();
    const auth = await server((_, n) => tokenReply(n, 10_000_000));
    const { manager: tokens, events } = manager({ tokenEndpoint: `${auth.url}/t`, clock });

    expect(await tokens.getToken()).toBe('tok-1');
    expect(events.find((e) => e.type === 'token_acquired')).toMatchObject({ expiresInSec: 86_400 });
    clock.advance(86_400_000);
    expect(await tokens.getToken()).toBe('tok-2');
    expect(auth.requests).toHaveLength(2);
  });

  it('an expires_in past the timer limit does not start a renewal loop (system clock)', async () => {
    const auth = await server((_, n) => tokenReply(n, 1e9));
    const { manager: tokens } = manager({ tokenEndpoint: `${auth.url}/t`, clock: systemClock });
    const end = Date.now() + 300;
    // A busy caller: a getToken() on every turn of the event loop.
    while (Date.now() < end) {
      expect(await tokens.getToken()).toBe('tok-1');
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(auth.requests).toHaveLength(1);
  });

  it('renews earlier with jitter and with a skew larger than 20% of the lifetime', async () => {
    const clock = new FakeClock();
    const auth = await server((_, n) => tokenReply(n, 100));
    const { manager: tokens } = manager({
      tokenEndpoint: `${auth.url}/t`,
      clock,
      random: () => 0.5,
      refresh: { skewSec: 30, jitterFraction: 0.1 },
    });
    await tokens.getToken();
    // min(100 − 30, 80) = 70 s, minus 0.5 · 0.1 · 100 s = 65 s.
    clock.advance(64_999);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(auth.requests).toHaveLength(1);
    clock.advance(1);
    await until(() => auth.requests.length === 2);
  });

  it('measures the lifetime from when the request started', async () => {
    const clock = new FakeClock();
    const auth = await server((_, n) => {
      clock.advance(100_000); // the request itself takes 100 s
      return tokenReply(n, 900);
    });
    const { manager: tokens } = manager({ tokenEndpoint: `${auth.url}/t`, clock, refresh: { lifetimeFraction: 0.5 } });
    const start = clock.now();
    await tokens.getToken();
    expect(clock.now() - start).toBe(100_000);
    // Renewal is due at start + 450 s (half of 900 s), not at start + 100 s + 450 s.
    clock.advance(350_000 - 1);
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(auth.requests).toHaveLength(1);
    clock.advance(1);
    await until(() => auth.requests.length === 2);
  });

  it('keeps serving the valid token when background renewal fails, then rejects with a typed error after expiry', async () => {
    const clock = new FakeClock();
    const auth = await server((_, n) => (n === 1 ? tokenReply(n, 900) : { status: 503, body: { error: 'temporarily_unavailable' } }));
    const { manager: tokens, events } = manager({ tokenEndpoint: `${auth.url}/t`, clock, retry: { maxAttempts: 1 } });

    expect(await tokens.getToken()).toBe('tok-1');
    clock.advance(720_000);
    await until(() => events.some((e) => e.type === 'token_request_failed'));
    const failed = events.find((e) => e.type === 'token_request_failed');
    expect(failed).toMatchObject({ background: true });

    clock.advance(100_000); // 820 s: still valid
    expect(await tokens.getToken()).toBe('tok-1');

    clock.advance(80_000); // 900 s: expired
    const err = await rejection(tokens.getToken());
    expect(err).toBeInstanceOf(TokenRequestError);
    expect(err.code).toBe('http_error');
    expect(err.status).toBe(503);
    expect(err.error).toBe('temporarily_unavailable');
  });

  it('does not renew a token nobody asked for since it was fetched', async () => {
    const clock = new FakeClock();
    const auth = await server((_, n) => tokenReply(n, 900));
    const { manager: tokens } = manager({ tokenEndpoint: `${auth.url}/t`, clock });
    await tokens.getToken();
    clock.advance(720_000);
    await until(() => auth.requests.length === 2);
    await until(() => clock.pendingTimers === 1);
    clock.advance(720_000); // tok-2 was never handed out
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(auth.requests).toHaveLength(2);
  });
});

describe('ServiceTokenManager: retries', () => {
  it('retries a server that is down, then rejects with network_error', async () => {
    const clock = new FakeClock();
    const { manager: tokens, events } = manager({ tokenEndpoint: `${await closedPortUrl()}/t`, clock, retry: { maxAttempts: 3 } });
    const err = await drive(clock, rejection(tokens.getToken()));
    expect(err).toBeInstanceOf(TokenRequestError);
    expect(err.code).toBe('network_error');
    expect(err.attempts).toBe(3);
    expect(events.filter((e) => e.type === 'token_request')).toHaveLength(3);
  });

  it('times out a slow server and retries it', async () => {
    const clock = new FakeClock();
    const auth = await server(() => 'hang');
    const { manager: tokens } = manager({ tokenEndpoint: `${auth.url}/t`, clock, requestTimeoutMs: 100, retry: { maxAttempts: 2 } });
    const err = await drive(clock, rejection(tokens.getToken()));
    expect(err.code).toBe('timeout');
    expect(err.attempts).toBe(2);
    expect(auth.requests).toHaveLength(2);
  });

  it('retries 503 with exponential backoff and full jitter, then succeeds', async () => {
    const clock = new FakeClock();
    const auth = await server((_, n) => (n < 3 ? { status: 503 } : tokenReply(n)));
    const { manager: tokens, events } = manager({
      tokenEndpoint: `${auth.url}/t`,
      clock,
      random: () => 0.5,
      retry: { baseDelayMs: 1000, maxDelayMs: 1500 },
    });
    expect(await drive(clock, tokens.getToken())).toBe('tok-3');
    expect(auth.requests).toHaveLength(3);
    const delays = events.flatMap((e) => (e.type === 'token_retry' ? [e.delayMs] : []));
    expect(delays).toEqual([500, 750]); // 0.5 · min(1500, 1000 · 2^(n−1))
  });

  it('honours Retry-After on 429', async () => {
    const clock = new FakeClock();
    const auth = await server((_, n) => (n === 1 ? { status: 429, headers: { 'retry-after': '3' } } : tokenReply(n)));
    const { manager: tokens, events } = manager({ tokenEndpoint: `${auth.url}/t`, clock });
    const start = clock.now();
    expect(await drive(clock, tokens.getToken())).toBe('tok-2');
    expect(auth.requests).toHaveLength(2);
    expect(clock.now() - start).toBe(3000);
    expect(events.find((e) => e.type === 'token_retry')).toMatchObject({ delayMs: 3000, status: 429, code: 'http_error' });
  });

  it('gives up at once on a Retry-After longer than maxRetryAfterMs', async () => {
    const clock = new FakeClock();
    const auth = await server(() => ({ status: 429, headers: { 'retry-after': '3600' } }));
    const { manager: tokens } = manager({ tokenEndpoint: `${auth.url}/t`, clock });
    const err = await drive(clock, rejection(tokens.getToken()));
    expect(err).toMatchObject({ code: 'http_error', status: 429, attempts: 1 });
    expect(auth.requests).toHaveLength(1);
  });

  it('rejects 503 after maxAttempts', async () => {
    const clock = new FakeClock();
    const auth = await server(() => ({ status: 503 }));
    const { manager: tokens } = manager({ tokenEndpoint: `${auth.url}/t`, clock, retry: { maxAttempts: 4 } });
    const err = await drive(clock, rejection(tokens.getToken()));
    expect(err).toMatchObject({ code: 'http_error', status: 503, attempts: 4 });
    expect(auth.requests).toHaveLength(4);
  });

  it('never retries invalid_client, and does not cache the failure', async () => {
    const auth = await server(() => ({
      status: 401,
      headers: { 'www-authenticate': 'Basic' },
      body: { error: 'invalid_client', error_description: 'Client authentication failed' },
    }));
    const { manager: tokens } = manager({ tokenEndpoint: `${auth.url}/t` });
    const err = await rejection(tokens.getToken());
    expect(err).toBeInstanceOf(TokenRequestError);
    expect(err).toMatchObject({
      code: 'oauth_error',
      error: 'invalid_client',
      errorDescription: 'Client authentication failed',
      status: 401,
      attempts: 1,
    });
    expect(auth.requests).toHaveLength(1);
    await rejection(tokens.getToken());
    expect(auth.requests).toHaveLength(2);
  });

  it('never retries invalid_scope or other 4xx', async () => {
    const auth = await server((_, n) => (n === 1 ? { status: 400, body: { error: 'invalid_scope' } } : { status: 404, body: 'nope' }));
    const { manager: tokens } = manager({ tokenEndpoint: `${auth.url}/t` });
    expect(await rejection(tokens.getToken({ scopes: ['x'] }))).toMatchObject({ code: 'oauth_error', error: 'invalid_scope', status: 400, attempts: 1 });
    expect(await rejection(tokens.getToken())).toMatchObject({ code: 'http_error', error: undefined, status: 404, attempts: 1 });
    expect(auth.requests).toHaveLength(2);
  });

  it('reports a 404 from a wrong token endpoint as http_error, even with an error field in its body', async () => {
    // What the auth server itself answers for an unknown path, and what a proxy may send.
    const bodies = [{ status: 404, body: { error: 'not_found', message: 'No route POST /api/v1/oauth/tokens' } }, { status: 403, body: { error: 'forbidden' } }, { status: 405, body: { error: 'method_not_allowed' } }];
    const auth = await server((_, n) => bodies[n - 1]!);
    const { manager: tokens } = manager({ tokenEndpoint: `${auth.url}/api/v1/oauth/tokens` });
    for (const { status, body } of bodies) {
      expect(await rejection(tokens.getToken())).toMatchObject({ code: 'http_error', status, error: body.error, attempts: 1 });
    }
  });

  it('rejects a 200 without a usable token as invalid_response', async () => {
    const auth = await server(() => ({ status: 200, body: { access_token: 'x', token_type: 'mac', expires_in: 60 } }));
    const { manager: tokens } = manager({ tokenEndpoint: `${auth.url}/t` });
    expect(await rejection(tokens.getToken())).toMatchObject({ code: 'invalid_response', attempts: 1 });
  });
});

describe('ServiceTokenManager: invalidate and fetch', () => {
  it('evicts only the cached token, so parallel 401s cause one renewal', async () => {
    const auth = await server((_, n) => tokenReply(n));
    const { manager: tokens } = manager({ tokenEndpoint: `${auth.url}/t` });
    const stale = await tokens.getToken();

    const evictions = Array.from({ length: 10 }, () => tokens.invalidate(stale));
    expect(evictions.filter(Boolean)).toHaveLength(1);
    const fresh = await Promise.all(Array.from({ length: 10 }, () => tokens.getToken()));
    expect(new Set(fresh)).toEqual(new Set(['tok-2']));
    expect(tokens.invalidate(stale)).toBe(false);
    expect(await tokens.getToken()).toBe('tok-2');
    expect(auth.requests).toHaveLength(2);
  });

  it('fetch() attaches the token and, on a 401 with a token that is not fresh, invalidates and retries once', async () => {
    const auth = await server((_, n) => tokenReply(n));
    // The downstream API accepts only tok-2 on /items, so the first call there gets a 401.
    const api = await server((request) => ({
      status: request.url === '/items' && request.headers.authorization === 'Bearer tok-2' ? 200 : 401,
      body: { ok: request.url === '/items' },
    }));
    const clock = new FakeClock();
    const { manager: tokens } = manager({ tokenEndpoint: `${auth.url}/t`, clock });
    expect(await tokens.getToken()).toBe('tok-1');
    clock.advance(31_000);

    const res = await tokens.fetch(`${api.url}/items`, { method: 'POST', body: 'payload', headers: { 'x-trace': '1' } });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ok: true });
    expect(api.requests.map((r) => r.headers.authorization)).toEqual(['Bearer tok-1', 'Bearer tok-2']);
    expect(api.requests.map((r) => [r.body, r.headers['x-trace']])).toEqual([
      ['payload', '1'],
      ['payload', '1'],
    ]);
    expect(auth.requests).toHaveLength(2);

    // A second 401 is returned as it is: one retry only.
    clock.advance(31_000);
    const denied = await tokens.fetch(`${api.url}/always-401`);
    expect(denied.status).toBe(401);
    expect(api.requests).toHaveLength(4);
    expect(auth.requests).toHaveLength(3);
  });

  it('a downstream that always answers 401: 20 calls, 1 grant (a token obtained seconds ago is not renewed)', async () => {
    const auth = await server((_, n) => tokenReply(n));
    const api = await server(() => ({ status: 401, body: {} }));
    const clock = new FakeClock();
    const { manager: tokens } = manager({ tokenEndpoint: `${auth.url}/t`, clock });
    for (let i = 0; i < 20; i++) {
      expect((await tokens.fetch(`${api.url}/x`)).status).toBe(401);
      clock.advance(1000);
    }
    expect(api.requests).toHaveLength(20);
    expect(auth.requests).toHaveLength(1);
  });

  it('fetch() refuses plain http to a remote host and origins outside fetchOrigins, before any token request', async () => {
    const auth = await server((_, n) => tokenReply(n));
    const { manager: open } = manager({ tokenEndpoint: `${auth.url}/t` });
    for (const url of ['http://catalog.example.com/items', 'http://10.0.0.5/items', 'ftp://catalog.example.com/x', 'not a url']) {
      const err = await rejection(open.fetch(url));
      expect(err).toBeInstanceOf(AuthServerError);
      expect(err.code).toBe('destination_refused');
    }
    const { manager: listed } = manager({ tokenEndpoint: `${auth.url}/t`, fetchOrigins: ['https://catalog.example.com', new URL(auth.url)] });
    expect((await rejection(listed.fetch('https://evil.example.net/steal'))).code).toBe('destination_refused');
    expect((await rejection(listed.fetch('https://catalog.example.com.evil.net/'))).code).toBe('destination_refused');
    expect(auth.requests).toHaveLength(0);
    // Loopback http and listed origins pass.
    expect((await listed.fetch(`${auth.url}/t`, { method: 'POST' })).status).toBe(200);
    expect(() => manager({ tokenEndpoint: `${auth.url}/t`, fetchOrigins: ['http://catalog.example.com'] })).toThrow(/plain http/);
  });
});

describe('ServiceTokenManager: responses are read up to 64 KiB', () => {
  /** A server whose answer never ends (or is just too long), counting the bytes it wrote. */
  async function endless(path: string, contentLength?: number) {
    let written = 0;
    const srv = createServer((req, res) => {
      req.resume();
      req.on('end', () => {
        if (req.url !== path) {
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ issuer: `http://127.0.0.1:${port}`, token_endpoint: `http://127.0.0.1:${port}/big` }));
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json', ...(contentLength ? { 'content-length': String(contentLength) } : {}) });
        const chunk = Buffer.alloc(16 * 1024, 0x20);
        const pump = () => {
          while (!res.destroyed && written < 512 * 1024 * 1024) {
            written += chunk.length;
            if (!res.write(chunk)) return void res.once('drain', pump);
          }
        };
        res.write('{"access_token":"');
        pump();
      });
    });
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as AddressInfo).port;
    cleanups.push(() => new Promise<void>((r) => (srv.closeAllConnections(), srv.close(() => r()))));
    return { url: `http://127.0.0.1:${port}`, written: () => written };
  }

  it('a never-ending token response is abandoned as invalid_response, not retried', async () => {
    const big = await endless('/big');
    const { manager: tokens } = manager({ tokenEndpoint: `${big.url}/big` });
    const err = await rejection(tokens.getToken());
    expect(err).toBeInstanceOf(TokenRequestError);
    expect(err.code).toBe('invalid_response');
    expect(err.attempts).toBe(1);
    expect(big.written()).toBeLessThan(16 * 1024 * 1024);
  });

  it('a declared length over 64 KiB is refused before reading; discovery is capped too', async () => {
    const declared = await endless('/big', 10 * 1024 * 1024);
    const { manager: tokens } = manager({ tokenEndpoint: `${declared.url}/big` });
    expect((await rejection(tokens.getToken())).code).toBe('invalid_response');
    const meta = await endless('/.well-known/oauth-authorization-server');
    const { manager: discovering } = manager({ serverUrl: meta.url });
    expect((await rejection(discovering.getToken())).code).toBe('invalid_response');
  });
});

describe('ServiceTokenManager: lifecycle, abort and secrecy', () => {
  it('close() clears timers, aborts requests in flight and rejects later calls', async () => {
    const clock = new FakeClock();
    const auth = await server((request, n) => (request.url === '/hang' ? 'hang' : tokenReply(n)));
    const { manager: tokens } = manager({ tokenEndpoint: `${auth.url}/t`, clock });
    await tokens.getToken();
    expect(clock.pendingTimers).toBe(1);

    const { manager: hanging } = manager({ tokenEndpoint: `${auth.url}/hang`, clock });
    const inFlight = rejection(hanging.getToken());
    await until(() => auth.requests.length === 2);

    await tokens.close();
    await hanging.close();
    expect(clock.pendingTimers).toBe(0);
    expect(await inFlight).toMatchObject({ code: 'closed' });
    const later = await rejection(tokens.getToken());
    expect(later).toBeInstanceOf(AuthServerError);
    expect(later.code).toBe('closed');
  });

  it('the system clock unrefs its timers', () => {
    const handle = systemClock.setTimeout(() => {}, 60_000) as NodeJS.Timeout;
    expect(handle.hasRef()).toBe(false);
    systemClock.clearTimeout(handle);
  });

  it('an AbortSignal stops one caller without cancelling the shared request', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const auth = await server(async (_, n) => {
      await gate;
      return tokenReply(n);
    });
    const { manager: tokens } = manager({ tokenEndpoint: `${auth.url}/t` });
    const controller = new AbortController();
    const aborted = rejection(tokens.getToken({ signal: controller.signal }));
    const other = tokens.getToken();
    await until(() => auth.requests.length === 1);
    controller.abort();
    expect(await aborted).toMatchObject({ code: 'aborted' });
    release();
    expect(await other).toBe('tok-1');
    expect(await rejection(tokens.getToken({ signal: AbortSignal.abort() }))).toMatchObject({ code: 'aborted' });
    expect(auth.requests).toHaveLength(1);
  });

  it('never puts the secret in errors, events or its own inspection', async () => {
    const clock = new FakeClock();
    const auth = await server((_, n) =>
      n === 1 ? { status: 503 } : { status: 401, body: { error: 'invalid_client', error_description: 'bad client' } },
    );
    const { manager: tokens, events } = manager({ tokenEndpoint: `${auth.url}/t`, clock, authMethod: 'client_secret_post' });
    const down = manager({ tokenEndpoint: `${await closedPortUrl()}/t`, clock, retry: { maxAttempts: 2 } });
    const errors = [await drive(clock, rejection(tokens.getToken())), await drive(clock, rejection(down.manager.getToken()))];
    const badOptions = await rejection(
      (async () => new ServiceTokenManager({ tokenEndpoint: 'http://example.com/t', clientId: 'x', clientSecret: CLIENT_SECRET }))(),
    );
    expect(badOptions.code).toBe('invalid_options');

    const everything = [
      ...errors.map((e) => inspect(e, { depth: 10 })),
      inspect(badOptions, { depth: 10 }),
      inspect(events, { depth: 10 }),
      inspect(down.events, { depth: 10 }),
      inspect(tokens, { depth: 10, showHidden: true }),
      JSON.stringify(errors),
    ].join('\n');
    expect(everything).toContain('invalid_client');
    for (const fragment of [CLIENT_SECRET, encodeURIComponent(CLIENT_SECRET), 's3cr3t']) {
      expect(everything).not.toContain(fragment);
    }
  });

  it('validates its options at construction', () => {
    const valid: ServiceTokenManagerOptions = { tokenEndpoint: 'https://auth.example.com/t', clientId: 'a', clientSecret: 'b' };
    const cases: Array<Partial<Record<keyof ServiceTokenManagerOptions, unknown>>> = [
      { tokenEndpoint: undefined },
      { serverUrl: 'https://auth.example.com' },
      { tokenEndpoint: 'not a url' },
      { tokenEndpoint: 'ftp://auth.example.com/t' },
      { tokenEndpoint: 'http://auth.example.com/t' },
      { clientId: '' },
      { clientSecret: undefined },
      { authMethod: 'private_key_jwt' },
      { scopes: ['has space'] },
      { audience: '' },
      { requestTimeoutMs: 0 },
      // Past 2^31 − 1 ms setTimeout fires at once: the manager would retry in a loop.
      { requestTimeoutMs: 2 ** 31 },
      { retry: { maxDelayMs: 2 ** 31 } },
      { retry: { baseDelayMs: 30 * 86_400_000 } },
      { retry: { maxRetryAfterMs: Number.POSITIVE_INFINITY } },
      { retry: { maxAttempts: 0 } },
      { refresh: { lifetimeFraction: 2 } },
      { dispatcher: {} },
      { clock: { now: () => 0 } },
    ];
    for (const override of cases) {
      let error: unknown;
      try {
        new ServiceTokenManager({ ...valid, ...override } as ServiceTokenManagerOptions);
      } catch (err) {
        error = err;
      }
      expect(error, JSON.stringify(override)).toBeInstanceOf(AuthServerError);
      expect((error as AuthServerError).code).toBe('invalid_options');
    }
    expect(() => new ServiceTokenManager({ ...valid, tokenEndpoint: 'http://auth.internal/t', allowInsecureHttp: true })).not.toThrow();
    expect(() => new ServiceTokenManager({ ...valid, tokenEndpoint: 'http://localhost:3000/t' })).not.toThrow();
    expect(() => new ServiceTokenManager({ ...valid, requestTimeoutMs: 2 ** 31 - 1, retry: { maxDelayMs: 2 ** 31 - 1 } })).not.toThrow();
  });
});

describe('ServiceTokenManager: clientSecret as a function (rotation)', () => {
  const basicSecret = (request: SeenRequest) => {
    const decoded = Buffer.from(request.headers.authorization!.slice('Basic '.length), 'base64').toString();
    return decodeURIComponent(decoded.slice(decoded.indexOf(':') + 1).replace(/\+/g, ' '));
  };
  /** A token endpoint accepting only `accepted()`. */
  async function rotatingServer(accepted: () => string[]) {
    return server((request, n) =>
      accepted().includes(basicSecret(request)) ? tokenReply(n) : { status: 401, body: { error: 'invalid_client', error_description: 'Client authentication failed' } },
    );
  }

  it('is read at the first request (sync or async), not at construction, and reused after', async () => {
    for (const make of [(v: string) => () => v, (v: string) => async () => v]) {
      const auth = await rotatingServer(() => ['s1']);
      let calls = 0;
      const source = make('s1');
      const { manager: tokens } = manager({ tokenEndpoint: `${auth.url}/t`, clientSecret: () => ((calls += 1), source()) });
      expect(calls).toBe(0);
      expect(await tokens.getToken()).toBe('tok-1');
      tokens.invalidate('tok-1');
      expect(await tokens.getToken()).toBe('tok-2');
      expect(calls).toBe(1);
    }
  });

  it('after invalid_client it is asked again once, and the grant retried once with the new secret', async () => {
    let accepted = ['old'];
    const auth = await rotatingServer(() => accepted);
    let current = 'old';
    let calls = 0;
    const { manager: tokens } = manager({ tokenEndpoint: `${auth.url}/t`, clientSecret: async () => ((calls += 1), current) });
    expect(await tokens.getToken()).toBe('tok-1');
    // Rotated: the old secret is refused, the secret manager holds the new one.
    accepted = ['new'];
    current = 'new';
    tokens.invalidate('tok-1');
    expect(await tokens.getToken()).toBe('tok-3');
    expect(calls).toBe(2);
    expect(auth.requests.map(basicSecret)).toEqual(['old', 'old', 'new']);
  });

  it('unchanged after invalid_client: the error, after one request and one more call', async () => {
    const auth = await rotatingServer(() => []);
    let calls = 0;
    const { manager: tokens } = manager({ tokenEndpoint: `${auth.url}/t`, clientSecret: () => ((calls += 1), 'same') });
    expect(await rejection(tokens.getToken())).toMatchObject({ code: 'oauth_error', error: 'invalid_client', attempts: 1 });
    expect(calls).toBe(2);
    expect(auth.requests).toHaveLength(1);
    // Still wrong after the retry with a new value: the retry's error, no third request.
    let n = 0;
    const { manager: other } = manager({ tokenEndpoint: `${auth.url}/t`, clientSecret: () => `v${(n += 1)}` });
    expect(await rejection(other.getToken())).toMatchObject({ code: 'oauth_error', error: 'invalid_client' });
    expect(n).toBe(2);
    expect(auth.requests).toHaveLength(3);
  });

  it('concurrent refusals share one call; a failing function is secret_unavailable and never leaks', async () => {
    let accepted = ['a'];
    const auth = await rotatingServer(() => accepted);
    let current = 'a';
    let calls = 0;
    const { manager: tokens } = manager({ tokenEndpoint: `${auth.url}/t`, clientSecret: async () => ((calls += 1), current) });
    await tokens.getToken();
    accepted = ['b'];
    current = 'b';
    tokens.invalidate('tok-1');
    const results = await Promise.all([tokens.getToken(), tokens.getToken({ scopes: ['x:y'] }), tokens.getToken({ scopes: ['z:w'] })]);
    expect(results.every((t) => t.startsWith('tok-'))).toBe(true);
    expect(calls).toBe(2);

    const failing = manager({ tokenEndpoint: `${auth.url}/t`, clientSecret: () => Promise.reject(new Error('vault sealed')) });
    const err = await rejection(failing.manager.getToken());
    expect(err).toBeInstanceOf(TokenRequestError);
    expect(err).toMatchObject({ code: 'secret_unavailable', attempts: 0 });
    expect((err as Error).cause).toBeInstanceOf(Error);
    const empty = manager({ tokenEndpoint: `${auth.url}/t`, clientSecret: () => '' });
    expect(await rejection(empty.manager.getToken())).toMatchObject({ code: 'secret_unavailable' });
    // Not in the manager's inspection, its errors or its events.
    const secretManager = manager({ tokenEndpoint: `${auth.url}/t`, clientSecret: () => 'b' });
    await secretManager.manager.getToken();
    expect(inspect(secretManager.manager, { depth: 10, showHidden: true }) + JSON.stringify(secretManager.events)).not.toContain("'b'");
    expect(() => new ServiceTokenManager({ tokenEndpoint: `${auth.url}/t`, clientId: 'x', clientSecret: 42 as never })).toThrow(AuthServerError);
  });
});
