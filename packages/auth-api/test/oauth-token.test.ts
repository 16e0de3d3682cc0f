import { jwtVerify } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyIdForSecret } from '@rw3iss/auth-server-ts';
import { AUDIENCE, ISSUER, TEST_SECRET, bearer, createClient, createTestContext, type TestContext } from './helpers.js';

let ctx: TestContext;
let svc: { id: string; client_id: string; secret: string };
beforeAll(async () => {
  ctx = await createTestContext();
  const created = await createClient(ctx, {
    client_id: 'billing-svc',
    name: 'Billing backend',
    scopes: ['gsku:publish', 'gsku:read', 'billing:write'],
    allowed_audiences: ['https://gsku.internal'],
  });
  svc = { id: created.client.id, client_id: created.client.client_id, secret: created.client_secret };
});
afterAll(() => ctx?.close());

const url = '/api/v1/oauth/token';
const form = (params: Record<string, string>) => new URLSearchParams(params).toString();
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const basic = (id: string, secret: string) => `Basic ${Buffer.from(`${encodeURIComponent(id)}:${encodeURIComponent(secret)}`).toString('base64')}`;

function post(payload: string, headers: Record<string, string> = FORM) {
  return ctx.app.inject({ method: 'POST', url, payload, headers });
}

async function verified(token: string) {
  return jwtVerify(token, new TextEncoder().encode(TEST_SECRET), { issuer: ISSUER, algorithms: ['HS256'], typ: 'at+jwt' });
}

function expectOAuthError(res: Awaited<ReturnType<typeof post>>, status: number, error: string) {
  expect({ status: res.statusCode, error: res.json().error }).toEqual({ status, error });
  expect(Object.keys(res.json()).sort()).toEqual(['error', 'error_description']);
  expect(res.headers['cache-control']).toBe('no-store');
  expect(res.body).not.toContain(svc.secret);
}

describe('POST /api/v1/oauth/token: success', () => {
  it('client_secret_post, form body, all scopes when scope is omitted', async () => {
    const before = Math.floor(Date.now() / 1000);
    const res = await post(form({ grant_type: 'client_credentials', client_id: svc.client_id, client_secret: svc.secret }));
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    expect(res.headers.pragma).toBe('no-cache');
    expect(res.headers['content-type']).toMatch(/^application\/json/);
    const body = res.json();
    expect(body).toEqual({ access_token: expect.any(String), token_type: 'Bearer', expires_in: 900, scope: 'gsku:publish gsku:read billing:write' });

    const { payload, protectedHeader } = await verified(body.access_token);
    expect(protectedHeader).toEqual({ alg: 'HS256', typ: 'at+jwt', kid: keyIdForSecret(TEST_SECRET) });
    expect(payload).toEqual({
      iss: ISSUER,
      sub: 'billing-svc',
      aud: AUDIENCE,
      iat: expect.any(Number),
      nbf: expect.any(Number),
      exp: expect.any(Number),
      jti: expect.stringMatching(/^[0-9a-f-]{36}$/),
      token_type: 'service',
      client_id: 'billing-svc',
      service_name: 'Billing backend',
      scopes: ['gsku:publish', 'gsku:read', 'billing:write'],
      scope: 'gsku:publish gsku:read billing:write',
    });
    expect(payload.iat).toBeGreaterThanOrEqual(before);
    expect(payload.nbf).toBe(payload.iat);
    expect(payload.exp! - payload.iat!).toBe(900);
  });

  it('client_secret_basic, JSON body, a subset of scopes and an allowed audience', async () => {
    const res = await post(JSON.stringify({ grant_type: 'client_credentials', scope: 'gsku:read  gsku:publish gsku:read', audience: 'https://gsku.internal' }), {
      'content-type': 'application/json',
      authorization: basic(svc.client_id, svc.secret),
    });
    expect(res.statusCode).toBe(200);
    expect(res.json().scope).toBe('gsku:read gsku:publish');
    const { payload } = await verified(res.json().access_token);
    expect(payload).toMatchObject({ scopes: ['gsku:read', 'gsku:publish'], scope: 'gsku:read gsku:publish', aud: 'https://gsku.internal' });
  });

  it('each token is unique (jti) and last_used_at is stamped', async () => {
    const a = await post(form({ grant_type: 'client_credentials', client_id: svc.client_id, client_secret: svc.secret }));
    const b = await post(form({ grant_type: 'client_credentials', client_id: svc.client_id, client_secret: svc.secret }));
    expect((await verified(a.json().access_token)).payload.jti).not.toBe((await verified(b.json().access_token)).payload.jti);
    await expect.poll(async () => (await ctx.database.db.selectFrom('m2m_clients').select('last_used_at').where('id', '=', svc.id).executeTakeFirst())?.last_used_at).toBeInstanceOf(Date);
  });

  it('a service token is refused by the admin routes', async () => {
    const res = await post(form({ grant_type: 'client_credentials', client_id: svc.client_id, client_secret: svc.secret }));
    // Authenticated (a genuine token of this server) but never an admin: 403, as the contract says.
    const admin = await ctx.app.inject({ method: 'GET', url: '/api/v1/admin/m2m-clients', headers: bearer(res.json().access_token) });
    expect(admin.statusCode).toBe(403);
    expect(admin.json().error).toBe('forbidden');
    const me = await ctx.app.inject({ method: 'GET', url: '/api/v1/auth/me', headers: bearer(res.json().access_token) });
    expect(me.statusCode).toBe(403);
  });
});

describe('POST /api/v1/oauth/token: client authentication failures are identical', () => {
  it('unknown client, wrong secret, disabled and revoked: the same 401 invalid_client body', async () => {
    const disabled = await createClient(ctx, { client_id: 'disabled-svc', name: 'Disabled', scopes: ['a:b'] });
    await ctx.app.inject({ method: 'PATCH', url: `/api/v1/admin/m2m-clients/${disabled.client.id}`, headers: bearer(ctx.adminToken), payload: { status: 'disabled' } });
    const revoked = await createClient(ctx, { client_id: 'revoked-svc', name: 'Revoked', scopes: ['a:b'] });
    await ctx.app.inject({ method: 'DELETE', url: `/api/v1/admin/m2m-clients/${revoked.client.id}`, headers: bearer(ctx.adminToken) });

    const attempts: Array<[string, string]> = [
      ['nobody-svc', svc.secret],
      [svc.client_id, `${svc.secret.slice(0, -1)}x`],
      ['disabled-svc', disabled.client_secret],
      ['revoked-svc', revoked.client_secret],
      ['BILLING-SVC', svc.secret],
      ['bad\u0000id', svc.secret],
      ['ünïcødé', 'sécret'],
      [svc.client_id, 'sec\u0000\u0007ret\u001b'],
      [svc.client_id, `${svc.secret}${'x'.repeat(30)}`],
    ];
    const bodies = new Set<string>();
    for (const [id, secret] of attempts) {
      const viaPost = await post(form({ grant_type: 'client_credentials', client_id: id, client_secret: secret }));
      expectOAuthError(viaPost, 401, 'invalid_client');
      expect(viaPost.headers['www-authenticate']).toMatch(/^Basic realm="auth-api"/);
      const viaBasic = await post(form({ grant_type: 'client_credentials' }), { ...FORM, authorization: basic(id, secret) });
      expectOAuthError(viaBasic, 401, 'invalid_client');
      expect(viaBasic.headers['www-authenticate']).toMatch(/^Basic realm="auth-api"/);
      bodies.add(viaPost.body).add(viaBasic.body);
    }
    expect(bodies.size).toBe(1);
  });

  it('a revoke or disable takes effect on the very next grant (even after a cached success)', async () => {
    const c = await createClient(ctx, { client_id: 'short-lived', name: 'Short', scopes: ['a:b'] });
    const grant = () => post(form({ grant_type: 'client_credentials', client_id: 'short-lived', client_secret: c.client_secret }));
    expect((await grant()).statusCode).toBe(200);
    expect((await grant()).statusCode).toBe(200);
    await ctx.app.inject({ method: 'PATCH', url: `/api/v1/admin/m2m-clients/${c.client.id}`, headers: bearer(ctx.adminToken), payload: { status: 'disabled' } });
    expectOAuthError(await grant(), 401, 'invalid_client');
    await ctx.app.inject({ method: 'PATCH', url: `/api/v1/admin/m2m-clients/${c.client.id}`, headers: bearer(ctx.adminToken), payload: { status: 'active', scopes: ['x:y'] } });
    const again = await grant();
    expect(again.statusCode).toBe(200);
    expect(again.json().scope).toBe('x:y');
    await ctx.app.inject({ method: 'DELETE', url: `/api/v1/admin/m2m-clients/${c.client.id}`, headers: bearer(ctx.adminToken) });
    expectOAuthError(await grant(), 401, 'invalid_client');
  });

  it('no client authentication at all is invalid_client', async () => {
    expectOAuthError(await post(form({ grant_type: 'client_credentials' })), 401, 'invalid_client');
    expectOAuthError(await post(form({ grant_type: 'client_credentials', client_id: svc.client_id })), 401, 'invalid_client');
  });
});

describe('POST /api/v1/oauth/token: request errors', () => {
  const ok = { grant_type: 'client_credentials' };
  it('unsupported and missing grant_type', async () => {
    for (const grant_type of ['password', 'authorization_code', 'refresh_token', 'CLIENT_CREDENTIALS']) {
      expectOAuthError(await post(form({ grant_type, client_id: svc.client_id, client_secret: svc.secret })), 400, 'unsupported_grant_type');
    }
    expectOAuthError(await post(form({ client_id: svc.client_id, client_secret: svc.secret })), 400, 'invalid_request');
    // RFC 6749 §3.1: a parameter without a value is treated as omitted.
    expectOAuthError(await post(form({ grant_type: '', client_id: svc.client_id, client_secret: svc.secret })), 400, 'invalid_request');
    const emptyOptional = await post(form({ grant_type: 'client_credentials', scope: '', audience: '', client_secret: '' }), { ...FORM, authorization: basic(svc.client_id, svc.secret) });
    expect(emptyOptional.statusCode).toBe(200);
    expect(emptyOptional.json().scope).toBe('gsku:publish gsku:read billing:write');
  });

  it('invalid_scope names none of the credential’s other scopes', async () => {
    const res = await post(form({ ...ok, client_id: svc.client_id, client_secret: svc.secret, scope: 'gsku:publish admin:all' }));
    expectOAuthError(res, 400, 'invalid_scope');
    expect(res.json().error_description).toContain('admin:all');
    expect(res.body).not.toContain('billing:write');
    expect(res.body).not.toContain('gsku:read');
    expectOAuthError(await post(form({ ...ok, client_id: svc.client_id, client_secret: svc.secret, scope: 'bad"scope' })), 400, 'invalid_scope');
  });

  it('an audience the credential may not use is invalid_target', async () => {
    expectOAuthError(await post(form({ ...ok, client_id: svc.client_id, client_secret: svc.secret, audience: 'https://elsewhere' })), 400, 'invalid_target');
  });

  it('both authentication methods at once, or a parameter twice, is invalid_request', async () => {
    expectOAuthError(await post(form({ ...ok, client_id: svc.client_id, client_secret: svc.secret }), { ...FORM, authorization: basic(svc.client_id, svc.secret) }), 400, 'invalid_request');
    expectOAuthError(await post(form({ ...ok, client_id: 'other' }), { ...FORM, authorization: basic(svc.client_id, svc.secret) }), 400, 'invalid_request');
    const twice = `grant_type=client_credentials&client_id=${svc.client_id}&client_id=${svc.client_id}&client_secret=${encodeURIComponent(svc.secret)}`;
    expectOAuthError(await post(twice), 400, 'invalid_request');
    expectOAuthError(await post(`grant_type=client_credentials&grant_type=client_credentials&client_id=${svc.client_id}&client_secret=${encodeURIComponent(svc.secret)}`), 400, 'invalid_request');
    expectOAuthError(await post(`${form({ ...ok, client_id: svc.client_id, client_secret: svc.secret })}&scope=a:b&scope=c:d`), 400, 'invalid_request');
  });

  it('malformed Basic headers are invalid_request, never a 500', async () => {
    for (const authorization of ['Basic', 'Basic !!!notbase64', `Basic ${Buffer.from('no-colon-here').toString('base64')}`, 'Basic YWJj', 'Bearer abc', `Basic ${Buffer.from('%zz:%zz').toString('base64')}`, 'Basic ===']) {
      const res = await post(form(ok), { ...FORM, authorization });
      expect(res.statusCode).toBeLessThan(500);
      expect(['invalid_request', 'invalid_client']).toContain(res.json().error);
    }
    expectOAuthError(await post(form(ok), { ...FORM, authorization: `Basic ${Buffer.from('no-colon-here').toString('base64')}` }), 400, 'invalid_request');
    expectOAuthError(await post(form(ok), { ...FORM, authorization: 'Basic !!!notbase64' }), 400, 'invalid_request');
  });

  it('Basic credentials are form-urlencoded before base64 (RFC 6749 §2.3.1)', async () => {
    const c = await createClient(ctx, { client_id: 'enc.svc_1', name: 'Enc', scopes: ['a:b'] });
    const raw = `Basic ${Buffer.from(`enc.svc_1:${c.client_secret}`).toString('base64')}`;
    expect((await post(form(ok), { ...FORM, authorization: raw })).statusCode).toBe(200);
    const encoded = `Basic ${Buffer.from(`enc%2Esvc%5F1:${encodeURIComponent(c.client_secret).replace(/-/g, '%2D')}`).toString('base64')}`;
    expect((await post(form(ok), { ...FORM, authorization: encoded })).statusCode).toBe(200);
  });

  it('other methods: 405 with Allow: POST, in the OAuth error format', async () => {
    for (const method of ['GET', 'PUT', 'PATCH', 'DELETE'] as const) {
      const res = await ctx.app.inject({ method, url });
      expectOAuthError(res, 405, 'invalid_request');
      expect(res.headers.allow, method).toBe('POST');
      expect(res.json().error_description).toMatch(/accepts POST only/);
    }
    const head = await ctx.app.inject({ method: 'HEAD', url });
    expect({ status: head.statusCode, allow: head.headers.allow }).toEqual({ status: 405, allow: 'POST' });
  });

  it('bad bodies: malformed JSON, wrong content type, no body, huge body', async () => {
    expectOAuthError(await post('{"grant_type":', { 'content-type': 'application/json' }), 400, 'invalid_request');
    for (const [payload, type] of [['grant_type=client_credentials', 'text/plain'], ['<xml/>', 'application/xml']]) {
      const res = await post(payload!, { 'content-type': type! });
      expectOAuthError(res, 415, 'invalid_request');
      // The 415 names what would have been accepted, in the body and in Accept (RFC 9110 §15.5.16).
      expect(res.json().error_description).toBe('Unsupported Content-Type: send the parameters as application/x-www-form-urlencoded or application/json');
      expect(res.headers.accept).toBe('application/x-www-form-urlencoded, application/json');
    }
    expectOAuthError(await ctx.app.inject({ method: 'POST', url }), 400, 'invalid_request');
    expectOAuthError(await post(JSON.stringify([1, 2]), { 'content-type': 'application/json' }), 400, 'invalid_request');
    expectOAuthError(await post(JSON.stringify({ grant_type: 5 }), { 'content-type': 'application/json' }), 400, 'invalid_request');
    const huge = await post(form({ ...ok, client_id: svc.client_id, client_secret: svc.secret, pad: 'x'.repeat(100_000) }));
    expectOAuthError(huge, 413, 'invalid_request');
    const longBasic = await post(form(ok), { ...FORM, authorization: basic('a'.repeat(5000), 'b') });
    expectOAuthError(longBasic, 400, 'invalid_request');
  });

  it('GET is not the token endpoint: credentials in a query string get 405, never a token', async () => {
    const res = await ctx.app.inject({ method: 'GET', url: `${url}?grant_type=client_credentials&client_id=${svc.client_id}&client_secret=${svc.secret}` });
    expect(res.statusCode).toBe(405);
    expect(res.headers.allow).toBe('POST');
    expect(Object.keys(res.json()).sort()).toEqual(['error', 'error_description']);
    expect(res.body).not.toContain(svc.secret);
  });
});

describe('GET /.well-known/oauth-authorization-server', () => {
  it('is RFC 8414 metadata', async () => {
    const res = await ctx.app.inject({ method: 'GET', url: '/.well-known/oauth-authorization-server' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({
      issuer: ISSUER,
      token_endpoint: `${ISSUER}/api/v1/oauth/token`,
      jwks_uri: `${ISSUER}/.well-known/jwks.json`,
      grant_types_supported: ['client_credentials'],
      token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
      revocation_endpoint: `${ISSUER}/api/v1/oauth/revoke`,
      revocation_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
      introspection_endpoint: `${ISSUER}/api/v1/oauth/introspect`,
      introspection_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
      response_types_supported: [],
      service_documentation: `${ISSUER}/docs`,
    });
  });
});
