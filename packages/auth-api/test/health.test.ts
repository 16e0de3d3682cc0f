import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestContext, type TestContext } from './helpers.js';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx?.close());

describe('health, docs and unknown routes', () => {
  it('GET /healthz and /readyz', async () => {
    const live = await ctx.app.inject({ method: 'GET', url: '/healthz' });
    expect(live.statusCode).toBe(200);
    expect(live.json()).toEqual({ status: 'ok' });
    expect(live.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    const ready = await ctx.app.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toEqual({ status: 'ok', database: ctx.database.kind });
  });

  it('serves OpenAPI 3 built from the zod schemas', async () => {
    const res = await ctx.app.inject({ method: 'GET', url: '/docs/json' });
    expect(res.statusCode).toBe(200);
    const doc = res.json();
    expect(doc.openapi).toMatch(/^3\./);
    expect(Object.keys(doc.paths)).toEqual(expect.arrayContaining(['/api/v1/auth/login', '/api/v1/admin/m2m-clients', '/api/v1/admin/m2m-clients/{id}']));
    const create = doc.paths['/api/v1/admin/m2m-clients'].post;
    expect(create.requestBody.content['application/json'].schema.required).toEqual(expect.arrayContaining(['client_id', 'name']));
    const html = await ctx.app.inject({ method: 'GET', url: '/docs/' });
    expect(html.statusCode).toBe(200);
    expect(html.headers['content-type']).toMatch(/^text\/html/);
    expect(html.headers['content-security-policy']).toMatch(/default-src 'self'/);
    expect(html.headers['x-frame-options']).toBe('DENY');
    expect(html.headers['x-content-type-options']).toBe('nosniff');
    expect(html.headers['referrer-policy']).toBe('no-referrer');
  });

  it('unknown routes are 404 not_found', async () => {
    const res = await ctx.app.inject({ method: 'GET', url: '/api/v1/nope?client_secret=m2msk_zzz' });
    expect(res.statusCode).toBe(404);
    expect(res.json()).toEqual({ error: 'not_found', message: 'No route GET /api/v1/nope' });
  });

  it('readyz answers 503 when the database is gone', async () => {
    const other = await createTestContext();
    await other.database.close();
    const res = await other.app.inject({ method: 'GET', url: '/readyz' });
    expect(res.statusCode).toBe(503);
    expect(res.json()).toEqual({ error: 'service_unavailable', message: expect.any(String) });
    await other.app.close();
  });
});
