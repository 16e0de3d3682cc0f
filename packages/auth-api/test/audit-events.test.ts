import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, bearer, createClient, createTestContext, PLAIN_USER, type TestContext } from './helpers.js';

// GET /api/v1/admin/audit-events: the audit trail of admin actions, read back through the API.
let ctx: TestContext;
let first: { id: string; client_id: string };
let second: { id: string; client_id: string };
let secretOfFirst: string;

beforeAll(async () => {
  ctx = await createTestContext();
  const a = await createClient(ctx, { client_id: 'audit-one', name: 'One', scopes: ['a:read'] });
  first = a.client;
  secretOfFirst = a.client_secret;
  second = (await createClient(ctx, { client_id: 'audit-two', name: 'Two' })).client;
  const admin = bearer(ctx.adminToken);
  expect((await ctx.app.inject({ method: 'PATCH', url: `/api/v1/admin/m2m-clients/${first.id}`, headers: admin, payload: { status: 'disabled' } })).statusCode).toBe(200);
  expect((await ctx.app.inject({ method: 'DELETE', url: `/api/v1/admin/m2m-clients/${first.id}`, headers: admin })).statusCode).toBe(204);
  // A failed sign-in is audited under the email as typed.
  expect((await ctx.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email: ADMIN.email, password: 'wrong password here' } })).statusCode).toBe(401);
});
afterAll(() => ctx?.close());

const list = (query = '', token = ctx.adminToken) => ctx.app.inject({ method: 'GET', url: `/api/v1/admin/audit-events${query}`, headers: bearer(token) });

describe('GET /admin/audit-events', () => {
  it('is system_admin only: 401 without a token, 403 for a plain user', async () => {
    const none = await ctx.app.inject({ method: 'GET', url: '/api/v1/admin/audit-events' });
    expect(none.statusCode).toBe(401);
    expect(none.json().error).toBe('unauthorized');
    const user = await list('', ctx.userToken);
    expect(user.statusCode).toBe(403);
    expect(user.json().error).toBe('forbidden');
  });

  it('lists every entry newest first, with actor, action, target and details, never a secret', async () => {
    const res = await list();
    expect(res.statusCode).toBe(200);
    const { events, next_cursor } = res.json();
    expect(next_cursor).toBeNull();
    const actions = events.map((e: { action: string }) => e.action);
    // Newest first: the failed sign-in, the revoke, the update, the two creates, …, the sign-ins of the setup.
    expect(actions.slice(0, 5)).toEqual(['login.failure', 'm2m_client.revoke', 'm2m_client.update', 'm2m_client.create', 'm2m_client.create']);
    expect(actions).toContain('login.success');
    const ids = events.map((e: { id: string }) => BigInt(e.id));
    expect([...ids].sort((x, y) => (x < y ? 1 : x > y ? -1 : 0))).toEqual(ids);
    const create = events.find((e: { action: string; target_id: string }) => e.action === 'm2m_client.create' && e.target_id === first.id);
    expect(create).toEqual({
      id: expect.stringMatching(/^\d+$/),
      at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      actor: ADMIN.email,
      actor_id: expect.any(String),
      action: 'm2m_client.create',
      target_type: 'm2m_client',
      target_id: first.id,
      ip: expect.any(String),
      details: { client_id: 'audit-one', scopes: ['a:read'] },
    });
    expect(res.body).not.toContain(secretOfFirst);
    expect(res.body).not.toContain('password_hash');
  });

  it("target gives one credential's trail; action, actor and target_type filter and combine", async () => {
    const trail = (await list(`?target=${first.id}`)).json().events;
    expect(trail.map((e: { action: string }) => e.action)).toEqual(['m2m_client.revoke', 'm2m_client.update', 'm2m_client.create']);
    expect(trail[1].details).toMatchObject({ client_id: 'audit-one', changed: ['status'], fields: { status: { before: 'active', after: 'disabled' } } });

    const creates = (await list('?action=m2m_client.create')).json().events;
    expect(creates.map((e: { target_id: string }) => e.target_id)).toEqual([second.id, first.id]);

    const failures = (await list(`?actor=${encodeURIComponent(ADMIN.email)}&action=login.failure`)).json().events;
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatchObject({ actor: ADMIN.email, target_type: 'user' });

    const users = (await list('?target_type=user')).json().events;
    expect(users.length).toBeGreaterThanOrEqual(3);
    expect(users.every((e: { target_type: string }) => e.target_type === 'user')).toBe(true);
    expect((await list(`?actor=${encodeURIComponent(PLAIN_USER.email)}&action=m2m_client.create`)).json().events).toEqual([]);
  });

  it('since and until bound the time', async () => {
    const all = (await list()).json().events;
    const future = new Date(Date.now() + 60_000).toISOString();
    expect((await list(`?since=${future}`)).json().events).toEqual([]);
    expect((await list(`?until=${future}`)).json().events).toHaveLength(all.length);
    expect((await list('?until=2000-01-01T00:00:00Z')).json().events).toEqual([]);
  });

  it('pages with a cursor: no entry repeated or skipped, next_cursor null on the last page', async () => {
    const all = (await list()).json().events.map((e: { id: string }) => e.id);
    expect(all.length).toBeGreaterThan(5);
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await list(`?limit=2${cursor ? `&cursor=${cursor}` : ''}`);
      expect(res.statusCode).toBe(200);
      const body = res.json();
      expect(body.events.length).toBeLessThanOrEqual(2);
      seen.push(...body.events.map((e: { id: string }) => e.id));
      cursor = body.next_cursor;
      pages += 1;
    } while (cursor && pages < 50);
    expect(seen).toEqual(all);
    expect(pages).toBe(Math.ceil(all.length / 2));
    // A filter and a cursor combine.
    const firstPage = (await list(`?target=${first.id}&limit=1`)).json();
    expect(firstPage.events.map((e: { action: string }) => e.action)).toEqual(['m2m_client.revoke']);
    const rest = (await list(`?target=${first.id}&limit=5&cursor=${firstPage.next_cursor}`)).json();
    expect(rest.events.map((e: { action: string }) => e.action)).toEqual(['m2m_client.update', 'm2m_client.create']);
    expect(rest.next_cursor).toBeNull();
  });

  it.each([
    ['?limit=0', 'querystring.limit'],
    ['?limit=501', 'querystring.limit'],
    ['?limit=abc', 'querystring.limit'],
    ['?cursor=abc', 'querystring.cursor'],
    ['?cursor=99999999999999999999999', 'querystring.cursor'],
    ['?since=yesterday', 'querystring.since'],
    // Dates JavaScript reads but the database refuses: a 400, not a 500.
    ['?since=%2B275760-09-13T00:00:00Z', 'querystring.since'],
    ['?until=-004714-11-23T00:00:00Z', 'querystring.until'],
    ['?since=0000-01-01', 'querystring.since'],
    ['?until=20000-01-01', 'querystring.until'],
    ['?target_type=table', 'querystring.target_type'],
    ['?action=', 'querystring.action'],
    ['?actor=a%00b', 'querystring.actor'],
    ['?target=%00', 'querystring.target'],
  ])('%s is a 400 naming %s', async (query, path) => {
    const res = await list(query);
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ error: 'validation_failed', details: [expect.objectContaining({ path })] });
  });

  it('an unknown query parameter is refused', async () => {
    const res = await list('?before=2026-01-01T00:00:00Z');
    expect(res.statusCode).toBe(400);
    expect(res.json().error).toBe('validation_failed');
  });
});
