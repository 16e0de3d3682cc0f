import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';
import { createClient, createTestContext, createTestDatabase, TEST_DATABASE_URL, type TestContext, testConfig } from './helpers.js';

const METRICS_TOKEN = 'metrics-token-Qm4Zx7Lp1Wn8Ty3Bc6Hd0Fg5Js2Ua9Ve';
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

/** The Prometheus text format, parsed: `name{labels}` → value (comments skipped). */
export function parseExposition(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{.*\})?) (\S+)$/.exec(line);
    if (!match) throw new Error(`not a sample line: ${line}`);
    samples.set(match[1]!, Number(match[2]));
  }
  return samples;
}

describe('GET /metrics', () => {
  let ctx: TestContext;
  const scrape = async () => {
    const res = await ctx.app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    return parseExposition(res.body);
  };
  const grant = (clientId: string, secret: string) =>
    ctx.app.inject({ method: 'POST', url: '/api/v1/oauth/token', headers: FORM, payload: new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: secret }).toString() });

  beforeAll(async () => {
    ctx = await createTestContext({ env: { METRICS_TOKEN, AUTH_FAILURE_LIMIT: '2' } });
  });
  afterAll(async () => ctx?.close());

  it('refuses a scrape without the bearer token, or with another token, and never names the token', async () => {
    for (const authorization of [undefined, 'Bearer nope', `Bearer ${METRICS_TOKEN}x`, `Basic ${METRICS_TOKEN}`, `Bearer ${METRICS_TOKEN.slice(0, -1)}`]) {
      const res = await ctx.app.inject({ method: 'GET', url: '/metrics', headers: authorization ? { authorization } : {} });
      expect(res.statusCode, authorization).toBe(401);
      expect(res.headers['www-authenticate']).toBe('Bearer realm="metrics"');
      expect(res.json().error).toBe('unauthorized');
      expect(res.body).not.toContain(METRICS_TOKEN);
    }
  });

  it('is not served at all when METRICS_TOKEN is unset (the default)', async () => {
    const database = await createTestDatabase();
    const app = await buildApp({ config: testConfig(), database, logger: false });
    try {
      const res = await app.inject({ method: 'GET', url: '/metrics', headers: { authorization: `Bearer ${METRICS_TOKEN}` } });
      expect(res.statusCode).toBe(404);
    } finally {
      await app.close();
      await database.close();
    }
  });

  it('counts real grants by outcome, their latency, cache hits and misses, and throttle rejections', async () => {
    const before = await scrape();
    const { client, client_secret } = await createClient(ctx, { client_id: 'metrics-svc', name: 'Metrics', scopes: ['m:read'] });
    expect((await grant(client.client_id, client_secret)).statusCode).toBe(200); // bcrypt, then cached
    expect((await grant(client.client_id, client_secret)).statusCode).toBe(200); // from the cache
    expect((await grant(client.client_id, client_secret)).statusCode).toBe(200);
    expect((await grant(client.client_id, 'wrong-secret')).statusCode).toBe(401);
    expect((await grant(client.client_id, 'wrong-secret')).statusCode).toBe(401);
    expect((await grant(client.client_id, 'wrong-secret')).statusCode).toBe(429); // AUTH_FAILURE_LIMIT=2

    const after = await scrape();
    const moved = (name: string) => (after.get(name) ?? 0) - (before.get(name) ?? 0);
    expect(moved('authapi_grants_total{outcome="granted"}')).toBe(3);
    expect(moved('authapi_grants_total{outcome="invalid_client"}')).toBe(2);
    expect(moved('authapi_grants_total{outcome="throttled"}')).toBe(1);
    expect(moved('authapi_grant_duration_seconds_count{result="granted"}')).toBe(3);
    expect(moved('authapi_grant_duration_seconds_count{result="refused"}')).toBe(3);
    expect(moved('authapi_grant_duration_seconds_bucket{le="+Inf",result="granted"}')).toBe(3);
    expect(moved('authapi_grant_duration_seconds_sum{result="granted"}')).toBeGreaterThan(0);
    expect(moved('authapi_secret_cache_lookups_total{result="hit"}')).toBe(2);
    expect(moved('authapi_secret_cache_lookups_total{result="miss"}')).toBe(4);
    expect(moved('authapi_throttle_rejections_total{throttle="grant"}')).toBe(1);
  });

  it('counts token requests only as grants: failed revocations and introspections are not, a failed grant is; they have their own counter', async () => {
    const { client, client_secret } = await createClient(ctx, { client_id: 'lifecycle-svc', name: 'Lifecycle', scopes: ['m:read'] });
    const token = (await grant(client.client_id, client_secret)).json().access_token as string;
    const before = await scrape();
    const call = (path: 'revoke' | 'introspect', params: Record<string, string>) =>
      ctx.app.inject({ method: 'POST', url: `/api/v1/oauth/${path}`, headers: FORM, payload: new URLSearchParams(params).toString() });
    // Failures: a wrong secret on each, a credential without the introspection scope, no token at all.
    expect((await call('revoke', { token, client_id: 'nobody', client_secret: 'wrong' })).statusCode).toBe(401);
    expect((await call('introspect', { token, client_id: 'nobody-else', client_secret: 'wrong' })).statusCode).toBe(401);
    expect((await call('introspect', { token, client_id: client.client_id, client_secret })).statusCode).toBe(403);
    expect((await call('revoke', { client_id: client.client_id, client_secret })).statusCode).toBe(400);
    // A success.
    expect((await call('revoke', { token, client_id: client.client_id, client_secret })).statusCode).toBe(200);
    const unchanged = await scrape();
    const sum = (m: Map<string, number>, prefix: string) => [...m].filter(([name]) => name.startsWith(prefix)).reduce((total, [, v]) => total + v, 0);
    expect(sum(unchanged, 'authapi_grants_total') - sum(before, 'authapi_grants_total')).toBe(0);
    expect(sum(unchanged, 'authapi_grant_duration_seconds_count') - sum(before, 'authapi_grant_duration_seconds_count')).toBe(0);
    const moved = (name: string) => (unchanged.get(name) ?? 0) - (before.get(name) ?? 0);
    expect(moved('authapi_token_lifecycle_requests_total{endpoint="revoke",outcome="invalid_client"}')).toBe(1);
    expect(moved('authapi_token_lifecycle_requests_total{endpoint="introspect",outcome="invalid_client"}')).toBe(1);
    expect(moved('authapi_token_lifecycle_requests_total{endpoint="introspect",outcome="unauthorized_client"}')).toBe(1);
    expect(moved('authapi_token_lifecycle_requests_total{endpoint="revoke",outcome="invalid_request"}')).toBe(1);
    expect(moved('authapi_token_lifecycle_requests_total{endpoint="revoke",outcome="ok"}')).toBe(1);
    expect(sum(unchanged, 'authapi_token_lifecycle_requests_total') - sum(before, 'authapi_token_lifecycle_requests_total')).toBe(5);

    // A failed grant (malformed: no grant_type) is a token request: counted as one, and not as a lifecycle request.
    const malformed = await ctx.app.inject({ method: 'POST', url: '/api/v1/oauth/token', headers: FORM, payload: 'client_id=x&client_secret=y' });
    expect(malformed.statusCode).toBe(400);
    const after = await scrape();
    expect((after.get('authapi_grants_total{outcome="invalid_request"}') ?? 0) - (unchanged.get('authapi_grants_total{outcome="invalid_request"}') ?? 0)).toBe(1);
    expect(sum(after, 'authapi_grants_total') - sum(unchanged, 'authapi_grants_total')).toBe(1);
    expect((after.get('authapi_grant_duration_seconds_count{result="refused"}') ?? 0) - (unchanged.get('authapi_grant_duration_seconds_count{result="refused"}') ?? 0)).toBe(1);
    expect(sum(after, 'authapi_token_lifecycle_requests_total') - sum(unchanged, 'authapi_token_lifecycle_requests_total')).toBe(0);
  });

  it('reports bcrypt work, the database, the listener, build info and process metrics', async () => {
    const samples = await scrape();
    expect(samples.get('authapi_bcrypt_jobs{state="running"}')).toBe(0);
    expect(samples.get('authapi_bcrypt_jobs{state="queued"}')).toBe(0);
    const kind = TEST_DATABASE_URL ? 'postgres' : 'pglite';
    expect([...samples].find(([name]) => name.startsWith('authapi_build_info{') && name.includes(`database="${kind}"`) && name.includes(`node="${process.version}"`))?.[1]).toBe(1);
    // The credential change feed (PGlite's listen, or PostgreSQL's dedicated connection) sets it.
    for (let waited = 0; !ctx.app.credentialState.stats().live; waited += 20) {
      if (waited > 5000) throw new Error('the change feed did not go live');
      await new Promise((r) => setTimeout(r, 20));
    }
    expect((await scrape()).get('authapi_listener_up')).toBe(1);
    expect(samples.get('process_cpu_user_seconds_total')).toBeGreaterThan(0);
    expect(samples.has('nodejs_eventloop_lag_p99_seconds')).toBe(true);
    if (TEST_DATABASE_URL) {
      expect(samples.get('authapi_db_pool_connections{state="max"}')).toBe(10);
      expect(samples.get('authapi_db_pool_connections{state="total"}')).toBeGreaterThanOrEqual(1);
      expect(samples.get('authapi_db_pool_connections{state="waiting"}')).toBe(0);
    } else {
      expect([...samples.keys()].some((name) => name.startsWith('authapi_db_pool_connections'))).toBe(false);
    }
  });
});
