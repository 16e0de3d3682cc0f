import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, PLAIN_USER, bearer, createTestContext, type TestContext } from './helpers.js';

let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx?.close());

const login = (payload: unknown) => ctx.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: payload as Record<string, unknown> });

describe('POST /api/v1/auth/login', () => {
  it('returns the user, an opaque session token and the roles; stores only the token hash', async () => {
    const res = await ctx.app.inject({
      method: 'POST',
      url: '/api/v1/auth/login',
      headers: { 'user-agent': 'vitest-agent/1.0' },
      payload: { email: '  Admin@Example.com ', password: ADMIN.password },
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['cache-control']).toBe('no-store');
    const body = res.json();
    expect(body).toMatchObject({
      user: { email: 'admin@example.com', roles: ['system_admin'] },
      tokens: { token_type: 'Bearer', expires_in: 900 },
      roles: ['system_admin'],
    });
    expect(body.user).not.toHaveProperty('password_hash');
    const token = body.tokens.access_token as string;
    // Opaque: a prefix and 256 random bits, not a JWT (no dots, nothing to decode or sign).
    expect(token).toMatch(/^m2mas_[A-Za-z0-9_-]{43}$/);

    const hash = createHash('sha256').update(token).digest('base64url');
    const rows = await ctx.database.db.selectFrom('admin_sessions').selectAll().where('user_id', '=', body.user.id).execute();
    const row = rows.find((r) => r.token_hash === hash);
    expect(row).toMatchObject({ user_id: body.user.id, ip: '127.0.0.1', user_agent: 'vitest-agent/1.0', revoked_at: null });
    expect(row!.expires_at.getTime() - row!.created_at.getTime()).toBe(900_000);
    // No column of any session row holds a token, or any part of one.
    for (const r of rows) for (const value of Object.values(r)) expect(String(value)).not.toContain(token.slice(6, 30));
  });

  it('wrong password and unknown email give the same 401, both audited', async () => {
    const wrong = await login({ email: ADMIN.email, password: 'not the password' });
    const unknown = await login({ email: 'nobody@example.com', password: 'not the password' });
    expect(wrong.statusCode).toBe(401);
    expect(unknown.statusCode).toBe(401);
    expect(wrong.body).toBe(unknown.body);
    expect(wrong.json()).toEqual({ error: 'unauthorized', message: 'Invalid email or password' });
    const failures = await ctx.database.db.selectFrom('audit_log').select(['actor', 'ip']).where('action', '=', 'login.failure').execute();
    expect(failures.map((f) => f.actor).sort()).toEqual(['admin@example.com', 'nobody@example.com']);
    expect(failures.every((f) => f.ip === '127.0.0.1')).toBe(true);
    const successes = await ctx.database.db.selectFrom('audit_log').select('actor').where('action', '=', 'login.success').execute();
    expect(successes.length).toBeGreaterThanOrEqual(2);
  });

  it('validates the body', async () => {
    for (const payload of [{}, { email: 'a@b.co' }, { email: 'not-an-email', password: 'x' }, { email: 'a@b.co', password: 'x', extra: 1 }, { email: 5, password: [] }]) {
      const res = await login(payload);
      expect(res.statusCode).toBe(400);
      expect(res.json().error).toBe('validation_failed');
      expect(Array.isArray(res.json().details)).toBe(true);
    }
  });
});

describe('GET /api/v1/auth/me', () => {
  it('returns the caller', async () => {
    const res = await ctx.app.inject({ method: 'GET', url: '/api/v1/auth/me', headers: bearer(ctx.userToken) });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ user: { email: PLAIN_USER.email, roles: ['viewer'] }, roles: ['viewer'] });
  });

  it('401 without a token, with a malformed header or a bad token', async () => {
    for (const authorization of [undefined, 'Basic abc', 'Bearer', `Bearer ${ctx.userToken}x`, `Token ${ctx.userToken}`]) {
      const res = await ctx.app.inject({ method: 'GET', url: '/api/v1/auth/me', headers: authorization ? { authorization } : {} });
      expect(res.statusCode).toBe(401);
      expect(res.json().error).toBe('unauthorized');
    }
  });

  it('a deleted user loses access at once', async () => {
    const id = crypto.randomUUID();
    await ctx.database.db.insertInto('users').values({ id, email: 'temp@example.com', password_hash: await ctx.hasher.hash('temporary password'), roles: ['system_admin'], updated_at: new Date() }).execute();
    const res = await login({ email: 'temp@example.com', password: 'temporary password' });
    const token = res.json().tokens.access_token;
    expect((await ctx.app.inject({ method: 'GET', url: '/api/v1/admin/m2m-clients', headers: bearer(token) })).statusCode).toBe(200);
    await ctx.database.db.deleteFrom('audit_log').where('actor_id', '=', id).execute();
    await ctx.database.db.deleteFrom('users').where('id', '=', id).execute();
    expect((await ctx.app.inject({ method: 'GET', url: '/api/v1/admin/m2m-clients', headers: bearer(token) })).statusCode).toBe(401);
  });
});
