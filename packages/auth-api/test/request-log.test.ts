import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serverLoggerOptions } from '../src/app.js';
import { ADMIN, bearer, createClient, createTestContext, type TestContext } from './helpers.js';

// The server's own logger settings, writing to an array instead of stdout.
const lines: string[] = [];
const stream = { write: (line: string) => void lines.push(line) };
let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext({ logger: { ...serverLoggerOptions('info'), stream } });
});
afterAll(() => ctx?.close());

const entries = () => lines.map((line) => JSON.parse(line) as Record<string, unknown>);

describe('request logging', () => {
  it('one JSON line per request, with its request id, method, path without query, status and duration', async () => {
    lines.length = 0;
    const res = await ctx.app.inject({ method: 'GET', url: '/readyz?client_secret=m2msk_sent_by_mistake' });
    const health = await ctx.app.inject({ method: 'GET', url: '/healthz' });
    const missing = await ctx.app.inject({ method: 'GET', url: '/api/v1/nope' });

    expect(entries()).toEqual([
      { level: 30, time: expect.any(Number), pid: process.pid, hostname: expect.any(String), reqId: res.headers['x-request-id'], method: 'GET', path: '/readyz', status: 200, durationMs: expect.any(Number), msg: 'request completed' },
      expect.objectContaining({ reqId: health.headers['x-request-id'], path: '/healthz', status: 200 }),
      expect.objectContaining({ reqId: missing.headers['x-request-id'], path: '/api/v1/nope', status: 404 }),
    ]);
    expect(lines.join('')).not.toContain('m2msk_sent_by_mistake');
  });

  it('a login and grants (secret in Basic auth and in the body) log no password, secret or authorization value', async () => {
    const { client, client_secret } = await createClient(ctx, { client_id: 'log-svc', name: 'Logged', scopes: ['gsku:publish'] });
    lines.length = 0;
    const basic = `Basic ${Buffer.from(`${client.client_id}:${client_secret}`).toString('base64')}`;
    const login = await ctx.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: ADMIN });
    const viaBasic = await ctx.app.inject({ method: 'POST', url: '/api/v1/oauth/token', headers: { authorization: basic }, payload: { grant_type: 'client_credentials' } });
    const viaBody = await ctx.app.inject({
      method: 'POST',
      url: '/api/v1/oauth/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: `grant_type=client_credentials&client_id=${client.client_id}&client_secret=${client_secret}`,
    });
    const wrong = await ctx.app.inject({ method: 'POST', url: '/api/v1/oauth/token', payload: { grant_type: 'client_credentials', client_id: client.client_id, client_secret: `${client_secret}x` } });
    const token = login.json().tokens.access_token as string;
    const list = await ctx.app.inject({ method: 'GET', url: '/api/v1/admin/m2m-clients', headers: bearer(token) });
    expect([login.statusCode, viaBasic.statusCode, viaBody.statusCode, wrong.statusCode, list.statusCode]).toEqual([200, 200, 200, 401, 200]);

    const responses = [login, viaBasic, viaBody, wrong, list];
    const logged = entries();
    // Exactly one line per request, each carrying its request id.
    expect(logged.map((e) => e.reqId)).toEqual(responses.map((r) => r.headers['x-request-id']));
    expect(logged.map((e) => `${e.method} ${e.path} ${e.status}`)).toEqual([
      'POST /api/v1/auth/login 200',
      'POST /api/v1/oauth/token 200',
      'POST /api/v1/oauth/token 200',
      'POST /api/v1/oauth/token 401',
      'GET /api/v1/admin/m2m-clients 200',
    ]);

    const all = lines.join('');
    for (const secret of [ADMIN.password, client_secret, basic, basic.slice('Basic '.length), token, viaBasic.json().access_token]) {
      expect(all).not.toContain(secret);
    }
    // The hash: stored (and only the hash), never logged, never in a response.
    const { secret_hash: client_secret_hash } = await ctx.database.db.selectFrom('m2m_client_secrets').select('secret_hash').where('client_id', '=', client.id).executeTakeFirstOrThrow();
    expect(client_secret_hash).toMatch(/^\$2[aby]\$/);
    const stored =
      JSON.stringify(await ctx.database.db.selectFrom('m2m_clients').selectAll().execute()) +
      JSON.stringify(await ctx.database.db.selectFrom('m2m_client_secrets').selectAll().execute()) +
      JSON.stringify(await ctx.database.db.selectFrom('audit_log').selectAll().execute());
    expect(stored).not.toContain(client_secret);
    const answered = responses.map((r) => r.body).join('');
    for (const value of [client_secret, client_secret_hash, ADMIN.password]) {
      expect(all).not.toContain(value);
      expect(answered).not.toContain(value);
    }
  });

  it('a session token, its hash and a password change are never logged', async () => {
    const login = await ctx.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: ADMIN });
    const token = login.json().tokens.access_token as string;
    const newPassword = 'a logged-never passphrase';
    lines.length = 0;
    const changed = await ctx.app.inject({ method: 'POST', url: '/api/v1/auth/password', headers: bearer(token), payload: { current_password: ADMIN.password, new_password: newPassword } });
    const back = await ctx.app.inject({ method: 'POST', url: '/api/v1/auth/password', headers: bearer(token), payload: { current_password: newPassword, new_password: ADMIN.password } });
    const out = await ctx.app.inject({ method: 'POST', url: '/api/v1/auth/logout', headers: bearer(token) });
    expect([changed.statusCode, back.statusCode, out.statusCode]).toEqual([204, 204, 204]);
    const { token_hash } = await ctx.database.db.selectFrom('admin_sessions').select('token_hash').orderBy('created_at', 'desc').executeTakeFirstOrThrow();
    const all = lines.join('');
    expect(entries().map((e) => `${e.method} ${e.path} ${e.status}`)).toEqual(['POST /api/v1/auth/password 204', 'POST /api/v1/auth/password 204', 'POST /api/v1/auth/logout 204']);
    for (const secret of [token, token_hash, newPassword, ADMIN.password]) expect(all).not.toContain(secret);
  });

  it('a database error is logged without the values bound to its query (a password hash here)', async () => {
    const db = ctx.database.db;
    const { password_hash } = await db.selectFrom('users').select('password_hash').where('email', '=', ADMIN.email).executeTakeFirstOrThrow();
    await sql`create function refuse_session() returns trigger language plpgsql as $$ begin raise exception 'no sessions today'; end $$`.execute(db);
    await sql`create trigger refuse_session before insert on admin_sessions for each row execute function refuse_session()`.execute(db);
    try {
      lines.length = 0;
      const res = await ctx.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: ADMIN });
      expect(res.statusCode).toBe(500);
      expect(entries().some((e) => e.msg === 'request failed')).toBe(true);
      expect(lines.join('')).not.toContain(password_hash);
    } finally {
      await sql`drop trigger refuse_session on admin_sessions`.execute(db);
      await sql`drop function refuse_session()`.execute(db);
    }
  });
});
