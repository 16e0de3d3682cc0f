import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestContext, createClient, type TestContext } from './helpers.js';

/** A clock the test moves by hand, for window expiry. */
let now = Date.parse('2026-11-25T12:00:00Z');
const clock = () => now;

let ctx: TestContext;
let secret: string;
beforeAll(async () => {
  ctx = await createTestContext({ clock, env: { AUTH_FAILURE_LIMIT: '3', AUTH_FAILURE_LIMIT_PER_IP: '6', AUTH_FAILURE_WINDOW: '60', RATE_LIMIT_PER_MINUTE: '0' } });
  secret = (await createClient(ctx, { client_id: 'victim-svc', name: 'Victim', scopes: ['a:b'] })).client_secret;
  await createClient(ctx, { client_id: 'other-svc', name: 'Other', scopes: ['a:b'] });
});
afterAll(() => ctx?.close());

const grant = (clientId: string, clientSecret: string, ip: string) =>
  ctx.app.inject({
    method: 'POST',
    url: '/api/v1/oauth/token',
    remoteAddress: ip,
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: clientSecret }).toString(),
  });

const login = (email: string, password: string, ip: string) =>
  ctx.app.inject({ method: 'POST', url: '/api/v1/auth/login', remoteAddress: ip, payload: { email, password } });

describe('failed client authentication is throttled', () => {
  it('per (client_id, IP): 429 slow_down with Retry-After, other IPs unaffected, open again after the window', async () => {
    const attacker = '203.0.113.7';
    for (let i = 0; i < 3; i++) expect((await grant('victim-svc', 'm2msk_wrong', attacker)).statusCode).toBe(401);
    const blocked = await grant('victim-svc', 'm2msk_wrong', attacker);
    expect(blocked.statusCode).toBe(429);
    expect(blocked.json()).toEqual({ error: 'slow_down', error_description: expect.any(String) });
    expect(blocked.headers['retry-after']).toBe('60');
    expect(blocked.headers['cache-control']).toBe('no-store');
    // Over the limit nobody gets bcrypt work: a secret this server has not verified yet waits too.
    expect((await grant('victim-svc', secret, attacker)).statusCode).toBe(429);

    // The real service, from its own address, is not blocked.
    const legit = await grant('victim-svc', secret, '198.51.100.20');
    expect(legit.statusCode).toBe(200);
    // Once verified, its secret passes even from the throttled address (a service behind the
    // attacker's NAT keeps renewing), at no bcrypt cost; guesses there still get 429.
    expect((await grant('victim-svc', secret, attacker)).statusCode).toBe(200);

    now += 30_000;
    expect((await grant('victim-svc', 'm2msk_wrong', attacker)).headers['retry-after']).toBe('30');
    now += 30_001;
    expect((await grant('victim-svc', 'm2msk_wrong', attacker)).statusCode).toBe(401);
  });

  it('per IP, across client ids', async () => {
    const sprayer = '203.0.113.99';
    const ids = ['a-svc', 'b-svc', 'c-svc', 'd-svc', 'e-svc', 'f-svc'];
    for (const id of ids) expect((await grant(id, 'm2msk_guess', sprayer)).statusCode).toBe(401);
    const blocked = await grant('g-svc', 'm2msk_guess', sprayer);
    expect(blocked.statusCode).toBe(429);
    expect(Number(blocked.headers['retry-after'])).toBeGreaterThan(0);
    expect((await grant('other-svc', 'm2msk_guess', '203.0.113.100')).statusCode).toBe(401);
    now += 61_000;
  });

  it('a success clears the (client_id, IP) count', async () => {
    const ip = '192.0.2.50';
    const typo = (await createClient(ctx, { client_id: 'typo-svc', name: 'Typo', scopes: ['a:b'] })).client_secret;
    for (let i = 0; i < 2; i++) expect((await grant('typo-svc', `m2msk_typo${i}`, ip)).statusCode).toBe(401);
    expect((await grant('typo-svc', typo, ip)).statusCode).toBe(200);
    for (let i = 0; i < 3; i++) expect((await grant('typo-svc', `m2msk_again${i}`, ip)).statusCode).toBe(401);
    expect((await grant('typo-svc', 'm2msk_one-too-many', ip)).statusCode).toBe(429);
    now += 61_000;
  });
});

describe('parallel guesses cannot outrun the limit', () => {
  it('a burst of 40 wrong logins and 40 wrong grants at once: at most the limit reach bcrypt', async () => {
    const logins = await Promise.all(Array.from({ length: 40 }, () => login('admin@example.com', 'burst guess', '203.0.113.50')));
    expect(logins.filter((r) => r.statusCode === 401)).toHaveLength(3);
    expect(logins.filter((r) => r.statusCode === 429)).toHaveLength(37);
    const grants = await Promise.all(Array.from({ length: 40 }, (_, i) => grant('victim-svc', `m2msk_burst${i}`, '203.0.113.51')));
    expect(grants.filter((r) => r.statusCode === 401)).toHaveLength(3);
    expect(grants.filter((r) => r.statusCode === 429)).toHaveLength(37);
    now += 61_000;
  });

  it('identical attempts in flight share one bcrypt and one count: a fleet starting together is not throttled', async () => {
    const fleet = await createClient(ctx, { client_id: 'fleet-svc', name: 'Fleet', scopes: ['a:b'] });
    const grants = await Promise.all(Array.from({ length: 40 }, () => grant('fleet-svc', fleet.client_secret, '203.0.113.60')));
    expect(grants.map((r) => r.statusCode)).toEqual(Array(40).fill(200));
    // Identical wrong guesses count once, too: the address still has its allowance for different ones.
    const same = await Promise.all(Array.from({ length: 40 }, () => grant('fleet-svc', 'm2msk_same-guess', '203.0.113.61')));
    expect(same.map((r) => r.statusCode)).toEqual(Array(40).fill(401));
    expect((await grant('fleet-svc', 'm2msk_other-guess', '203.0.113.61')).statusCode).toBe(401);
    now += 61_000;
  });

  it('IPv6 addresses count by their /64', async () => {
    for (let i = 1; i <= 6; i++) expect((await grant(`v6-${i}-svc`, 'm2msk_guess', `2001:db8:aa:bb::${i.toString(16)}`)).statusCode).toBe(401);
    expect((await grant('v6-7-svc', 'm2msk_guess', '2001:db8:aa:bb:ffff:1:2:3')).statusCode).toBe(429);
    expect((await grant('v6-8-svc', 'm2msk_guess', '2001:db8:aa:bc::1')).statusCode).toBe(401);
    now += 61_000;
  });
});

describe('failed logins are throttled', () => {
  it('per (email, IP), with rate_limited and Retry-After; the admin elsewhere still signs in', async () => {
    const attacker = '203.0.113.8';
    for (let i = 0; i < 3; i++) expect((await login('admin@example.com', 'wrong password', attacker)).statusCode).toBe(401);
    const blocked = await login('admin@example.com', 'correct horse battery staple', attacker);
    expect(blocked.statusCode).toBe(429);
    expect(blocked.json()).toEqual({ error: 'rate_limited', message: expect.any(String) });
    expect(blocked.headers['retry-after']).toBe('60');
    expect((await login('admin@example.com', 'correct horse battery staple', '198.51.100.1')).statusCode).toBe(200);
    now += 61_000;
  });
});

describe('request ceiling on login and management routes', () => {
  it('429 rate_limited past RATE_LIMIT_PER_MINUTE per IP; the token endpoint is exempt', async () => {
    const limited = await createTestContext({ env: { RATE_LIMIT_PER_MINUTE: '5' } });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 8; i++) {
        statuses.push((await limited.app.inject({ method: 'GET', url: '/api/v1/admin/m2m-clients', remoteAddress: '10.9.9.9', headers: { authorization: `Bearer ${limited.adminToken}` } })).statusCode);
      }
      expect(statuses.slice(0, 5)).toEqual([200, 200, 200, 200, 200]);
      expect(statuses.slice(5)).toEqual([429, 429, 429]);
      const res = await limited.app.inject({ method: 'GET', url: '/api/v1/admin/m2m-clients', remoteAddress: '10.9.9.9', headers: { authorization: `Bearer ${limited.adminToken}` } });
      expect(res.json()).toEqual({ error: 'rate_limited', message: expect.any(String) });
      expect(Number(res.headers['retry-after'])).toBeGreaterThan(0);
      for (let i = 0; i < 8; i++) {
        const token = await limited.app.inject({
          method: 'POST',
          url: '/api/v1/oauth/token',
          remoteAddress: '10.9.9.9',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          payload: 'grant_type=client_credentials&client_id=nobody-svc&client_secret=x',
        });
        expect(token.statusCode).toBe(401);
      }
      // Revocation, introspection and the revocation feed are exempt too (their own client
      // authentication or service token); past the ceiling they still answer as themselves.
      for (const url of ['/api/v1/oauth/revoke', '/api/v1/oauth/introspect']) {
        const res = await limited.app.inject({ method: 'POST', url, remoteAddress: '10.9.9.9', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'token=x&client_id=nobody-svc&client_secret=x' });
        expect([url, res.statusCode]).toEqual([url, 401]);
      }
      const feed = await limited.app.inject({ method: 'GET', url: '/api/v1/oauth/revocations', remoteAddress: '10.9.9.9' });
      expect(feed.statusCode).toBe(401);
      // The ceiling runs before the admin guard: a flood of bad bearer tokens is refused, not verified.
      const forged = await limited.app.inject({ method: 'GET', url: '/api/v1/admin/m2m-clients', remoteAddress: '10.9.9.9', headers: { authorization: 'Bearer not-a-session' } });
      expect(forged.statusCode).toBe(429);
      const login = await limited.app.inject({ method: 'POST', url: '/api/v1/auth/login', remoteAddress: '10.9.9.9', payload: { email: 'a@example.com', password: 'x' } });
      expect(login.statusCode).toBe(429);
      // Another address is not limited.
      const other = await limited.app.inject({ method: 'GET', url: '/api/v1/admin/m2m-clients', remoteAddress: '10.9.9.10', headers: { authorization: `Bearer ${limited.adminToken}` } });
      expect(other.statusCode).toBe(200);
    } finally {
      await limited.close();
    }
  });
});
