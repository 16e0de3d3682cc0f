import { SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyIdForSecret } from '@rw3iss/auth-server-ts';
import { SERVICE_CATALOG_CHANGES_PER_HOUR } from '../src/modules/permissions/permissions.service.js';
import { createTokenIssuer } from '../src/lib/tokens.js';
import { AUDIENCE, ISSUER, TEST_SECRET, bearer, createClient, createTestContext, type TestContext } from './helpers.js';

// One database for the file; the describes run in order and build on each other's catalogs.
let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx?.close());

const REGISTER = '/api/v1/admin/permissions/register';
const LIST = '/api/v1/admin/permissions';
const SERVICES = '/api/v1/admin/permissions/services';
const CLIENTS = '/api/v1/admin/m2m-clients';

type Perm = { code: string; name: string; description?: string | null; resource?: string; action?: string; category?: string };
const perms = (...codes: string[]): Perm[] => codes.map((code) => ({ code, name: `Name of ${code}` }));

function register(token: string | undefined, payload: unknown) {
  return ctx.app.inject({ method: 'POST', url: REGISTER, headers: token ? bearer(token) : {}, payload: payload as object });
}
async function registerOk(token: string, service: string, permissions: Perm[]) {
  const res = await register(token, { service, permissions });
  expect(res.statusCode, res.body).toBe(200);
  return res.json() as { service: string; upserted_count: number; pruned_codes: string[] };
}
async function catalogCodes(service: string) {
  const rows = await ctx.database.db.selectFrom('permissions').select('code').where('service', '=', service).orderBy('code').execute();
  return rows.map((r) => r.code);
}
const auditRows = (action: string) =>
  ctx.database.db.selectFrom('audit_log').select(['actor', 'target_id', 'details']).where('action', '=', action).orderBy('id').execute();

function grant(clientId: string, secret: string, scope?: string) {
  const params: Record<string, string> = { grant_type: 'client_credentials', client_id: clientId, client_secret: secret };
  if (scope !== undefined) params.scope = scope;
  return ctx.app.inject({ method: 'POST', url: '/api/v1/oauth/token', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: new URLSearchParams(params).toString() });
}
async function serviceToken(clientId: string, secret: string, scope?: string) {
  const res = await grant(clientId, secret, scope);
  expect(res.statusCode, res.body).toBe(200);
  return res.json().access_token as string;
}
function createRaw(body: Record<string, unknown>) {
  return ctx.app.inject({ method: 'POST', url: CLIENTS, headers: bearer(ctx.adminToken), payload: body });
}
function patch(id: string, body: Record<string, unknown>) {
  return ctx.app.inject({ method: 'PATCH', url: `${CLIENTS}/${id}`, headers: bearer(ctx.adminToken), payload: body });
}

describe('a deployment with no catalog works as before', () => {
  it('any well-formed scope is accepted, granted, and nothing is orphaned', async () => {
    const services = await ctx.app.inject({ method: 'GET', url: SERVICES, headers: bearer(ctx.adminToken) });
    expect(services.json()).toEqual({ services: [] });
    const { client, client_secret } = await createClient(ctx, { client_id: 'legacy-svc', name: 'Legacy', scopes: ['gsku:pubish', 'inv:anything', 'auth:catalog:newsvc'] });
    expect(client.orphaned_scopes).toEqual([]);
    const res = await grant('legacy-svc', client_secret);
    expect(res.json().scope).toBe('gsku:pubish inv:anything auth:catalog:newsvc');
    // The server's own namespace is the one exception: only auth:catalog:<service> exists in it.
    const bad = await createRaw({ client_id: 'legacy-2', name: 'x', scopes: ['auth:admin'] });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toBe('unknown_scope');
  });
});

describe('reconcile', () => {
  it('first registration inserts every permission, records who, and audits', async () => {
    const body = await registerOk(ctx.adminToken, 'gsku', [
      { code: 'gsku:publish', name: 'Publish', description: 'Publish SKUs', resource: 'sku', action: 'publish', category: 'write' },
      ...perms('gsku:read', 'gsku:delete'),
    ]);
    expect(body).toEqual({ service: 'gsku', upserted_count: 3, pruned_codes: [] });
    expect(await catalogCodes('gsku')).toEqual(['gsku:delete', 'gsku:publish', 'gsku:read']);

    const list = await ctx.app.inject({ method: 'GET', url: `${LIST}?service=gsku`, headers: bearer(ctx.adminToken) });
    expect(list.statusCode).toBe(200);
    expect(list.json().permissions[1]).toEqual({
      code: 'gsku:publish',
      service: 'gsku',
      name: 'Publish',
      description: 'Publish SKUs',
      resource: 'sku',
      action: 'publish',
      category: 'write',
      created_at: expect.any(String),
      updated_at: expect.any(String),
    });
    const services = await ctx.app.inject({ method: 'GET', url: SERVICES, headers: bearer(ctx.adminToken) });
    expect(services.json().services).toEqual([{ service: 'gsku', count: 3, updated_at: expect.any(String), registered_by: 'admin@example.com' }]);
    const audit = await auditRows('permission_catalog.register');
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ actor: 'admin@example.com', target_id: 'gsku', details: { service: 'gsku', pruned_codes: [], affected_credentials: expect.any(Array) } });
  });

  it('the same manifest again changes nothing: no write, no audit row', async () => {
    const before = await ctx.database.db.selectFrom('permissions').selectAll().where('service', '=', 'gsku').orderBy('code').execute();
    const catalogBefore = await ctx.database.db.selectFrom('permission_catalogs').selectAll().execute();
    const auditBefore = (await auditRows('permission_catalog.register')).length;
    const body = await registerOk(ctx.adminToken, 'gsku', [
      { code: 'gsku:read', name: 'Name of gsku:read' },
      { code: 'gsku:publish', name: 'Publish', description: 'Publish SKUs', resource: 'sku', action: 'publish', category: 'write' },
      { code: 'gsku:delete', name: 'Name of gsku:delete', description: null },
    ]);
    expect(body).toEqual({ service: 'gsku', upserted_count: 0, pruned_codes: [] });
    expect(await ctx.database.db.selectFrom('permissions').selectAll().where('service', '=', 'gsku').orderBy('code').execute()).toEqual(before);
    expect(await ctx.database.db.selectFrom('permission_catalogs').selectAll().execute()).toEqual(catalogBefore);
    expect(await auditRows('permission_catalog.register')).toHaveLength(auditBefore);
  });

  it('upserts changes and additions, prunes what is no longer declared', async () => {
    const old = await ctx.database.db.selectFrom('permissions').selectAll().where('code', '=', 'gsku:read').executeTakeFirstOrThrow();
    const body = await registerOk(ctx.adminToken, 'gsku', [
      { code: 'gsku:publish', name: 'Publish', description: 'Publish SKUs', resource: 'sku', action: 'publish', category: 'write' },
      { code: 'gsku:read', name: 'Read SKUs' },
      { code: 'gsku:list', name: 'List SKUs' },
    ]);
    expect(body).toEqual({ service: 'gsku', upserted_count: 2, pruned_codes: ['gsku:delete'] });
    expect(await catalogCodes('gsku')).toEqual(['gsku:list', 'gsku:publish', 'gsku:read']);
    const changed = await ctx.database.db.selectFrom('permissions').selectAll().where('code', '=', 'gsku:read').executeTakeFirstOrThrow();
    expect(changed).toMatchObject({ name: 'Read SKUs', created_at: old.created_at });
    expect(changed.updated_at.getTime()).toBeGreaterThanOrEqual(old.updated_at.getTime());
    const audit = (await auditRows('permission_catalog.register')).at(-1)!;
    expect(audit.details).toMatchObject({ service: 'gsku', upserted: ['gsku:list', 'gsku:read'], pruned_codes: ['gsku:delete'] });
  });

  it("claiming another catalog's code is 409 naming the owner, and changes nothing", async () => {
    const res = await register(ctx.adminToken, { service: 'billing', permissions: perms('billing:charge', 'gsku:publish') });
    expect(res.statusCode).toBe(409);
    expect(res.json()).toEqual({
      error: 'conflict',
      message: expect.stringContaining('gsku:publish (owned by gsku)'),
      details: [{ path: 'body.permissions.1.code', message: '"gsku:publish" is owned by the catalog "gsku"' }],
    });
    expect(await catalogCodes('billing')).toEqual([]);
    expect(await ctx.database.db.selectFrom('permission_catalogs').select('service').where('service', '=', 'billing').execute()).toEqual([]);
  });

  it('two registrations of one catalog racing end in one consistent catalog', async () => {
    const a = perms('race:a1', 'race:a2', 'race:shared');
    const b = perms('race:b1', 'race:shared', 'race:b2', 'race:b3');
    const results = await Promise.all(Array.from({ length: 12 }, (_, i) => register(ctx.adminToken, { service: 'race', permissions: i % 2 ? a : b })));
    expect(results.map((r) => r.statusCode)).toEqual(Array(12).fill(200));
    const final = await catalogCodes('race');
    const codes = (p: Perm[]) => p.map((x) => x.code).sort();
    expect([codes(a), codes(b)]).toContainEqual(final);
    // Each answer describes a change from one whole catalog to the other, never a mix.
    for (const r of results) {
      const { pruned_codes } = r.json();
      expect([[], ['race:a1', 'race:a2'], ['race:b1', 'race:b2', 'race:b3']]).toContainEqual(pruned_codes);
    }
    const services = (await ctx.app.inject({ method: 'GET', url: SERVICES, headers: bearer(ctx.adminToken) })).json().services;
    expect(services.find((s: { service: string }) => s.service === 'race').count).toBe(final.length);
  });

  it('two catalogs racing for one new code: exactly one owns it, the other gets 409', async () => {
    const results = await Promise.all([
      register(ctx.adminToken, { service: 'left', permissions: perms('left:x', 'contested:code') }),
      register(ctx.adminToken, { service: 'right', permissions: perms('right:x', 'contested:code') }),
    ]);
    expect(results.map((r) => r.statusCode).sort()).toEqual([200, 409]);
    const owner = await ctx.database.db.selectFrom('permissions').select('service').where('code', '=', 'contested:code').execute();
    expect(owner).toHaveLength(1);
    const loser = results.find((r) => r.statusCode === 409)!;
    expect(loser.json().message).toContain(`owned by ${owner[0]!.service}`);
    // The loser's whole registration rolled back.
    const loserService = owner[0]!.service === 'left' ? 'right' : 'left';
    expect(await catalogCodes(loserService)).toEqual([]);
  });
});

describe('authorization matrix of POST /admin/permissions/register', () => {
  let gskuSvc: { id: string; secret: string };
  beforeAll(async () => {
    const created = await createClient(ctx, { client_id: 'gsku-svc', name: 'gsku backend', scopes: ['auth:catalog:gsku', 'gsku:read'], allowed_audiences: ['https://gsku.internal'] });
    gskuSvc = { id: created.client.id, secret: created.client_secret };
  });
  const manifest = (extra: string[] = []) => ({
    service: 'gsku',
    permissions: [
      { code: 'gsku:publish', name: 'Publish', description: 'Publish SKUs', resource: 'sku', action: 'publish', category: 'write' },
      { code: 'gsku:read', name: 'Read SKUs' },
      { code: 'gsku:list', name: 'List SKUs' },
      ...perms(...extra),
    ],
  });

  it('no token 401, a bad token 401, a user without the role 403', async () => {
    const none = await register(undefined, manifest());
    expect(none.statusCode).toBe(401);
    expect(none.headers['www-authenticate']).toMatch(/^Bearer/);
    const garbage = await register('not.a.jwt', manifest());
    expect(garbage.statusCode).toBe(401);
    const user = await register(ctx.userToken, manifest());
    expect(user.statusCode).toBe(403);
    expect(user.json().error).toBe('forbidden');
  });

  it('the credential allowed to register its catalog does, with its own token', async () => {
    const token = await serviceToken('gsku-svc', gskuSvc.secret);
    const res = await register(token, manifest(['gsku:archive']));
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toEqual({ service: 'gsku', upserted_count: 1, pruned_codes: [] });
    const row = await ctx.database.db.selectFrom('permission_catalogs').selectAll().where('service', '=', 'gsku').executeTakeFirstOrThrow();
    expect(row.registered_by).toBe('client:gsku-svc');
    const audit = (await auditRows('permission_catalog.register')).at(-1)!;
    expect(audit.actor).toBe('client:gsku-svc');
  });

  it("that credential can never write another service's catalog, nor codes outside its namespace", async () => {
    const token = await serviceToken('gsku-svc', gskuSvc.secret);
    const other = await register(token, { service: 'billing', permissions: perms('billing:charge') });
    expect(other.statusCode).toBe(403);
    expect(other.json()).toMatchObject({ error: 'forbidden', message: expect.stringContaining('auth:catalog:billing') });
    const foreign = await register(token, { service: 'gsku', permissions: perms('gsku:read', 'billing:charge') });
    expect(foreign.statusCode).toBe(403);
    expect(foreign.json().details).toEqual([{ path: 'body.permissions.1.code', message: '"billing:charge" is outside the namespace "gsku"' }]);
    expect(await catalogCodes('billing')).toEqual([]);
  });

  it('a token without the scope is refused, even when its credential holds it', async () => {
    const token = await serviceToken('gsku-svc', gskuSvc.secret, 'gsku:read');
    const res = await register(token, manifest());
    expect(res.statusCode).toBe(403);
  });

  it('a token minted for another audience is not accepted here', async () => {
    const res = await grant('gsku-svc', gskuSvc.secret);
    const other = await ctx.app.inject({
      method: 'POST',
      url: '/api/v1/oauth/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ grant_type: 'client_credentials', client_id: 'gsku-svc', client_secret: gskuSvc.secret, audience: 'https://gsku.internal' }).toString(),
    });
    expect(res.statusCode).toBe(200);
    const refused = await register(other.json().access_token, manifest());
    expect(refused.statusCode).toBe(401);
  });

  it('a credential without the right: 403; a credential whose right was removed: its unexpired token is refused', async () => {
    const plain = await createClient(ctx, { client_id: 'plain-svc', name: 'Plain', scopes: ['gsku:read'] });
    const plainToken = await serviceToken('plain-svc', plain.client_secret);
    expect((await register(plainToken, manifest())).statusCode).toBe(403);
    // Refused before its body is read: an oversized body is still 403, not 413.
    const oversized = await register(plainToken, { service: 'gsku', permissions: [{ code: 'gsku:x', name: 'x', description: 'd'.repeat(2 * 1024 * 1024) }] });
    expect(oversized.statusCode).toBe(403);

    const withRight = await createClient(ctx, { client_id: 'gsku-svc-2', name: 'gsku 2', scopes: ['auth:catalog:gsku'] });
    const token = await serviceToken('gsku-svc-2', withRight.client_secret);
    expect((await patch(withRight.client.id, { scopes: ['gsku:read'] })).statusCode).toBe(200);
    const res = await register(token, manifest());
    expect(res.statusCode).toBe(403);
    expect(res.json().message).toContain('no longer holds auth:catalog:gsku');
  });

  it('a disabled or revoked credential: its unexpired token is 401 invalid_token', async () => {
    const created = await createClient(ctx, { client_id: 'gsku-svc-3', name: 'gsku 3', scopes: ['auth:catalog:gsku'] });
    const token = await serviceToken('gsku-svc-3', created.client_secret);
    expect((await register(token, manifest())).statusCode).toBe(200);
    expect((await patch(created.client.id, { status: 'disabled' })).statusCode).toBe(200);
    const disabled = await register(token, manifest());
    expect(disabled.statusCode).toBe(401);
    expect(disabled.headers['www-authenticate']).toContain('error="invalid_token"');
    expect((await patch(created.client.id, { status: 'active' })).statusCode).toBe(200);
    expect((await register(token, manifest())).statusCode).toBe(200);
    await ctx.app.inject({ method: 'DELETE', url: `${CLIENTS}/${created.client.id}`, headers: bearer(ctx.adminToken) });
    const revoked = await register(token, manifest());
    expect(revoked.statusCode).toBe(401);
    expect(revoked.json().error).toBe('unauthorized');
  });

  it('a forged service token (another key) is 401; a user token never passes as a service token', async () => {
    const other = createTokenIssuer({ secret: 'another-secret-another-secret-another-secret', issuer: ISSUER, audience: AUDIENCE }, Date.now);
    const forged = (await other.serviceToken({ sub: 'gsku-svc', client_id: 'gsku-svc', service_name: 'x', scopes: ['auth:catalog:gsku'] }, 300)).token;
    expect((await register(forged, manifest())).statusCode).toBe(401);
    // A user-type JWT signed with the shared key: not a service token, and no JWT is an admin session → 401.
    const userish = await new SignJWT({ token_type: 'user', email: 'x@example.com', roles: ['system_admin'], client_id: 'gsku-svc', scopes: ['auth:catalog:gsku'] })
      .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: keyIdForSecret(TEST_SECRET) })
      .setIssuer(ISSUER)
      .setAudience(AUDIENCE)
      .setSubject('gsku-svc')
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(new TextEncoder().encode(TEST_SECRET));
    expect((await register(userish, manifest())).statusCode).toBe(401);
  });

  it('the listings are system_admin only: a service token, even with the right, is refused (403)', async () => {
    const token = await serviceToken('gsku-svc', gskuSvc.secret);
    for (const url of [LIST, SERVICES]) {
      expect((await ctx.app.inject({ method: 'GET', url })).statusCode).toBe(401);
      expect((await ctx.app.inject({ method: 'GET', url, headers: bearer(ctx.userToken) })).statusCode).toBe(403);
      expect((await ctx.app.inject({ method: 'GET', url, headers: bearer(token) })).statusCode).toBe(403);
      expect((await ctx.app.inject({ method: 'GET', url, headers: bearer(ctx.adminToken) })).statusCode).toBe(200);
    }
    const bad = await ctx.app.inject({ method: 'GET', url: `${LIST}?service=Bad Name&x=1`, headers: bearer(ctx.adminToken) });
    expect(bad.statusCode).toBe(400);
  });
});

describe('scope checks on create and update', () => {
  // Catalogs now: gsku (gsku:publish, gsku:read, gsku:list, gsku:archive), race, left or right. Add one whose codes live in another namespace.
  beforeAll(async () => {
    await registerOk(ctx.adminToken, 'ops', perms('metrics:read'));
  });

  it('a code a catalog defines is accepted', async () => {
    const res = await createRaw({ client_id: 'scoped-1', name: 'x', scopes: ['gsku:publish', 'metrics:read'] });
    expect(res.statusCode).toBe(201);
    expect(res.json().client.orphaned_scopes).toEqual([]);
  });

  it('an undefined scope in a namespace with a catalog is 400 unknown_scope naming each', async () => {
    const res = await createRaw({ client_id: 'scoped-2', name: 'x', scopes: ['gsku:publish', 'gsku:pubish', 'metrics:write', 'ops:anything'] });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toEqual({
      error: 'unknown_scope',
      message: 'No permission catalog defines: gsku:pubish metrics:write ops:anything',
      details: [
        { path: 'body.scopes.1', message: expect.stringContaining('"gsku:pubish"') },
        { path: 'body.scopes.2', message: expect.stringContaining('"metrics:write"') },
        { path: 'body.scopes.3', message: expect.stringContaining('"ops:anything"') },
      ],
    });
    expect(await ctx.database.db.selectFrom('m2m_clients').select('id').where('client_id', '=', 'scoped-2').execute()).toEqual([]);
  });

  it('a namespace without a catalog still accepts any scope', async () => {
    const res = await createRaw({ client_id: 'scoped-3', name: 'x', scopes: ['invoices:send', 'gsku:read'] });
    expect(res.statusCode).toBe(201);
  });

  it('the server namespace: auth:catalog:<service>, auth:introspect and auth:revocations:read only, never a reserved catalog', async () => {
    expect((await createRaw({ client_id: 'scoped-4', name: 'x', scopes: ['auth:catalog:some-future-svc', 'auth:introspect', 'auth:revocations:read'] })).statusCode).toBe(201);
    for (const scope of ['auth:catalog:core', 'auth:catalog:auth', 'auth:introspection', 'auth:revocations', 'auth:catalog:a:b']) {
      const res = await createRaw({ client_id: 'scoped-5', name: 'x', scopes: [scope] });
      expect(res.statusCode, scope).toBe(400);
      expect(res.json().error, scope).toBe('unknown_scope');
    }
  });

  it('PATCH checks the scopes it sets; a PATCH without scopes leaves held scopes alone', async () => {
    const { client } = await createClient(ctx, { client_id: 'scoped-6', name: 'x', scopes: ['gsku:read'] });
    const bad = await patch(client.id, { scopes: ['gsku:read', 'gsku:nope'] });
    expect(bad.statusCode).toBe(400);
    expect(bad.json()).toMatchObject({ error: 'unknown_scope', details: [{ path: 'body.scopes.1' }] });
    expect((await patch(client.id, { scopes: ['gsku:list'] })).json().scopes).toEqual(['gsku:list']);
    expect((await patch(client.id, { name: 'renamed' })).statusCode).toBe(200);
  });
});

describe('prune effects', () => {
  it('a pruned scope is shown as orphaned, left out of a default grant, refused when asked for, and audited with the credential', async () => {
    const { client, client_secret } = await createClient(ctx, { client_id: 'prune-svc', name: 'x', scopes: ['gsku:publish', 'gsku:list', 'invoices:send'] });
    expect((await grant('prune-svc', client_secret)).json().scope).toBe('gsku:publish gsku:list invoices:send');

    const body = await registerOk(ctx.adminToken, 'gsku', [
      { code: 'gsku:publish', name: 'Publish', description: 'Publish SKUs', resource: 'sku', action: 'publish', category: 'write' },
      { code: 'gsku:read', name: 'Read SKUs' },
      { code: 'gsku:archive', name: 'Name of gsku:archive' },
    ]);
    expect(body.pruned_codes).toEqual(['gsku:list']);

    const record = (await ctx.app.inject({ method: 'GET', url: `${CLIENTS}/${client.id}`, headers: bearer(ctx.adminToken) })).json();
    expect(record).toMatchObject({ scopes: ['gsku:publish', 'gsku:list', 'invoices:send'], orphaned_scopes: ['gsku:list'] });
    const listed = (await ctx.app.inject({ method: 'GET', url: CLIENTS, headers: bearer(ctx.adminToken) })).json().clients;
    expect(listed.find((c: { id: string }) => c.id === client.id).orphaned_scopes).toEqual(['gsku:list']);

    const dflt = await grant('prune-svc', client_secret);
    expect(dflt.statusCode).toBe(200);
    expect(dflt.json().scope).toBe('gsku:publish invoices:send');
    const asked = await grant('prune-svc', client_secret, 'gsku:list');
    expect(asked.statusCode).toBe(400);
    expect(asked.json().error).toBe('invalid_scope');

    const audit = (await auditRows('permission_catalog.register')).at(-1)!;
    expect((audit.details as { affected_credentials: unknown[] }).affected_credentials).toContainEqual({ id: client.id, client_id: 'prune-svc', orphaned_scopes: ['gsku:list'] });
    const perCredential = await ctx.database.db.selectFrom('audit_log').select(['action', 'details']).where('target_id', '=', client.id).orderBy('id').execute();
    expect(perCredential.at(-1)).toEqual({ action: 'm2m_client.scopes_orphaned', details: { client_id: 'prune-svc', service: 'gsku', orphaned_scopes: ['gsku:list'] } });
    // Keeping an orphaned scope in a PATCH that sets scopes is refused like any unknown scope.
    expect((await patch(client.id, { scopes: ['gsku:publish', 'gsku:list'] })).json().error).toBe('unknown_scope');

    // Declared again: granted again, no longer orphaned.
    await registerOk(ctx.adminToken, 'gsku', [
      { code: 'gsku:publish', name: 'Publish', description: 'Publish SKUs', resource: 'sku', action: 'publish', category: 'write' },
      { code: 'gsku:read', name: 'Read SKUs' },
      { code: 'gsku:archive', name: 'Name of gsku:archive' },
      { code: 'gsku:list', name: 'List' },
    ]);
    expect((await grant('prune-svc', client_secret)).json().scope).toBe('gsku:publish gsku:list invoices:send');
  });

  it("a namespace's first catalog orphans the typos held in it", async () => {
    // invoices:send was accepted before any catalog covered "invoices".
    const { client, client_secret } = await createClient(ctx, { client_id: 'typo-svc', name: 'x', scopes: ['invoices:sned', 'invoices:send', 'gsku:read'] });
    const body = await registerOk(ctx.adminToken, 'invoices', perms('invoices:send'));
    expect(body).toEqual({ service: 'invoices', upserted_count: 1, pruned_codes: [] });
    const record = (await ctx.app.inject({ method: 'GET', url: `${CLIENTS}/${client.id}`, headers: bearer(ctx.adminToken) })).json();
    expect(record.orphaned_scopes).toEqual(['invoices:sned']);
    expect((await grant('typo-svc', client_secret)).json().scope).toBe('invoices:send gsku:read');
    const audit = (await auditRows('permission_catalog.register')).at(-1)!;
    expect((audit.details as { affected_credentials: { client_id: string }[] }).affected_credentials.map((c) => c.client_id)).toEqual(['typo-svc']);
  });
});

describe('bad input is a clear 4xx, never a 500', () => {
  const bad = async (payload: unknown, status = 400) => {
    const res = await register(ctx.adminToken, payload);
    expect(res.statusCode, res.body).toBe(status);
    return res.json();
  };

  it('an empty manifest', async () => {
    expect(await bad({ service: 'gsku', permissions: [] })).toMatchObject({ error: 'validation_failed', details: [{ path: 'body.permissions' }] });
  });

  it('duplicate codes in one manifest name each duplicate', async () => {
    const body = await bad({ service: 'dup', permissions: perms('dup:a', 'dup:b', 'dup:a', 'dup:b') });
    expect(body.details).toEqual([
      { path: 'body.permissions.2.code', message: 'duplicate code "dup:a" (also at permissions.0)' },
      { path: 'body.permissions.3.code', message: 'duplicate code "dup:b" (also at permissions.1)' },
    ]);
    expect(await catalogCodes('dup')).toEqual([]);
  });

  it('codes that are not scope tokens', async () => {
    for (const code of ['publish', 'GSKU:Publish', 'gsku:pub lish', 'gsku:*', 'gsku:"x"', '', ':x', 'gsku:', `gsku:${'x'.repeat(300)}`]) {
      const body = await bad({ service: 'gsku', permissions: [{ code, name: 'x' }] });
      expect(body.error, code).toBe('validation_failed');
      expect(body.details[0].path, code).toBe('body.permissions.0.code');
    }
  });

  it('reserved and malformed services, reserved namespaces, missing and unknown fields', async () => {
    for (const service of ['core', 'auth', 'Gsku', '', 'a b']) {
      expect((await bad({ service, permissions: perms('x:y') })).details[0].path, service).toBe('body.service');
    }
    expect((await bad({ service: 'x', permissions: perms('auth:catalog:x') })).details[0].path).toBe('body.permissions.0.code');
    expect((await bad({ service: 'x', permissions: perms('core:x') })).details[0].path).toBe('body.permissions.0.code');
    expect((await bad({ service: 'x', permissions: [{ code: 'x:y' }] })).details[0].path).toBe('body.permissions.0.name');
    expect((await bad({ service: 'x', permissions: [{ code: 'x:y', name: 'n', extra: 1 }] })).error).toBe('validation_failed');
    expect((await bad({ service: 'x', permissions: perms('x:y'), extra: true })).error).toBe('validation_failed');
    expect((await bad({ permissions: perms('x:y') })).details[0].path).toBe('body.service');
    expect((await bad({ service: 'x', permissions: [{ code: 'x:y', name: 'bell\u0007' }] })).details[0].path).toBe('body.permissions.0.name');
    const noBody = await ctx.app.inject({ method: 'POST', url: REGISTER, headers: { ...bearer(ctx.adminToken), 'content-type': 'application/json' }, payload: '{' });
    expect(noBody.statusCode).toBe(400);
  });

  it('a manifest of 10,000 entries: 400 when it fits the body limit, 413 when it does not', async () => {
    const compact = { service: 'big', permissions: Array.from({ length: 10_000 }, (_, i) => ({ code: `big:p${i}`, name: 'n' })) };
    expect(JSON.stringify(compact).length).toBeLessThan(1024 * 1024);
    const small = await bad(compact);
    expect(small).toMatchObject({ error: 'validation_failed', details: [{ path: 'body.permissions', message: 'at most 1000 permissions per catalog' }] });
    const described = { service: 'big', permissions: Array.from({ length: 10_000 }, (_, i) => ({ code: `big:p${i}`, name: `Permission ${i}`, description: 'd'.repeat(100) })) };
    expect(await bad(described, 413)).toMatchObject({ error: 'payload_too_large' });
    expect(await catalogCodes('big')).toEqual([]);
  });

  it('a full catalog of 1000 permissions registers', async () => {
    const full = Array.from({ length: 1000 }, (_, i) => ({ code: `full:p${String(i).padStart(4, '0')}`, name: `P${i}`, description: 'd'.repeat(200) }));
    expect(await registerOk(ctx.adminToken, 'full', full)).toEqual({ service: 'full', upserted_count: 1000, pruned_codes: [] });
    expect(await registerOk(ctx.adminToken, 'full', full.slice(0, 10))).toMatchObject({ upserted_count: 0, pruned_codes: expect.arrayContaining(['full:p0999']) });
    expect(await catalogCodes('full')).toHaveLength(10);
  });
});

describe("a service's changes to its own catalog are bounded", () => {
  it(`${SERVICE_CATALOG_CHANGES_PER_HOUR} changes an hour, then 429 with Retry-After and nothing written; the same manifest again and an admin still pass`, async () => {
    const created = await createClient(ctx, { client_id: 'churn-svc', name: 'churn', scopes: ['auth:catalog:churn'] });
    const token = await serviceToken('churn-svc', created.client_secret);
    // A compromised service alternating two manifests: each change rewrites rows and audits every code.
    for (let i = 0; i < SERVICE_CATALOG_CHANGES_PER_HOUR; i++) await registerOk(token, 'churn', perms(i % 2 ? 'churn:a' : 'churn:b'));
    const auditedBefore = (await auditRows('permission_catalog.register')).filter((r) => r.target_id === 'churn').length;
    const refused = await register(token, { service: 'churn', permissions: perms('churn:c') });
    expect(refused.statusCode, refused.body).toBe(429);
    expect(refused.json().error).toBe('rate_limited');
    const retryAfter = Number(refused.headers['retry-after']);
    expect(retryAfter).toBeGreaterThan(3000);
    expect(retryAfter).toBeLessThanOrEqual(3600);
    expect(await catalogCodes('churn')).toEqual(['churn:a']);
    expect((await auditRows('permission_catalog.register')).filter((r) => r.target_id === 'churn')).toHaveLength(auditedBefore);
    // What a restarting instance sends (nothing changes) is never limited; nor is an admin.
    expect((await registerOk(token, 'churn', perms('churn:a'))).upserted_count).toBe(0);
    expect((await registerOk(ctx.adminToken, 'churn', perms('churn:d'))).upserted_count).toBe(1);
    // Another catalog has its own count.
    const other = await createClient(ctx, { client_id: 'calm-svc', name: 'calm', scopes: ['auth:catalog:calm'] });
    await registerOk(await serviceToken('calm-svc', other.client_secret), 'calm', perms('calm:a'));
  });
});

describe('OpenAPI', () => {
  it('documents the three routes', async () => {
    const doc = (await ctx.app.inject({ method: 'GET', url: '/docs/json' })).json();
    expect(doc.paths['/api/v1/admin/permissions/register'].post.requestBody).toBeDefined();
    expect(doc.paths['/api/v1/admin/permissions'].get.parameters.map((p: { name: string }) => p.name)).toEqual(['service']);
    expect(doc.paths['/api/v1/admin/permissions/services'].get).toBeDefined();
    expect(doc.paths['/api/v1/admin/m2m-clients/{id}'].get.responses['200'].content['application/json'].schema.properties.orphaned_scopes).toBeDefined();
  });
});
