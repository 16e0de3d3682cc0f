import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bearer, createClient, createTestContext, type TestContext } from './helpers.js';

// The generated OpenAPI document (/docs/json): complete for every route, and true to what the routes answer.
let ctx: TestContext;
let doc: any;
const version = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version;
const METHODS = ['get', 'post', 'put', 'patch', 'delete'];

beforeAll(async () => {
  ctx = await createTestContext();
  const res = await ctx.app.inject({ method: 'GET', url: '/docs/json' });
  expect(res.statusCode).toBe(200);
  doc = res.json();
});
afterAll(() => ctx?.close());

function operations(): { method: string; path: string; op: any }[] {
  return Object.entries<any>(doc.paths).flatMap(([path, item]) =>
    Object.entries<any>(item)
      .filter(([method]) => METHODS.includes(method))
      .map(([method, op]) => ({ method, path, op })),
  );
}

describe('the OpenAPI document', () => {
  it('names the package version and its security schemes', () => {
    expect(doc.openapi).toBe('3.1.0');
    expect(doc.info.version).toBe(version);
    expect(doc.info.description).toEqual(expect.stringContaining('system_admin'));
    expect(doc.components.securitySchemes).toEqual({
      bearerAuth: expect.objectContaining({ type: 'http', scheme: 'bearer', description: expect.stringContaining('session') }),
      clientBasic: expect.objectContaining({ type: 'http', scheme: 'basic', description: expect.stringContaining('client_secret_basic') }),
      serviceBearer: expect.objectContaining({ type: 'http', scheme: 'bearer', description: expect.stringContaining('auth:revocations:read') }),
    });
  });

  it('every route has a summary, a description, error responses, and a description on every response', () => {
    const ops = operations();
    expect(ops.length).toBeGreaterThanOrEqual(12);
    for (const { method, path, op } of ops) {
      const where = `${method.toUpperCase()} ${path}`;
      expect(op.summary, where).toEqual(expect.any(String));
      expect(op.description, where).toEqual(expect.any(String));
      const statuses = Object.keys(op.responses);
      expect(statuses.some((s) => /^[45]/.test(s)), `${where} documents no error`).toBe(true);
      expect(statuses.filter((s) => /X/i.test(s)), `${where}: ranges instead of statuses`).toEqual([]);
      for (const status of statuses) expect(op.responses[status].description, `${where} ${status}`).not.toBe('Default Response');
    }
  });

  it('management routes document 400, 401, 403, 429, 500, 503, and 404 where they take an id; error bodies name their code', () => {
    const management = operations().filter(({ op }) => op.security?.some((s: object) => 'bearerAuth' in s));
    expect(management.map(({ method, path }) => `${method} ${path}`)).toEqual(
      expect.arrayContaining([
        'get /api/v1/admin/m2m-clients',
        'get /api/v1/admin/m2m-clients/by-client-id/{client_id}',
        'delete /api/v1/admin/m2m-clients/{id}',
        'get /api/v1/auth/me',
      ]),
    );
    for (const { method, path, op } of management) {
      const expected = ['401', '403', '429', '500', '503'];
      if (path.includes('{')) expected.push('400', '404');
      expect(Object.keys(op.responses), `${method} ${path}`).toEqual(expect.arrayContaining(expected));
      const unauthorized = op.responses['401'].content['application/json'].schema;
      expect(unauthorized.properties.error).toMatchObject({ enum: ['unauthorized'] });
    }
    const create = doc.paths['/api/v1/admin/m2m-clients'].post;
    expect(Object.keys(create.responses)).toEqual(expect.arrayContaining(['201', '400', '409', '413', '415']));
  });

  it('the listing documents its query parameters', () => {
    const list = doc.paths['/api/v1/admin/m2m-clients'].get;
    const params = Object.fromEntries(list.parameters.map((p: any) => [p.name, p]));
    expect(Object.keys(params).sort()).toEqual(['client_id_prefix', 'cursor', 'include_revoked', 'limit', 'scope', 'status']);
    for (const p of Object.values<any>(params)) expect(p).toMatchObject({ in: 'query', required: false, description: expect.any(String) });
    expect(list.responses['200'].content['application/json'].schema.properties).toHaveProperty('next_cursor');
  });

  it('the token endpoint: Basic or body authentication, RFC 6749 errors by status', () => {
    const token = doc.paths['/api/v1/oauth/token'].post;
    expect(token.security).toEqual([{ clientBasic: [] }, {}]);
    expect(Object.keys(token.requestBody.content).sort()).toEqual(['application/json', 'application/x-www-form-urlencoded']);
    const codes = (status: string) => token.responses[status].content['application/json'].schema.properties.error.enum;
    // Only RFC 6749 §5.2 bodies: no management-API error shape leaks in.
    for (const status of Object.keys(token.responses).filter((s) => s !== '200')) {
      expect(Object.keys(token.responses[status].content['application/json'].schema.properties).sort(), status).toEqual(['error', 'error_description']);
    }
    expect(codes('400')).toEqual(['invalid_request', 'unsupported_grant_type', 'invalid_scope', 'invalid_target']);
    expect(codes('401')).toEqual(['invalid_client']);
    expect(codes('429')).toEqual(['slow_down']);
    expect(codes('503')).toEqual(['temporarily_unavailable']);
    expect(codes('500')).toEqual(['server_error']);
  });
});

describe('what the routes answer is documented', () => {
  it('each error status a route gives is among its documented responses, with the documented code', async () => {
    const { client } = await createClient(ctx, { client_id: 'doc-svc', name: 'Doc' });
    const m2m = '/api/v1/admin/m2m-clients';
    const cases: { method: 'GET' | 'POST' | 'PATCH' | 'DELETE'; url: string; path: string; headers?: Record<string, string>; payload?: unknown }[] = [
      { method: 'GET', url: m2m, path: m2m },
      { method: 'GET', url: m2m, path: m2m, headers: bearer(ctx.userToken) },
      { method: 'GET', url: `${m2m}?limit=0`, path: m2m, headers: bearer(ctx.adminToken) },
      { method: 'POST', url: m2m, path: m2m, headers: bearer(ctx.adminToken), payload: { client_id: 'doc-svc', name: 'Again' } },
      { method: 'POST', url: m2m, path: m2m, headers: { ...bearer(ctx.adminToken), 'content-type': 'text/csv' }, payload: 'a,b' },
      { method: 'GET', url: `${m2m}/7d444840-9dc0-41a4-8ee0-8a1b5c1ee6a4`, path: `${m2m}/{id}`, headers: bearer(ctx.adminToken) },
      { method: 'GET', url: `${m2m}/nope`, path: `${m2m}/{id}`, headers: bearer(ctx.adminToken) },
      { method: 'GET', url: `${m2m}/by-client-id/none-such`, path: `${m2m}/by-client-id/{client_id}`, headers: bearer(ctx.adminToken) },
      { method: 'POST', url: '/api/v1/auth/login', path: '/api/v1/auth/login', payload: { email: 'admin@example.com', password: 'wrong password!' } },
      { method: 'GET', url: '/api/v1/auth/me', path: '/api/v1/auth/me' },
      { method: 'POST', url: '/api/v1/oauth/token', path: '/api/v1/oauth/token', payload: { grant_type: 'password' } },
      { method: 'POST', url: '/api/v1/oauth/token', path: '/api/v1/oauth/token', payload: { grant_type: 'client_credentials', client_id: 'doc-svc', client_secret: 'wrong' } },
    ];
    // With a catalog for gsku, a misspelt gsku scope is 400 unknown_scope.
    const registered = await ctx.app.inject({
      method: 'POST',
      url: '/api/v1/admin/permissions/register',
      headers: bearer(ctx.adminToken),
      payload: { service: 'gsku', permissions: [{ code: 'gsku:publish', name: 'Publish' }] },
    });
    expect(registered.statusCode).toBe(200);
    cases.push({ method: 'POST', url: m2m, path: m2m, headers: bearer(ctx.adminToken), payload: { client_id: 'typo-svc', name: 'Typo', scopes: ['gsku:pubish'] } });
    await ctx.app.inject({ method: 'DELETE', url: `${m2m}/${client.id}`, headers: bearer(ctx.adminToken) });
    cases.push({ method: 'PATCH', url: `${m2m}/${client.id}`, path: `${m2m}/{id}`, headers: bearer(ctx.adminToken), payload: { name: 'x' } });
    // Revocation, introspection and the feed.
    const caller = await createClient(ctx, { client_id: 'doc-caller', name: 'Doc caller', scopes: [] });
    const basic = { authorization: `Basic ${Buffer.from(`doc-caller:${caller.client_secret}`).toString('base64')}` };
    const feed = '/api/v1/oauth/revocations';
    const granted = await ctx.app.inject({ method: 'POST', url: '/api/v1/oauth/token', headers: basic, payload: { grant_type: 'client_credentials' } });
    const serviceToken = granted.json().access_token as string;
    cases.push(
      { method: 'GET', url: feed, path: feed },
      { method: 'GET', url: feed, path: feed, headers: bearer(serviceToken) },
      { method: 'GET', url: `${feed}?limit=0`, path: feed, headers: bearer(serviceToken) },
      { method: 'POST', url: '/api/v1/oauth/revoke', path: '/api/v1/oauth/revoke', headers: basic, payload: { token: 'x', token_type_hint: 'id_token' } },
      { method: 'POST', url: '/api/v1/oauth/revoke', path: '/api/v1/oauth/revoke', payload: { token: 'x', client_id: 'doc-caller', client_secret: 'wrong' } },
      { method: 'POST', url: '/api/v1/oauth/introspect', path: '/api/v1/oauth/introspect', headers: basic, payload: { token: serviceToken } },
    );

    const seen = new Set<string>();
    const codesSeen: string[] = [];
    for (const c of cases) {
      const res = await ctx.app.inject({ method: c.method, url: c.url, headers: c.headers, ...(c.payload === undefined ? {} : { payload: c.payload as string }) });
      const where = `${c.method} ${c.url} → ${res.statusCode}`;
      expect(res.statusCode, where).toBeGreaterThanOrEqual(400);
      const documented = doc.paths[c.path][c.method.toLowerCase()].responses[String(res.statusCode)];
      expect(documented, `${where} is not documented`).toBeDefined();
      const schema = documented.content['application/json'].schema;
      const code = res.json().error;
      expect(schema.properties.error.enum, where).toContain(code);
      seen.add(String(res.statusCode));
      codesSeen.push(code);
    }
    expect([...seen].sort()).toEqual(['400', '401', '403', '404', '409', '415']);
    expect(codesSeen).toEqual(expect.arrayContaining(['unknown_scope', 'unsupported_token_type', 'unauthorized_client', 'forbidden']));
  });
});

describe('revocation, introspection and the feed', () => {
  it('document their errors: RFC 6749 bodies on /oauth/revoke and /oauth/introspect, the API shape on the feed', () => {
    const codes = (op: any, status: string) => op.responses[status].content['application/json'].schema.properties.error.enum;
    const revoke = doc.paths['/api/v1/oauth/revoke'].post;
    expect(revoke.security).toEqual([{ clientBasic: [] }, {}]);
    expect(codes(revoke, '400')).toEqual(['invalid_request', 'unsupported_token_type']);
    expect(codes(revoke, '401')).toEqual(['invalid_client']);
    const introspect = doc.paths['/api/v1/oauth/introspect'].post;
    expect(codes(introspect, '403')).toEqual(['unauthorized_client']);
    expect(introspect.responses['200'].content['application/json'].schema.properties).toHaveProperty('active');
    const feed = doc.paths['/api/v1/oauth/revocations'].get;
    expect(feed.security).toEqual([{ serviceBearer: [] }]);
    expect(Object.keys(feed.responses)).toEqual(expect.arrayContaining(['200', '304', '400', '401', '403', '500', '503']));
    expect(codes(feed, '401')).toEqual(['unauthorized']);
    expect(feed.parameters.map((p: any) => p.name).sort()).toEqual(['limit', 'since']);
  });
});
