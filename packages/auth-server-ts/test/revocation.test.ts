import { afterEach, describe, expect, it } from 'vitest';
import { createServiceTokenVerifier, type RevocationEvent, TokenVerificationError } from '../src/index.js';
import { AUDIENCE, closedPortUrl, ISSUER, SECRET, type Reply, type SeenRequest, signToken, startServer, type TestServer, until } from './helpers.js';

/** The verifier's `revocation` option against a fake feed: refusal, paging, cursor, 304, auth failure, unreachable policy. */
const servers: TestServer[] = [];
const verifiers: { close(): void }[] = [];
afterEach(async () => {
  for (const v of verifiers.splice(0)) v.close();
  for (const s of servers.splice(0)) await s.close();
});

const page = (body: { cursor: string; has_more?: boolean; clients?: unknown[]; tokens?: unknown[] }, headers?: Record<string, string>): Reply => ({
  status: 200,
  headers,
  body: { has_more: false, clients: [], tokens: [], ...body },
});

async function feedServer(handler: (request: SeenRequest, n: number) => Reply | Promise<Reply>) {
  const server = await startServer(handler);
  servers.push(server);
  return server;
}

function verifierFor(url: string, revocation: Record<string, unknown> = {}) {
  const events: RevocationEvent[] = [];
  const verifier = createServiceTokenVerifier({
    secret: SECRET,
    issuer: ISSUER,
    audience: AUDIENCE,
    revocation: { url: `${url}/feed`, token: () => 'feed-token', intervalMs: 100, onEvent: (e) => events.push(e), ...revocation },
  });
  verifiers.push(verifier);
  return { verifier, events };
}

const reasonOf = (promise: Promise<unknown>) =>
  promise.then(
    () => 'accepted',
    (err: unknown) => (err instanceof TokenVerificationError ? `${err.code}/${err.reason}` : String(err)),
  );

describe('revocation option', () => {
  it('refuses a listed jti, every token of a revoked client (not_before null), and once enabled again tokens issued before not_before, also once cached', async () => {
    const nowSec = Math.floor(Date.now() / 1000);
    const revokedAt = new Date().toISOString();
    let state: 'live' | 'revoked' | 'enabled' = 'live';
    const server = await feedServer(() =>
      page(
        state === 'revoked'
          ? { cursor: 'c2', clients: [{ client_id: 'billing-svc', revoked_at: revokedAt, not_before: null }], tokens: [{ jti: 'jti-listed', client_id: 'other', exp: nowSec + 900 }] }
          : state === 'enabled'
            ? { cursor: 'c3', clients: [{ client_id: 'billing-svc', revoked_at: revokedAt, not_before: nowSec + 2 }] }
            : { cursor: 'c1' },
      ),
    );
    const { verifier } = verifierFor(server.url, { intervalMs: 600_000 });
    const old = await signToken();
    const listed = await signToken({ claims: { client_id: 'other', sub: 'other', jti: 'jti-listed' } });
    const later = await signToken({ now: Date.now() + 3000 });
    await verifier.syncRevocations();
    expect(await reasonOf(verifier.verify(old))).toBe('accepted');
    expect(await reasonOf(verifier.verify(listed))).toBe('accepted');
    expect(await reasonOf(verifier.verify(later))).toBe('accepted');
    state = 'revoked';
    await verifier.syncRevocations();
    expect(await reasonOf(verifier.verify(old))).toBe('invalid_token/revoked');
    expect(await reasonOf(verifier.verify(listed))).toBe('invalid_token/revoked');
    // Revoked: every token, also one whose iat is after revoked_at (minted while the revocation committed).
    expect(await reasonOf(verifier.verify(later))).toBe('invalid_token/revoked');
    state = 'enabled';
    await verifier.syncRevocations();
    // The later entry replaces the earlier one: issued after not_before is live, before stays refused.
    expect(await reasonOf(verifier.verify(later))).toBe('accepted');
    expect(await reasonOf(verifier.verify(old))).toBe('invalid_token/revoked');
    // The feed was read with the token, and each read asked for what came after the previous cursor.
    expect(server.requests[0]!.headers.authorization).toBe('Bearer feed-token');
    // (The poll the verifier starts by itself may race the first syncRevocations(): then 'c1' is asked twice.)
    const sinces = server.requests.map((r) => new URL(r.url, 'http://x').searchParams.get('since'));
    expect(sinces.filter((since, i) => i === 0 || since !== sinces[i - 1])).toEqual([null, 'c1', 'c2']);
  });

  it('reads every page (has_more) in one sync, and sends If-None-Match for an unchanged delta (304)', async () => {
    const server = await feedServer((request) => {
      const since = new URL(request.url, 'http://x').searchParams.get('since');
      if (since === null) return page({ cursor: 'p1', has_more: true, tokens: [{ jti: 'a', client_id: 'x', exp: 2e9 }] });
      if (since === 'p1') return page({ cursor: 'p2', tokens: [{ jti: 'b', client_id: 'x', exp: 2e9 }] }, { etag: '"e2"' });
      if (request.headers['if-none-match'] === '"e2"') return { status: 304, headers: { etag: '"e2"' }, body: '' };
      return page({ cursor: 'p2' }, { etag: '"e2"' });
    });
    const { verifier } = verifierFor(server.url, { intervalMs: 60_000 });
    await verifier.syncRevocations();
    expect(server.requests).toHaveLength(2);
    expect(await reasonOf(verifier.verify(await signToken({ claims: { jti: 'b' } })))).toBe('invalid_token/revoked');
    await verifier.syncRevocations();
    expect(server.requests[2]!.headers['if-none-match']).toBe('"e2"');
  });

  it('a 304 to a request without If-None-Match is a failed read, never an empty copy made ready', async () => {
    let broken = true;
    const server = await feedServer(() => (broken ? { status: 304, body: '' } : page({ cursor: 'c', tokens: [{ jti: 'gone', client_id: 'x', exp: 2e9 }] })));
    const { verifier, events } = verifierFor(server.url, { intervalMs: 60_000 });
    await expect(verifier.syncRevocations()).rejects.toThrow(/304/);
    expect(await reasonOf(verifier.verify(await signToken({ claims: { jti: 'gone' } })))).toBe('invalid_token/revocation_unavailable');
    expect(events.some((e) => e.type === 'ready')).toBe(false);
    broken = false;
    await verifier.syncRevocations();
    expect(await reasonOf(verifier.verify(await signToken({ claims: { jti: 'gone' } })))).toBe('invalid_token/revoked');
  });

  it('feed down, default policy: keeps the last copy and keeps verifying; reports sync_failed, then recovered', async () => {
    let up = true;
    const server = await feedServer(() => (up ? page({ cursor: 'c', tokens: [{ jti: 'gone', client_id: 'x', exp: 2e9 }] }) : { status: 503 }));
    const { verifier, events } = verifierFor(server.url);
    await verifier.syncRevocations();
    up = false;
    await until(() => events.some((e) => e.type === 'sync_failed'));
    expect(await reasonOf(verifier.verify(await signToken()))).toBe('accepted');
    expect(await reasonOf(verifier.verify(await signToken({ claims: { jti: 'gone' } })))).toBe('invalid_token/revoked');
    up = true;
    await until(() => events.some((e) => e.type === 'recovered'));
    expect(events[0]).toEqual({ type: 'ready', clients: 0, tokens: 1 });
  });

  it('failClosedAfterMs: refuses every token (revocation_unavailable) once the feed is unreachable that long, and recovers', async () => {
    let up = false;
    const server = await feedServer(() => (up ? page({ cursor: 'c' }) : { status: 500 }));
    const { verifier, events } = verifierFor(server.url, { failClosedAfterMs: 300 });
    const token = await signToken();
    // Never read: refused from boot.
    expect(await reasonOf(verifier.verify(token))).toBe('invalid_token/revocation_unavailable');
    await until(() => events.some((e) => e.type === 'fail_closed'));
    expect(await reasonOf(verifier.verify(token))).toBe('invalid_token/revocation_unavailable');
    up = true;
    await verifier.syncRevocations();
    expect(await reasonOf(verifier.verify(token))).toBe('accepted');
  });

  it('a token source that stops answering is a failed sync (bounded by timeoutMs): sync_failed, then fail_closed', async () => {
    const server = await feedServer(() => page({ cursor: 'c' }));
    let hang = false;
    const { verifier, events } = verifierFor(server.url, {
      token: () => (hang ? new Promise<string>(() => {}) : 'feed-token'),
      timeoutMs: 100,
      failClosedAfterMs: 300,
    });
    const token = await signToken();
    expect(await reasonOf(verifier.verify(token))).toBe('accepted');
    hang = true;
    await until(() => events.some((e) => e.type === 'fail_closed'));
    const failed = events.find((e) => e.type === 'sync_failed');
    expect(failed?.type === 'sync_failed' && failed.error.message).toMatch(/token source did not answer within 100 ms/);
    expect(await reasonOf(verifier.verify(token))).toBe('invalid_token/revocation_unavailable');
    hang = false;
    await until(() => events.some((e) => e.type === 'recovered'));
    expect(await reasonOf(verifier.verify(token))).toBe('accepted');
  });

  it('before the first complete sync, verify waits for it: a revoked credential\'s token is refused once it lands, not accepted meanwhile', async () => {
    const revokedAt = new Date().toISOString();
    const server = await feedServer(async () => {
      await new Promise((r) => setTimeout(r, 300));
      return page({ cursor: 'c', clients: [{ client_id: 'billing-svc', revoked_at: revokedAt, not_before: null }] });
    });
    const { verifier, events } = verifierFor(server.url, { timeoutMs: 5_000 });
    const token = await signToken();
    // Both join the one poll under way.
    const outcomes = await Promise.all([reasonOf(verifier.verify(token)), reasonOf(verifier.verify(token))]);
    expect(outcomes).toEqual(['invalid_token/revoked', 'invalid_token/revoked']);
    expect(server.requests).toHaveLength(1);
    expect(events[0]).toEqual({ type: 'ready', clients: 1, tokens: 0 });
    expect(await reasonOf(verifier.verify(await signToken({ claims: { client_id: 'other', sub: 'other' } })))).toBe('accepted');
  });

  for (const [name, reply] of [
    ['answers 500', { status: 500, body: {} }],
    ['answers garbage', { status: 200, body: { cursor: 1 } }],
    ['never answers', 'hang'],
  ] as const) {
    it(`fails closed until the first complete sync: a feed that ${name} gets every token refused (revocation_unavailable), without failClosedAfterMs`, async () => {
      const server = await feedServer(() => reply as Reply);
      const { verifier, events } = verifierFor(server.url, { timeoutMs: 200 });
      const token = await signToken();
      expect(await reasonOf(verifier.verify(token))).toBe('invalid_token/revocation_unavailable');
      await until(() => events.some((e) => e.type === 'sync_failed'));
      expect(await reasonOf(verifier.verify(token))).toBe('invalid_token/revocation_unavailable');
      expect(events.find((e) => e.type === 'sync_failed')).toMatchObject({ staleMs: Number.POSITIVE_INFINITY });
    });
  }

  it('fails closed until the first complete sync: an unreachable feed, then a working one', async () => {
    const down = verifierFor(await closedPortUrl(), { timeoutMs: 200 });
    const token = await signToken();
    expect(await reasonOf(down.verifier.verify(token))).toBe('invalid_token/revocation_unavailable');
    let up = false;
    const server = await feedServer(() => (up ? page({ cursor: 'c' }) : { status: 503 }));
    const { verifier } = verifierFor(server.url, { timeoutMs: 200 });
    expect(await reasonOf(verifier.verify(token))).toBe('invalid_token/revocation_unavailable');
    up = true;
    await verifier.syncRevocations();
    expect(await reasonOf(verifier.verify(token))).toBe('accepted');
  });

  it('a refused feed token (401) is reported and invalidated at its source; an unreachable feed too', async () => {
    const server = await feedServer(() => ({ status: 401, body: { error: 'unauthorized' } }));
    const invalidated: string[] = [];
    const source = { getToken: async () => 'stale-token', invalidate: (t: string) => invalidated.push(t) };
    const { verifier, events } = verifierFor(server.url, { token: source });
    await expect(verifier.syncRevocations()).rejects.toThrow(/401/);
    expect(invalidated).toContain('stale-token');
    expect(events.find((e) => e.type === 'sync_failed')).toMatchObject({ error: expect.any(Error) });
    const down = verifierFor(await closedPortUrl());
    await expect(down.verifier.syncRevocations()).rejects.toThrow();
  });

  it('close() stops polling; options are checked', async () => {
    const server = await feedServer(() => page({ cursor: 'c' }));
    const { verifier } = verifierFor(server.url);
    await verifier.syncRevocations();
    verifier.close();
    const seen = server.requests.length;
    await new Promise((r) => setTimeout(r, 350));
    expect(server.requests.length).toBe(seen);
    await expect(verifier.syncRevocations()).rejects.toThrow(/closed/);
    const make = (revocation: unknown) => () => createServiceTokenVerifier({ secret: SECRET, issuer: ISSUER, audience: AUDIENCE, revocation: revocation as never });
    expect(make({})).toThrow(/revocation.token/);
    expect(make({ token: () => 't', url: 'http://auth.example.com/feed' })).toThrow(/plain http/);
    expect(make({ token: () => 't', intervalMs: 0 })).toThrow(/intervalMs/);
    // Past 2^31 − 1 ms setTimeout fires at once: the feed would be polled in a loop.
    expect(make({ token: () => 't', intervalMs: 2 ** 31 })).toThrow(/intervalMs/);
    expect(make({ token: () => 't', timeoutMs: 2 ** 31 })).toThrow(/timeoutMs/);
    expect(make({ token: () => 't', failClosedAfterMs: -1 })).toThrow(/failClosedAfterMs/);
    // Default URL from the issuer.
    const derived = createServiceTokenVerifier({ secret: SECRET, issuer: ISSUER, audience: AUDIENCE, revocation: { token: () => 't' } });
    derived.close();
  });
});
