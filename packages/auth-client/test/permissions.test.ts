// client.permissions.* against a real auth-api over a real socket (PGlite in memory).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, PLAIN_USER, type TestContext } from '../../auth-api/test/helpers.js';
import { createAuthClient, createMemoryStorage, type AuthClient } from '../src/index.js';
import { failure, listeningAdmin } from './helpers.js';

let ctx: TestContext;
let apiBaseUrl: string;
let admin: AuthClient;

beforeAll(async () => {
  ({ ctx, apiBaseUrl, admin } = await listeningAdmin());
});
afterAll(() => ctx?.close());

describe('client.permissions', () => {
  it('register, list (all and by service), services', async () => {
    const first = await admin.permissions.register({
      service: 'gsku',
      permissions: [
        { code: 'gsku:publish', name: 'Publish', description: 'Publish SKUs', category: 'write' },
        { code: 'gsku:read', name: 'Read' },
      ],
    });
    expect(first).toEqual({ service: 'gsku', upserted_count: 2, pruned_codes: [] });
    expect(await admin.permissions.register({ service: 'gsku', permissions: [{ code: 'gsku:publish', name: 'Publish', description: 'Publish SKUs', category: 'write' }] })).toEqual({
      service: 'gsku',
      upserted_count: 0,
      pruned_codes: ['gsku:read'],
    });
    await admin.permissions.register({ service: 'billing', permissions: [{ code: 'billing:charge', name: 'Charge' }] });

    const all = await admin.permissions.list();
    expect(all.map((p) => p.code)).toEqual(['billing:charge', 'gsku:publish']);
    const gsku = await admin.permissions.list({ service: 'gsku' });
    expect(gsku).toEqual([
      {
        code: 'gsku:publish',
        service: 'gsku',
        name: 'Publish',
        description: 'Publish SKUs',
        resource: null,
        action: null,
        category: 'write',
        created_at: expect.any(String),
        updated_at: expect.any(String),
      },
    ]);
    expect(await admin.permissions.list({ service: 'nobody' })).toEqual([]);
    expect(await admin.permissions.services()).toEqual([
      { service: 'billing', count: 1, updated_at: expect.any(String), registered_by: ADMIN.email },
      { service: 'gsku', count: 1, updated_at: expect.any(String), registered_by: ADMIN.email },
    ]);
  });

  it('a service registers its own catalog with its service token in the storage', async () => {
    const { client_secret } = await admin.services.create({ client_id: 'gsku-svc', name: 'gsku', scopes: ['auth:catalog:gsku'] });
    const res = await fetch(`${apiBaseUrl}/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', client_id: 'gsku-svc', client_secret }).toString(),
    });
    const { access_token } = (await res.json()) as { access_token: string };
    const storage = createMemoryStorage();
    await storage.set(access_token);
    const asService = createAuthClient({ apiBaseUrl, appCode: 'gsku', storage });
    const done = await asService.permissions.register({ service: 'gsku', permissions: [{ code: 'gsku:publish', name: 'Publish', description: 'Publish SKUs', category: 'write' }, { code: 'gsku:list', name: 'List' }] });
    expect(done).toEqual({ service: 'gsku', upserted_count: 1, pruned_codes: [] });
    expect((await admin.permissions.services()).find((s) => s.service === 'gsku')?.registered_by).toBe('client:gsku-svc');

    const other = await failure(asService.permissions.register({ service: 'billing', permissions: [{ code: 'billing:charge', name: 'Charge' }] }));
    expect({ code: other.code, status: other.status }).toEqual({ code: 'forbidden', status: 403 });
    // Listings stay admin-only: a service token is authenticated but no admin (403).
    expect((await failure(asService.permissions.list())).code).toBe('forbidden');
  });

  it('errors carry the stable code and details: conflict naming the owner, unknown_scope, forbidden, validation_failed', async () => {
    const conflict = await failure(admin.permissions.register({ service: 'billing', permissions: [{ code: 'gsku:publish', name: 'x' }] }));
    expect({ code: conflict.code, status: conflict.status, details: conflict.details }).toEqual({
      code: 'conflict',
      status: 409,
      details: [{ path: 'body.permissions.0.code', message: '"gsku:publish" is owned by the catalog "gsku"' }],
    });

    const unknown = await failure(admin.services.create({ client_id: 'typo-svc', name: 'x', scopes: ['gsku:pubish'] }));
    expect({ code: unknown.code, status: unknown.status, paths: unknown.details?.map((d) => d.path) }).toEqual({ code: 'unknown_scope', status: 400, paths: ['body.scopes.0'] });

    const user = createAuthClient({ apiBaseUrl, appCode: 'auth-client-test' });
    await user.auth.login(PLAIN_USER);
    expect((await failure(user.permissions.services())).code).toBe('forbidden');
    expect((await failure(admin.permissions.register({ service: 'core', permissions: [{ code: 'core:x', name: 'x' }] }))).code).toBe('validation_failed');
  });

  it('a pruned scope shows in the record as orphaned', async () => {
    const { client } = await admin.services.create({ client_id: 'holder-svc', name: 'x', scopes: ['gsku:publish', 'gsku:list'] });
    expect(client.orphaned_scopes).toEqual([]);
    await admin.permissions.register({ service: 'gsku', permissions: [{ code: 'gsku:publish', name: 'Publish', description: 'Publish SKUs', category: 'write' }] });
    const record = await admin.services.get(client.id);
    expect(record).toMatchObject({ scopes: ['gsku:publish', 'gsku:list'], orphaned_scopes: ['gsku:list'] });
  });
});
