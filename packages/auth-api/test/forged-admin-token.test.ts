// Black box: someone holding JWT_ACCESS_SECRET (every receiving service does, in HS256 mode)
// forges the best admin token it can. None of them opens any admin route.
import { randomUUID } from 'node:crypto';
import { jwtVerify, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keyIdForSecret } from '@rw3iss/auth-server-ts';
import { createTokenIssuer } from '../src/lib/tokens.js';
import { ADMIN, AUDIENCE, ISSUER, TEST_PREVIOUS_SECRET, TEST_SECRET, bearer, createTestContext, login, type TestContext } from './helpers.js';

let ctx: TestContext;
let adminId: string;
beforeAll(async () => {
  ctx = await createTestContext({ env: { JWT_ACCESS_SECRET_PREVIOUS: TEST_PREVIOUS_SECRET } });
  adminId = (await ctx.database.db.selectFrom('users').select('id').where('email', '=', ADMIN.email).executeTakeFirstOrThrow()).id;
});
afterAll(() => ctx?.close());

/** Every claim and header field the admin (user) JWTs of earlier versions carried, for the real admin. */
function forge(secret: string, overrides: Record<string, unknown> = {}): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({
    token_type: 'user',
    email: ADMIN.email,
    roles: ['system_admin'],
    ...overrides,
  })
    .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: keyIdForSecret(secret) })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setSubject(adminId)
    .setIssuedAt(now)
    .setNotBefore(now)
    .setExpirationTime(now + 900)
    .setJti(randomUUID())
    .sign(new TextEncoder().encode(secret));
}

interface Operation {
  method: string;
  url: string;
}

const HTTP_METHODS = ['get', 'post', 'put', 'patch', 'delete'];

/**
 * Every route the app serves, read from its own OpenAPI document (generated
 * from the registered routes), with path parameters filled in. Not a list
 * kept by hand: a route added later is covered without touching this file.
 */
async function registeredRoutes(): Promise<{ all: Operation[]; bearer: Operation[] }> {
  const doc = (await ctx.app.inject({ method: 'GET', url: '/docs/json' })).json() as {
    paths: Record<string, Record<string, { security?: Record<string, unknown>[] }>>;
  };
  const all: Operation[] = [];
  const secured: Operation[] = [];
  for (const [path, operations] of Object.entries(doc.paths)) {
    const url = path.replace(/\{[^}]+\}/g, randomUUID());
    for (const [method, operation] of Object.entries(operations)) {
      if (!HTTP_METHODS.includes(method)) continue;
      const op = { method: method.toUpperCase(), url };
      all.push(op);
      if (operation.security?.some((s) => 'bearerAuth' in s)) secured.push(op);
    }
  }
  return { all, bearer: secured };
}

describe('a JWT signed with JWT_ACCESS_SECRET, claiming the real admin', () => {
  it('is a token the shared key verifies, with every claim of a former admin token', async () => {
    const token = await forge(TEST_SECRET);
    const { payload, protectedHeader } = await jwtVerify(token, new TextEncoder().encode(TEST_SECRET), {
      issuer: ISSUER,
      audience: AUDIENCE,
      typ: 'at+jwt',
      algorithms: ['HS256'],
    });
    expect(protectedHeader).toEqual({ alg: 'HS256', typ: 'at+jwt', kid: keyIdForSecret(TEST_SECRET) });
    expect(Object.keys(payload).sort()).toEqual(['aud', 'email', 'exp', 'iat', 'iss', 'jti', 'nbf', 'roles', 'sub', 'token_type']);
    expect(payload).toMatchObject({ sub: adminId, token_type: 'user', roles: ['system_admin'], email: ADMIN.email });
  });

  it('gets 401 on every admin route; a service JWT opens none either', async () => {
    const { all, bearer: adminRoutes } = await registeredRoutes();
    // The enumeration found the routes (so the loop below cannot pass by being empty) ...
    const names = adminRoutes.map((r) => `${r.method} ${r.url.replace(/[0-9a-f-]{36}/g, ':id')}`);
    expect(names).toEqual(
      expect.arrayContaining([
        'GET /api/v1/auth/me',
        'POST /api/v1/auth/logout',
        'POST /api/v1/auth/sessions/revoke-all',
        'POST /api/v1/auth/password',
        'POST /api/v1/admin/m2m-clients',
        'GET /api/v1/admin/m2m-clients',
        'GET /api/v1/admin/m2m-clients/:id',
        'PATCH /api/v1/admin/m2m-clients/:id',
        'DELETE /api/v1/admin/m2m-clients/:id',
      ]),
    );
    // ... and every route under /auth or /admin but sign-in declares the bearer scheme, so none is missed.
    const adminOrAuth = all.filter((r) => /^\/api\/v1\/(admin|auth)\//.test(r.url) && r.url !== '/api/v1/auth/login');
    expect(adminOrAuth.filter((r) => !adminRoutes.includes(r))).toEqual([]);

    const forgeries = {
      'admin JWT, current secret': await forge(TEST_SECRET),
      'admin JWT, previous secret': await forge(TEST_PREVIOUS_SECRET),
      'admin JWT, no kid or typ': await new SignJWT({ token_type: 'user', email: ADMIN.email, roles: ['system_admin'] })
        .setProtectedHeader({ alg: 'HS256' })
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setSubject(adminId)
        .setIssuedAt()
        .setExpirationTime('15m')
        .sign(new TextEncoder().encode(TEST_SECRET)),
    };
    // A genuine service token is authenticated but never an admin: 403 on every management route (the
    // contract's answer), catalog registration included (its own scope rule). Logout takes only sessions: 401.
    const serviceJwt = (
      await createTokenIssuer({ secret: TEST_SECRET, issuer: ISSUER, audience: AUDIENCE }, Date.now).serviceToken(
        { sub: 'svc', client_id: 'svc', service_name: 'svc', scopes: ['admin:all'] },
        300,
      )
    ).token;
    const SESSION_ONLY = new Set(['POST /api/v1/auth/logout']);

    for (const route of adminRoutes) {
      for (const [kind, token] of Object.entries(forgeries)) {
        const res = await ctx.app.inject({ method: route.method as 'GET', url: route.url, headers: bearer(token) });
        expect({ route: `${route.method} ${route.url}`, kind, status: res.statusCode, error: res.json().error }).toEqual({
          route: `${route.method} ${route.url}`,
          kind,
          status: 401,
          error: 'unauthorized',
        });
        expect(res.headers['www-authenticate']).toContain('error="invalid_token"');
      }
      const service = await ctx.app.inject({ method: route.method as 'GET', url: route.url, headers: bearer(serviceJwt) });
      const name = `${route.method} ${route.url}`;
      expect({ route: name, status: service.statusCode }).toEqual({ route: name, status: SESSION_ONLY.has(name) ? 401 : 403 });
      // The same route with a real session is past the gate (its own answer, never 401):
      // the 401 above came from the forged token, not from the route refusing everyone.
      const session = await login(ctx.app, ADMIN);
      const real = await ctx.app.inject({ method: route.method as 'GET', url: route.url, headers: bearer(session) });
      expect({ route: `${route.method} ${route.url}`, status: real.statusCode }).not.toEqual({ route: `${route.method} ${route.url}`, status: 401 });
    }

    // Nothing was done in the admin's name by any forged token.
    const actions = await ctx.database.db.selectFrom('audit_log').select('action').where('actor_id', '=', adminId).execute();
    expect(actions.map((a) => a.action).filter((a) => a !== 'login.success' && a !== 'logout' && a !== 'user.sessions_revoke')).toEqual([]);
  });
});
