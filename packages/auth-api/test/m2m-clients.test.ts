import bcrypt from 'bcryptjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenIssuer } from '../src/lib/tokens.js';
import { AUDIENCE, ISSUER, TEST_SECRET, bearer, createClient, createTestContext, type TestContext } from './helpers.js';

let ctx: TestContext;
let serviceToken: string;
beforeAll(async () => {
  ctx = await createTestContext();
  const issuer = createTokenIssuer({ secret: TEST_SECRET, issuer: ISSUER, audience: AUDIENCE }, Date.now);
  serviceToken = (await issuer.serviceToken({ sub: 'some-svc', client_id: 'some-svc', service_name: 'Some', scopes: ['admin:all'] }, 300)).token;
});
afterAll(() => ctx?.close());

const base = '/api/v1/admin/m2m-clients';
const uuid = '7d444840-9dc0-41a4-8ee0-8a1b5c1ee6a4';

async function clientRow(id: string) {
  return ctx.database.db.selectFrom('m2m_clients').selectAll().where('id', '=', id).executeTakeFirst();
}
async function auditActions(targetId: string) {
  const rows = await ctx.database.db.selectFrom('audit_log').select(['action', 'actor', 'ip']).where('target_id', '=', targetId).orderBy('id').execute();
  return rows;
}

describe('role gate on every management route', () => {
  const routes = [
    { method: 'POST', url: base, payload: { client_id: 'gate-test', name: 'Gate' } },
    { method: 'GET', url: base },
    { method: 'GET', url: `${base}/${uuid}` },
    { method: 'PATCH', url: `${base}/${uuid}`, payload: { name: 'x' } },
    { method: 'DELETE', url: `${base}/${uuid}` },
  ] as const;

  for (const route of routes) {
    it(`${route.method} ${route.url}`, async () => {
      const send = (headers: Record<string, string>) => ctx.app.inject({ method: route.method, url: route.url, headers, ...('payload' in route ? { payload: route.payload } : {}) });

      const none = await send({});
      expect(none.statusCode).toBe(401);
      expect(none.json()).toMatchObject({ error: 'unauthorized' });
      expect(none.headers['www-authenticate']).toMatch(/^Bearer/);

      const garbage = await send(bearer('not.a.jwt'));
      expect(garbage.statusCode).toBe(401);
      expect(garbage.headers['www-authenticate']).toContain('error="invalid_token"');

      const user = await send(bearer(ctx.userToken));
      expect(user.statusCode).toBe(403);
      expect(user.json()).toEqual({ error: 'forbidden', message: expect.any(String) });

      // A genuine service token is authenticated but never an admin: 403 (forged admin JWTs are 401:
      // test/forged-admin-token.test.ts).
      const service = await send(bearer(serviceToken));
      expect(service.statusCode).toBe(403);
      expect(service.json().error).toBe('forbidden');

      const admin = await send(bearer(ctx.adminToken));
      // Unknown id: the admin passes the gate and reaches the route.
      expect([200, 201, 404]).toContain(admin.statusCode);
      if (route.url.endsWith(uuid)) expect(admin.json()).toMatchObject({ error: 'not_found' });
      else expect(admin.statusCode).toBe(route.method === 'POST' ? 201 : 200);
    });
  }

  it('rejects an unknown session token and one that differs by a character', async () => {
    const unknown = `m2mas_${'A'.repeat(43)}`;
    const altered = `${ctx.adminToken.slice(0, -1)}${ctx.adminToken.endsWith('A') ? 'B' : 'A'}`;
    for (const token of [unknown, altered]) {
      const res = await ctx.app.inject({ method: 'GET', url: base, headers: bearer(token) });
      expect(res.statusCode).toBe(401);
      expect(res.json().error).toBe('unauthorized');
      expect(res.headers['www-authenticate']).toContain('error="invalid_token"');
    }
  });
});

describe('lifecycle', () => {
  it('create → get → list → patch → revoke, with the database state', async () => {
    const res = await ctx.app.inject({
      method: 'POST',
      url: base,
      headers: bearer(ctx.adminToken),
      payload: { client_id: '  Billing-Svc ', name: 'Billing backend', description: 'Issues invoices', scopes: ['gsku:publish', 'gsku:publish', 'billing:read'] },
    });
    expect(res.statusCode).toBe(201);
    expect(res.headers['cache-control']).toBe('no-store');
    const { client, client_secret } = res.json();
    expect(client).toMatchObject({
      client_id: 'billing-svc',
      name: 'Billing backend',
      description: 'Issues invoices',
      scopes: ['gsku:publish', 'billing:read'],
      allowed_audiences: [],
      status: 'active',
      last_used_at: null,
      revoked_at: null,
    });
    expect(client.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(Object.keys(client).sort()).toEqual(
      ['id', 'client_id', 'name', 'description', 'scopes', 'allowed_audiences', 'status', 'created_at', 'updated_at', 'last_used_at', 'revoked_at', 'created_by', 'orphaned_scopes'].sort(),
    );
    expect(new Date(client.created_at).toISOString()).toBe(client.created_at);
    // The secret: prefixed, 256 bits of base64url, under bcrypt's 72 bytes.
    expect(client_secret).toMatch(/^m2msk_[A-Za-z0-9_-]{43}$/);
    expect(Buffer.byteLength(client_secret)).toBeLessThanOrEqual(72);

    // Database: only the hash, and it verifies the returned secret.
    const row = await clientRow(client.id);
    const secrets = await ctx.database.db.selectFrom('m2m_client_secrets').selectAll().where('client_id', '=', client.id).execute();
    expect(secrets).toHaveLength(1);
    const stored = secrets[0]!;
    expect(stored).toMatchObject({ hash_alg: 'bcrypt', hint: expect.stringMatching(/^[A-Za-z0-9_-]{4}$/), expires_at: null, last_used_at: null });
    expect(stored.secret_hash).toMatch(/^\$2[aby]\$04\$/);
    expect(await bcrypt.compare(client_secret, stored.secret_hash)).toBe(true);
    expect(JSON.stringify(row) + JSON.stringify(secrets)).not.toContain(client_secret);
    const admin = await ctx.database.db.selectFrom('users').select('id').where('email', '=', 'admin@example.com').executeTakeFirstOrThrow();
    expect(row?.created_by).toBe(admin.id);
    expect(client.created_by).toBe(admin.id);

    const got = await ctx.app.inject({ method: 'GET', url: `${base}/${client.id}`, headers: bearer(ctx.adminToken) });
    expect(got.statusCode).toBe(200);
    expect(got.json()).toEqual(client);
    expect(got.body).not.toContain(client_secret);
    expect(got.body).not.toContain(stored.secret_hash);

    const list = await ctx.app.inject({ method: 'GET', url: base, headers: bearer(ctx.adminToken) });
    expect(list.statusCode).toBe(200);
    expect(list.json().clients.map((c: { id: string }) => c.id)).toContain(client.id);
    expect(list.body).not.toContain('client_secret');
    expect(list.body).not.toContain('$2');

    const patched = await ctx.app.inject({
      method: 'PATCH',
      url: `${base}/${client.id}`,
      headers: bearer(ctx.adminToken),
      payload: { name: 'Billing', description: null, scopes: ['gsku:read'], allowed_audiences: ['https://gsku.internal'], status: 'disabled' },
    });
    expect(patched.statusCode).toBe(200);
    expect(patched.json()).toMatchObject({ name: 'Billing', description: null, scopes: ['gsku:read'], allowed_audiences: ['https://gsku.internal'], status: 'disabled' });
    expect(patched.json().updated_at >= client.updated_at).toBe(true);
    expect(await clientRow(client.id)).toMatchObject({ name: 'Billing', scopes: ['gsku:read'], status: 'disabled' });
    expect(await ctx.database.db.selectFrom('m2m_client_secrets').select('secret_hash').where('client_id', '=', client.id).execute()).toEqual([{ secret_hash: stored.secret_hash }]);

    const revoked = await ctx.app.inject({ method: 'DELETE', url: `${base}/${client.id}`, headers: bearer(ctx.adminToken) });
    expect(revoked.statusCode).toBe(204);
    expect(revoked.body).toBe('');
    const revokedAt = (await clientRow(client.id))?.revoked_at;
    expect(revokedAt).toBeInstanceOf(Date);

    // Idempotent: again 204, the first revocation time stays.
    const again = await ctx.app.inject({ method: 'DELETE', url: `${base}/${client.id}`, headers: bearer(ctx.adminToken) });
    expect(again.statusCode).toBe(204);
    expect((await clientRow(client.id))?.revoked_at).toEqual(revokedAt);

    // Hidden from the list, still readable by id, no longer changeable, id never reused.
    const after = await ctx.app.inject({ method: 'GET', url: base, headers: bearer(ctx.adminToken) });
    expect(after.json().clients.map((c: { id: string }) => c.id)).not.toContain(client.id);
    const one = await ctx.app.inject({ method: 'GET', url: `${base}/${client.id}`, headers: bearer(ctx.adminToken) });
    expect(one.json().revoked_at).toBe(revokedAt!.toISOString());
    const patchRevoked = await ctx.app.inject({ method: 'PATCH', url: `${base}/${client.id}`, headers: bearer(ctx.adminToken), payload: { name: 'x' } });
    expect(patchRevoked.statusCode).toBe(409);
    expect(patchRevoked.json().error).toBe('conflict');
    const reuse = await ctx.app.inject({ method: 'POST', url: base, headers: bearer(ctx.adminToken), payload: { client_id: 'billing-svc', name: 'Again' } });
    expect(reuse.statusCode).toBe(409);
    expect(reuse.json().error).toBe('conflict');

    // Audited: create, update, one revoke (the idempotent repeat changes nothing).
    const audit = await auditActions(client.id);
    expect(audit.map((a) => a.action)).toEqual(['m2m_client.create', 'm2m_client.update', 'm2m_client.revoke']);
    expect(audit.every((a) => a.actor === 'admin@example.com' && a.ip === '127.0.0.1')).toBe(true);
  });

  it('lists newest first', async () => {
    const a = await createClient(ctx, { client_id: 'order-a', name: 'A' });
    const b = await createClient(ctx, { client_id: 'order-b', name: 'B' });
    const list = await ctx.app.inject({ method: 'GET', url: base, headers: bearer(ctx.adminToken) });
    const ids = list.json().clients.map((c: { id: string }) => c.id);
    expect(ids.indexOf(b.client.id)).toBeLessThan(ids.indexOf(a.client.id));
    expect(ids.indexOf(b.client.id)).toBeGreaterThanOrEqual(0);
  });

  it('DELETE and PATCH of an unknown id are 404', async () => {
    const del = await ctx.app.inject({ method: 'DELETE', url: `${base}/${uuid}`, headers: bearer(ctx.adminToken) });
    expect(del.statusCode).toBe(404);
    expect(del.json()).toEqual({ error: 'not_found', message: expect.any(String) });
  });
});

describe('concurrency', () => {
  it('20 parallel creates of one client_id: exactly one 201 and 19 409s', async () => {
    const results = await Promise.all(
      Array.from({ length: 20 }, () =>
        ctx.app.inject({ method: 'POST', url: base, headers: bearer(ctx.adminToken), payload: { client_id: 'race-svc', name: 'Race' } }),
      ),
    );
    const statuses = results.map((r) => r.statusCode).sort();
    expect(statuses.filter((s) => s === 201)).toHaveLength(1);
    expect(statuses.filter((s) => s === 409)).toHaveLength(19);
    expect(results.filter((r) => r.statusCode === 409).every((r) => r.json().error === 'conflict')).toBe(true);
    const rows = await ctx.database.db.selectFrom('m2m_clients').select('id').where('client_id', '=', 'race-svc').execute();
    expect(rows).toHaveLength(1);
  });
});
