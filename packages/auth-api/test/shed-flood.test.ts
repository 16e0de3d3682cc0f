import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createBcryptHasher, type PasswordHasher } from '../src/lib/password.js';
import { createFailureThrottle, createMemoryAttemptStore, networkKey } from '../src/lib/throttle.js';
import { ADMIN, createClient, createTestContext, type TestContext } from './helpers.js';

const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const grantBody = (clientId: string, clientSecret: string) => new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret }).toString();

/**
 * Requests shed by the bcrypt budget (503) must not fill the throttle's store:
 * once it is full of live counters it refuses every new key, and every
 * service's first grant (and every sign-in) from anywhere gets 429.
 */
describe('a flood of shed requests', () => {
  let ctx: TestContext;
  let secret: string;
  // Compares for unknown ids and emails hang until the gate opens: the budget (one slot) stays
  // full, so every other flood request is shed.
  let open!: () => void;
  const gate = new Promise<void>((r) => (open = r));
  beforeAll(async () => {
    const real = createBcryptHasher(4);
    const hasher: PasswordHasher = { ...real, burn: (plain) => gate.then(() => real.burn(plain)) };
    ctx = await createTestContext({
      hasher,
      env: { AUTH_THROTTLE_MAX_KEYS: '200', BCRYPT_CONCURRENCY: '1', BCRYPT_MAX_WAIT_MS: '50', RATE_LIMIT_PER_MINUTE: '0' },
    });
    secret = (await createClient(ctx, { client_id: 'fresh-svc', name: 'Fresh', scopes: ['a:b'] })).client_secret;
  });
  afterAll(async () => {
    open();
    await ctx?.close();
  });

  it("from 5 addresses leaves a clean address's first grant and sign-in at 200", async () => {
    const flooders = ['198.51.100.1', '198.51.100.2', '198.51.100.3', '198.51.100.4', '198.51.100.5'];
    const grants = flooders.flatMap((ip) =>
      Array.from({ length: 120 }, (_, i) =>
        ctx.app.inject({ method: 'POST', url: '/api/v1/oauth/token', remoteAddress: ip, headers: FORM, payload: grantBody(`junk-${ip}-${i}`, 'm2msk_junk') }),
      ),
    );
    const logins = flooders.flatMap((ip) =>
      Array.from({ length: 120 }, (_, i) =>
        ctx.app.inject({ method: 'POST', url: '/api/v1/auth/login', remoteAddress: ip, payload: { email: `junk-${i}@${ip}.example`, password: 'x' } }),
      ),
    );
    // Everything but the one compare holding the budget is answered (shed, or refused past the address limit).
    let answered = 0;
    for (const p of [...grants, ...logins]) void p.then(() => (answered += 1));
    while (answered < grants.length + logins.length - 1) await new Promise((r) => setTimeout(r, 20));
    open();
    const [grantStatuses, loginStatuses] = await Promise.all([Promise.all(grants), Promise.all(logins)]);
    const count = (rs: { statusCode: number }[], status: number) => rs.filter((r) => r.statusCode === status).length;
    expect(count(grantStatuses, 503)).toBeGreaterThan(0);
    expect(count(loginStatuses, 503)).toBeGreaterThan(0);
    // Shed requests count against their address: each flooder is refused past its limit (100 per window).
    expect(count(grantStatuses, 503) + count(grantStatuses, 429)).toBeGreaterThanOrEqual(grantStatuses.length - 1);
    expect(count(grantStatuses, 429)).toBeGreaterThanOrEqual(5 * 19);

    const first = await ctx.app.inject({ method: 'POST', url: '/api/v1/oauth/token', remoteAddress: '192.0.2.50', headers: FORM, payload: grantBody('fresh-svc', secret) });
    expect(first.statusCode, first.body).toBe(200);
    const signIn = await ctx.app.inject({ method: 'POST', url: '/api/v1/auth/login', remoteAddress: '192.0.2.51', payload: ADMIN });
    expect(signIn.statusCode, signIn.body).toBe(200);
  });
});

describe('the attempt store when crowded', () => {
  const clock = () => 1_000_000;
  const throttle = (maxKeys: number) =>
    createFailureThrottle({ store: createMemoryAttemptStore({ clock, maxKeys }), clock, name: 'grant', windowMs: 60_000, perIdentityAndIp: 3, perIp: 100 });

  it('an abandoned attempt leaves no per-identity key behind', async () => {
    const t = throttle(10);
    // 34 abandoned attempts for distinct identities: if each left its key behind, they would not fit in 10.
    for (let i = 0; i < 4; i++) {
      const a = await t.begin(`id-${i}`, `203.0.113.${i}`);
      expect(a.retryAfterSec).toBeUndefined();
      await a.abandoned();
    }
    for (let i = 0; i < 30; i++) {
      const a = await t.begin(`id-x${i}`, '203.0.113.200');
      expect(a.retryAfterSec, `attempt ${i}`).toBeUndefined();
      await a.abandoned();
    }
    // Room is left for a client with no failures.
    const clean = await t.begin('fresh', '192.0.2.1');
    expect(clean.retryAfterSec).toBeUndefined();
  });

  it('an IPv6 /48 spread over many /64s cannot take the room kept for other networks', async () => {
    const t = throttle(100);
    // Failures from 200 /64s of one /48: the store fills up to its crowded mark, then this /48 gets no new key.
    let refused = 0;
    for (let i = 0; i < 200; i++) {
      const a = await t.begin(`svc-${i}`, `2001:db8:1:${i.toString(16)}::1`);
      if (a.retryAfterSec !== undefined) refused += 1;
    }
    expect(refused).toBeGreaterThan(100);
    // Another network, with no failures, is still counted and served; so are a few more.
    for (let i = 0; i < 5; i++) {
      const a = await t.begin('real-svc', `198.51.100.${i}`);
      expect(a.retryAfterSec, `network ${i}`).toBeUndefined();
      await a.succeeded();
    }
    expect((await t.begin('real-svc', '2001:db8:2::1')).retryAfterSec).toBeUndefined();
  });

  it('the bcrypt queue and the crowded store group IPv6 by /48', () => {
    expect(networkKey('2001:db8:1:ff::1')).toBe('2001:db8:1::/48');
    expect(networkKey('2001:0db8:0001:0000:0000:0000:0000:0001')).toBe('2001:db8:1::/48');
    expect(networkKey('::ffff:192.0.2.1')).toBe('192.0.2.1');
    expect(networkKey('192.0.2.1')).toBe('192.0.2.1');
  });
});
