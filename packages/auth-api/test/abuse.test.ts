import type { KyselyPlugin } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';
import { AttemptStoreFullError, createFailureThrottle, createMemoryAttemptStore } from '../src/lib/throttle.js';
import { ADMIN, createClient, createTestContext, testConfig, type TestContext } from './helpers.js';

/** A clock the test moves by hand. */
let now = Date.parse('2026-11-26T12:00:00Z');
const clock = () => now;

const LIMITS = { AUTH_FAILURE_LIMIT: '3', AUTH_FAILURE_LIMIT_PER_IP: '6', AUTH_FAILURE_WINDOW: '60', RATE_LIMIT_PER_MINUTE: '0' };
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const grantBody = (clientId: string, clientSecret: string) => new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret }).toString();

describe('lockouts cannot be flushed', () => {
  // The store every throttle of this app shares: small, so a flush needs hundreds of requests, not 100,500.
  // The default store is the same code with 100,000 keys.
  let ctx: TestContext;
  let secret: string;
  beforeAll(async () => {
    ctx = await createTestContext({ clock, env: LIMITS, attemptStore: createMemoryAttemptStore({ clock, maxKeys: 300 }) });
    secret = (await createClient(ctx, { client_id: 'victim-svc', name: 'Victim', scopes: ['a:b'] })).client_secret;
  });
  afterAll(() => ctx?.close());

  const grant = (clientId: string, clientSecret: string, ip: string) =>
    ctx.app.inject({ method: 'POST', url: '/api/v1/oauth/token', remoteAddress: ip, headers: FORM, payload: grantBody(clientId, clientSecret) });
  const login = (password: string, ip: string) => ctx.app.inject({ method: 'POST', url: '/api/v1/auth/login', remoteAddress: ip, payload: { email: ADMIN.email, password } });

  it('400 junk client_ids from another address, then from the locked-out address itself, leave both lockouts in place', async () => {
    const a = '203.0.113.7';
    for (let i = 0; i < 3; i++) expect((await login('wrong password', a)).statusCode).toBe(401);
    for (let i = 0; i < 3; i++) expect((await grant('victim-svc', `m2msk_wrong${i}`, a)).statusCode).toBe(401);
    expect((await login(ADMIN.password, a)).statusCode).toBe(429);

    for (const flooder of ['198.51.100.9', a]) {
      const statuses = new Map<number, number>();
      for (let i = 0; i < 400; i++) {
        const status = (await grant(`junk-${flooder}-${i}`, 'm2msk_junk', flooder)).statusCode;
        statuses.set(status, (statuses.get(status) ?? 0) + 1);
      }
      // From B: 6 failures, then the address is over its limit; from A: over it already.
      expect(statuses.get(429)).toBeGreaterThanOrEqual(394);
    }

    // A's guesses are still refused, and so are the right password and secret (no check is made).
    expect((await login(ADMIN.password, a)).statusCode).toBe(429);
    expect((await grant('victim-svc', secret, a)).statusCode).toBe(429);
    // Elsewhere both still work.
    expect((await login(ADMIN.password, '192.0.2.1')).statusCode).toBe(200);
    expect((await grant('victim-svc', secret, '192.0.2.1')).statusCode).toBe(200);
    now += 61_000;
  });
});

describe('the attempt store never evicts a live window', () => {
  it('a full store drops ended windows first, else refuses the new key (the throttle fails closed); its last tenth is kept for networks holding few keys', async () => {
    let t = 1_000_000;
    // 3 keys; crowded from 2 on: then only a network holding fewer than 2 keys gets one.
    const store = createMemoryAttemptStore({ clock: () => t, maxKeys: 3 });
    await store.increment('a', 10_000, 'net-1');
    await store.increment('b', 10_000, 'net-1');
    t += 5_000;
    await expect(store.increment('c', 10_000, 'net-1')).rejects.toBeInstanceOf(AttemptStoreFullError);
    await store.increment('c', 10_000, 'net-2');
    await expect(store.increment('d', 10_000, 'net-3')).rejects.toBeInstanceOf(AttemptStoreFullError);
    expect(await store.increment('a', 10_000, 'net-1')).toEqual({ count: 2, resetAt: 1_010_000 });
    t += 5_000; // a and b have ended; c is live
    expect(await store.increment('d', 10_000, 'net-3')).toEqual({ count: 1, resetAt: 1_020_000 });
    expect(await store.increment('c', 10_000, 'net-2')).toEqual({ count: 2, resetAt: 1_015_000 });

    const trips: unknown[] = [];
    const full = createMemoryAttemptStore({ clock: () => t, maxKeys: 2 });
    const throttle = createFailureThrottle({ store: full, clock: () => t, name: 'grant', windowMs: 60_000, perIdentityAndIp: 3, perIp: 6, onStoreError: (err) => trips.push(err) });
    expect((await throttle.begin('x-svc', '192.0.2.1')).retryAfterSec).toBeUndefined();
    const refused = await throttle.begin('y-svc', '192.0.2.2');
    expect(refused.retryAfterSec).toBeGreaterThan(0);
    expect(trips).toHaveLength(1);
  });

  it('an address over its limit creates no per-identity key', async () => {
    const keys: string[] = [];
    const inner = createMemoryAttemptStore({ clock });
    const store = { ...inner, increment: (key: string, windowMs: number) => (keys.push(key), inner.increment(key, windowMs)) };
    const throttle = createFailureThrottle({ store, clock, name: 'grant', windowMs: 60_000, perIdentityAndIp: 3, perIp: 6 });
    for (let i = 0; i < 50; i++) await throttle.begin(`id-${i}`, '2001:db8:1:2::7');
    expect(new Set(keys.filter((k) => k.startsWith('grant:id:'))).size).toBe(6);
    expect(new Set(keys.filter((k) => k.startsWith('grant:ip:')))).toEqual(new Set(['grant:ip:2001:db8:1:2::/64']));
  });
});

describe('separate stores, failing closed when full', () => {
  it('a grant flood that fills its store refuses new grant attempts, and sign-in still works', async () => {
    const ctx = await createTestContext({ clock, env: { ...LIMITS, AUTH_THROTTLE_MAX_KEYS: '100' } });
    const grant = (clientId: string, ip: string) =>
      ctx.app.inject({ method: 'POST', url: '/api/v1/oauth/token', remoteAddress: ip, headers: FORM, payload: grantBody(clientId, 'm2msk_x') });
    try {
      // 7 keys per address (its counter and 6 identities): 15 addresses would need 105.
      for (let n = 0; n < 15; n++) {
        for (let i = 0; i < 6; i++) await grant(`fill-${n}-${i}`, `10.1.0.${n}`);
      }
      // Crowded (90 of 100): an address holding many keys gets no new one; a new address still does.
      expect((await grant('fill-more', '10.1.0.14')).statusCode).toBe(429);
      expect((await grant('new-svc', '192.0.2.98')).statusCode).toBe(401);
      // Two keys per new address fill the rest; then nothing new fits.
      for (let n = 0; n < 10; n++) await grant(`reserve-${n}`, `10.2.0.${n}`);
      const refused = await ctx.app.inject({ method: 'POST', url: '/api/v1/oauth/token', remoteAddress: '192.0.2.99', headers: FORM, payload: grantBody('new-svc', 'm2msk_x') });
      expect(refused.statusCode).toBe(429);
      expect(refused.json()).toEqual({ error: 'slow_down', error_description: expect.any(String) });
      const signIn = await ctx.app.inject({ method: 'POST', url: '/api/v1/auth/login', remoteAddress: '192.0.2.99', payload: ADMIN });
      expect(signIn.statusCode).toBe(200);
    } finally {
      await ctx.close();
    }
  });
});

describe('the token endpoint: throttle before the database, a ceiling on failures', () => {
  let ctx: TestContext;
  let reads = 0;
  beforeAll(async () => {
    ctx = await createTestContext({ clock, env: LIMITS });
  });
  afterAll(() => ctx?.close());

  it('an address over its limit is refused without reading the database', async () => {
    // The same app, on a database handle that counts reads of m2m_clients.
    const counter: KyselyPlugin = {
      transformQuery(args) {
        const node = args.node as { kind: string; from?: { froms: { table?: { identifier?: { name?: string } } }[] } };
        if (node.kind === 'SelectQueryNode' && node.from?.froms.some((f) => f.table?.identifier?.name === 'm2m_clients')) reads += 1;
        return args.node;
      },
      async transformResult(args) {
        return args.result;
      },
    };
    const app = await buildApp({ config: testConfig(LIMITS), database: { ...ctx.database, db: ctx.database.db.withPlugin(counter) }, hasher: ctx.hasher, clock, logger: false });
    try {
      const ip = '203.0.113.40';
      for (let i = 0; i < 6; i++) {
        const res = await app.inject({ method: 'POST', url: '/api/v1/oauth/token', remoteAddress: ip, headers: FORM, payload: grantBody(`probe-${i}-svc`, 'm2msk_x') });
        expect(res.statusCode).toBe(401);
      }
      const before = reads;
      for (let i = 0; i < 20; i++) {
        const res = await app.inject({ method: 'POST', url: '/api/v1/oauth/token', remoteAddress: ip, headers: FORM, payload: grantBody(`more-${i}-svc`, 'm2msk_x') });
        expect(res.statusCode).toBe(429);
      }
      expect(reads).toBe(before);
    } finally {
      await app.close();
      now += 61_000;
    }
  });

  it('malformed and refused requests count against the address: past the limit everything from it gets 429', async () => {
    const ip = '203.0.113.41';
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) {
      statuses.push((await ctx.app.inject({ method: 'POST', url: '/api/v1/oauth/token', remoteAddress: ip, headers: FORM, payload: 'grant_type=password&username=a&password=b' })).statusCode);
    }
    expect(statuses).toEqual([400, 400, 400, 400, 400, 400, 429, 429]);
    const grant = await ctx.app.inject({ method: 'POST', url: '/api/v1/oauth/token', remoteAddress: ip, headers: FORM, payload: grantBody('some-svc', 'm2msk_x') });
    expect(grant.statusCode).toBe(429);
    expect(grant.json()).toEqual({ error: 'slow_down', error_description: expect.any(String) });
    expect(Number(grant.headers['retry-after'])).toBeGreaterThan(0);
    now += 61_000;
  });
});

describe('the request limiter counts IPv6 by its /64, like the failure throttle', () => {
  it('four addresses of one /64 share one allowance', async () => {
    const ctx = await createTestContext({ env: { RATE_LIMIT_PER_MINUTE: '3' } });
    try {
      const statuses: number[] = [];
      for (let i = 1; i <= 4; i++) statuses.push((await ctx.app.inject({ method: 'GET', url: '/api/v1/auth/me', remoteAddress: `2001:db8:5:6::${i}` })).statusCode);
      expect(statuses).toEqual([401, 401, 401, 429]);
      expect((await ctx.app.inject({ method: 'GET', url: '/api/v1/auth/me', remoteAddress: '2001:db8:5:7::1' })).statusCode).toBe(401);
    } finally {
      await ctx.close();
    }
  });
});
