import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, serverLoggerOptions } from '../src/app.js';
import { connectDatabase } from '../src/db/connect.js';
import { migrateTo, migrateToLatest } from '../src/db/migrations.js';
import { secretHint } from '../src/lib/client-secret-hash.js';
import { createBcryptHasher, type PasswordHasher } from '../src/lib/password.js';
import { bearer, createClient, createTestContext, type TestContext, TEST_DATABASE_URL, testConfig } from './helpers.js';
import { createEmptyPostgresDatabase } from './process-helpers.js';

/** Counts the bcrypt work the server does. */
function countingHasher(inner: PasswordHasher) {
  const calls = { verify: 0, burn: 0 };
  const hasher: PasswordHasher = {
    hash: (p) => inner.hash(p),
    verify: (p, h) => ((calls.verify += 1), inner.verify(p, h)),
    burn: (p) => ((calls.burn += 1), inner.burn(p)),
  };
  return { hasher, calls };
}

const counting = countingHasher(createBcryptHasher(4));
let now = Date.parse('2026-11-26T08:00:00Z');
let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext({ clock: () => now, hasher: counting.hasher });
});
afterAll(() => ctx?.close());

const CLIENTS = '/api/v1/admin/m2m-clients';
const secretsUrl = (id: string) => `${CLIENTS}/${id}/secrets`;

function grant(clientId: string, secret: string) {
  return ctx.app.inject({
    method: 'POST',
    url: '/api/v1/oauth/token',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    payload: new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: secret }).toString(),
  });
}

function rotate(id: string, payload?: object, token = ctx.adminToken) {
  // A second later than whatever came before: the listing is newest first.
  now += 1000;
  return ctx.app.inject({ method: 'POST', url: secretsUrl(id), headers: bearer(token), ...(payload === undefined ? {} : { payload }) });
}

const list = async (id: string) => {
  const res = await ctx.app.inject({ method: 'GET', url: secretsUrl(id), headers: bearer(ctx.adminToken) });
  expect(res.statusCode).toBe(200);
  return res.json().secrets as { id: string; hint: string; last_used_at: string | null; expires_at: string | null; created_at: string; hash_alg: string }[];
};

const secretRows = (clientUuid: string) => ctx.database.db.selectFrom('m2m_client_secrets').selectAll().where('client_id', '=', clientUuid).orderBy('created_at').execute();

/** last_used_at is written after the answer: wait for it. */
async function eventually<T>(read: () => Promise<T>, ok: (value: T) => boolean): Promise<T> {
  for (let i = 0; i < 100; i++) {
    const value = await read();
    if (ok(value)) return value;
    await new Promise((r) => setTimeout(r, 20));
  }
  return read();
}

describe('adding a secret (rotation)', () => {
  it('201 with the secret once; both secrets grant; listed newest first, metadata only; updated_at bumped; audited without the secret', async () => {
    const created = await createClient(ctx, { client_id: 'rotating-svc', name: 'Rotating', scopes: ['a:b'] });
    const before = await ctx.database.db.selectFrom('m2m_clients').select('updated_at').where('id', '=', created.client.id).executeTakeFirstOrThrow();
    now += 1000;

    const res = await rotate(created.client.id);
    expect(res.statusCode).toBe(201);
    expect(res.headers['cache-control']).toBe('no-store');
    const body = res.json();
    expect(body).toEqual({
      secret: { id: expect.stringMatching(/^[0-9a-f-]{36}$/), created_at: new Date(now).toISOString(), last_used_at: null, expires_at: null, hint: secretHint(body.client_secret), hash_alg: 'bcrypt' },
      client_secret: expect.stringMatching(/^m2msk_[A-Za-z0-9_-]{43}$/),
    });
    expect(body.client_secret).not.toBe(created.client_secret);

    expect((await grant('rotating-svc', created.client_secret)).statusCode).toBe(200);
    expect((await grant('rotating-svc', body.client_secret)).statusCode).toBe(200);

    const listed = await list(created.client.id);
    expect(listed.map((s) => s.id)).toEqual([body.secret.id, expect.any(String)]);
    expect(listed[1]!.hint).toBe(secretHint(created.client_secret));
    for (const s of listed) expect(Object.keys(s).sort()).toEqual(['created_at', 'expires_at', 'hash_alg', 'hint', 'id', 'last_used_at']);
    const listing = JSON.stringify(listed);
    const rows = await secretRows(created.client.id);
    for (const hidden of [created.client_secret, body.client_secret, ...rows.map((r) => r.secret_hash)]) expect(listing).not.toContain(hidden);

    const after = await ctx.database.db.selectFrom('m2m_clients').select('updated_at').where('id', '=', created.client.id).executeTakeFirstOrThrow();
    expect(after.updated_at.getTime()).toBe(now);
    expect(after.updated_at.getTime()).toBeGreaterThan(before.updated_at.getTime());

    const audit = await ctx.database.db.selectFrom('audit_log').selectAll().where('target_id', '=', created.client.id).where('action', '=', 'm2m_client.secret_add').execute();
    expect(audit).toHaveLength(1);
    expect(audit[0]!.details).toMatchObject({ client_id: 'rotating-svc', secret_id: body.secret.id, hint: body.secret.hint, hash_alg: 'bcrypt', previous: [{ id: listed[1]!.id, expires_at: null }] });
    expect(audit[0]!.actor).toBe('admin@example.com');
    const audited = JSON.stringify(audit);
    for (const hidden of [created.client_secret, body.client_secret, ...rows.map((r) => r.secret_hash)]) expect(audited).not.toContain(hidden);

    // A third live secret is refused until one goes.
    const third = await rotate(created.client.id, {});
    expect(third.statusCode).toBe(409);
    expect(third.json()).toEqual({ error: 'secret_limit', message: expect.any(String) });
    expect(await secretRows(created.client.id)).toHaveLength(2);
  });

  it('adding a second secret keeps the verified one: no bcrypt for the fleet; deleting, disabling or revoking still refuses at once', async () => {
    const created = await createClient(ctx, { client_id: 'warm-svc', name: 'Warm', scopes: ['a:b'] });
    const bcrypt = () => counting.calls.verify + counting.calls.burn;
    const ok = async (secret: string) => expect((await grant('warm-svc', secret)).statusCode).toBe(200);
    const refused = async (secret: string) => {
      const res = await grant('warm-svc', secret);
      expect(res.statusCode).toBe(401);
      expect(res.json().error).toBe('invalid_client');
    };
    const start = bcrypt();
    await ok(created.client_secret);
    expect(bcrypt()).toBe(start + 1);

    const added = (await rotate(created.client.id)).json();
    await ok(created.client_secret);
    expect(bcrypt()).toBe(start + 1);
    await ok(added.client_secret);
    await ok(added.client_secret);
    expect(bcrypt()).toBe(start + 2);

    // Deleting the old secret: refused at the next grant though it was verified.
    const oldId = (await list(created.client.id))[1]!.id;
    expect((await ctx.app.inject({ method: 'DELETE', url: `${secretsUrl(created.client.id)}/${oldId}`, headers: bearer(ctx.adminToken) })).statusCode).toBe(204);
    await refused(created.client_secret);
    await ok(added.client_secret);

    const patch = (payload: object) => ctx.app.inject({ method: 'PATCH', url: `${CLIENTS}/${created.client.id}`, headers: bearer(ctx.adminToken), payload });
    expect((await patch({ status: 'disabled' })).statusCode).toBe(200);
    await refused(added.client_secret);
    expect((await patch({ status: 'active' })).statusCode).toBe(200);
    await ok(added.client_secret);
    expect((await ctx.app.inject({ method: 'DELETE', url: `${CLIENTS}/${created.client.id}`, headers: bearer(ctx.adminToken) })).statusCode).toBe(204);
    await refused(added.client_secret);
  });

  it('a cold grant compares one secret however many the credential holds; each secret has its own last_used_at', async () => {
    const created = await createClient(ctx, { client_id: 'two-secrets', name: 'Two', scopes: ['a:b'] });
    const added = (await rotate(created.client.id)).json();
    const oldId = (await list(created.client.id))[1]!.id;

    const start = { ...counting.calls };
    expect((await grant('two-secrets', created.client_secret)).statusCode).toBe(200);
    expect((await grant('two-secrets', added.client_secret)).statusCode).toBe(200);
    // One compare each, no burn: the hint named the secret.
    expect({ verify: counting.calls.verify - start.verify, burn: counting.calls.burn - start.burn }).toEqual({ verify: 2, burn: 0 });
    // Both now remembered: a fleet half on each secret pays no more bcrypt.
    for (let i = 0; i < 3; i++) {
      expect((await grant('two-secrets', created.client_secret)).statusCode).toBe(200);
      expect((await grant('two-secrets', added.client_secret)).statusCode).toBe(200);
    }
    expect(counting.calls.verify - start.verify).toBe(2);
    // A wrong secret pays exactly one bcrypt (a burn: its hint names no secret).
    const wrong = `${added.client_secret.slice(0, -3)}abc`;
    const before = { ...counting.calls };
    expect((await grant('two-secrets', wrong)).statusCode).toBe(401);
    expect(counting.calls.verify - before.verify + (counting.calls.burn - before.burn)).toBe(1);

    const stamped = await eventually(
      () => list(created.client.id),
      (s) => s.every((x) => x.last_used_at !== null),
    );
    expect(stamped.find((s) => s.id === added.secret.id)!.last_used_at).toBe(new Date(now).toISOString());
    expect(stamped.find((s) => s.id === oldId)!.last_used_at).toBe(new Date(now).toISOString());
  });

  it('per-secret last_used_at: only the secret used is stamped', async () => {
    const created = await createClient(ctx, { client_id: 'stamp-svc', name: 'Stamp', scopes: ['a:b'] });
    const added = (await rotate(created.client.id)).json();
    expect((await grant('stamp-svc', added.client_secret)).statusCode).toBe(200);
    const listed = await eventually(
      () => list(created.client.id),
      (s) => s[0]!.last_used_at !== null,
    );
    expect(listed.map((s) => s.last_used_at)).toEqual([new Date(now).toISOString(), null]);
    const client = await ctx.app.inject({ method: 'GET', url: `${CLIENTS}/${created.client.id}`, headers: bearer(ctx.adminToken) });
    expect(client.json().last_used_at).toBe(new Date(now).toISOString());
  });

  it('a secret whose hash is replaced under the same id (by hand, in the database) is refused though it was verified', async () => {
    const created = await createClient(ctx, { client_id: 'replaced-svc', name: 'Replaced', scopes: ['a:b'] });
    expect((await grant('replaced-svc', created.client_secret)).statusCode).toBe(200);
    const start = counting.calls.verify;
    expect((await grant('replaced-svc', created.client_secret)).statusCode).toBe(200);
    expect(counting.calls.verify).toBe(start); // remembered
    const other = await createBcryptHasher(4).hash('m2msk_another-secret-entirely');
    await ctx.database.db.transaction().execute(async (trx) => {
      await trx.updateTable('m2m_client_secrets').set({ secret_hash: other }).where('client_id', '=', created.client.id).execute();
      await sql`update m2m_clients set updated_at = now() where id = ${created.client.id}`.execute(trx);
    });
    const res = await eventually(() => grant('replaced-svc', created.client_secret), (r) => r.statusCode === 401);
    expect(res.statusCode).toBe(401);
    expect(res.json().error).toBe('invalid_client');
  });

  it('a last_used_at stamp that fails is tried again at the next grant, not a minute later', async () => {
    const created = await createClient(ctx, { client_id: 'stamp-retry-svc', name: 'Stamp retry', scopes: ['a:b'] });
    const lines: string[] = [];
    const app = await buildApp({ config: testConfig(), database: ctx.database, hasher: counting.hasher, clock: () => now, logger: { ...serverLoggerOptions('warn'), stream: { write: (line: string) => void lines.push(line) } } });
    const grantOn = () =>
      app.inject({
        method: 'POST',
        url: '/api/v1/oauth/token',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({ grant_type: 'client_credentials', client_id: 'stamp-retry-svc', client_secret: created.client_secret }).toString(),
      });
    // Every stamp of this credential's secret fails while the constraint is there.
    await sql`alter table m2m_client_secrets add constraint stamp_blocked check (client_id <> ${sql.lit(created.client.id)}::uuid or last_used_at is null) not valid`.execute(ctx.database.db);
    try {
      expect((await grantOn()).statusCode).toBe(200);
      await eventually(async () => lines, (l) => l.some((line) => line.includes('could not record last_used_at')));
    } finally {
      await sql`alter table m2m_client_secrets drop constraint stamp_blocked`.execute(ctx.database.db);
    }
    expect((await list(created.client.id))[0]!.last_used_at).toBeNull();
    // Same minute, same app: the failed stamp did not count as done.
    expect((await grantOn()).statusCode).toBe(200);
    const listed = await eventually(() => list(created.client.id), (s) => s[0]!.last_used_at !== null);
    expect(listed[0]!.last_used_at).toBe(new Date(now).toISOString());
    await app.close();
  });

  it('expire_previous_in: the old secret works until its time, then is refused (cached or not) with the same 401', async () => {
    const created = await createClient(ctx, { client_id: 'expiring-svc', name: 'Expiring', scopes: ['a:b'] });
    expect((await grant('expiring-svc', created.client_secret)).statusCode).toBe(200); // remembered by the cache
    const res = await rotate(created.client.id, { expire_previous_in: 600 });
    expect(res.statusCode).toBe(201);
    const added = res.json();
    const expiresAt = new Date(now + 600_000).toISOString();
    expect((await list(created.client.id))[1]!.expires_at).toBe(expiresAt);

    now += 599_000;
    expect((await grant('expiring-svc', created.client_secret)).statusCode).toBe(200);
    now += 1000; // exactly at expires_at: no longer live
    const refused = await grant('expiring-svc', created.client_secret);
    expect(refused.statusCode).toBe(401);
    const unknown = await grant('no-such-svc', created.client_secret);
    expect(refused.body).toBe(unknown.body);
    expect(refused.json().error).toBe('invalid_client');
    expect((await grant('expiring-svc', added.client_secret)).statusCode).toBe(200);

    // The expired one still shows (expires_at in the past); it no longer counts toward the limit,
    // and the next rotation removes it.
    const third = await rotate(created.client.id);
    expect(third.statusCode).toBe(201);
    expect((await list(created.client.id)).map((s) => s.id)).toEqual([third.json().secret.id, added.secret.id]);
  });

  it('expire_previous_in never extends an expiry, and 0 expires it at once', async () => {
    const created = await createClient(ctx, { client_id: 'at-once-svc', name: 'At once', scopes: ['a:b'] });
    const added = (await rotate(created.client.id, { expire_previous_in: 0 })).json();
    expect((await grant('at-once-svc', created.client_secret)).statusCode).toBe(401);
    expect((await grant('at-once-svc', added.client_secret)).statusCode).toBe(200);
    const again = (await rotate(created.client.id, { expire_previous_in: 300 })).json();
    const afterSecond = await list(created.client.id);
    const addedExpiry = new Date(now + 300_000).toISOString();
    // The first (expired) was removed; the second expires in 300 s.
    expect(afterSecond.map((s) => [s.id, s.expires_at])).toEqual([
      [again.secret.id, null],
      [added.secret.id, addedExpiry],
    ]);
    await ctx.app.inject({ method: 'DELETE', url: `${secretsUrl(created.client.id)}/${again.secret.id}`, headers: bearer(ctx.adminToken) });
    // Only `added` is left (live until its expiry): a rotation asking for a later expiry keeps the earlier one.
    await rotate(created.client.id, { expire_previous_in: 3600 });
    expect((await list(created.client.id)).find((s) => s.id === added.secret.id)!.expires_at).toBe(addedExpiry);
  });

  it('refuses bad bodies with 400 validation_failed, and answers 404 for an unknown credential', async () => {
    const created = await createClient(ctx, { client_id: 'bad-body-svc', name: 'Bad body' });
    for (const payload of [{ expire_previous_in: -1 }, { expire_previous_in: 1.5 }, { expire_previous_in: '60' }, { expire_previous_in: 400 * 86400 }, { other: 1 }]) {
      const res = await rotate(created.client.id, payload);
      expect({ payload, status: res.statusCode, error: res.json().error }).toEqual({ payload, status: 400, error: 'validation_failed' });
    }
    expect((await secretRows(created.client.id)).length).toBe(1);
    const unknown = await rotate('00000000-0000-4000-8000-000000000000');
    expect(unknown.statusCode).toBe(404);
    expect(unknown.json().error).toBe('not_found');
    const badId = await ctx.app.inject({ method: 'GET', url: secretsUrl('nope'), headers: bearer(ctx.adminToken) });
    expect(badId.statusCode).toBe(400);
    const none = await ctx.app.inject({ method: 'GET', url: secretsUrl('00000000-0000-4000-8000-000000000000'), headers: bearer(ctx.adminToken) });
    expect(none.statusCode).toBe(404);
  });

  it('system_admin only: 401 without a token, 403 for a plain user', async () => {
    const created = await createClient(ctx, { client_id: 'guarded-svc', name: 'Guarded' });
    for (const [headers, status] of [[{}, 401], [bearer(ctx.userToken), 403]] as const) {
      for (const req of [
        { method: 'POST' as const, url: secretsUrl(created.client.id) },
        { method: 'GET' as const, url: secretsUrl(created.client.id) },
        { method: 'DELETE' as const, url: `${secretsUrl(created.client.id)}/00000000-0000-4000-8000-000000000000` },
      ]) {
        expect((await ctx.app.inject({ ...req, headers })).statusCode).toBe(status);
      }
    }
    expect(await secretRows(created.client.id)).toHaveLength(1);
  });
});

describe('deleting a secret', () => {
  it('204, and the deleted secret is refused at the next grant even though it was cached; never the last live one', async () => {
    const created = await createClient(ctx, { client_id: 'deleting-svc', name: 'Deleting', scopes: ['a:b'] });
    const added = (await rotate(created.client.id)).json();
    const oldId = (await list(created.client.id))[1]!.id;
    expect((await grant('deleting-svc', created.client_secret)).statusCode).toBe(200);
    expect((await grant('deleting-svc', added.client_secret)).statusCode).toBe(200);
    now += 1000;

    const del = await ctx.app.inject({ method: 'DELETE', url: `${secretsUrl(created.client.id)}/${oldId}`, headers: bearer(ctx.adminToken) });
    expect(del.statusCode).toBe(204);
    expect(del.body).toBe('');
    expect((await grant('deleting-svc', created.client_secret)).statusCode).toBe(401);
    expect((await grant('deleting-svc', added.client_secret)).statusCode).toBe(200);
    expect((await list(created.client.id)).map((s) => s.id)).toEqual([added.secret.id]);
    const row = await ctx.database.db.selectFrom('m2m_clients').select('updated_at').where('id', '=', created.client.id).executeTakeFirstOrThrow();
    expect(row.updated_at.getTime()).toBe(now);
    const audit = await ctx.database.db.selectFrom('audit_log').select(['action', 'details']).where('target_id', '=', created.client.id).orderBy('id').execute();
    expect(audit.map((a) => a.action)).toEqual(['m2m_client.create', 'm2m_client.secret_add', 'm2m_client.secret_delete']);
    expect(audit[2]!.details).toMatchObject({ client_id: 'deleting-svc', secret_id: oldId });

    const last = await ctx.app.inject({ method: 'DELETE', url: `${secretsUrl(created.client.id)}/${added.secret.id}`, headers: bearer(ctx.adminToken) });
    expect(last.statusCode).toBe(409);
    expect(last.json().error).toBe('last_secret');
    expect((await grant('deleting-svc', added.client_secret)).statusCode).toBe(200);

    const gone = await ctx.app.inject({ method: 'DELETE', url: `${secretsUrl(created.client.id)}/${oldId}`, headers: bearer(ctx.adminToken) });
    expect(gone.statusCode).toBe(404);
    // Another credential's secret id is not this credential's.
    const other = await createClient(ctx, { client_id: 'other-svc', name: 'Other' });
    await rotate(other.client.id);
    const foreign = await ctx.app.inject({ method: 'DELETE', url: `${secretsUrl(created.client.id)}/${(await list(other.client.id))[0]!.id}`, headers: bearer(ctx.adminToken) });
    expect(foreign.statusCode).toBe(404);
    expect(await list(other.client.id)).toHaveLength(2);
  });

  it('never the only secret without an expiry (the other would lapse and leave none); an expired secret can be deleted', async () => {
    const created = await createClient(ctx, { client_id: 'lapsed-svc', name: 'Lapsed', scopes: ['a:b'] });
    const added = (await rotate(created.client.id, { expire_previous_in: 60 })).json();
    const oldId = (await list(created.client.id))[1]!.id;
    const expiresAt = new Date(now + 60_000).toISOString();
    // Deleting the new one would leave only the old one, which lapses in 60 s.
    const refused = await ctx.app.inject({ method: 'DELETE', url: `${secretsUrl(created.client.id)}/${added.secret.id}`, headers: bearer(ctx.adminToken) });
    expect(refused.statusCode).toBe(409);
    expect(refused.json().error).toBe('last_secret');
    expect(refused.json().message).toContain(expiresAt);
    now += 61_000;
    expect((await grant('lapsed-svc', created.client_secret)).statusCode).toBe(401);
    expect((await grant('lapsed-svc', added.client_secret)).statusCode).toBe(200);
    const del = await ctx.app.inject({ method: 'DELETE', url: `${secretsUrl(created.client.id)}/${oldId}`, headers: bearer(ctx.adminToken) });
    expect(del.statusCode).toBe(204);
    expect((await list(created.client.id)).map((s) => s.id)).toEqual([added.secret.id]);
  });
});

describe('a revoked credential', () => {
  it('lists its secrets, but refuses new ones and deletions with 409 conflict', async () => {
    const created = await createClient(ctx, { client_id: 'revoked-rot', name: 'Revoked' });
    await rotate(created.client.id);
    await ctx.app.inject({ method: 'DELETE', url: `${CLIENTS}/${created.client.id}`, headers: bearer(ctx.adminToken) });
    const listed = await list(created.client.id);
    expect(listed).toHaveLength(2);
    const add = await rotate(created.client.id);
    expect(add.statusCode).toBe(409);
    expect(add.json().error).toBe('conflict');
    const del = await ctx.app.inject({ method: 'DELETE', url: `${secretsUrl(created.client.id)}/${listed[0]!.id}`, headers: bearer(ctx.adminToken) });
    expect(del.statusCode).toBe(409);
    expect(del.json().error).toBe('conflict');
    expect(await list(created.client.id)).toHaveLength(2);
  });
});

describe('secrets from before rotation', () => {
  it('an empty hint is tried when no hint matches, and gets its hint at its first use', async () => {
    const created = await createClient(ctx, { client_id: 'legacy-svc', name: 'Legacy', scopes: ['a:b'] });
    await ctx.database.db.updateTable('m2m_client_secrets').set({ hint: '' }).where('client_id', '=', created.client.id).execute();
    const before = { ...counting.calls };
    expect((await grant('legacy-svc', `${created.client_secret.slice(0, -2)}zz`)).statusCode).toBe(401);
    // The wrong secret was compared against the legacy secret: one compare, no burn.
    expect({ verify: counting.calls.verify - before.verify, burn: counting.calls.burn - before.burn }).toEqual({ verify: 1, burn: 0 });
    expect((await grant('legacy-svc', created.client_secret)).statusCode).toBe(200);
    const listed = await eventually(
      () => list(created.client.id),
      (s) => s[0]!.hint !== '',
    );
    expect(listed[0]!.hint).toBe(secretHint(created.client_secret));
  });

  it('migration 015 moves each client_secret_hash into m2m_client_secrets (bcrypt, empty hint) and drops the column', async () => {
    const empty = TEST_DATABASE_URL ? await createEmptyPostgresDatabase(TEST_DATABASE_URL) : undefined;
    const database = await connectDatabase(empty ? { databaseUrl: empty.url } : { dataDir: 'memory://' });
    try {
      const db = database.db as unknown as import('kysely').Kysely<any>;
      await migrateTo(db, '2026-11-26-014-permissions');
      const hash = await createBcryptHasher(4).hash('m2msk_legacy-secret');
      const used = new Date('2026-11-20T10:00:00Z');
      await db
        .insertInto('m2m_clients')
        .values([
          { id: '11111111-1111-4111-8111-111111111111', client_id: 'old-a', client_secret_hash: hash, name: 'A', last_used_at: used },
          { id: '22222222-2222-4222-8222-222222222222', client_id: 'old-b', client_secret_hash: '$2b$04$other', name: 'B', revoked_at: used },
        ])
        .execute();
      await migrateToLatest(db);
      const rows = await db.selectFrom('m2m_client_secrets').selectAll().orderBy('client_id').execute();
      expect(rows.map((r: any) => [r.client_id, r.secret_hash, r.hash_alg, r.hint, r.expires_at, r.last_used_at?.toISOString() ?? null])).toEqual(
[
        ['11111111-1111-4111-8111-111111111111', hash, 'bcrypt', '', null, used.toISOString()],
        ['22222222-2222-4222-8222-222222222222', '$2b$04$other', 'bcrypt', '', null, null],
      ]);
      const columns = await db.selectFrom('information_schema.columns').select('column_name').where('table_name', '=', 'm2m_clients').execute();
      expect(columns.map((c: any) => c.column_name)).not.toContain('client_secret_hash');
      // Deleting a credential row takes its secrets with it.
      await db.deleteFrom('m2m_clients').where('id', '=', '22222222-2222-4222-8222-222222222222').execute();
      expect(await db.selectFrom('m2m_client_secrets').select('id').execute()).toHaveLength(1);
    } finally {
      await database.close();
      await empty?.drop();
    }
  });
});

describe('CLIENT_SECRET_HASH=hmac-sha256', () => {
  const PEPPER = 'pepper-for-rotation-tests-0123456789-abcdefghijklm';

  it('new secrets are HMACs, bcrypt ones keep working, and a rotation moves a credential over', async () => {
    // One database, two servers: first bcrypt, then hmac-sha256 (as an operator switching).
    const bcryptSide = counting;
    const created = await createClient(ctx, { client_id: 'migrating-svc', name: 'Migrating', scopes: ['a:b'] });
    const hmacApp = await buildApp({
      config: testConfig({ CLIENT_SECRET_HASH: 'hmac-sha256', CLIENT_SECRET_PEPPER: PEPPER }),
      database: ctx.database,
      hasher: bcryptSide.hasher,
      clock: () => now,
      logger: false,
    });
    try {
      const grantOn = (clientSecret: string) =>
        hmacApp.inject({
          method: 'POST',
          url: '/api/v1/oauth/token',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          payload: new URLSearchParams({ grant_type: 'client_credentials', client_id: 'migrating-svc', client_secret: clientSecret }).toString(),
        });
      expect((await grantOn(created.client_secret)).statusCode).toBe(200);
      now += 1000;
      const res = await hmacApp.inject({ method: 'POST', url: secretsUrl(created.client.id), headers: bearer(ctx.adminToken), payload: { expire_previous_in: 60 } });
      expect(res.statusCode).toBe(201);
      expect(res.json().secret.hash_alg).toBe('hmac-sha256');
      const rows = await secretRows(created.client.id);
      expect(rows.map((r) => r.hash_alg)).toEqual(['bcrypt', 'hmac-sha256']);
      expect(rows[1]!.secret_hash).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(rows[1]!.secret_hash).not.toContain(res.json().client_secret);

      const before = { ...bcryptSide.calls };
      expect((await grantOn(res.json().client_secret)).statusCode).toBe(200);
      // An HMAC secret costs no bcrypt when right...
      expect(bcryptSide.calls.verify + bcryptSide.calls.burn).toBe(before.verify + before.burn);
      // ...and one bcrypt (a burn) when wrong, like every failure.
      expect((await grantOn(`${res.json().client_secret.slice(0, -2)}zz`)).statusCode).toBe(401);
      expect(bcryptSide.calls.burn).toBe(before.burn + 1);
      expect((await grantOn(created.client_secret)).statusCode).toBe(200);
      now += 60_000;
      expect((await grantOn(created.client_secret)).statusCode).toBe(401);
      expect((await grantOn(res.json().client_secret)).statusCode).toBe(200);

      // A server without the pepper cannot check HMAC secrets: they fail closed.
      expect((await grant('migrating-svc', res.json().client_secret)).statusCode).toBe(401);
    } finally {
      await hmacApp.close();
    }
  });
});

describe('an expired secret presented again', () => {
  let limited: TestContext;
  beforeAll(async () => {
    limited = await createTestContext({ clock: () => now, env: { AUTH_FAILURE_LIMIT: '10', AUTH_FAILURE_LIMIT_PER_IP: '20', RATE_LIMIT_PER_MINUTE: '0' } });
  });
  afterAll(() => limited?.close());

  const grantFrom = (address: string, clientId: string, secret: string) =>
    limited.app.inject({
      method: 'POST',
      url: '/api/v1/oauth/token',
      remoteAddress: address,
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: secret }).toString(),
    });
  const statuses = async (address: string, n: number, clientId: string, secret: string) => {
    const seen: number[] = [];
    for (let i = 0; i < n; i++) seen.push((await grantFrom(address, clientId, secret)).statusCode);
    return seen;
  };

  it('within 15 minutes of its expiry: not counted per client_id (the fleet retries), still counted per address; after that, like any wrong secret', async () => {
    const created = await createClient(limited, { client_id: 'stale-fleet-svc', name: 'Stale fleet', scopes: ['a:b'] });
    now += 1000;
    const rotated = await limited.app.inject({ method: 'POST', url: secretsUrl(created.client.id), headers: bearer(limited.adminToken), payload: { expire_previous_in: 0 } });
    expect(rotated.statusCode).toBe(201);
    now += 1000;

    // A fleet behind one address still on the old secret: refused, but never locked out of its retry.
    expect(new Set(await statuses('10.9.0.1', 15, 'stale-fleet-svc', created.client_secret))).toEqual(new Set([401]));
    expect((await grantFrom('10.9.0.1', 'stale-fleet-svc', rotated.json().client_secret)).statusCode).toBe(200);

    // A leaked old secret buys no unthrottled bcrypt work: the address limit (20) still holds.
    const flood = await statuses('10.9.0.2', 25, 'stale-fleet-svc', created.client_secret);
    expect(flood.slice(0, 20)).toEqual(Array(20).fill(401));
    expect(flood.slice(20)).toEqual(Array(5).fill(429));

    // Long after its expiry it is counted like any wrong secret: the per-client_id limit (10) trips.
    now += 16 * 60_000;
    const late = await statuses('10.9.0.3', 12, 'stale-fleet-svc', created.client_secret);
    expect(late.slice(0, 10)).toEqual(Array(10).fill(401));
    expect(late.slice(10)).toEqual([429, 429]);
  });
});
