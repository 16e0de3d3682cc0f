import { randomBytes } from 'node:crypto';
import { calculateJwkThumbprint, createLocalJWKSet, decodeProtectedHeader, type JSONWebKeySet, jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';
import { ConfigError, loadConfig, parseKeyEncryptionKey } from '../src/config.js';
import type { DatabaseHandle } from '../src/db/connect.js';
import { createBcryptHasher } from '../src/lib/password.js';
import { createSigningKeyService, KEY_REFRESH_INTERVAL_SEC, KEY_RETIRE_LEEWAY_SEC } from '../src/modules/signing-keys/signing-keys.service.js';
import { AUDIENCE, ISSUER, bearer, createClient, createTestContext, createTestDatabase, testConfig, type TestContext } from './helpers.js';

const KEK = randomBytes(32).toString('base64');
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

async function grant(app: TestContext['app'], credential: { client_id: string; secret: string }): Promise<string> {
  const res = await app.inject({
    method: 'POST',
    url: '/api/v1/oauth/token',
    headers: FORM,
    payload: new URLSearchParams({ grant_type: 'client_credentials', client_id: credential.client_id, client_secret: credential.secret }).toString(),
  });
  expect(res.statusCode).toBe(200);
  return res.json().access_token as string;
}

async function jwksOf(app: TestContext['app']): Promise<JSONWebKeySet> {
  const res = await app.inject({ method: 'GET', url: '/.well-known/jwks.json' });
  expect(res.statusCode).toBe(200);
  return res.json() as JSONWebKeySet;
}

const verifyWith = (jwks: JSONWebKeySet, token: string, now: number) =>
  jwtVerify(token, createLocalJWKSet(jwks), { issuer: ISSUER, audience: AUDIENCE, typ: 'at+jwt', algorithms: ['ES256', 'EdDSA'], currentDate: new Date(now) });

describe('HS256 (the default): unchanged, with an empty JWKS', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext();
  });
  afterAll(() => ctx?.close());

  it('publishes an empty key set with Cache-Control, and the metadata names it', async () => {
    const res = await ctx.app.inject({ method: 'GET', url: '/.well-known/jwks.json' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('public, max-age=300');
    expect(res.headers['content-type']).toMatch(/^application\/jwk-set\+json/);
    expect(res.json()).toEqual({ keys: [] });
    const metadata = (await ctx.app.inject({ method: 'GET', url: '/.well-known/oauth-authorization-server' })).json();
    expect(metadata.jwks_uri).toBe(`${ISSUER}/.well-known/jwks.json`);
  });

  it('keys rotate is refused while SERVICE_TOKEN_ALG is HS256 (409), and nothing is created', async () => {
    const res = await ctx.app.inject({ method: 'POST', url: '/api/v1/admin/keys/rotate', headers: bearer(ctx.adminToken) });
    expect(res.statusCode).toBe(409);
    expect(res.json()).toEqual({ error: 'conflict', message: expect.stringMatching(/SERVICE_TOKEN_ALG is HS256/) });
    expect(await ctx.database.db.selectFrom('signing_keys').selectAll().execute()).toEqual([]);
  });
});

describe.each(['ES256', 'EdDSA'] as const)('SERVICE_TOKEN_ALG=%s', (alg) => {
  let ctx: TestContext;
  let credential: { client_id: string; secret: string };
  beforeAll(async () => {
    ctx = await createTestContext({ env: { SERVICE_TOKEN_ALG: alg, KEY_ENCRYPTION_KEY: KEK } });
    const created = await createClient(ctx, { client_id: `asym-${alg.toLowerCase()}`, name: 'Asym', scopes: ['gsku:publish'] });
    credential = { client_id: created.client.client_id, secret: created.client_secret };
  });
  afterAll(() => ctx?.close());

  it('signs service tokens with the published key: same header shape and claims as HS256, kid = RFC 7638 thumbprint', async () => {
    const jwks = await jwksOf(ctx.app);
    expect(jwks.keys).toHaveLength(1);
    const [jwk] = jwks.keys;
    expect(jwk).toMatchObject({ alg, use: 'sig', kty: alg === 'ES256' ? 'EC' : 'OKP' });
    expect(jwk).not.toHaveProperty('d');
    expect(jwk!.kid).toBe(await calculateJwkThumbprint(jwk!, 'sha256'));

    const token = await grant(ctx.app, credential);
    expect(decodeProtectedHeader(token)).toEqual({ alg, typ: 'at+jwt', kid: jwk!.kid });
    const { payload } = await verifyWith(jwks, token, Date.now());
    expect(Object.keys(payload).sort()).toEqual(['aud', 'client_id', 'exp', 'iat', 'iss', 'jti', 'nbf', 'scope', 'scopes', 'service_name', 'sub', 'token_type']);
    expect(payload).toMatchObject({ token_type: 'service', client_id: credential.client_id, scopes: ['gsku:publish'], scope: 'gsku:publish' });
    expect(payload.exp! - payload.iat!).toBe(900);
  });

  it('keeps the private key encrypted at rest, bound to its kid', async () => {
    const [row] = await ctx.database.db.selectFrom('signing_keys').selectAll().execute();
    expect(row).toMatchObject({ alg, state: 'current' });
    expect(row!.private_key_enc).toMatch(/^v1\.[\w-]+\.[\w-]+\.[\w-]+$/);
    // PKCS#8 DER starts with 0x30; the stored text is not DER, PEM or a JWK.
    expect(row!.private_key_enc).not.toMatch(/BEGIN|"d"|^MI/);
  });

  it('a service registers its own catalog with its asymmetric token (the server verifies its own keys)', async () => {
    const svc = await createClient(ctx, { client_id: `cat-${alg.toLowerCase()}`, name: 'Cat', scopes: [`auth:catalog:cat${alg.toLowerCase()}`] });
    const token = await grant(ctx.app, { client_id: svc.client.client_id, secret: svc.client_secret });
    expect(decodeProtectedHeader(token).alg).toBe(alg);
    const res = await ctx.app.inject({
      method: 'POST',
      url: '/api/v1/admin/permissions/register',
      headers: bearer(token),
      payload: { service: `cat${alg.toLowerCase()}`, permissions: [{ code: `cat${alg.toLowerCase()}:read`, name: 'Read' }] },
    });
    expect(res.statusCode, res.body).toBe(200);
    // A token of the right shape under a key the server does not publish is refused.
    const [h, p] = token.split('.');
    const forged = await ctx.app.inject({ method: 'POST', url: '/api/v1/admin/permissions/register', headers: bearer(`${h}.${p}.${Buffer.alloc(64).toString('base64url')}`), payload: { service: 'x', permissions: [] } });
    expect(forged.statusCode).toBe(401);
  });

  it('admin tokens are opaque sessions, never a JWT of any alg', () => {
    expect(ctx.adminToken).toMatch(/^m2mas_[A-Za-z0-9_-]{43}$/);
    expect(() => decodeProtectedHeader(ctx.adminToken)).toThrow();
  });
});

describe('key-encryption key', () => {
  it('a server whose KEY_ENCRYPTION_KEY does not open the stored key refuses to start, naming the kid only', async () => {
    const database = await createTestDatabase();
    try {
      const config = testConfig({ SERVICE_TOKEN_ALG: 'ES256', KEY_ENCRYPTION_KEY: KEK });
      const app = await buildApp({ config, database, logger: false });
      await app.close();
      const wrong = testConfig({ SERVICE_TOKEN_ALG: 'ES256', KEY_ENCRYPTION_KEY: randomBytes(32).toString('hex') });
      const failure = await buildApp({ config: wrong, database, logger: false }).then(
        () => undefined,
        (err: Error) => err,
      );
      expect(failure?.name).toBe('KeyDecryptionError');
      expect(failure?.message).toMatch(/^signing key [\w-]{43} cannot be decrypted with KEY_ENCRYPTION_KEY/);
    } finally {
      await database.close();
    }
  });

  it('is required in production with an asymmetric alg, validated everywhere, optional with HS256', () => {
    const prod = { NODE_ENV: 'production', DATABASE_URL: 'postgres://db/auth', JWT_ISSUER: 'https://auth.example.com', JWT_ACCESS_SECRET: 'kR2v9Qm4Zx7Lp1Wn8Ty3Bc6Hd0Fg5Js2Ua9Ve4Xi7Ok' };
    const problems = (env: Record<string, string>) => {
      try {
        loadConfig(env, undefined, () => KEK);
        return [];
      } catch (err) {
        return (err as ConfigError).problems;
      }
    };
    expect(problems({ ...prod, SERVICE_TOKEN_ALG: 'ES256' })).toEqual([expect.stringMatching(/^KEY_ENCRYPTION_KEY: is required when SERVICE_TOKEN_ALG=ES256/)]);
    expect(problems({ ...prod, SERVICE_TOKEN_ALG: 'EdDSA', KEY_ENCRYPTION_KEY: 'changeme' })).toEqual([expect.stringMatching(/^KEY_ENCRYPTION_KEY: must be 32 random bytes/)]);
    expect(problems({ ...prod, SERVICE_TOKEN_ALG: 'EdDSA', KEY_ENCRYPTION_KEY: '0'.repeat(64) })).toEqual([expect.stringMatching(/^KEY_ENCRYPTION_KEY: looks like a placeholder/)]);
    expect(problems({ ...prod, SERVICE_TOKEN_ALG: 'RS256' })).toEqual([expect.stringMatching(/^SERVICE_TOKEN_ALG: must be HS256, ES256 or EdDSA/)]);
    expect(problems({ ...prod, SERVICE_TOKEN_ALG: 'ES256', JWKS_MAX_AGE: '600', SIGNING_KEY_PUBLISH_DELAY: '60', KEY_ENCRYPTION_KEY: KEK })).toEqual([
      expect.stringMatching(/^SIGNING_KEY_PUBLISH_DELAY: must be at least JWKS_MAX_AGE/),
    ]);
    expect(loadConfig({ ...prod, SERVICE_TOKEN_ALG: 'ES256', KEY_ENCRYPTION_KEY: KEK }).serviceTokens).toEqual({
      alg: 'ES256',
      keyEncryptionKey: Buffer.from(KEK, 'base64'),
      jwksMaxAgeSec: 300,
      publishDelaySec: 600,
    });
    expect(loadConfig(prod).serviceTokens.keyEncryptionKey).toBeUndefined();
    // Development: the generated key from the data folder.
    expect(loadConfig({ JWT_ACCESS_SECRET: prod.JWT_ACCESS_SECRET, SERVICE_TOKEN_ALG: 'EdDSA' }, undefined, () => KEK).serviceTokens.keyEncryptionKey).toEqual(Buffer.from(KEK, 'base64'));
    // Accepted spellings: hex, base64, base64url.
    const bytes = randomBytes(32);
    for (const text of [bytes.toString('hex'), bytes.toString('base64'), bytes.toString('base64url')]) expect(parseKeyEncryptionKey(text)).toEqual({ key: bytes });
    expect(parseKeyEncryptionKey(randomBytes(16).toString('base64'))).toHaveProperty('problem');
  });
});

describe('rotation: publish, switch, retire, with no token failing verification', () => {
  let database: DatabaseHandle;
  let now = Date.parse('2026-11-26T10:00:00Z');
  const clock = () => now;
  const apps: TestContext['app'][] = [];
  let credential: { client_id: string; secret: string };
  let adminToken: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    const config = testConfig({ SERVICE_TOKEN_ALG: 'ES256', KEY_ENCRYPTION_KEY: KEK });
    const hasher = createBcryptHasher(4);
    const { createAdminUser } = await import('../src/modules/admin-auth/admin-auth.service.js');
    await createAdminUser(database.db, hasher, 'keys-admin@example.com', 'keys admin password 1', { id: null, label: 'test', ip: null });
    // Two instances on one database, started at the same moment: one first key between them.
    apps.push(...(await Promise.all([0, 1].map(() => buildApp({ config, database, hasher, clock, logger: false })))));
    const login = await apps[0]!.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email: 'keys-admin@example.com', password: 'keys admin password 1' } });
    adminToken = login.json().tokens.access_token;
    const res = await apps[0]!.inject({ method: 'POST', url: '/api/v1/admin/m2m-clients', headers: bearer(adminToken), payload: { client_id: 'rotating-svc', name: 'Rotating' } });
    credential = { client_id: 'rotating-svc', secret: res.json().client_secret };
  });
  afterAll(async () => {
    for (const app of apps) await app.close();
    await database?.close();
  });

  const kidOf = (token: string) => decodeProtectedHeader(token).kid;

  it('the two instances sign with the same key', async () => {
    const rows = await database.db.selectFrom('signing_keys').select(['kid', 'state']).execute();
    expect(rows).toEqual([{ kid: expect.any(String), state: 'current' }]);
    const tokens = await Promise.all(apps.map((app) => grant(app, credential)));
    expect(tokens.map(kidOf)).toEqual([rows[0]!.kid, rows[0]!.kid]);
  });

  it('walks next → current → retiring → retired; a verifier refreshing its JWKS at max-age never fails', async () => {
    const [a, b] = apps as [TestContext['app'], TestContext['app']];
    const first = (await database.db.selectFrom('signing_keys').select('kid').executeTakeFirstOrThrow()).kid;
    const oldToken = await grant(a, credential);
    // A verifier that fetched the JWKS before the rotation and keeps it for max-age (300 s).
    let verifierJwks = await jwksOf(a);
    let verifierFetchedAt = now;

    const rotated = await a.inject({ method: 'POST', url: '/api/v1/admin/keys/rotate', headers: bearer(adminToken) });
    expect(rotated.statusCode).toBe(201);
    const next = rotated.json().key;
    expect(next).toMatchObject({ state: 'next', alg: 'ES256', activated_at: null });
    expect(Date.parse(next.activates_at) - now).toBe((600 + KEY_REFRESH_INTERVAL_SEC) * 1000);
    // Idempotent while scheduled, from either instance.
    const again = await b.inject({ method: 'POST', url: '/api/v1/admin/keys/rotate', headers: bearer(adminToken) });
    expect(again.statusCode).toBe(200);
    expect(again.json()).toEqual({ created: false, key: next });

    // Published at once by the instance that rotated; still signing with the first key.
    expect((await jwksOf(a)).keys.map((k) => k.kid).sort()).toEqual([first, next.kid].sort());
    expect(kidOf(await grant(a, credential))).toBe(first);

    // Step through time: every 30 s each instance refreshes and the verifier refetches when its copy is 300 s old.
    const seen = new Set<string>();
    const retireBy = now + (600 + 30 + 30 + 900 + KEY_RETIRE_LEEWAY_SEC + 60) * 1000;
    const tokens: string[] = [oldToken];
    while (now < retireBy) {
      now += KEY_REFRESH_INTERVAL_SEC * 1000;
      // What each instance's timer does every KEY_REFRESH_INTERVAL_SEC.
      for (const app of apps) await app.signingKeys.refresh();
      if (now - verifierFetchedAt >= 300_000) {
        verifierJwks = await jwksOf(a);
        verifierFetchedAt = now;
      }
      tokens.push(await grant(a, credential), await grant(b, credential));
      for (const token of tokens) {
        const payload = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString());
        if (payload.exp * 1000 <= now) continue;
        await expect(verifyWith(verifierJwks, token, now)).resolves.toBeDefined();
        seen.add(kidOf(token)!);
      }
    }
    expect(seen).toEqual(new Set([first, next.kid]));
    const states = await database.db.selectFrom('signing_keys').select(['kid', 'state', 'private_key_enc']).orderBy('state', 'desc').execute();
    expect(states).toEqual([
      { kid: first, state: 'retired', private_key_enc: null },
      { kid: next.kid, state: 'current', private_key_enc: expect.any(String) },
    ]);
    expect((await jwksOf(a)).keys.map((k) => k.kid)).toEqual([next.kid]);
    expect(kidOf(await grant(a, credential))).toBe(next.kid);

    const audit = await database.db.selectFrom('audit_log').select(['actor', 'action', 'target_id']).where('action', 'like', 'signing_key.%').orderBy('id').execute();
    expect(audit).toEqual([
      { actor: 'auth-api', action: 'signing_key.activate', target_id: first },
      { actor: 'keys-admin@example.com', action: 'signing_key.rotate', target_id: next.kid },
      { actor: 'auth-api', action: 'signing_key.activate', target_id: next.kid },
      { actor: 'auth-api', action: 'signing_key.retire', target_id: first },
    ]);
  });
});

describe('concurrent rotations and first starts', () => {
  let database: DatabaseHandle;
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(() => database?.close());

  const service = () =>
    createSigningKeyService({ db: database.db, clock: Date.now, alg: 'EdDSA', keyEncryptionKey: Buffer.from(KEK, 'base64'), serviceTokenTtlSec: 900, publishDelaySec: 600 });
  const actor = { id: null, label: 'cli', ip: null };

  it('instances starting together create one current key; rotating together schedules one next key', async () => {
    const instances = Array.from({ length: 4 }, service);
    await Promise.all(instances.map((s) => s.refresh()));
    const signers = instances.map((s) => s.signer()!.kid);
    expect(new Set(signers).size).toBe(1);
    expect(await database.db.selectFrom('signing_keys').select('state').execute()).toEqual([{ state: 'current' }]);

    const results = await Promise.all(instances.map((s) => s.rotate(actor)));
    expect(results.filter((r) => r.created)).toHaveLength(1);
    expect(new Set(results.map((r) => r.key.kid)).size).toBe(1);
    const states = (await database.db.selectFrom('signing_keys').select('state').execute()).map((r) => r.state).sort();
    expect(states).toEqual(['current', 'next']);
    const audit = await database.db.selectFrom('audit_log').select('action').where('action', '=', 'signing_key.rotate').execute();
    expect(audit).toHaveLength(1);
  });

  it('the database itself refuses a second current key', async () => {
    const [current] = await database.db.selectFrom('signing_keys').select('kid').where('state', '=', 'current').execute();
    const next = await database.db.selectFrom('signing_keys').select('kid').where('state', '=', 'next').executeTakeFirstOrThrow();
    await expect(database.db.updateTable('signing_keys').set({ state: 'current' }).where('kid', '=', next.kid).execute()).rejects.toThrow();
    expect(current).toBeDefined();
  });
});

describe('admin key routes', () => {
  let ctx: TestContext;
  beforeAll(async () => {
    ctx = await createTestContext({ env: { SERVICE_TOKEN_ALG: 'EdDSA', KEY_ENCRYPTION_KEY: KEK } });
  });
  afterAll(() => ctx?.close());

  it('are system_admin only', async () => {
    for (const [method, url] of [['GET', '/api/v1/admin/keys'], ['POST', '/api/v1/admin/keys/rotate']] as const) {
      expect((await ctx.app.inject({ method, url })).statusCode).toBe(401);
      expect((await ctx.app.inject({ method, url, headers: bearer(ctx.userToken) })).statusCode).toBe(403);
    }
    expect(await ctx.database.db.selectFrom('signing_keys').select('state').execute()).toEqual([{ state: 'current' }]);
  });

  it('list every key without private material', async () => {
    const res = await ctx.app.inject({ method: 'GET', url: '/api/v1/admin/keys', headers: bearer(ctx.adminToken) });
    expect(res.statusCode).toBe(200);
    const { keys } = res.json();
    expect(keys).toEqual([
      {
        kid: expect.any(String),
        alg: 'EdDSA',
        state: 'current',
        created_at: expect.any(String),
        activates_at: expect.any(String),
        activated_at: expect.any(String),
        retire_at: null,
        retired_at: null,
      },
    ]);
    expect(res.body).not.toMatch(/private|"d"/);
  });
});
