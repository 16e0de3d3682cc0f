import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';
import { CHANGE_FEED_APPLICATION_NAME, openPostgresChangeFeed } from '../src/db/change-feed.js';
import { connectDatabase, type DatabaseHandle } from '../src/db/connect.js';
import { migrateToLatest } from '../src/db/migrations.js';
import { createBcryptHasher } from '../src/lib/password.js';
import { createAdminUser } from '../src/modules/admin-auth/admin-auth.service.js';
import { bearer, login, TEST_DATABASE_URL, testConfig } from './helpers.js';
import { createEmptyPostgresDatabase } from './process-helpers.js';

/**
 * Three instances on one PostgreSQL, each with its own pool and change feed, as
 * three processes would be: the failure limit counts across them, and a change
 * made through one (or straight in the database) reaches the others within the
 * bound (docs/OPERATIONS.md, "Running several instances").
 */
const BOUND_MS = 1000;
const ADMIN = { email: 'cluster-admin@example.com', password: 'cluster admin password 1' };
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

describe.skipIf(!TEST_DATABASE_URL)('several instances on one PostgreSQL', () => {
  let dropDatabase: () => Promise<void>;
  const handles: DatabaseHandle[] = [];
  const apps: FastifyInstance[] = [];
  let adminToken: string;
  const config = testConfig({ AUTH_FAILURE_LIMIT: '3', AUTH_FAILURE_LIMIT_PER_IP: '50', RATE_LIMIT_PER_MINUTE: '0' });
  const hasher = createBcryptHasher(config.bcryptCost);

  /** A database handle of its own, as another process has; `reconnectMs` slows its feed's reconnects. */
  async function instanceDatabase(url: string, reconnectMs?: number): Promise<DatabaseHandle> {
    const handle = await connectDatabase({ databaseUrl: url, poolSize: 4 });
    handles.push(handle);
    if (reconnectMs === undefined) return handle;
    return {
      ...handle,
      openChangeFeed: (channel, handlers) => openPostgresChangeFeed({ connectionString: url, channel, handlers, reconnect: { minMs: reconnectMs, maxMs: reconnectMs } }),
    };
  }

  beforeAll(async () => {
    const empty = await createEmptyPostgresDatabase(TEST_DATABASE_URL!);
    dropDatabase = empty.drop;
    const first = await instanceDatabase(empty.url);
    await migrateToLatest(first.db);
    await createAdminUser(first.db, hasher, ADMIN.email, ADMIN.password, { id: null, label: 'test', ip: null });
    // Instance C's feed reconnects only after 1.5 s: long enough to watch it read through while down.
    const databases = [first, await instanceDatabase(empty.url), await instanceDatabase(empty.url, 1500)];
    for (const database of databases) {
      const app = await buildApp({ config, database, hasher, logger: false });
      await app.ready();
      apps.push(app);
    }
    adminToken = await login(apps[0]!, ADMIN);
    // Every feed listening before the tests start.
    for (let waited = 0; !apps.every((app) => app.credentialState.stats().live); waited += 20) {
      if (waited > 5000) throw new Error('the change feeds did not go live');
      await new Promise((r) => setTimeout(r, 20));
    }
  });

  afterAll(async () => {
    for (const app of apps) await app.close();
    for (const handle of handles) await handle.close();
    await dropDatabase?.();
  });

  const grant = (app: FastifyInstance, clientId: string, secret: string, remoteAddress = '127.0.0.1') =>
    app.inject({ method: 'POST', url: '/api/v1/oauth/token', remoteAddress, headers: FORM, payload: new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: secret }).toString() });

  async function createCredential(clientId: string, scopes = ['a:b']) {
    const res = await apps[0]!.inject({ method: 'POST', url: '/api/v1/admin/m2m-clients', headers: bearer(adminToken), payload: { client_id: clientId, name: clientId, scopes } });
    expect(res.statusCode).toBe(201);
    return { id: res.json().client.id as string, secret: res.json().client_secret as string };
  }

  // Each polling grant from an address of its own: the refusals polled for count as failures, and
  // must not add up to the failure limit (that is the first test's subject, not these).
  let polls = 0;
  const pollAddress = () => {
    polls += 1;
    return `10.1.${Math.floor(polls / 250)}.${(polls % 250) + 1}`;
  };

  /** Grants on `app` until `done(response)` holds; how long that took, in ms. Fails past the bound. */
  async function msUntil(app: FastifyInstance, clientId: string, secret: string, done: (res: Awaited<ReturnType<typeof grant>>) => boolean) {
    const started = performance.now();
    for (;;) {
      const res = await grant(app, clientId, secret, pollAddress());
      const elapsed = performance.now() - started;
      if (done(res)) return elapsed;
      if (elapsed > BOUND_MS) throw new Error(`not seen within ${BOUND_MS} ms: still ${res.statusCode} ${res.body}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  it('the failure limit counts across the instances: AUTH_FAILURE_LIMIT failures in total, not three times that', async () => {
    await createCredential('victim-svc');
    const attacker = '203.0.113.40';
    const statuses: number[] = [];
    for (let i = 0; i < 9; i++) statuses.push((await grant(apps[i % 3]!, 'victim-svc', `m2msk_wrong_${i}`, attacker)).statusCode);
    // Three failures, whichever instance they hit; then every instance refuses.
    expect(statuses).toEqual([401, 401, 401, 429, 429, 429, 429, 429, 429]);
    const counted = await handles[0]!.db.selectFrom('auth_attempts').select(['key', 'count']).where('key', '=', `grant:id:victim-svc|${attacker}`).executeTakeFirst();
    expect(counted?.count).toBe(9);
    // Another address is not affected, on any instance.
    for (const app of apps) expect((await grant(app, 'victim-svc', 'm2msk_wrong', '203.0.113.41')).statusCode).toBe(401);
  });

  it('revoke, disable and scope changes made on A are seen by B and C within the bound, though they serve the credential from memory', async () => {
    const svc = await createCredential('moving-svc', ['a:b', 'c:d']);
    const [a, b, c] = apps as [FastifyInstance, FastifyInstance, FastifyInstance];
    // Warm: each instance has verified the secret and keeps the credential's state.
    for (const app of [b, c]) {
      expect((await grant(app, 'moving-svc', svc.secret)).statusCode).toBe(200);
      const hits = app.credentialState.stats().hits;
      expect((await grant(app, 'moving-svc', svc.secret)).statusCode).toBe(200);
      expect(app.credentialState.stats().hits).toBeGreaterThan(hits);
    }
    const patch = (payload: object) => a.inject({ method: 'PATCH', url: `/api/v1/admin/m2m-clients/${svc.id}`, headers: bearer(adminToken), payload });
    const seen: number[] = [];

    expect((await patch({ scopes: ['a:b'] })).statusCode).toBe(200);
    for (const app of [b, c]) seen.push(await msUntil(app, 'moving-svc', svc.secret, (res) => res.statusCode === 200 && res.json().scope === 'a:b'));

    expect((await patch({ status: 'disabled' })).statusCode).toBe(200);
    for (const app of [b, c]) seen.push(await msUntil(app, 'moving-svc', svc.secret, (res) => res.statusCode === 401));

    expect((await patch({ status: 'active' })).statusCode).toBe(200);
    for (const app of [b, c]) seen.push(await msUntil(app, 'moving-svc', svc.secret, (res) => res.statusCode === 200));

    expect((await a.inject({ method: 'DELETE', url: `/api/v1/admin/m2m-clients/${svc.id}`, headers: bearer(adminToken) })).statusCode).toBe(204);
    for (const app of [b, c]) seen.push(await msUntil(app, 'moving-svc', svc.secret, (res) => res.statusCode === 401 && res.json().error === 'invalid_client'));
    expect(Math.max(...seen)).toBeLessThan(BOUND_MS);
  });

  it('a change made straight in the database (another process, the CLI) and a catalog change reach every instance', async () => {
    const svc = await createCredential('direct-svc', ['gsku:read', 'gsku:write']);
    for (const app of apps) expect((await grant(app, 'direct-svc', svc.secret)).json().scope).toBe('gsku:read gsku:write');
    // No service involved: only the trigger and the feeds.
    await sql`update m2m_clients set allowed_audiences = array['https://x.internal'], scopes = array['gsku:read'] where id = ${svc.id}`.execute(handles[1]!.db);
    for (const app of apps) await msUntil(app, 'direct-svc', svc.secret, (res) => res.json().scope === 'gsku:read');
    // A catalog for `gsku` that does not define gsku:read orphans it: no longer granted anywhere.
    const registered = await apps[0]!.inject({
      method: 'POST',
      url: '/api/v1/admin/permissions/register',
      headers: bearer(adminToken),
      payload: { service: 'gsku', permissions: [{ code: 'gsku:publish', name: 'Publish' }] },
    });
    expect(registered.statusCode).toBe(200);
    for (const app of apps) await msUntil(app, 'direct-svc', svc.secret, (res) => res.statusCode === 200 && res.json().scope === '');
  });

  it('a last_used_at stamp alone notifies nobody: repeat grants keep being served from memory', async () => {
    const svc = await createCredential('busy-svc');
    const b = apps[1]!;
    expect((await grant(b, 'busy-svc', svc.secret)).statusCode).toBe(200);
    await expect.poll(async () => (await handles[0]!.db.selectFrom('m2m_clients').select('last_used_at').where('id', '=', svc.id).executeTakeFirst())?.last_used_at).toBeInstanceOf(Date);
    const before = b.credentialState.stats();
    for (let i = 0; i < 20; i++) expect((await grant(b, 'busy-svc', svc.secret)).statusCode).toBe(200);
    const after = b.credentialState.stats();
    expect(after.hits - before.hits).toBe(20);
    expect(after.misses).toBe(before.misses);
  });

  it('listener killed: the instance reads through (no stale state), then reconnects, resynchronises and serves from memory again', async () => {
    const svc = await createCredential('feed-svc');
    const c = apps[2]!;
    expect((await grant(c, 'feed-svc', svc.secret)).statusCode).toBe(200);
    expect((await grant(c, 'feed-svc', svc.secret)).statusCode).toBe(200);
    // Every listening connection of the database.
    const killed = await sql<{ pid: number }>`select pid, pg_terminate_backend(pid) from pg_stat_activity
      where datname = current_database() and application_name = ${CHANGE_FEED_APPLICATION_NAME}`.execute(handles[0]!.db);
    expect(killed.rows).toHaveLength(3);
    await expect.poll(() => c.credentialState.stats().live, { timeout: 500, interval: 5 }).toBe(false);

    // Down: the instance takes nothing from memory. A change nobody is told about is seen at once.
    const { misses, hits } = c.credentialState.stats();
    await sql`update m2m_clients set status = 'disabled' where id = ${svc.id}`.execute(handles[0]!.db);
    expect((await grant(c, 'feed-svc', svc.secret)).statusCode).toBe(401);
    await sql`update m2m_clients set status = 'active' where id = ${svc.id}`.execute(handles[0]!.db);
    expect((await grant(c, 'feed-svc', svc.secret)).statusCode).toBe(200);
    expect((await grant(c, 'feed-svc', svc.secret)).statusCode).toBe(200);
    // Every read went to the database (one or two per grant), none was kept or served from memory.
    expect(c.credentialState.stats()).toMatchObject({ live: false, hits, entries: 0 });
    expect(c.credentialState.stats().misses).toBeGreaterThanOrEqual(misses + 3);

    // Back (the reconnect waits 1.5 s here) and resynchronised: from memory again, and told of changes again.
    await expect.poll(() => c.credentialState.stats().live, { timeout: 5000, interval: 20 }).toBe(true);
    expect((await grant(c, 'feed-svc', svc.secret)).statusCode).toBe(200);
    const back = c.credentialState.stats().hits;
    expect((await grant(c, 'feed-svc', svc.secret)).statusCode).toBe(200);
    expect(c.credentialState.stats().hits).toBe(back + 1);
    await sql`update m2m_clients set revoked_at = now() where id = ${svc.id}`.execute(handles[0]!.db);
    expect(await msUntil(c, 'feed-svc', svc.secret, (res) => res.statusCode === 401)).toBeLessThan(BOUND_MS);
    // The other instances reconnected too.
    await expect.poll(() => apps.every((app) => app.credentialState.stats().live), { timeout: 5000 }).toBe(true);
  });
});
