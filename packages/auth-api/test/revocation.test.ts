import { randomBytes } from 'node:crypto';
import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyIdForSecret } from '@rw3iss/auth-server-ts';
import { TOKEN_ENTRIES_PER_CLIENT } from '../src/modules/revocations/revocations.repository.js';
import { ADMIN, AUDIENCE, ISSUER, login, TEST_SECRET, bearer, createClient, createTestContext, type TestContext } from './helpers.js';

/** The revocation feed, RFC 7009 revocation and RFC 7662 introspection, against a real database. */
let ctx: TestContext;
let now = Date.parse('2026-11-26T08:00:00.000Z');
const clock = () => now;
const secrets: Record<string, string> = {};
const ids: Record<string, string> = {};

const basic = (clientId: string) => ({ authorization: `Basic ${Buffer.from(`${clientId}:${secrets[clientId]}`).toString('base64')}` });

async function grant(clientId: string, extra: Record<string, string> = {}): Promise<string> {
  const res = await ctx.app.inject({ method: 'POST', url: '/api/v1/oauth/token', headers: basic(clientId), payload: { grant_type: 'client_credentials', ...extra } });
  expect(res.statusCode, res.body).toBe(200);
  return res.json().access_token;
}

const feed = (token: string | undefined, query = '', headers: Record<string, string> = {}) =>
  ctx.app.inject({ method: 'GET', url: `/api/v1/oauth/revocations${query}`, headers: { ...(token ? bearer(token) : {}), ...headers } });

const revoke = (clientId: string, payload: Record<string, string>) =>
  ctx.app.inject({ method: 'POST', url: '/api/v1/oauth/revoke', headers: { ...basic(clientId), 'content-type': 'application/x-www-form-urlencoded' }, payload: new URLSearchParams(payload).toString() });

const introspect = (clientId: string, token: string) =>
  ctx.app.inject({ method: 'POST', url: '/api/v1/oauth/introspect', headers: basic(clientId), payload: { token } });

/** Every page of the feed from `since` on. */
async function readAll(token: string, since?: string, limit = 200) {
  const clients: any[] = [];
  const tokens: any[] = [];
  let cursor = since;
  for (let pages = 1; ; pages++) {
    const res = await feed(token, `?limit=${limit}${cursor ? `&since=${cursor}` : ''}`);
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json();
    clients.push(...body.clients);
    tokens.push(...body.tokens);
    cursor = body.cursor;
    if (!body.has_more) return { clients, tokens, cursor: cursor!, pages };
  }
}

beforeAll(async () => {
  ctx = await createTestContext({ clock });
  for (const [clientId, scopes, audiences] of [
    ['reader-svc', ['auth:revocations:read'], []],
    ['introspector-svc', ['auth:introspect'], []],
    ['caller-svc', ['gsku:publish'], ['billing-api']],
    ['other-svc', ['gsku:read'], []],
    ['doomed-svc', ['gsku:read'], []],
    ['paused-svc', ['gsku:read'], []],
    ['flood-svc', ['gsku:read'], []],
  ] as const) {
    const created = await createClient(ctx, { client_id: clientId, name: clientId, scopes, allowed_audiences: audiences });
    secrets[clientId] = created.client_secret;
    ids[clientId] = created.client.id;
  }
});
afterAll(() => ctx?.close());

describe('GET /oauth/revocations: who may read it', () => {
  it('refuses no token (401, Bearer challenge), an admin session, a garbage token, and a token without auth:revocations:read (403)', async () => {
    const none = await feed(undefined);
    expect(none.statusCode).toBe(401);
    expect(none.headers['www-authenticate']).toBe('Bearer realm="auth-api"');
    expect(none.json()).toMatchObject({ error: 'unauthorized' });
    for (const token of [ctx.adminToken, 'not-a-jwt']) {
      const res = await feed(token);
      expect(res.statusCode).toBe(401);
      expect(res.headers['www-authenticate']).toBe('Bearer realm="auth-api", error="invalid_token"');
    }
    const noScope = await feed(await grant('caller-svc'));
    expect(noScope.statusCode).toBe(403);
    expect(noScope.json()).toMatchObject({ error: 'forbidden', message: expect.stringContaining('auth:revocations:read') });
  });

  it('answers a reader with a cursor, private caching, an ETag and 304 on If-None-Match', async () => {
    const res = await feed(await grant('reader-svc'));
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('private, no-cache');
    expect(res.headers.vary).toMatch(/authorization/i);
    expect(res.json()).toEqual({ cursor: expect.any(String), has_more: false, clients: [], tokens: [] });
    const again = await feed(await grant('reader-svc'), '', { 'if-none-match': res.headers.etag as string });
    expect(again.statusCode).toBe(304);
    expect(again.body).toBe('');
    expect(again.headers.etag).toBe(res.headers.etag);
  });

  it('a credential that lost the scope, or was disabled, cannot read it with the token it still holds', async () => {
    const created = await createClient(ctx, { client_id: 'reader-two', name: 'Reader two', scopes: ['auth:revocations:read'] });
    secrets['reader-two'] = created.client_secret;
    const token = await grant('reader-two');
    expect((await feed(token)).statusCode).toBe(200);
    const patch = await ctx.app.inject({ method: 'PATCH', url: `/api/v1/admin/m2m-clients/${created.client.id}`, headers: bearer(ctx.adminToken), payload: { scopes: [] } });
    expect(patch.statusCode).toBe(200);
    expect((await feed(token)).statusCode).toBe(403);
    await ctx.app.inject({ method: 'PATCH', url: `/api/v1/admin/m2m-clients/${created.client.id}`, headers: bearer(ctx.adminToken), payload: { status: 'disabled' } });
    expect((await feed(token)).statusCode).toBe(401);
  });

  it('refuses a cursor it did not issue and a bad limit (400 validation_failed)', async () => {
    const token = await grant('reader-svc');
    for (const query of ['?since=bm9wZQ', `?since=${Buffer.from('{"v":1,"s":"-1"}').toString('base64url')}`, '?limit=0', '?limit=201', '?other=1']) {
      const res = await feed(token, query);
      expect(res.statusCode, query).toBe(400);
      expect(res.json().error).toBe('validation_failed');
    }
  });
});

describe('credential revocation and disablement reach the feed', () => {
  it('DELETE appends a client entry refusing every token (not_before null), once', async () => {
    const reader = await grant('reader-svc');
    const before = await readAll(reader);
    const at = now;
    const res = await ctx.app.inject({ method: 'DELETE', url: `/api/v1/admin/m2m-clients/${ids['doomed-svc']}`, headers: bearer(ctx.adminToken) });
    expect(res.statusCode).toBe(204);
    await ctx.app.inject({ method: 'DELETE', url: `/api/v1/admin/m2m-clients/${ids['doomed-svc']}`, headers: bearer(ctx.adminToken) });
    const delta = await readAll(reader, before.cursor);
    expect(delta.clients).toEqual([{ client_id: 'doomed-svc', revoked_at: new Date(at).toISOString(), not_before: null }]);
    expect(delta.tokens).toEqual([]);
    // A delta after the last cursor is empty.
    expect((await readAll(reader, delta.cursor)).clients).toEqual([]);
  });

  it('disabling appends an entry refusing every token; enabling again replaces it with not_before = enable time + 1 s: tokens issued before stay inactive, tokens issued after are live', async () => {
    const oldToken = await grant('paused-svc');
    now += 5_000;
    const disabledAt = now;
    const off = await ctx.app.inject({ method: 'PATCH', url: `/api/v1/admin/m2m-clients/${ids['paused-svc']}`, headers: bearer(ctx.adminToken), payload: { status: 'disabled' } });
    expect(off.statusCode).toBe(200);
    const snapshot = await readAll(await grant('reader-svc'));
    expect(snapshot.clients).toContainEqual({ client_id: 'paused-svc', revoked_at: new Date(disabledAt).toISOString(), not_before: null });
    expect((await introspect('introspector-svc', oldToken)).json()).toEqual({ active: false });

    now += 5_000;
    const enabledAt = now;
    const on = await ctx.app.inject({ method: 'PATCH', url: `/api/v1/admin/m2m-clients/${ids['paused-svc']}`, headers: bearer(ctx.adminToken), payload: { status: 'active' } });
    expect(on.statusCode).toBe(200);
    const after = await readAll(await grant('reader-svc'), snapshot.cursor);
    expect(after.clients).toEqual([{ client_id: 'paused-svc', revoked_at: new Date(disabledAt).toISOString(), not_before: Math.floor(enabledAt / 1000) + 1 }]);
    // One entry per credential: the snapshot holds the newer one only.
    expect((await readAll(await grant('reader-svc'))).clients.filter((c) => c.client_id === 'paused-svc')).toHaveLength(1);
    expect((await introspect('introspector-svc', oldToken)).json()).toEqual({ active: false });
    // Issued in the second it was enabled again: refused too (callers grant again on a 401).
    expect((await introspect('introspector-svc', await grant('paused-svc'))).json()).toEqual({ active: false });
    now += 1_000;
    expect((await introspect('introspector-svc', await grant('paused-svc'))).json()).toMatchObject({ active: true, client_id: 'paused-svc' });
  });

  it('a client entry leaves the snapshot once every token issued before it has expired (24 h), and is pruned at the next write', async () => {
    const start = now;
    now += 86_400_000 + 61_000;
    const snapshot = await readAll(await grant('reader-svc'));
    expect(snapshot.clients.map((c) => c.client_id)).not.toContain('doomed-svc');
    // The admin session ended a day ago: sign in again.
    ctx.adminToken = await login(ctx.app, ADMIN);
    await ctx.app.inject({ method: 'PATCH', url: `/api/v1/admin/m2m-clients/${ids['other-svc']}`, headers: bearer(ctx.adminToken), payload: { status: 'disabled' } });
    const rows = await ctx.database.db.selectFrom('revocations').select(['client_id']).execute();
    expect(rows.map((r) => r.client_id)).not.toContain('doomed-svc');
    expect(rows.map((r) => r.client_id)).toContain('other-svc');
    await ctx.app.inject({ method: 'PATCH', url: `/api/v1/admin/m2m-clients/${ids['other-svc']}`, headers: bearer(ctx.adminToken), payload: { status: 'active' } });
    now = start + 86_400_000 + 120_000;
  });
});

describe('POST /oauth/revoke (RFC 7009)', () => {
  it('revokes the client\'s own token: 200, no-store; introspection says inactive at once; the feed lists its jti until exp', async () => {
    const token = await grant('caller-svc');
    const jti = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).jti;
    const reader = await grant('reader-svc');
    const before = await readAll(reader);
    const res = await revoke('caller-svc', { token, token_type_hint: 'access_token' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.json()).toEqual({});
    expect((await introspect('introspector-svc', token)).json()).toEqual({ active: false });
    const delta = await readAll(reader, before.cursor);
    expect(delta.tokens).toEqual([{ jti, client_id: 'caller-svc', exp: Math.floor(now / 1000) + 900 }]);
    // Again: idempotent, no second entry.
    expect((await revoke('caller-svc', { token })).statusCode).toBe(200);
    expect((await readAll(reader, delta.cursor)).tokens).toEqual([]);
    // Gone from the snapshot once expired.
    now += 901_000;
    expect((await readAll(await grant('reader-svc'))).tokens.map((t) => t.jti)).not.toContain(jti);
  });

  it('answers 200 and changes nothing for another client\'s token, garbage and a refresh_token hint', async () => {
    const foreign = await grant('other-svc');
    for (const payload of [{ token: foreign }, { token: 'garbage' }, { token: foreign, token_type_hint: 'refresh_token' }] as Record<string, string>[]) {
      const res = await revoke('caller-svc', payload);
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({});
    }
    expect((await introspect('introspector-svc', foreign)).json()).toMatchObject({ active: true, client_id: 'other-svc' });
  });

  it('refuses bad client authentication (401 invalid_client, Basic challenge), no token and an unknown hint (400)', async () => {
    const token = await grant('caller-svc');
    const wrong = await ctx.app.inject({ method: 'POST', url: '/api/v1/oauth/revoke', payload: { token, client_id: 'caller-svc', client_secret: 'm2msk_wrong' } });
    expect(wrong.statusCode).toBe(401);
    expect(wrong.json()).toEqual({ error: 'invalid_client', error_description: 'Client authentication failed' });
    expect(wrong.headers['www-authenticate']).toMatch(/^Basic /);
    const missing = await revoke('caller-svc', {});
    expect(missing.statusCode).toBe(400);
    expect(missing.json().error).toBe('invalid_request');
    const hint = await revoke('caller-svc', { token, token_type_hint: 'id_token' });
    expect(hint.statusCode).toBe(400);
    expect(hint.json().error).toBe('unsupported_token_type');
    expect((await introspect('introspector-svc', token)).json().active).toBe(true);
  });
});

describe('a credential revoking its own tokens in a loop', () => {
  it(`collapses past ${TOKEN_ENTRIES_PER_CLIENT} live token entries into one client entry (not_before = now + 1 s) and drops them`, async () => {
    const reader = await grant('reader-svc');
    const start = await readAll(reader);
    const earlier = await grant('flood-svc');
    // The cap's worth of live entries, as if revoked one by one.
    const exp = new Date(now + 600_000);
    await ctx.database.db
      .insertInto('revocations')
      .values(Array.from({ length: TOKEN_ENTRIES_PER_CLIENT }, (_, i) => ({ kind: 'token' as const, client_id: 'flood-svc', jti: `flood-${i}`, expires_at: exp })))
      .execute();
    const one = await grant('flood-svc');
    expect((await revoke('flood-svc', { token: one })).statusCode).toBe(200);
    const rows = await ctx.database.db.selectFrom('revocations').select(['kind']).where('client_id', '=', 'flood-svc').execute();
    expect(rows).toEqual([{ kind: 'client' }]);
    const delta = await readAll(reader, start.cursor);
    expect(delta.clients).toEqual([{ client_id: 'flood-svc', revoked_at: new Date(now).toISOString(), not_before: Math.floor(now / 1000) + 1 }]);
    const snapshot = await readAll(reader);
    expect(snapshot.tokens.filter((t) => t.client_id === 'flood-svc')).toEqual([]);
    // Every token it held is refused; one issued from the next second on is live.
    expect((await introspect('introspector-svc', earlier)).json()).toEqual({ active: false });
    expect((await introspect('introspector-svc', one)).json()).toEqual({ active: false });
    now += 1_000;
    const fresh = await grant('flood-svc');
    expect((await introspect('introspector-svc', fresh)).json()).toMatchObject({ active: true, client_id: 'flood-svc' });
    // Below the cap again: the next revocation is a token entry.
    expect((await revoke('flood-svc', { token: fresh })).statusCode).toBe(200);
    expect((await readAll(reader, delta.cursor)).tokens.map((t) => t.client_id)).toEqual(['flood-svc']);
  });
});

describe('POST /oauth/introspect (RFC 7662)', () => {
  it('a live token: its claims, token_type Bearer, no-store; a token for another allowed audience too', async () => {
    const token = await grant('caller-svc');
    const claims = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString());
    const res = await introspect('introspector-svc', token);
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.json()).toEqual({
      active: true,
      scope: 'gsku:publish',
      client_id: 'caller-svc',
      token_type: 'Bearer',
      exp: claims.exp,
      iat: claims.iat,
      nbf: claims.nbf,
      sub: 'caller-svc',
      aud: AUDIENCE,
      iss: ISSUER,
      jti: claims.jti,
    });
    const billing = await introspect('introspector-svc', await grant('caller-svc', { audience: 'billing-api' }));
    expect(billing.json()).toMatchObject({ active: true, aud: 'billing-api' });
  });

  it('{active: false} alone for expired, foreign-issuer, admin session, malformed and revoked-credential tokens', async () => {
    const expiring = await grant('caller-svc');
    const iat = Math.floor(now / 1000);
    const foreign = await new SignJWT({ token_type: 'service', client_id: 'caller-svc', scopes: ['gsku:publish'], scope: 'gsku:publish', jti: 'x' })
      .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: keyIdForSecret(TEST_SECRET) })
      .setIssuer('https://elsewhere.example')
      .setSubject('caller-svc')
      .setAudience(AUDIENCE)
      .setIssuedAt(iat)
      .setExpirationTime(iat + 600)
      .sign(new TextEncoder().encode(TEST_SECRET));
    const forged = await new SignJWT({ token_type: 'service', client_id: 'caller-svc', scopes: [] })
      .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: keyIdForSecret(TEST_SECRET) })
      .setIssuer(ISSUER)
      .setSubject('caller-svc')
      .setAudience(AUDIENCE)
      .setIssuedAt(iat)
      .setExpirationTime(iat + 600)
      .sign(randomBytes(32));
    for (const token of [foreign, forged, ctx.adminToken, 'a.b.c', 'x'.repeat(2000)]) {
      const res = await introspect('introspector-svc', token);
      expect(res.statusCode).toBe(200);
      expect(res.json()).toEqual({ active: false });
    }
    now += 906_000;
    expect((await introspect('introspector-svc', expiring)).json()).toEqual({ active: false });
  });

  it('a credential without auth:introspect gets 403 unauthorized_client; a wrong secret 401; repeated failures 429 slow_down', async () => {
    const token = await grant('caller-svc');
    const res = await introspect('caller-svc', token);
    expect(res.statusCode).toBe(403);
    expect(res.json()).toEqual({ error: 'unauthorized_client', error_description: expect.stringContaining('auth:introspect') });
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) {
      const wrong = await ctx.app.inject({ method: 'POST', url: '/api/v1/oauth/introspect', payload: { token, client_id: 'introspector-svc', client_secret: `m2msk_wrong${i}` } });
      statuses.push(wrong.statusCode);
    }
    expect(statuses.slice(0, 10)).toEqual(Array(10).fill(401));
    expect(statuses.at(-1)).toBe(429);
  });
});

describe('paging', () => {
  it('pages through many entries with limit and has_more; a new entry shows up in the next delta only', async () => {
    const reader = await grant('reader-svc');
    const start = await readAll(reader);
    const jtis: string[] = [];
    // More than 10 entries after the cursor: an ordering by text ("10" < "9") would show.
    for (let i = 0; i < 11; i++) {
      const token = await grant('caller-svc');
      jtis.push(JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).jti);
      expect((await revoke('caller-svc', { token })).statusCode).toBe(200);
    }
    const paged = await readAll(reader, start.cursor, 2);
    expect(paged.pages).toBe(6);
    expect(paged.tokens.map((t) => t.jti)).toEqual(jtis);
    const snapshot = await readAll(reader, undefined, 2);
    expect(snapshot.tokens.map((t) => t.jti)).toEqual(expect.arrayContaining(jtis));
    const token = await grant('caller-svc');
    await revoke('caller-svc', { token });
    const delta = await readAll(reader, paged.cursor, 2);
    expect(delta.tokens).toHaveLength(1);
    expect(delta.pages).toBe(1);
  });
});

describe('the metadata names both endpoints', () => {
  it('RFC 8414: revocation_endpoint, introspection_endpoint and their auth methods', async () => {
    const res = await ctx.app.inject({ method: 'GET', url: '/.well-known/oauth-authorization-server' });
    expect(res.json()).toMatchObject({
      revocation_endpoint: `${ISSUER}/api/v1/oauth/revoke`,
      revocation_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
      introspection_endpoint: `${ISSUER}/api/v1/oauth/introspect`,
      introspection_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
    });
  });
});

describe('asymmetric service tokens', () => {
  it('introspection and revocation work with SERVICE_TOKEN_ALG=ES256', async () => {
    const es = await createTestContext({ env: { SERVICE_TOKEN_ALG: 'ES256', KEY_ENCRYPTION_KEY: randomBytes(32).toString('base64') } });
    try {
      const a = await createClient(es, { client_id: 'es-caller', name: 'ES caller', scopes: [] });
      const b = await createClient(es, { client_id: 'es-introspector', name: 'ES introspector', scopes: ['auth:introspect'] });
      const auth = (id: string, secret: string) => ({ authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}` });
      const granted = await es.app.inject({ method: 'POST', url: '/api/v1/oauth/token', headers: auth('es-caller', a.client_secret), payload: { grant_type: 'client_credentials' } });
      const token = granted.json().access_token as string;
      expect(JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString()).alg).toBe('ES256');
      const ask = () => es.app.inject({ method: 'POST', url: '/api/v1/oauth/introspect', headers: auth('es-introspector', b.client_secret), payload: { token } });
      expect((await ask()).json()).toMatchObject({ active: true, client_id: 'es-caller' });
      const revoked = await es.app.inject({ method: 'POST', url: '/api/v1/oauth/revoke', headers: auth('es-caller', a.client_secret), payload: { token } });
      expect(revoked.statusCode).toBe(200);
      expect((await ask()).json()).toEqual({ active: false });
    } finally {
      await es.close();
    }
  });
});
