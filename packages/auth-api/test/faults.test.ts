import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';
import { connectDatabase, type DatabaseHandle } from '../src/db/connect.js';
import { migrateToLatest } from '../src/db/migrations.js';
import { createBcryptHasher } from '../src/lib/password.js';
import { createAdminUser } from '../src/modules/admin-auth/admin-auth.service.js';
import { ADMIN, TEST_DATABASE_URL, bearer, login, testConfig } from './helpers.js';
import { freePort } from './process-helpers.js';

/**
 * The database goes away for real (a PostgreSQL server of this test's own,
 * stopped with pg_ctl) and comes back: the server answers 503 meanwhile,
 * never crashes, and recovers without a restart. Runs in the PostgreSQL pass
 * of the suite (TEST_DATABASE_URL set, as in CI), which has the binaries.
 */
const script = resolve(import.meta.dirname, '../../../scripts/pg-throwaway.sh');
const pg = (...args: string[]) => execFileSync('bash', [script, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();

describe.skipIf(!TEST_DATABASE_URL)('database outage (real PostgreSQL stopped and started)', () => {
  let dir: string;
  let port: number;
  let database: DatabaseHandle;
  let app: FastifyInstance;
  let adminToken: string;
  let clientSecret: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'authapi-faults-'));
    port = await freePort();
    const url = pg('start', dir, String(port));
    database = await connectDatabase({ databaseUrl: url });
    await migrateToLatest(database.db);
    const hasher = createBcryptHasher(4);
    await createAdminUser(database.db, hasher, ADMIN.email, ADMIN.password, { id: null, label: 'test', ip: null });
    app = await buildApp({ config: testConfig(), database, hasher, logger: false });
    adminToken = await login(app, ADMIN);
    const created = await app.inject({ method: 'POST', url: '/api/v1/admin/m2m-clients', headers: bearer(adminToken), payload: { client_id: 'outage-svc', name: 'Outage', scopes: ['a:b'] } });
    clientSecret = created.json().client_secret;
  });

  afterAll(async () => {
    await app?.close();
    await database?.close();
    if (dir) {
      pg('stop', dir);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const grant = () =>
    app.inject({
      method: 'POST',
      url: '/api/v1/oauth/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: `grant_type=client_credentials&client_id=outage-svc&client_secret=${encodeURIComponent(clientSecret)}`,
    });
  const list = () => app.inject({ method: 'GET', url: '/api/v1/admin/m2m-clients', headers: bearer(adminToken) });

  it('503 while the database is down, then recovers without a restart', async () => {
    expect((await grant()).statusCode).toBe(200);

    pg('stop', dir);

    // A repeat grant may be served from memory until the instance sees its change feed drop, within
    // the invalidation bound (1 s; docs/OPERATIONS.md, "Running several instances"); then 503.
    let token = await grant();
    for (const started = performance.now(); token.statusCode === 200 && performance.now() - started < 1000; ) {
      await new Promise((r) => setTimeout(r, 10));
      token = await grant();
    }
    expect(token.statusCode).toBe(503);
    expect(token.json()).toEqual({ error: 'temporarily_unavailable', error_description: expect.any(String) });
    expect(token.headers['retry-after']).toBe('5');
    const management = await list();
    expect(management.statusCode).toBe(503);
    expect(management.json()).toEqual({ error: 'service_unavailable', message: expect.any(String) });
    const signIn = await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: ADMIN });
    expect(signIn.statusCode).toBe(503);
    expect((await app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(503);
    expect((await app.inject({ method: 'GET', url: '/healthz' })).statusCode).toBe(200);
    for (const res of [token, management, signIn]) expect(res.body).not.toMatch(/ECONNREFUSED|at .*\.js|postgres/i);

    pg('start', dir, String(port));

    await expect.poll(async () => (await app.inject({ method: 'GET', url: '/readyz' })).statusCode, { timeout: 15_000 }).toBe(200);
    expect((await grant()).statusCode).toBe(200);
    expect((await list()).statusCode).toBe(200);
  });
});
