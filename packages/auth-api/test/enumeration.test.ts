import type { KyselyPlugin } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';
import { createBcryptHasher } from '../src/lib/password.js';
import { createAdminUser } from '../src/modules/admin-auth/admin-auth.service.js';
import { ADMIN, bearer, createClient, createTestContext, createTestDatabase, login, testConfig, type TestContext } from './helpers.js';

/**
 * Unknown client, wrong secret, disabled and revoked credentials, expired and
 * deleted secrets must not be told apart: byte-identical bodies, and response times from the same
 * distribution. Method: 4 categories × 30 samples at the production bcrypt
 * cost (10), each round in a shuffled order so machine noise (CI runs test
 * files in parallel on 2 cores) hits all alike. Threshold: every category's
 * median is within 50% of the wrong-secret median. A skipped bcrypt compare
 * is a ~20× difference (~2 ms against ~50 ms) and an extra one 2×: both fail.
 * With hmac-sha256 secrets (a compare of microseconds) every failure still pays
 * one bcrypt, so the same holds.
 */
const SAMPLES = 30;
const THRESHOLD = 0.5;

const PEPPER = 'pepper-for-enumeration-tests-0123456789-abcdefghij';

/** Credentials of every failing kind, on a server storing new secrets with `hash`. */
async function setUp(hash: 'bcrypt' | 'hmac-sha256') {
  const ctx = await createTestContext({
    hasher: createBcryptHasher(10),
    env: { AUTH_FAILURE_LIMIT: '1000', AUTH_FAILURE_LIMIT_PER_IP: '1000', CLIENT_SECRET_HASH: hash, CLIENT_SECRET_PEPPER: PEPPER },
  });
  const attempts: Record<string, { id: string; secret: string }> = {};
  const live = await createClient(ctx, { client_id: 'live-svc', name: 'Live', scopes: ['a:b'] });
  const disabled = await createClient(ctx, { client_id: 'disabled-svc', name: 'Disabled', scopes: ['a:b'] });
  const revoked = await createClient(ctx, { client_id: 'revoked-svc', name: 'Revoked', scopes: ['a:b'] });
  await ctx.app.inject({ method: 'PATCH', url: `/api/v1/admin/m2m-clients/${disabled.client.id}`, headers: bearer(ctx.adminToken), payload: { status: 'disabled' } });
  await ctx.app.inject({ method: 'DELETE', url: `/api/v1/admin/m2m-clients/${revoked.client.id}`, headers: bearer(ctx.adminToken) });
  attempts['wrong secret'] = { id: 'live-svc', secret: `${live.client_secret.slice(0, -3)}abc` };
  attempts['unknown client'] = { id: 'ghost-svc', secret: live.client_secret };
  // Disabled and revoked are tried with their right secrets: the hardest case.
  attempts.disabled = { id: 'disabled-svc', secret: disabled.client_secret };
  attempts.revoked = { id: 'revoked-svc', secret: revoked.client_secret };
  // A rotated credential: its old secret expired at once, the other deleted.
  const rotated = await createClient(ctx, { client_id: 'rotated-svc', name: 'Rotated', scopes: ['a:b'] });
  const secrets = `/api/v1/admin/m2m-clients/${rotated.client.id}/secrets`;
  const deleted = (await ctx.app.inject({ method: 'POST', url: secrets, headers: bearer(ctx.adminToken), payload: { expire_previous_in: 0 } })).json();
  await ctx.app.inject({ method: 'POST', url: secrets, headers: bearer(ctx.adminToken) });
  await ctx.app.inject({ method: 'DELETE', url: `${secrets}/${deleted.secret.id}`, headers: bearer(ctx.adminToken) });
  attempts['expired secret'] = { id: 'rotated-svc', secret: rotated.client_secret };
  attempts['deleted secret'] = { id: 'rotated-svc', secret: deleted.client_secret };
  return { ctx, attempts };
}

const contexts: TestContext[] = [];
afterAll(async () => {
  for (const ctx of contexts) await ctx.close();
});

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

describe.each(['bcrypt', 'hmac-sha256'] as const)('client enumeration, secrets stored with %s', (hash) => {
  it('same body, same time', async () => {
    const { ctx, attempts } = await setUp(hash);
    contexts.push(ctx);
    const times: Record<string, number[]> = Object.fromEntries(Object.keys(attempts).map((k) => [k, []]));
    const bodies = new Set<string>();
    for (let i = 0; i < SAMPLES; i++) {
      const round = Object.entries(attempts).sort(() => Math.random() - 0.5);
      for (const [label, { id, secret }] of round) {
        const t = process.hrtime.bigint();
        const res = await ctx.app.inject({
          method: 'POST',
          url: '/api/v1/oauth/token',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          payload: new URLSearchParams({ grant_type: 'client_credentials', client_id: id, client_secret: secret }).toString(),
        });
        times[label]!.push(Number(process.hrtime.bigint() - t) / 1e6);
        expect(res.statusCode).toBe(401);
        bodies.add(res.body + JSON.stringify(res.headers['www-authenticate']));
      }
    }
    expect(bodies.size).toBe(1);
    const medians = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]));
    const reference = medians['wrong secret']!;
    expect(reference).toBeGreaterThan(10); // bcrypt at cost 10 really ran
    for (const [label, m] of Object.entries(medians)) {
      expect({ label, withinThreshold: Math.abs(m - reference) / reference < THRESHOLD, medians }).toEqual({ label, withinThreshold: true, medians });
    }
  }, 300_000); // 6 kinds × 30 samples at cost 10, plus the set-up's rotations: minutes on a loaded machine
});

describe('client enumeration through what the server remembers', () => {
  it('a wrong secret for a client_id whose state is in memory takes the database read an unknown client_id takes', async () => {
    // Every query answered 40 ms late, once switched on: a wrong secret that skipped the read
    // an unknown client_id makes would answer 40 ms sooner (bcrypt at cost 4 takes ~2 ms).
    let delayMs = 0;
    const slow: KyselyPlugin = {
      transformQuery: (args) => args.node,
      transformResult: async (args) => {
        if (delayMs > 0) await new Promise((resolve) => setTimeout(resolve, delayMs));
        return args.result;
      },
    };
    const database = await createTestDatabase();
    const config = testConfig({ AUTH_FAILURE_LIMIT: '1000', AUTH_FAILURE_LIMIT_PER_IP: '1000' });
    const hasher = createBcryptHasher(config.bcryptCost);
    await createAdminUser(database.db, hasher, ADMIN.email, ADMIN.password, { id: null, label: 'test', ip: null });
    const app = await buildApp({ logger: false, config, database: { ...database, db: database.db.withPlugin(slow) }, hasher });
    try {
      await app.ready();
      const token = await login(app, ADMIN);
      const created = await app.inject({ method: 'POST', url: '/api/v1/admin/m2m-clients', headers: bearer(token), payload: { client_id: 'remembered-svc', name: 'Remembered', scopes: ['a:b'] } });
      const secret = created.json().client_secret as string;
      const grant = (clientId: string, clientSecret: string) =>
        app.inject({ method: 'POST', url: '/api/v1/oauth/token', payload: { grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret } });
      // A grant once the change feed is live: the credential's state is now remembered.
      for (let i = 0; i < 100 && !app.credentialState.stats().live; i++) await new Promise((resolve) => setTimeout(resolve, 50));
      expect((await grant('remembered-svc', secret)).statusCode).toBe(200);
      expect((await grant('remembered-svc', secret)).statusCode).toBe(200);
      const { hits } = app.credentialState.stats();
      expect(hits).toBeGreaterThan(0);

      delayMs = 40;
      const times: Record<'known' | 'unknown', number[]> = { known: [], unknown: [] };
      for (let i = 0; i < 5; i++) {
        for (const [label, clientId] of [['known', 'remembered-svc'], ['unknown', 'never-created-svc']] as const) {
          const started = performance.now();
          const res = await grant(clientId, `${secret.slice(0, -3)}xyz`);
          times[label].push(performance.now() - started);
          expect(res.statusCode).toBe(401);
        }
      }
      const [known, unknown] = [median(times.known), median(times.unknown)];
      // Both paid the delayed read: each at least 40 ms, and within 20 ms of each other.
      expect({ known: known >= 40, unknown: unknown >= 40, close: Math.abs(known - unknown) < 20, times }).toEqual({ known: true, unknown: true, close: true, times });
    } finally {
      delayMs = 0;
      await app.close();
      await database.close();
    }
  });
});
