// The SDK against a real auth-api over a real socket (PGlite in memory).
import { execFile } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, PLAIN_USER, createTestContext, type TestContext } from '../../auth-api/test/helpers.js';
import { markedBlocks } from '../../auth-api/test/readme-blocks.js';
import { freePort } from '../../auth-api/test/process-helpers.js';
import { createAuthClient, createMemoryStorage, type AuthClient, type TokenStorage } from '../src/index.js';
import { failure } from './helpers.js';

let ctx: TestContext;
let origin: string;
let apiBaseUrl: string;

beforeAll(async () => {
  // The server's issuer is the URL it is reached at, as ready() checks (RFC 8414 §3.3).
  const port = await freePort();
  origin = `http://127.0.0.1:${port}`;
  apiBaseUrl = `${origin}/api/v1`;
  ctx = await createTestContext({ env: { JWT_ISSUER: origin } });
  await ctx.app.listen({ port, host: '127.0.0.1' });
});
afterAll(() => ctx?.close());

async function tokenFor(clientId: string, clientSecret: string) {
  const res = await fetch(`${apiBaseUrl}/oauth/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret }).toString(),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function signedIn(who: { email: string; password: string }, storage: TokenStorage = createMemoryStorage()): Promise<AuthClient> {
  const client = createAuthClient({ apiBaseUrl, appCode: 'auth-client-test', storage });
  await client.auth.login(who);
  return client;
}

describe('the README quick start, run from the README', () => {
  it('creates, finds, disables and revokes inventory-svc, as the database shows', async () => {
    const readme = readFileSync(fileURLToPath(new URL('../README.md', import.meta.url)), 'utf8');
    const [quickStart] = markedBlocks(readme, 'ts');
    expect(quickStart).toContain("client_id: 'inventory-svc'");
    // Inside the package folder, so '@rw3iss/auth-client' resolves to this package (self-reference) as installed.
    const file = fileURLToPath(new URL(`../.readme-quick-start-${process.pid}.ts`, import.meta.url));
    writeFileSync(file, quickStart!.replaceAll('http://127.0.0.1:3000', origin));
    try {
      const tsx = fileURLToPath(new URL('../../../node_modules/tsx/dist/cli.mjs', import.meta.url));
      const { stdout } = await promisify(execFile)(process.execPath, [tsx, file], { env: { ...process.env, ADMIN_PASSWORD: ADMIN.password } });
      expect(stdout).toMatch(/^store this secret now, it is shown once: m2msk_\S+$/m);
      expect(stdout).toMatch(/^\d+ \d+ true$/m);
    } finally {
      rmSync(file, { force: true });
    }
    const row = await ctx.database.db.selectFrom('m2m_clients').selectAll().where('client_id', '=', 'inventory-svc').executeTakeFirstOrThrow();
    expect(row).toMatchObject({ status: 'disabled', scopes: ['gsku:read'], allowed_audiences: ['catalog-api'], revoked_at: expect.any(Date) });
  });
});

describe('the documented example, as written', () => {
  it('creates, lists, gets and revokes a credential whose secret obtains a token', async () => {
    const client = createAuthClient({ apiBaseUrl, appCode: 'auth-client-demo' });
    await client.ready();
    await client.auth.login({ email: 'admin@example.com', password: ADMIN.password });
    const { client: svc, client_secret } = await client.services.create({
      client_id: 'billing-svc',
      name: 'Billing backend',
      description: 'Issues invoices; needs publish scope on gsku',
      scopes: ['gsku:publish'],
    });
    const services = await client.services.list(); // every non-revoked credential
    const one = await client.services.get(svc.id);
    await client.services.revoke(svc.id); // soft-revoke

    expect(svc).toMatchObject({
      id: expect.stringMatching(/^[0-9a-f-]{36}$/),
      client_id: 'billing-svc',
      name: 'Billing backend',
      description: 'Issues invoices; needs publish scope on gsku',
      scopes: ['gsku:publish'],
      status: 'active',
      revoked_at: null,
    });
    expect(svc).not.toHaveProperty('client_secret_hash');
    expect(client_secret).toEqual(expect.any(String));
    expect(client_secret.length).toBeGreaterThanOrEqual(40);

    expect(Array.isArray(services)).toBe(true);
    expect(services.find((s) => s.id === svc.id)).toEqual(svc);
    expect(one).toEqual(svc);

    // Revoked: gone from the list, still readable, and its secret no longer works.
    expect((await client.services.list()).some((s) => s.id === svc.id)).toBe(false);
    const revoked = await client.services.get(svc.id);
    expect(revoked.revoked_at).toEqual(expect.any(String));
    expect(Number.isNaN(Date.parse(revoked.revoked_at!))).toBe(false);
    await expect(client.services.revoke(svc.id)).resolves.toBeUndefined(); // idempotent
    expect((await tokenFor('billing-svc', client_secret)).body).toMatchObject({ error: 'invalid_client' });
  });

  it('the secret from create() obtains a service token at POST /oauth/token', async () => {
    const client = await signedIn(ADMIN);
    const { client: svc, client_secret } = await client.services.create({ client_id: 'grant-svc', name: 'Grant', scopes: ['gsku:publish'] });
    const { status, body } = await tokenFor(svc.client_id, client_secret);
    expect(status).toBe(200);
    expect(body).toMatchObject({ token_type: 'Bearer', scope: 'gsku:publish', access_token: expect.any(String), expires_in: expect.any(Number) });
    expect((await tokenFor(svc.client_id, `${client_secret}x`)).status).toBe(401);
  });
});

describe('ready()', () => {
  it('resolves to the RFC 8414 metadata of the server root', async () => {
    const metadata = await createAuthClient({ apiBaseUrl, appCode: 'x' }).ready();
    expect(metadata.grant_types_supported).toEqual(['client_credentials']);
    expect(metadata.token_endpoint).toMatch(/\/api\/v1\/oauth\/token$/);
  });

  it('tolerates a trailing slash in apiBaseUrl', async () => {
    const client = createAuthClient({ apiBaseUrl: `${apiBaseUrl}/`, appCode: 'x' });
    await expect(client.ready()).resolves.toMatchObject({ issuer: expect.any(String) });
    await client.auth.login(ADMIN);
    expect((await client.auth.me()).user.email).toBe(ADMIN.email);
  });

  it('rejects another API version as incompatible_server', async () => {
    const err = await failure(createAuthClient({ apiBaseUrl: `${origin}/api/v2`, appCode: 'x' }).ready());
    expect(err.code).toBe('incompatible_server');
  });

  it('rejects a server whose issuer is another origin (JWT_ISSUER not this URL)', async () => {
    const other = await createTestContext();
    try {
      await other.app.listen({ port: 0, host: '127.0.0.1' });
      const url = `http://127.0.0.1:${(other.app.server.address() as AddressInfo).port}`;
      const err = await failure(createAuthClient({ apiBaseUrl: `${url}/api/v1`, appCode: 'x' }).ready());
      expect(err.code).toBe('incompatible_server');
      expect(err.message).toContain(`names the issuer "http://auth.test", not ${url}`);
    } finally {
      await other.close();
    }
  });

  it('rejects a server without the metadata as incompatible_server', async () => {
    const err = await failure(createAuthClient({ apiBaseUrl: `${origin}/elsewhere/api/v1`, appCode: 'x' }).ready());
    expect(err.code).toBe('incompatible_server');
    expect(err.status).toBe(404);
  });

  it('reports an unreachable server as network_error', async () => {
    // A port that was just free: nothing listens there.
    const { createServer } = await import('node:net');
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const err = await failure(createAuthClient({ apiBaseUrl: `http://127.0.0.1:${port}/api/v1`, appCode: 'x' }).ready());
    expect(err.code).toBe('network_error');
    expect(err.status).toBe(0);
    expect(err.cause).toBeInstanceOf(Error);
  });
});

describe('auth', () => {
  it('login returns the user and token; me() answers with the stored token; logout forgets it', async () => {
    const storage = createMemoryStorage();
    const client = createAuthClient({ apiBaseUrl, appCode: 'x', storage });
    const login = await client.auth.login(ADMIN);
    expect(login.tokens.token_type).toBe('Bearer');
    expect(login.roles).toContain('system_admin');
    expect(storage.get()).toBe(login.tokens.access_token);

    const me = await client.auth.me();
    expect(me.user).toMatchObject({ email: ADMIN.email, roles: ['system_admin'] });

    const copy = storage.get()!;
    await client.auth.logout();
    expect(storage.get()).toBeUndefined();
    const err = await failure(client.auth.me());
    expect([err.code, err.status]).toEqual(['unauthorized', 401]);
    // The session ended on the server: a copy of the token no longer works.
    const res = await fetch(`${apiBaseUrl}/auth/me`, { headers: { authorization: `Bearer ${copy}` } });
    expect(res.status).toBe(401);
    await expect(client.auth.logout()).resolves.toBeUndefined();
  });

  it('revokeAllSessions() signs out everywhere; changePassword() ends the other sessions only', async () => {
    const email = 'rotating@example.com';
    const first = 'first long passphrase';
    const second = 'second long passphrase';
    await ctx.database.db
      .insertInto('users')
      .values({ id: crypto.randomUUID(), email, password_hash: await ctx.hasher.hash(first), roles: ['system_admin'], updated_at: new Date() })
      .execute();
    const here = await signedIn({ email, password: first });
    const there = await signedIn({ email, password: first });

    await here.auth.changePassword({ current_password: first, new_password: second });
    expect((await here.auth.me()).user.email).toBe(email);
    expect((await failure(there.auth.me())).code).toBe('unauthorized');
    const wrong = await failure(here.auth.changePassword({ current_password: first, new_password: 'third long passphrase' }));
    expect([wrong.code, wrong.details?.[0]?.path]).toEqual(['validation_failed', 'body.current_password']);

    const elsewhere = await signedIn({ email, password: second });
    expect(await here.auth.revokeAllSessions()).toEqual({ revoked_count: 2 });
    expect((await failure(elsewhere.auth.me())).code).toBe('unauthorized');
    expect((await failure(here.auth.me())).code).toBe('unauthorized');
  });

  it('a wrong password is unauthorized and keeps the current session', async () => {
    const storage = createMemoryStorage();
    const client = await signedIn(ADMIN, storage);
    const before = storage.get();
    const err = await failure(client.auth.login({ email: ADMIN.email, password: 'wrong password' }));
    expect([err.code, err.status]).toEqual(['unauthorized', 401]);
    expect(storage.get()).toBe(before);
    expect((await client.auth.me()).user.email).toBe(ADMIN.email);
  });

  it('a 401 clears the stored token', async () => {
    const storage = createMemoryStorage();
    storage.set('expired.or.forged');
    const client = createAuthClient({ apiBaseUrl, appCode: 'x', storage });
    const err = await failure(client.services.list());
    expect([err.code, err.status]).toEqual(['unauthorized', 401]);
    expect(storage.get()).toBeUndefined();
  });

  it('without a token every services call is unauthorized', async () => {
    const client = createAuthClient({ apiBaseUrl, appCode: 'x' });
    const err = await failure(client.services.list());
    expect([err.code, err.status]).toEqual(['unauthorized', 401]);
  });
});

describe('services errors', () => {
  it('a non-admin gets forbidden (403) from every services call and keeps its token', async () => {
    const storage = createMemoryStorage();
    const viewer = await signedIn(PLAIN_USER, storage);
    const admin = await signedIn(ADMIN);
    const { client: target } = await admin.services.create({ client_id: 'forbidden-target', name: 'Target' });

    const calls = {
      create: () => viewer.services.create({ client_id: 'viewer-made', name: 'Nope' }),
      list: () => viewer.services.list(),
      get: () => viewer.services.get(target.id),
      update: () => viewer.services.update(target.id, { name: 'Renamed' }),
      revoke: () => viewer.services.revoke(target.id),
    };
    for (const [name, call] of Object.entries(calls)) {
      const err = await failure(call());
      expect({ name, code: err.code, status: err.status }).toEqual({ name, code: 'forbidden', status: 403 });
    }
    expect(storage.get()).toEqual(expect.any(String));
    // Nothing changed.
    expect(await admin.services.get(target.id)).toMatchObject({ name: 'Target', revoked_at: null });
    expect((await admin.services.list()).some((s) => s.client_id === 'viewer-made')).toBe(false);
  });

  it('validation errors carry field details', async () => {
    const admin = await signedIn(ADMIN);
    const err = await failure(admin.services.create({ client_id: 'Not Valid!', name: 'Bad', scopes: ['no-colon'] }));
    expect([err.code, err.status]).toEqual(['validation_failed', 400]);
    expect(err.details).toEqual(
      expect.arrayContaining([
        { path: 'body.client_id', message: expect.any(String) },
        { path: 'body.scopes.0', message: expect.any(String) },
      ]),
    );

    const badId = await failure(admin.services.get('not-a-uuid'));
    expect([badId.code, badId.status]).toEqual(['validation_failed', 400]);
    expect(badId.details?.[0]?.path).toBe('params.id');
  });

  it('a duplicate client_id is a conflict (409)', async () => {
    const admin = await signedIn(ADMIN);
    await admin.services.create({ client_id: 'dup-svc', name: 'First' });
    const err = await failure(admin.services.create({ client_id: 'dup-svc', name: 'Second' }));
    expect([err.code, err.status]).toEqual(['conflict', 409]);
    expect((await admin.services.list()).filter((s) => s.client_id === 'dup-svc')).toHaveLength(1);
  });

  it('an unknown id is not_found (404)', async () => {
    const admin = await signedIn(ADMIN);
    const err = await failure(admin.services.get('7d444840-9dc0-41a4-8ee0-8a1b5c1ee6a4'));
    expect([err.code, err.status]).toEqual(['not_found', 404]);
  });
});

describe('services.update()', () => {
  it('changes fields, returns the record, and a disabled credential gets no token', async () => {
    const admin = await signedIn(ADMIN);
    const { client: svc, client_secret } = await admin.services.create({ client_id: 'update-svc', name: 'Before', scopes: ['a:read'] });
    const updated = await admin.services.update(svc.id, { name: 'After', description: 'now described', scopes: ['a:read', 'a:write'], status: 'disabled' });
    expect(updated).toMatchObject({ id: svc.id, name: 'After', description: 'now described', scopes: ['a:read', 'a:write'], status: 'disabled' });
    expect(await admin.services.get(svc.id)).toEqual(updated);
    expect((await tokenFor('update-svc', client_secret)).status).toBe(401);

    const empty = await failure(admin.services.update(svc.id, {}));
    expect(empty.code).toBe('validation_failed');
  });
});

describe('services.list() filters, listPage() and getByClientId()', () => {
  it('filter, page and look up against the server, matching its database', async () => {
    const admin = await signedIn(ADMIN);
    const made = [];
    for (const [clientId, scopes] of [
      ['page-one', ['p:read']],
      ['page-two', ['p:write']],
      ['page-three', ['p:read']],
      ['other-svc', ['p:read']],
    ] as const) {
      made.push((await admin.services.create({ client_id: clientId, name: clientId, scopes: [...scopes] })).client);
    }
    await admin.services.update(made[1]!.id, { status: 'disabled' });
    await admin.services.revoke(made[2]!.id);

    const ids = async (filters: Parameters<typeof admin.services.list>[0]) => (await admin.services.list(filters)).map((c) => c.client_id).sort();
    expect(await ids({ client_id_prefix: 'page-' })).toEqual(['page-one', 'page-two']);
    expect(await ids({ client_id_prefix: 'page-', include_revoked: true })).toEqual(['page-one', 'page-three', 'page-two']);
    expect((await admin.services.list({ scope: 'p:read', client_id_prefix: 'page-', include_revoked: false })).map((c) => c.client_id)).toEqual(['page-one']);
    expect((await admin.services.list({ status: 'disabled', client_id_prefix: 'page-' })).map((c) => c.client_id)).toEqual(['page-two']);

    const readers = await admin.services.list({ scope: 'p:read', include_revoked: true });
    expect(readers.map((c) => c.client_id).sort()).toEqual(['other-svc', 'page-one', 'page-three']);
    const first = await admin.services.listPage({ limit: 2, scope: 'p:read', include_revoked: true });
    expect(first).toEqual({ clients: readers.slice(0, 2), next_cursor: expect.any(String) });
    const second = await admin.services.listPage({ limit: 2, scope: 'p:read', include_revoked: true, cursor: first.next_cursor! });
    expect(second).toEqual({ clients: readers.slice(2), next_cursor: null });

    expect(await admin.services.getByClientId('page-three')).toEqual(await admin.services.get(made[2]!.id));
    expect((await failure(admin.services.getByClientId('no-such-svc'))).code).toBe('not_found');
    const badLimit = await failure(admin.services.listPage({ limit: 0 }));
    expect([badLimit.code, badLimit.details?.[0]?.path]).toEqual(['validation_failed', 'querystring.limit']);
  });
});

describe('services.rotateSecret(), secrets() and deleteSecret()', () => {
  it('rotate without a new client_id: both secrets obtain tokens, the old one is deleted, the errors are typed', async () => {
    const admin = await signedIn(ADMIN);
    const { client: svc, client_secret: oldSecret } = await admin.services.create({ client_id: 'rotating-sdk', name: 'Rotating' });
    const { secret, client_secret: newSecret } = await admin.services.rotateSecret(svc.id);
    expect(secret).toEqual({ id: expect.any(String), created_at: expect.any(String), last_used_at: null, expires_at: null, hint: expect.stringMatching(/^[A-Za-z0-9_-]{4}$/), hash_alg: 'bcrypt' });
    expect((await tokenFor('rotating-sdk', oldSecret)).status).toBe(200);
    expect((await tokenFor('rotating-sdk', newSecret)).status).toBe(200);

    const secrets = await admin.services.secrets(svc.id);
    expect(secrets.map((s) => s.id)).toEqual([secret.id, expect.any(String)]);
    expect(JSON.stringify(secrets)).not.toContain(oldSecret);
    expect(await failure(admin.services.rotateSecret(svc.id, { expire_previous_in: 60 }))).toMatchObject({ code: 'secret_limit', status: 409 });

    expect(await admin.services.deleteSecret(svc.id, secrets[1]!.id)).toBeUndefined();
    expect((await tokenFor('rotating-sdk', oldSecret)).status).toBe(401);
    expect((await tokenFor('rotating-sdk', newSecret)).status).toBe(200);
    expect(await failure(admin.services.deleteSecret(svc.id, secret.id))).toMatchObject({ code: 'last_secret', status: 409 });

    const next = await admin.services.rotateSecret(svc.id, { expire_previous_in: 3600 });
    const listed = await admin.services.secrets(svc.id);
    expect(listed.find((s) => s.id === secret.id)!.expires_at).toBe(new Date(Date.parse(next.secret.created_at) + 3_600_000).toISOString());
    const rows = await ctx.database.db.selectFrom('m2m_client_secrets').select('id').where('client_id', '=', svc.id).execute();
    expect(rows.map((r) => r.id).sort()).toEqual([secret.id, next.secret.id].sort());
    expect(await failure(admin.services.secrets('00000000-0000-4000-8000-000000000000'))).toMatchObject({ code: 'not_found', status: 404 });
  });
});
