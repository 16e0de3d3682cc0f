import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAdminUsersService } from '../src/modules/admin-auth/admin-users.service.js';
import { insertUser } from '../src/modules/admin-auth/users.repository.js';
import { ADMIN, PLAIN_USER, bearer, createTestContext, login, type TestContext } from './helpers.js';

// One app for the file, on an injected clock the tests move forward.
let now = Date.parse('2026-11-26T10:00:00Z');
const clock = () => now;
const TTL = 600;
let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext({ clock, env: { USER_TOKEN_TTL: String(TTL) } });
});
afterAll(() => ctx?.close());

const hashOf = (token: string) => createHash('sha256').update(token).digest('base64url');
const me = (token: string) => ctx.app.inject({ method: 'GET', url: '/api/v1/auth/me', headers: bearer(token) });
const list = (token: string) => ctx.app.inject({ method: 'GET', url: '/api/v1/admin/m2m-clients', headers: bearer(token) });
const logout = (headers: Record<string, string>) => ctx.app.inject({ method: 'POST', url: '/api/v1/auth/logout', headers });
const sessionRow = (token: string) => ctx.database.db.selectFrom('admin_sessions').selectAll().where('token_hash', '=', hashOf(token)).executeTakeFirstOrThrow();
const users = () => createAdminUsersService({ db: ctx.database.db, hasher: ctx.hasher, clock });
const CLI = { id: null, label: 'cli', ip: null };

/** Signs in with the email and password of `who`; returns the session token. */
const signIn = (who: { email: string; password: string }) => login(ctx.app, { email: who.email, password: who.password });

let seq = 0;
/** A fresh user with its own password, so tests do not end each other's sessions. */
async function newUser(roles = ['system_admin']) {
  const who = { email: `user${++seq}@example.com`, password: `password number ${seq} long enough` };
  const row = await insertUser(ctx.database.db, { id: crypto.randomUUID(), email: who.email, password_hash: await ctx.hasher.hash(who.password), roles });
  return { ...who, id: row.id };
}
async function auditOf(userId: string) {
  return ctx.database.db.selectFrom('audit_log').select(['action', 'actor', 'actor_id', 'details']).where('target_id', '=', userId).orderBy('id').execute();
}

describe('sessions in the database', () => {
  it('a session row holds the token hash only; two logins are two sessions', async () => {
    const who = await newUser();
    const a = await signIn(who);
    const b = await signIn(who);
    expect(a).not.toBe(b);
    const rows = await ctx.database.db.selectFrom('admin_sessions').selectAll().where('user_id', '=', who.id).orderBy('token_hash').execute();
    expect(rows.map((r) => r.token_hash).sort()).toEqual([hashOf(a), hashOf(b)].sort());
    for (const row of rows) {
      expect(row).toMatchObject({ created_at: new Date(now), expires_at: new Date(now + TTL * 1000), last_seen_at: new Date(now), revoked_at: null, ip: '127.0.0.1' });
      expect(JSON.stringify(row)).not.toContain(a.slice(6));
      expect(JSON.stringify(row)).not.toContain(b.slice(6));
    }
  });

  it('the audit actor of an admin action is the session owner', async () => {
    const who = await newUser();
    const token = await signIn(who);
    const res = await ctx.app.inject({ method: 'POST', url: '/api/v1/admin/m2m-clients', headers: bearer(token), payload: { client_id: `made-by-${seq}`, name: 'x' } });
    expect(res.statusCode).toBe(201);
    expect(res.json().client.created_by).toBe(who.id);
    const entry = await ctx.database.db.selectFrom('audit_log').select(['actor', 'actor_id']).where('target_id', '=', res.json().client.id).executeTakeFirstOrThrow();
    expect(entry).toEqual({ actor: who.email, actor_id: who.id });
  });

  it('a removed role is 403 at once; a plain user keeps /auth/me', async () => {
    const who = await newUser();
    const token = await signIn(who);
    expect((await list(token)).statusCode).toBe(200);
    await ctx.database.db.updateTable('users').set({ roles: [] }).where('id', '=', who.id).execute();
    expect((await list(token)).statusCode).toBe(403);
    expect((await me(token)).statusCode).toBe(200);
  });
});

describe('expiry (USER_TOKEN_TTL, absolute, on the injected clock)', () => {
  it('works until created_at + TTL, then 401; last_seen_at moves at most once a minute', async () => {
    const who = await newUser();
    const start = now;
    const token = await signIn(who);

    now = start + 30_000;
    expect((await me(token)).statusCode).toBe(200);
    expect((await sessionRow(token)).last_seen_at).toEqual(new Date(start));
    now = start + 90_000;
    expect((await me(token)).statusCode).toBe(200);
    expect((await sessionRow(token)).last_seen_at).toEqual(new Date(start + 90_000));

    // Use does not extend it: the end is fixed at sign-in.
    now = start + TTL * 1000 - 1;
    expect((await list(token)).statusCode).toBe(200);
    now = start + TTL * 1000;
    const expired = await list(token);
    expect(expired.statusCode).toBe(401);
    expect(expired.headers['www-authenticate']).toContain('error="invalid_token"');
    expect((await me(token)).statusCode).toBe(401);
    // Logging out an expired session is not an error.
    expect((await logout(bearer(token))).statusCode).toBe(204);

    // The next sign-in removes the user's expired rows.
    const fresh = await signIn(who);
    const rows = await ctx.database.db.selectFrom('admin_sessions').select('token_hash').where('user_id', '=', who.id).execute();
    expect(rows).toEqual([{ token_hash: hashOf(fresh) }]);
  });
});

describe('POST /api/v1/auth/logout', () => {
  it('ends the current session only: 204, idempotent, audited once', async () => {
    const who = await newUser();
    const token = await signIn(who);
    const other = await signIn(who);
    const res = await logout(bearer(token));
    expect(res.statusCode).toBe(204);
    expect(res.body).toBe('');
    expect((await me(token)).statusCode).toBe(401);
    expect((await list(token)).statusCode).toBe(401);
    expect((await me(other)).statusCode).toBe(200);
    expect((await sessionRow(token)).revoked_at).toEqual(new Date(now));
    expect((await sessionRow(other)).revoked_at).toBeNull();

    expect((await logout(bearer(token))).statusCode).toBe(204);
    expect((await logout(bearer(`m2mas_${'x'.repeat(43)}`))).statusCode).toBe(204);
    const logouts = (await auditOf(who.id)).filter((e) => e.action === 'logout');
    expect(logouts).toEqual([{ action: 'logout', actor: who.email, actor_id: who.id, details: null }]);
  });

  it('401 without a bearer token or with one that is not a session token (a JWT)', async () => {
    const none = await logout({});
    expect(none.statusCode).toBe(401);
    expect(none.json().error).toBe('unauthorized');
    const jwt = await logout(bearer('eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln'));
    expect(jwt.statusCode).toBe(401);
    expect(jwt.headers['www-authenticate']).toContain('error="invalid_token"');
  });
});

describe('POST /api/v1/auth/sessions/revoke-all', () => {
  it("ends every session of the caller, this one included, and no one else's", async () => {
    const who = await newUser();
    const [a, b, c] = [await signIn(who), await signIn(who), await signIn(who)];
    await logout(bearer(c));
    const bystander = await login(ctx.app, ADMIN);

    const res = await ctx.app.inject({ method: 'POST', url: '/api/v1/auth/sessions/revoke-all', headers: bearer(a) });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ revoked_count: 2 });
    for (const token of [a, b]) expect((await me(token)).statusCode).toBe(401);
    expect((await me(bystander)).statusCode).toBe(200);
    expect((await auditOf(who.id)).at(-1)).toEqual({ action: 'user.sessions_revoke', actor: who.email, actor_id: who.id, details: { sessions_revoked: 2 } });

    // The user can sign in again.
    expect((await me(await signIn(who))).statusCode).toBe(200);
  });

  it('a plain user may end its own sessions', async () => {
    const token = await login(ctx.app, PLAIN_USER);
    const res = await ctx.app.inject({ method: 'POST', url: '/api/v1/auth/sessions/revoke-all', headers: bearer(token) });
    expect(res.statusCode).toBe(200);
    expect(res.json().revoked_count).toBeGreaterThanOrEqual(1);
    expect((await me(token)).statusCode).toBe(401);
  });
});

describe('POST /api/v1/auth/password', () => {
  const change = (token: string, payload: Record<string, unknown>) => ctx.app.inject({ method: 'POST', url: '/api/v1/auth/password', headers: bearer(token), payload });

  it("changes the password and ends the caller's other sessions, keeping this one", async () => {
    const who = await newUser();
    const current = await signIn(who);
    const elsewhere = await signIn(who);
    const newPassword = 'a brand new long passphrase';

    const res = await change(current, { current_password: who.password, new_password: newPassword });
    expect(res.statusCode).toBe(204);
    expect((await me(current)).statusCode).toBe(200);
    expect((await me(elsewhere)).statusCode).toBe(401);

    const row = await ctx.database.db.selectFrom('users').select('password_hash').where('id', '=', who.id).executeTakeFirstOrThrow();
    expect(await ctx.hasher.verify(newPassword, row.password_hash)).toBe(true);
    const old = await ctx.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email: who.email, password: who.password } });
    expect(old.statusCode).toBe(401);
    expect((await me(await login(ctx.app, { email: who.email, password: newPassword }))).statusCode).toBe(200);
    expect((await auditOf(who.id)).filter((e) => e.action === 'user.password_change')).toEqual([
      { action: 'user.password_change', actor: who.email, actor_id: who.id, details: { sessions_revoked: 1 } },
    ]);
  });

  it('a wrong current password is 400 on that field, audited, and keeps the session and the password', async () => {
    const who = await newUser();
    const token = await signIn(who);
    const res = await change(token, { current_password: 'not my password', new_password: 'another long passphrase' });
    expect(res.statusCode).toBe(400);
    expect(res.json()).toMatchObject({ error: 'validation_failed', details: [{ path: 'body.current_password', message: expect.any(String) }] });
    expect((await me(token)).statusCode).toBe(200);
    expect((await me(await signIn(who))).statusCode).toBe(200);
    expect((await auditOf(who.id)).some((e) => e.action === 'user.password_change_failure')).toBe(true);
  });

  it('validates the body: new password rules, same as current, unknown fields', async () => {
    const who = await newUser();
    const token = await signIn(who);
    const cases: [Record<string, unknown>, string][] = [
      [{ current_password: who.password, new_password: 'short' }, 'body.new_password'],
      [{ current_password: who.password, new_password: 'x'.repeat(73) }, 'body.new_password'],
      [{ current_password: who.password, new_password: who.password }, 'body.new_password'],
      [{ new_password: 'a valid long passphrase' }, 'body.current_password'],
      [{ current_password: who.password, new_password: 'a valid long passphrase', extra: 1 }, 'body'],
    ];
    for (const [payload, path] of cases) {
      const res = await change(token, payload);
      expect(res.statusCode).toBe(400);
      expect(res.json().details.map((d: { path: string }) => d.path)).toContain(path);
    }
    expect((await me(await signIn(who))).statusCode).toBe(200);
  });

  it('needs a session: no token 401, checked before the body', async () => {
    const res = await ctx.app.inject({ method: 'POST', url: '/api/v1/auth/password', payload: { nonsense: true } });
    expect(res.statusCode).toBe(401);
  });
});

describe('disabled users', () => {
  it('disable ends every session and refuses sign-in with the wrong-password answer; enable lets it sign in again', async () => {
    const who = await newUser();
    const [a, b] = [await signIn(who), await signIn(who)];

    const disabled = await users().disable(who.email, CLI);
    expect(disabled).toMatchObject({ sessionsRevoked: 2, already: false });
    for (const token of [a, b]) expect((await list(token)).statusCode).toBe(401);

    const refused = await ctx.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email: who.email, password: who.password } });
    const wrong = await ctx.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email: who.email, password: 'wrong password' } });
    expect(refused.statusCode).toBe(401);
    expect(refused.body).toBe(wrong.body);
    const row = await ctx.database.db.selectFrom('users').select('disabled_at').where('id', '=', who.id).executeTakeFirstOrThrow();
    expect(row.disabled_at).toEqual(new Date(now));

    expect(await users().disable(who.email, CLI)).toMatchObject({ already: true, sessionsRevoked: 0 });
    expect(await users().enable(who.email, CLI)).toMatchObject({ already: false });
    // Old sessions stay ended; a new sign-in works.
    expect((await me(a)).statusCode).toBe(401);
    expect((await list(await signIn(who))).statusCode).toBe(200);
    expect(await users().enable(who.email, CLI)).toMatchObject({ already: true });

    const actions = (await auditOf(who.id)).map((e) => [e.action, e.actor, e.details]);
    expect(actions).toEqual(
      expect.arrayContaining([
        ['user.disable', 'cli', { sessions_revoked: 2 }],
        ['user.enable', 'cli', null],
        ['login.failure', who.email, { reason: 'disabled' }],
      ]),
    );
    expect(actions.filter(([action]) => action === 'user.disable')).toHaveLength(1);
  });

  it('a session left live for a disabled user (a sign-in racing the disable) is refused all the same', async () => {
    const who = await newUser();
    const token = await signIn(who);
    await ctx.database.db.updateTable('users').set({ disabled_at: new Date(now) }).where('id', '=', who.id).execute();
    expect((await sessionRow(token)).revoked_at).toBeNull();
    expect((await me(token)).statusCode).toBe(401);
  });

  it('reset-password and revoke-sessions end every session', async () => {
    const who = await newUser();
    const a = await signIn(who);
    expect(await users().revokeSessions(who.email, CLI)).toMatchObject({ sessionsRevoked: 1 });
    expect((await me(a)).statusCode).toBe(401);

    const b = await signIn(who);
    expect(await users().resetPassword(who.email, 'reset by the operator 1', CLI)).toMatchObject({ sessionsRevoked: 1 });
    expect((await me(b)).statusCode).toBe(401);
    expect((await me(await login(ctx.app, { email: who.email, password: 'reset by the operator 1' }))).statusCode).toBe(200);

    await expect(users().revokeSessions('nobody@example.com', CLI)).rejects.toMatchObject({ code: 'not_found' });
  });

  it('list shows status, active sessions and last use, never a hash', async () => {
    const who = await newUser();
    await signIn(who);
    await signIn(who);
    const listed = (await users().list()).find((u) => u.id === who.id);
    expect(listed).toEqual({
      id: who.id,
      email: who.email,
      roles: ['system_admin'],
      status: 'active',
      disabled_at: null,
      created_at: expect.any(String),
      active_sessions: 2,
      last_seen_at: new Date(now).toISOString(),
    });
  });
});

describe('a sign-in racing a change to its user (attack review F1)', () => {
  // A hasher whose password check waits for the test: the change happens while the sign-in is in bcrypt.
  it('a password change, reset, disable or revoke-all that lands during the password check leaves no session', async () => {
    const { createBcryptHasher } = await import('../src/lib/password.js');
    const real = createBcryptHasher(4);
    let gate: (() => void) | undefined = () => {}; // open while the context signs its users in
    const hasher = {
      ...real,
      async verify(password: string, hash: string) {
        const ok = await real.verify(password, hash);
        if (gate === undefined) await new Promise<void>((resolve) => (gate = resolve));
        return ok;
      },
    };
    const raced = await createTestContext({ hasher, env: { BCRYPT_COST: '4' } });
    try {
      const releaseGate = () => gate?.();
      const racedUsers = () => createAdminUsersService({ db: raced.database.db, hasher, clock: Date.now });
      const changes: [string, (email: string) => Promise<unknown>][] = [
        ['reset-password', (email) => racedUsers().resetPassword(email, 'a brand new password of length', CLI)],
        ['disable', (email) => racedUsers().disable(email, CLI)],
        ['revoke-sessions', (email) => racedUsers().revokeSessions(email, CLI)],
      ];
      for (const [what, change] of changes) {
        const who = { email: `race-${what}@example.com`, password: 'the old password, long enough' };
        await insertUser(raced.database.db, { id: crypto.randomUUID(), email: who.email, password_hash: await real.hash(who.password), roles: ['system_admin'] });
        gate = undefined;
        const signIn = raced.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: who });
        while (gate === undefined) await new Promise((r) => setTimeout(r, 5)); // the sign-in is in its password check
        await change(who.email);
        releaseGate();
        const res = await signIn;
        expect({ what, status: res.statusCode, error: res.json().error }).toEqual({ what, status: 401, error: 'unauthorized' });
        const sessions = await raced.database.db
          .selectFrom('admin_sessions as s')
          .innerJoin('users as u', 'u.id', 's.user_id')
          .select('s.id')
          .where('u.email', '=', who.email)
          .where('s.revoked_at', 'is', null)
          .execute();
        expect({ what, live: sessions.length }).toEqual({ what, live: 0 });
      }
      // Without a change, the same gated sign-in succeeds: the 401s above came from the race.
      const calm = { email: 'race-none@example.com', password: 'the old password, long enough' };
      await insertUser(raced.database.db, { id: crypto.randomUUID(), email: calm.email, password_hash: await real.hash(calm.password), roles: ['system_admin'] });
      gate = undefined;
      const signIn = raced.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: calm });
      while (gate === undefined) await new Promise((r) => setTimeout(r, 5));
      releaseGate();
      expect((await signIn).statusCode).toBe(200);
    } finally {
      await raced.close();
    }
  });
});
