import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, createClient, createTestContext, type TestContext } from './helpers.js';

// The listing's filters and paging, and the lookup by client_id, against the database's own order.
let ctx: TestContext;
let now = Date.now();
const ids: Record<string, string> = {};

const base = '/api/v1/admin/m2m-clients';
const get = (url: string, token = ctx.adminToken) => ctx.app.inject({ method: 'GET', url, headers: bearer(token) });
const clientIdsOf = (body: { clients: { client_id: string }[] }) => body.clients.map((c) => c.client_id);

beforeAll(async () => {
  ctx = await createTestContext({ clock: () => now });
  // Three share one creation instant, so the order must break ties (by id) for pages to be stable.
  const specs: [string, string[], number][] = [
    ['pay_alpha', ['gsku:publish'], 0],
    ['payxbeta', ['gsku:read'], 0],
    ['pay_gamma', ['gsku:publish', 'gsku:read'], 0],
    ['reports', ['gsku:read'], 1000],
    ['billing', ['gsku:publish'], 2000],
    ['catalog', [], 3000],
    ['search', ['gsku:read'], 4000],
  ];
  const start = now;
  for (const [clientId, scopes, offset] of specs) {
    now = start + offset;
    ids[clientId] = (await createClient(ctx, { client_id: clientId, name: clientId, scopes })).client.id;
  }
  await ctx.app.inject({ method: 'PATCH', url: `${base}/${ids.reports}`, headers: bearer(ctx.adminToken), payload: { status: 'disabled' } });
  await ctx.app.inject({ method: 'PATCH', url: `${base}/${ids.pay_gamma}`, headers: bearer(ctx.adminToken), payload: { status: 'disabled' } });
  await ctx.app.inject({ method: 'DELETE', url: `${base}/${ids.catalog}`, headers: bearer(ctx.adminToken) });
});
afterAll(() => ctx?.close());

/** The order the API promises, straight from the table: newest first, ties by id descending. */
async function databaseOrder(includeRevoked: boolean): Promise<string[]> {
  let q = ctx.database.db.selectFrom('m2m_clients').select('client_id');
  if (!includeRevoked) q = q.where('revoked_at', 'is', null);
  const rows = await q.orderBy('created_at', 'desc').orderBy('id', 'desc').execute();
  return rows.map((r) => r.client_id);
}

async function allPages(query: string, limit: number) {
  const pages: string[][] = [];
  let cursor: string | null = null;
  do {
    const res = await get(`${base}?${query}${query ? '&' : ''}limit=${limit}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json();
    pages.push(clientIdsOf(body));
    cursor = body.next_cursor;
    expect(pages.length).toBeLessThan(20);
  } while (cursor !== null);
  return pages;
}

describe('GET /admin/m2m-clients: filters', () => {
  it('without parameters: every credential not revoked, newest first (ties by id), no cursor', async () => {
    const res = await get(base);
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(clientIdsOf(body)).toEqual(await databaseOrder(false));
    expect(clientIdsOf(body)).not.toContain('catalog');
    expect(body.next_cursor).toBeNull();
  });

  it('include_revoked=true adds the revoked, in the same order', async () => {
    const body = (await get(`${base}?include_revoked=true`)).json();
    expect(clientIdsOf(body)).toEqual(await databaseOrder(true));
    expect(body.clients.find((c: { client_id: string }) => c.client_id === 'catalog').revoked_at).toEqual(expect.any(String));
    expect(clientIdsOf((await get(`${base}?include_revoked=false`)).json())).toEqual(await databaseOrder(false));
  });

  it('status, scope and client_id_prefix filter, and combine', async () => {
    const order = await databaseOrder(true);
    const keep = (...names: string[]) => order.filter((n) => names.includes(n));
    expect(clientIdsOf((await get(`${base}?status=disabled`)).json())).toEqual(keep('reports', 'pay_gamma'));
    expect(clientIdsOf((await get(`${base}?status=active`)).json())).toEqual(keep('pay_alpha', 'payxbeta', 'billing', 'search'));
    expect(clientIdsOf((await get(`${base}?scope=gsku:publish`)).json())).toEqual(keep('pay_alpha', 'pay_gamma', 'billing'));
    // "_" is a literal character, not a LIKE wildcard: pay_ does not match payxbeta.
    expect(clientIdsOf((await get(`${base}?client_id_prefix=pay_`)).json())).toEqual(keep('pay_alpha', 'pay_gamma'));
    expect(clientIdsOf((await get(`${base}?client_id_prefix=PAY`)).json())).toEqual(keep('pay_alpha', 'payxbeta', 'pay_gamma'));
    expect(clientIdsOf((await get(`${base}?client_id_prefix=pay&scope=gsku:read&status=disabled`)).json())).toEqual(['pay_gamma']);
    expect(clientIdsOf((await get(`${base}?client_id_prefix=cat`)).json())).toEqual([]);
    expect(clientIdsOf((await get(`${base}?client_id_prefix=cat&include_revoked=true`)).json())).toEqual(['catalog']);
    expect(clientIdsOf((await get(`${base}?scope=gsku:none`)).json())).toEqual([]);
  });
});

describe('GET /admin/m2m-clients: paging', () => {
  it('pages of 2 cover the listing exactly once, in order; the last page has next_cursor null', async () => {
    const all = await databaseOrder(true);
    const pages = await allPages('include_revoked=true', 2);
    expect(pages.map((p) => p.length)).toEqual([2, 2, 2, 1]);
    expect(pages.flat()).toEqual(all);
  });

  it('a limit equal to the count gives one page and no cursor (no empty last page); filters hold across pages', async () => {
    const all = await databaseOrder(false);
    expect(await allPages('', all.length)).toEqual([all]);
    const readers = all.filter((n) => ['payxbeta', 'pay_gamma', 'reports', 'search'].includes(n));
    expect(await allPages('scope=gsku:read', 1)).toEqual(readers.map((n) => [n]));
  });

  it('a cursor stays valid when rows are added before it: the next page continues after the same row', async () => {
    const first = (await get(`${base}?limit=3`)).json();
    now += 10_000;
    await createClient(ctx, { client_id: 'newest', name: 'Newest' });
    const second = (await get(`${base}?limit=3&cursor=${first.next_cursor}`)).json();
    const all = await databaseOrder(false);
    expect(all[0]).toBe('newest');
    expect([...clientIdsOf(first), ...clientIdsOf(second)]).toEqual(all.slice(1, 7));
  });

  it('refuses a cursor it did not issue, and limits outside 1..500', async () => {
    const unknown = Buffer.from(JSON.stringify({ v: 1, id: '7d444840-9dc0-41a4-8ee0-8a1b5c1ee6a4' })).toString('base64url');
    for (const query of ['cursor=nope', `cursor=${unknown}`, 'cursor=', 'limit=0', 'limit=501', 'limit=abc', 'limit=1.5', 'limit=-1', 'limit=']) {
      const res = await get(`${base}?${query}`);
      expect(res.statusCode, query).toBe(400);
      expect(res.json(), query).toMatchObject({ error: 'validation_failed', details: [{ path: expect.stringMatching(/^querystring/) }] });
    }
  });
});

describe('unknown or malformed query parameters are refused like unknown body fields', () => {
  it('on the listing', async () => {
    for (const query of ['statuss=active', 'status=revoked', 'include_revoked=yes', 'scope=Publish', 'client_id_prefix=a%20b', 'status=active&status=disabled']) {
      const res = await get(`${base}?${query}`);
      expect(res.statusCode, query).toBe(400);
      expect(res.json().error, query).toBe('validation_failed');
    }
    const res = await get(`${base}?page=2`);
    expect(res.json()).toEqual({ error: 'validation_failed', message: 'The request is invalid', details: [{ path: 'querystring', message: expect.stringContaining('page') }] });
  });

  it('on every other management route, before anything changes', async () => {
    const routes = [
      { method: 'POST', url: `${base}?dry_run=true`, payload: { client_id: 'never-made', name: 'No' } },
      { method: 'GET', url: `${base}/${ids.billing}?x=1` },
      { method: 'GET', url: `${base}/by-client-id/billing?x=1` },
      { method: 'PATCH', url: `${base}/${ids.billing}?x=1`, payload: { name: 'Changed' } },
      { method: 'DELETE', url: `${base}/${ids.billing}?force=true` },
    ] as const;
    for (const route of routes) {
      const res = await ctx.app.inject({ ...route, headers: bearer(ctx.adminToken) });
      expect(res.statusCode, route.url).toBe(400);
      expect(res.json().error).toBe('validation_failed');
    }
    const row = await ctx.database.db.selectFrom('m2m_clients').select(['name', 'revoked_at']).where('id', '=', ids.billing!).executeTakeFirstOrThrow();
    expect(row).toEqual({ name: 'billing', revoked_at: null });
    expect(await ctx.database.db.selectFrom('m2m_clients').select('id').where('client_id', '=', 'never-made').executeTakeFirst()).toBeUndefined();
  });
});

describe('GET /admin/m2m-clients/by-client-id/:client_id', () => {
  it('is the record GET /:id gives, revoked ones included; the client_id is matched as it is stored (lower case)', async () => {
    const byId = (await get(`${base}/${ids.billing}`)).json();
    const res = await get(`${base}/by-client-id/billing`);
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual(byId);
    expect((await get(`${base}/by-client-id/BILLING`)).json()).toEqual(byId);
    expect(res.json()).not.toHaveProperty('client_secret_hash');

    const revoked = await get(`${base}/by-client-id/catalog`);
    expect(revoked.statusCode).toBe(200);
    expect(revoked.json()).toMatchObject({ id: ids.catalog, revoked_at: expect.any(String) });
  });

  it('unknown is 404, malformed 400, and only a system_admin may ask', async () => {
    const unknown = await get(`${base}/by-client-id/no-such-svc`);
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json()).toEqual({ error: 'not_found', message: expect.any(String) });
    for (const bad of ['a', 'has%20space', ids.billing!]) {
      const res = await get(`${base}/by-client-id/${bad}`);
      expect(res.statusCode, bad).toBe(400);
      expect(res.json()).toMatchObject({ error: 'validation_failed', details: [{ path: 'params.client_id' }] });
    }
    expect((await get(`${base}/by-client-id/billing`, ctx.userToken)).statusCode).toBe(403);
    expect((await ctx.app.inject({ method: 'GET', url: `${base}/by-client-id/billing` })).statusCode).toBe(401);
  });
});
