import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';
import { createBcryptHasher, type PasswordHasher } from '../src/lib/password.js';
import { bearer, createClient, createTestContext, testConfig, type TestContext } from './helpers.js';

/** Counts the bcrypt work the server does. */
function countingHasher(inner: PasswordHasher) {
  const calls = { verify: 0, burn: 0 };
  const hasher: PasswordHasher = {
    hash: (p) => inner.hash(p),
    verify: (p, h) => {
      calls.verify += 1;
      return inner.verify(p, h);
    },
    burn: (p) => {
      calls.burn += 1;
      return inner.burn(p);
    },
  };
  return { hasher, calls };
}

const counting = countingHasher(createBcryptHasher(4));
let ctx: TestContext;
let svc: { id: string; secret: string };
beforeAll(async () => {
  ctx = await createTestContext({ hasher: counting.hasher });
  const created = await createClient(ctx, { client_id: 'renewing-svc', name: 'Renewing', scopes: ['a:b', 'c:d'] });
  svc = { id: created.client.id, secret: created.client_secret };
});
afterAll(() => ctx?.close());

const grant = (secret: string, app = ctx.app) =>
  app.inject({
    method: 'POST',
    url: '/api/v1/oauth/token',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams({ grant_type: 'client_credentials', client_id: 'renewing-svc', client_secret: secret }).toString(),
  });

describe('verified-secret cache', () => {
  it('a repeat grant skips bcrypt; a wrong secret still pays it', async () => {
    const work = () => counting.calls.verify + counting.calls.burn;
    const start = work();
    expect((await grant(svc.secret)).statusCode).toBe(200);
    expect(work()).toBe(start + 1);
    for (let i = 0; i < 5; i++) expect((await grant(svc.secret)).statusCode).toBe(200);
    expect(work()).toBe(start + 1);

    // A wrong secret's hint names no stored secret: it pays one bcrypt burn instead of a compare.
    expect((await grant(`${svc.secret.slice(0, -2)}zz`)).statusCode).toBe(401);
    expect(work()).toBe(start + 2);
    // The wrong attempt did not evict the right one.
    expect((await grant(svc.secret)).statusCode).toBe(200);
    expect(work()).toBe(start + 2);
  });

  it('an update applies to the very next grant; the secret, unchanged, stays verified (no bcrypt)', async () => {
    expect((await grant(svc.secret)).statusCode).toBe(200);
    const before = counting.calls.verify;
    await ctx.app.inject({ method: 'PATCH', url: `/api/v1/admin/m2m-clients/${svc.id}`, headers: bearer(ctx.adminToken), payload: { scopes: ['a:b'] } });
    const next = await grant(svc.secret);
    expect(next.json().scope).toBe('a:b');
    expect(counting.calls.verify).toBe(before);
  });

  it('a restart starts empty', async () => {
    expect((await grant(svc.secret)).statusCode).toBe(200);
    const restarted = await buildApp({ config: testConfig(), database: ctx.database, hasher: counting.hasher, logger: false });
    const before = counting.calls.verify;
    expect((await grant(svc.secret, restarted)).statusCode).toBe(200);
    expect(counting.calls.verify).toBe(before + 1);
    await restarted.close();
  });

  it('a revoke applies to the very next grant despite the cache', async () => {
    expect((await grant(svc.secret)).statusCode).toBe(200);
    await ctx.app.inject({ method: 'DELETE', url: `/api/v1/admin/m2m-clients/${svc.id}`, headers: bearer(ctx.adminToken) });
    const res = await grant(svc.secret);
    expect(res.statusCode).toBe(401);
    expect(res.json().error).toBe('invalid_client');
  });
});

describe('bcrypt does not starve the event loop', () => {
  it('/healthz answers while 50 grants with distinct secrets are still running', async () => {
    // Shed attempts count against their address (abuse control); on a loaded machine the retries
    // below can shed more than AUTH_FAILURE_LIMIT_PER_IP times in all, which answers 429 instead.
    const heavy = await createTestContext({ hasher: createBcryptHasher(10), env: { AUTH_FAILURE_LIMIT_PER_IP: '10000' } });
    try {
      const clients = await Promise.all(
        Array.from({ length: 50 }, async (_, i) => {
          const created = await createClient(heavy, { client_id: `cold-${i}`, name: `Cold ${i}` });
          return { id: created.client.client_id, secret: created.client_secret };
        }),
      );
      let grantsDone = 0;
      const grants = clients.map((c) =>
        heavy.app
          .inject({
            method: 'POST',
            url: '/api/v1/oauth/token',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            payload: new URLSearchParams({ grant_type: 'client_credentials', client_id: c.id, client_secret: c.secret }).toString(),
          })
          .then((r) => {
            grantsDone += 1;
            return r;
          }),
      );
      await new Promise((r) => setTimeout(r, 20));
      const health = await heavy.app.inject({ method: 'GET', url: '/healthz' });
      expect(health.statusCode).toBe(200);
      // Ordering, not a timing threshold: bcrypt runs on the thread pool, so the
      // health check is answered long before the 50 cost-10 compares finish.
      const doneWhenHealthAnswered = grantsDone;
      expect(doneWhenHealthAnswered).toBeLessThan(25);
      // The bcrypt budget runs a few compares at once and sheds what would wait past its bound:
      // 503 temporarily_unavailable with Retry-After, and the same grant succeeds when retried.
      const results = await Promise.all(grants);
      let shed = results.flatMap((r, i) => (r.statusCode === 200 ? [] : [{ r, c: clients[i]! }]));
      expect(results.length - shed.length).toBeGreaterThanOrEqual(2);
      for (let round = 0; shed.length > 0 && round < 30; round++) {
        for (const { r } of shed) {
          expect(r.statusCode).toBe(503);
          expect(r.json()).toEqual({ error: 'temporarily_unavailable', error_description: expect.any(String) });
          expect(Number(r.headers['retry-after'])).toBeGreaterThan(0);
        }
        // As a client does: wait Retry-After, then try again.
        await new Promise((done) => setTimeout(done, Number(shed[0]!.r.headers['retry-after']) * 1000));
        const again = await Promise.all(
          shed.map(({ c }) =>
            heavy.app.inject({
              method: 'POST',
              url: '/api/v1/oauth/token',
              headers: { 'content-type': 'application/x-www-form-urlencoded' },
              payload: new URLSearchParams({ grant_type: 'client_credentials', client_id: c.id, client_secret: c.secret }).toString(),
            }),
          ),
        );
        shed = again.flatMap((r, i) => (r.statusCode === 200 ? [] : [{ r, c: shed[i]!.c }]));
      }
      expect(shed).toEqual([]);
    } finally {
      await heavy.close();
    }
    // 50 cost-10 hashes and compares, with retries after shedding: minutes on a loaded 2-core machine.
  }, 240_000);
});
