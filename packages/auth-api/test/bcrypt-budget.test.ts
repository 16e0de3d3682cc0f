import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createWorkBudget } from '../src/lib/work-budget.js';
import { ADMIN, bearer, createClient, createTestContext, type TestContext } from './helpers.js';

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const grantBody = (clientId: string, clientSecret: string) => new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret }).toString();

/**
 * The bound every probe must meet during the flood. A correctness bound with a
 * wide margin (these requests take a few ms when idle), not a benchmark: without
 * the budget, 480 cost-10 compares queue ahead of the admin guard's WebCrypto
 * HMAC on libuv's pool and these requests take seconds (bench/flood.ts measures).
 */
const BOUND_MS = 2000;
/** For requests that need a compare of their own: a turn in the budget's round-robin, not the flood's backlog (~10 s). */
const BCRYPT_BOUND_MS = 8000;

describe('a bcrypt flood does not starve the server', () => {
  let ctx: TestContext;
  let cached: { clientId: string; secret: string };
  let cold: { clientId: string; secret: string };
  let doomed: string;
  beforeAll(async () => {
    // A long queue-time limit: on a loaded machine a turn can exceed the 2 s default, and this test
    // is about being served in turn (shedding has its own test below).
    ctx = await createTestContext({ env: { BCRYPT_COST: '10', RATE_LIMIT_PER_MINUTE: '0', BCRYPT_MAX_WAIT_MS: '10000' } });
    const c = await createClient(ctx, { client_id: 'cached-svc', name: 'Cached', scopes: ['a:b'] });
    cached = { clientId: 'cached-svc', secret: c.client_secret };
    const warm = await ctx.app.inject({ method: 'POST', url: '/api/v1/oauth/token', headers: FORM, payload: grantBody(cached.clientId, cached.secret) });
    expect(warm.statusCode).toBe(200);
    cold = { clientId: 'cold-svc', secret: (await createClient(ctx, { client_id: 'cold-svc', name: 'Cold', scopes: ['a:b'] })).client_secret };
    doomed = (await createClient(ctx, { client_id: 'doomed-svc', name: 'Doomed' })).client.id;
  }, 120_000);
  afterAll(() => ctx?.close());

  it(`/healthz, a cached grant, admin routes and a revoke answer within ${BOUND_MS} ms; an uncached grant and a sign-in within ${BCRYPT_BOUND_MS} ms`, async () => {
    // 8 addresses, 60 junk grants each (well under the per-address limit of 100), all at once.
    let floodDone = 0;
    const floodStarted = performance.now();
    const flood = Array.from({ length: 8 * 60 }, (_, i) =>
      ctx.app
        .inject({ method: 'POST', url: '/api/v1/oauth/token', remoteAddress: `198.51.100.${1 + (i % 8)}`, headers: FORM, payload: grantBody(`junk-${i}-svc`, 'm2msk_junk') })
        .then((r) => {
          floodDone += 1;
          return r;
        }),
    );
    // Let the flood's compares fill the budget; the probes are sent while it is still pending.
    await new Promise((r) => setTimeout(r, 300));
    const floodPendingAtProbe = floodDone < flood.length;

    const timed = async (name: string, send: () => Promise<{ statusCode: number }>, status: number) => {
      const started = performance.now();
      const res = await send();
      const ms = performance.now() - started;
      expect({ name, status: res.statusCode }).toEqual({ name, status });
      return { name, ms };
    };
    // At once, while the flood's compares run and wait.
    const quick = Promise.all([
      timed('healthz', () => ctx.app.inject({ method: 'GET', url: '/healthz' }), 200),
      timed('cached grant', () => ctx.app.inject({ method: 'POST', url: '/api/v1/oauth/token', remoteAddress: '192.0.2.10', headers: FORM, payload: grantBody(cached.clientId, cached.secret) }), 200),
      timed('admin list', () => ctx.app.inject({ method: 'GET', url: '/api/v1/admin/m2m-clients', headers: bearer(ctx.adminToken) }), 200),
      timed('auth/me', () => ctx.app.inject({ method: 'GET', url: '/api/v1/auth/me', headers: bearer(ctx.adminToken) }), 200),
      timed('revoke', () => ctx.app.inject({ method: 'DELETE', url: `/api/v1/admin/m2m-clients/${doomed}`, headers: bearer(ctx.adminToken) }), 204),
    ]);
    // bcrypt work of its own: served in turn with the flooding addresses, not after their backlog.
    const ownWork = Promise.all([
      timed('uncached grant', () => ctx.app.inject({ method: 'POST', url: '/api/v1/oauth/token', remoteAddress: '192.0.2.11', headers: FORM, payload: grantBody(cold.clientId, cold.secret) }), 200),
      timed('sign-in', () => ctx.app.inject({ method: 'POST', url: '/api/v1/auth/login', remoteAddress: '192.0.2.12', payload: ADMIN }), 200),
    ]);
    const [probes, bcryptProbes] = await Promise.all([quick, ownWork]);

    const results = await Promise.all(flood);
    const floodMs = performance.now() - floodStarted;
    // The probes met a real flood: sent while it was pending, and it kept the budget busy for a while.
    expect(floodPendingAtProbe).toBe(true);
    expect(floodMs).toBeGreaterThan(1000);
    for (const p of probes) expect({ name: p.name, within: p.ms < BOUND_MS }).toEqual({ name: p.name, within: true });
    for (const p of bcryptProbes) expect({ name: p.name, within: p.ms < BCRYPT_BOUND_MS }).toEqual({ name: p.name, within: true });

    // The flood itself: refused after its compare (401), or shed without one (503 + Retry-After).
    const shed = results.filter((r) => r.statusCode === 503);
    expect(results.every((r) => r.statusCode === 401 || r.statusCode === 503)).toBe(true);
    expect(shed.length).toBeGreaterThan(0);
    expect(shed[0]!.json()).toEqual({ error: 'temporarily_unavailable', error_description: expect.any(String) });
    expect(Number(shed[0]!.headers['retry-after'])).toBeGreaterThan(0);
  }, 120_000);
});

describe('the work budget', () => {
  const gate = () => {
    let open!: () => void;
    const promise = new Promise<void>((r) => (open = r));
    return { promise, open };
  };

  it('runs at most `concurrency` jobs, serves parties round-robin, and sheds past the per-party bound', async () => {
    const budget = createWorkBudget({ concurrency: 1, maxWaitMs: 60_000, maxQueued: 100, maxQueuedPerParty: 3 });
    const order: string[] = [];
    const first = gate();
    const running = budget.run('a', () => first.promise.then(() => void order.push('a0')));
    const jobs = [
      budget.run('a', async () => void order.push('a1')),
      budget.run('a', async () => void order.push('a2')),
      budget.run('a', async () => void order.push('a3')),
      budget.run('b', async () => void order.push('b1')),
    ];
    await expect(budget.run('a', async () => {})).rejects.toMatchObject({ name: 'BudgetExceededError', reason: 'queue_full' });
    expect(budget.load()).toEqual({ running: 1, queued: 4 });
    first.open();
    await Promise.all([running, ...jobs]);
    expect(order).toEqual(['a0', 'a1', 'b1', 'a2', 'a3']);
  });

  it('a full queue makes room from the longest party, and a job that waits too long is shed', async () => {
    const budget = createWorkBudget({ concurrency: 1, maxWaitMs: 100, maxQueued: 3, maxQueuedPerParty: 10 });
    const hold = gate();
    const running = budget.run('x', () => hold.promise);
    const a = [1, 2, 3].map(() => budget.run('a', async () => 'a').catch((e: { reason: string }) => e.reason));
    const b = budget.run('b', async () => 'b').catch((e: { reason: string }) => e.reason);
    expect(await a[2]).toBe('queue_full');
    expect(budget.load()).toEqual({ running: 1, queued: 3 });
    expect(await b).toBe('wait_exceeded');
    hold.open();
    await running;
  });
});
