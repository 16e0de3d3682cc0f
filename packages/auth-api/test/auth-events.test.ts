import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serverLoggerOptions } from '../src/app.js';
import { createAuthEventRecorder } from '../src/modules/auth-events/auth-events.recorder.js';
import { bearer, createClient, createTestContext, type TestContext } from './helpers.js';

let now = Date.parse('2026-11-26T12:00:30Z');
const clock = () => now;
const lines: string[] = [];
const stream = { write: (line: string) => void lines.push(line) };
const entries = () => lines.map((line) => JSON.parse(line) as Record<string, unknown>);
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

let ctx: TestContext;
let svc: { id: string; secret: string };
beforeAll(async () => {
  ctx = await createTestContext({
    clock,
    env: { AUTH_FAILURE_LIMIT: '3', AUTH_FAILURE_LIMIT_PER_IP: '50', AUTH_FAILURE_WINDOW: '60', RATE_LIMIT_PER_MINUTE: '0' },
    logger: { ...serverLoggerOptions('info'), stream },
  });
  const created = await createClient(ctx, { client_id: 'audited-svc', name: 'Audited', scopes: ['a:read', 'a:write'] });
  svc = { id: created.client.id, secret: created.client_secret };
});
afterAll(() => ctx?.close());

const grant = (body: Record<string, string>, ip: string, headers: Record<string, string> = {}) =>
  ctx.app.inject({ method: 'POST', url: '/api/v1/oauth/token', remoteAddress: ip, headers: { ...FORM, ...headers }, payload: new URLSearchParams(body).toString() });

describe('every token request is logged: client_id, method, outcome, address, never the secret', () => {
  it('granted, invalid_client, invalid_scope, throttled, malformed', async () => {
    lines.length = 0;
    const ip = '198.51.100.5';
    const basic = `Basic ${Buffer.from(`audited-svc:${svc.secret}`).toString('base64')}`;
    await grant({ grant_type: 'client_credentials' }, ip, { authorization: basic });
    await grant({ grant_type: 'client_credentials', client_id: 'audited-svc', client_secret: svc.secret, scope: 'a:admin' }, ip);
    for (let i = 0; i < 4; i++) await grant({ grant_type: 'client_credentials', client_id: 'audited-svc', client_secret: `m2msk_guess${i}` }, '203.0.113.9');
    await grant({ grant_type: 'client_credentials', client_id: `x${'y'.repeat(150)}`, client_secret: 'm2msk_z' }, ip);
    await grant({ grant_type: 'password' }, ip);

    const tokenLines = entries().filter((e) => e.path === '/api/v1/oauth/token');
    expect(tokenLines.map((e) => [e.status, e.client_id, e.auth_method, e.outcome, e.address])).toEqual([
      [200, 'audited-svc', 'client_secret_basic', 'granted', ip],
      [400, 'audited-svc', 'client_secret_post', 'invalid_scope', ip],
      [401, 'audited-svc', 'client_secret_post', 'invalid_client', '203.0.113.9'],
      [401, 'audited-svc', 'client_secret_post', 'invalid_client', '203.0.113.9'],
      [401, 'audited-svc', 'client_secret_post', 'invalid_client', '203.0.113.9'],
      [429, 'audited-svc', 'client_secret_post', 'throttled', '203.0.113.9'],
      [401, `x${'y'.repeat(99)}`, 'client_secret_post', 'invalid_client', ip],
      [400, '', 'none', 'unsupported_grant_type', ip],
    ]);
    // The throttle that tripped says so once, with its key.
    const trips = entries().filter((e) => e.msg === 'throttle tripped');
    expect(trips).toEqual([expect.objectContaining({ level: 40, throttle: 'grant', key: 'grant:id:audited-svc|203.0.113.9', limit: 3, retryAfterSec: 60 })]);
    const all = lines.join('');
    for (const secret of [svc.secret, basic.slice(6), 'm2msk_guess0', 'm2msk_z']) expect(all).not.toContain(secret);
  });
});

describe('GET /admin/auth-events', () => {
  it('counts per minute, client_id, address and outcome; filters; admins only; unknown parameters refused', async () => {
    now += 60_000;
    for (let i = 0; i < 3; i++) await grant({ grant_type: 'client_credentials', client_id: 'audited-svc', client_secret: svc.secret }, '192.0.2.30');
    for (let i = 0; i < 2; i++) await grant({ grant_type: 'client_credentials', client_id: 'ghost-svc', client_secret: 'm2msk_g' }, '192.0.2.31');
    const minute = new Date(Math.floor(now / 60_000) * 60_000).toISOString();

    const res = await ctx.app.inject({ method: 'GET', url: `/api/v1/admin/auth-events?since=${encodeURIComponent(minute)}`, headers: bearer(ctx.adminToken) });
    expect(res.statusCode).toBe(200);
    expect(res.json().events).toEqual([
      { minute, client_id: 'audited-svc', address: '192.0.2.30', outcome: 'granted', count: 3 },
      { minute, client_id: 'ghost-svc', address: '192.0.2.31', outcome: 'invalid_client', count: 2 },
    ]);
    const one = await ctx.app.inject({ method: 'GET', url: '/api/v1/admin/auth-events?client_id=audited-svc&outcome=throttled', headers: bearer(ctx.adminToken) });
    expect(one.json().events).toEqual([{ minute: expect.any(String), client_id: 'audited-svc', address: '203.0.113.9', outcome: 'throttled', count: 1 }]);

    expect((await ctx.app.inject({ method: 'GET', url: '/api/v1/admin/auth-events' })).statusCode).toBe(401);
    expect((await ctx.app.inject({ method: 'GET', url: '/api/v1/admin/auth-events', headers: bearer(ctx.userToken) })).statusCode).toBe(403);
    const bad = await ctx.app.inject({ method: 'GET', url: '/api/v1/admin/auth-events?clientid=x', headers: bearer(ctx.adminToken) });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error).toBe('validation_failed');
    expect((await ctx.app.inject({ method: 'GET', url: '/api/v1/admin/auth-events?since=yesterday', headers: bearer(ctx.adminToken) })).statusCode).toBe(400);
    // NUL in an exact filter: PostgreSQL text cannot hold it, so a 400 rather than a database error.
    for (const filter of ['client_id', 'address', 'outcome']) {
      const res = await ctx.app.inject({ method: 'GET', url: `/api/v1/admin/auth-events?${filter}=a%00b`, headers: bearer(ctx.adminToken) });
      expect(res.statusCode, res.body).toBe(400);
    }
    // Dates JavaScript reads but the database refuses: a 400, not a 500; the years 1 and 9999 are fine.
    for (const [date, status] of [['%2B275760-09-13T00:00:00Z', 400], ['-004714-11-23T00:00:00Z', 400], ['20000-01-01', 400], ['0001-01-01T00:00:00Z', 200], ['9999-12-31T23:59:59Z', 200]] as const) {
      const res = await ctx.app.inject({ method: 'GET', url: `/api/v1/admin/auth-events?until=${date}`, headers: bearer(ctx.adminToken) });
      expect(res.statusCode, `${date}: ${res.body}`).toBe(status);
    }
  });

  it('a client_id with a NUL is counted (NUL shown as U+FFFD) and does not cost the other counts of its batch', async () => {
    now += 60_000;
    const minute = new Date(Math.floor(now / 60_000) * 60_000).toISOString();
    await grant({ grant_type: 'client_credentials', client_id: 'ghost-svc', client_secret: 'm2msk_g' }, '192.0.2.40');
    // PostgreSQL refuses NUL in text: one such row used to fail the whole write, erasing this minute's counts.
    await grant({ grant_type: 'client_credentials', client_id: 'hide\u0000me', client_secret: 'm2msk_g' }, '192.0.2.41');
    const res = await ctx.app.inject({ method: 'GET', url: `/api/v1/admin/auth-events?since=${encodeURIComponent(minute)}`, headers: bearer(ctx.adminToken) });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json().events).toEqual([
      { minute, client_id: 'ghost-svc', address: '192.0.2.40', outcome: 'invalid_client', count: 1 },
      { minute, client_id: 'hide\uFFFDme', address: '192.0.2.41', outcome: 'invalid_client', count: 1 },
    ]);
  });

  it('growth is bounded: past the per-minute bound a client_id is counted as `*` under its own address; old minutes are deleted', async () => {
    let t = Date.parse('2026-11-20T08:00:00Z');
    const recorder = createAuthEventRecorder({ db: ctx.database.db, clock: () => t, maxKeysPerMinute: 10, retentionDays: 2 });
    for (let i = 0; i < 25; i++) recorder.record(`junk-${i}`, '203.0.113.77', 'invalid_client');
    await recorder.flush();
    const rows = await ctx.database.db.selectFrom('auth_events').selectAll().where('minute', '=', new Date(t)).execute();
    expect(rows).toHaveLength(11);
    expect(rows.find((r) => r.client_id === '*')).toMatchObject({ address: '203.0.113.77', outcome: 'invalid_client', count: 15 });
    await recorder.close();
    t += 3 * 24 * 3600_000;
    const later = createAuthEventRecorder({ db: ctx.database.db, clock: () => t, maxKeysPerMinute: 10, retentionDays: 2 });
    later.record('fresh-svc', '192.0.2.1', 'granted');
    await later.close();
    expect(await ctx.database.db.selectFrom('auth_events').selectAll().where('minute', '=', new Date('2026-11-20T08:00:00Z')).execute()).toEqual([]);
  });
});

describe('a flood of junk client_ids cannot hide an attacker', () => {
  it('past the bound the address is kept; only past as many addresses as well is it `*`', async () => {
    const t = Date.parse('2026-11-21T09:00:00Z');
    const recorder = createAuthEventRecorder({ db: ctx.database.db, clock: () => t, maxKeysPerMinute: 10, retentionDays: 3650 });
    // The first seconds of the minute: junk ids from one address fill the bound.
    for (let i = 0; i < 50; i++) recorder.record(`junk-${i}`, '198.51.100.66', 'invalid_client');
    // The real attacker, guessing one credential's secret from another address.
    for (let i = 0; i < 7; i++) recorder.record('victim-svc', '203.0.113.5', 'invalid_client');
    recorder.record('victim-svc', '203.0.113.5', 'throttled');
    // Then junk from many addresses: past 10 (address, outcome) pairs, the address goes too.
    for (let i = 0; i < 30; i++) recorder.record(`spray-${i}`, `192.0.2.${i}`, 'invalid_client');
    await recorder.close();
    const rows = await ctx.database.db.selectFrom('auth_events').select(['client_id', 'address', 'outcome', 'count']).where('minute', '=', new Date(t)).execute();
    const at = (address: string, outcome = 'invalid_client') => rows.filter((r) => r.address === address && r.outcome === outcome);
    expect(at('203.0.113.5')).toEqual([{ client_id: '*', address: '203.0.113.5', outcome: 'invalid_client', count: 7 }]);
    expect(at('203.0.113.5', 'throttled')).toEqual([{ client_id: '*', address: '203.0.113.5', outcome: 'throttled', count: 1 }]);
    expect(at('198.51.100.66').reduce((n, r) => n + r.count, 0)).toBe(50);
    // 10 full rows, 10 (address, outcome) rows under `*` (.66, .5 twice, 7 sprayers), the other 23 in one `*`/`*` row.
    expect(rows).toHaveLength(21);
    expect(at('*')).toEqual([{ client_id: '*', address: '*', outcome: 'invalid_client', count: 23 }]);
  });
});

describe('admin audit of updates carries before and after', () => {
  it('scopes added and removed, status disabled then enabled', async () => {
    const patch = (payload: Record<string, unknown>) => ctx.app.inject({ method: 'PATCH', url: `/api/v1/admin/m2m-clients/${svc.id}`, headers: bearer(ctx.adminToken), payload });
    expect((await patch({ scopes: ['a:read', 'b:write'], status: 'disabled' })).statusCode).toBe(200);
    expect((await patch({ status: 'active', name: 'Audited' })).statusCode).toBe(200);
    const rows = await ctx.database.db.selectFrom('audit_log').select(['action', 'details']).where('action', '=', 'm2m_client.update').where('target_id', '=', svc.id).orderBy('id').execute();
    expect(rows.map((r) => r.details)).toEqual([
      {
        client_id: 'audited-svc',
        changed: ['scopes', 'status'],
        fields: {
          scopes: { before: ['a:read', 'a:write'], after: ['a:read', 'b:write'], added: ['b:write'], removed: ['a:write'] },
          status: { before: 'active', after: 'disabled' },
        },
      },
      { client_id: 'audited-svc', changed: ['status'], fields: { status: { before: 'disabled', after: 'active' }, name: { before: 'Audited', after: 'Audited' } } },
    ]);
  });
});
