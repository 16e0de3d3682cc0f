import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCredentialState } from '../src/modules/oauth/credential-state.js';
import { bearer, createClient, createTestContext, TEST_DATABASE_URL, type TestContext } from './helpers.js';

interface Row {
  client_id: string;
  version: number;
}

/** A credential-state cache over a counting, controllable read. */
function harness(options: { maxEntries?: number; maxAgeMs?: number } = {}) {
  let now = 1_000_000;
  let live = true;
  let version = 1;
  let reads = 0;
  let gate: Promise<void> | undefined;
  const state = createCredentialState<Row>({
    async read(clientId) {
      reads += 1;
      const row = clientId.startsWith('unknown') ? undefined : { client_id: clientId, version };
      await gate;
      return row;
    },
    clock: () => now,
    live: () => live,
    ...options,
  });
  return {
    state,
    get reads() {
      return reads;
    },
    set now(v: number) {
      now = v;
    },
    get now() {
      return now;
    },
    setLive: (v: boolean) => (live = v),
    setVersion: (v: number) => (version = v),
    hold() {
      let open!: () => void;
      gate = new Promise((r) => (open = r));
      return () => {
        gate = undefined;
        open();
      };
    },
  };
}

describe('credential state (unit)', () => {
  it('serves from memory while live; a notification naming the client_id, "*", or anything unreadable forgets', async () => {
    const h = harness();
    await h.state.get('svc');
    await h.state.get('svc');
    expect(h.reads).toBe(1);
    h.setVersion(2);
    h.state.onNotify(JSON.stringify({ id: 'x', client_id: 'other' }));
    expect((await h.state.get('svc'))?.version).toBe(1);
    h.state.onNotify(JSON.stringify({ id: 'x', client_id: 'svc' }));
    expect((await h.state.get('svc'))?.version).toBe(2);
    h.setVersion(3);
    h.state.onNotify('*');
    expect((await h.state.get('svc'))?.version).toBe(3);
    h.setVersion(4);
    h.state.onNotify('{not json');
    expect((await h.state.get('svc'))?.version).toBe(4);
    expect(h.state.stats()).toMatchObject({ entries: 1, live: true });
  });

  it('while the feed is not live, every call reads and nothing is kept', async () => {
    const h = harness();
    await h.state.get('svc');
    h.setLive(false);
    h.setVersion(2);
    expect((await h.state.get('svc'))?.version).toBe(2);
    expect((await h.state.get('svc'))?.version).toBe(2);
    expect(h.reads).toBe(3);
    expect(h.state.stats().entries).toBe(0);
    h.setLive(true);
    await h.state.get('svc');
    await h.state.get('svc');
    expect(h.reads).toBe(4);
  });

  it('a read that raced an invalidation (or a feed gap) is used once and not kept', async () => {
    const h = harness();
    const open = h.hold();
    const pending = h.state.get('svc');
    h.state.onNotify(JSON.stringify({ client_id: 'svc' }));
    open();
    await pending;
    expect(h.state.stats().entries).toBe(0);
    // The feed went down and came back during the read: not kept either.
    const open2 = h.hold();
    const pending2 = h.state.get('svc');
    h.setLive(false);
    h.setLive(true);
    h.state.forgetAll();
    open2();
    await pending2;
    expect(h.state.stats().entries).toBe(0);
    await h.state.get('svc');
    expect(h.state.stats().entries).toBe(1);
  });

  it('unknown client_ids are never kept; entries are bounded, the oldest dropped first', async () => {
    const h = harness({ maxEntries: 3 });
    await h.state.get('unknown-1');
    await h.state.get('unknown-1');
    expect(h.reads).toBe(2);
    for (const id of ['a', 'b', 'c', 'd']) await h.state.get(id);
    expect(h.state.stats().entries).toBe(3);
    const reads = h.reads;
    await h.state.get('d');
    await h.state.get('b');
    expect(h.reads).toBe(reads);
    await h.state.get('a');
    expect(h.reads).toBe(reads + 1);
  });

  it('time-based expiry is honoured without a notification: maxAgeMs', async () => {
    const h = harness({ maxAgeMs: 60_000 });
    await h.state.get('svc');
    h.now += 59_999;
    await h.state.get('svc');
    expect(h.reads).toBe(1);
    h.now += 1;
    await h.state.get('svc');
    expect(h.reads).toBe(2);
  });
});

describe('credential state in the server', () => {
  let ctx: TestContext;
  let svc: { id: string; secret: string };
  beforeAll(async () => {
    ctx = await createTestContext({ env: { RATE_LIMIT_PER_MINUTE: '0' } });
    const created = await createClient(ctx, { client_id: 'state-svc', name: 'State', scopes: ['a:b', 'c:d'] });
    svc = { id: created.client.id, secret: created.client_secret };
    // The feed (PGlite's listen, or PostgreSQL's dedicated connection) is up.
    for (let waited = 0; !ctx.app.credentialState.stats().live; waited += 20) {
      if (waited > 5000) throw new Error('the change feed did not go live');
      await new Promise((r) => setTimeout(r, 20));
    }
  });
  afterAll(() => ctx?.close());

  const grant = () =>
    ctx.app.inject({
      method: 'POST',
      url: '/api/v1/oauth/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ grant_type: 'client_credentials', client_id: 'state-svc', client_secret: svc.secret }).toString(),
    });

  /** The next grant on PGlite (one process: the notification is delivered with the commit); within 1 s on PostgreSQL. */
  async function expectSoon(check: (res: Awaited<ReturnType<typeof grant>>) => boolean) {
    if (!TEST_DATABASE_URL) return expect(check(await grant())).toBe(true);
    const started = performance.now();
    while (!check(await grant())) {
      expect(performance.now() - started).toBeLessThan(1000);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  it('repeat grants are served from memory', async () => {
    expect((await grant()).statusCode).toBe(200);
    const before = ctx.app.credentialState.stats();
    for (let i = 0; i < 5; i++) expect((await grant()).statusCode).toBe(200);
    const after = ctx.app.credentialState.stats();
    expect(after.hits - before.hits).toBe(5);
    expect(after.misses).toBe(before.misses);
  });

  it('a row served from memory stamps the secret\'s last_used_at once per minute, not on every grant', async () => {
    const stampOf = async () =>
      (await ctx.database.db.selectFrom('m2m_client_secrets').select('last_used_at').where('client_id', '=', svc.id).executeTakeFirstOrThrow()).last_used_at;
    const settled = async () => {
      for (let waited = 0; waited < 50; waited += 1) await new Promise((r) => setTimeout(r, 10));
    };
    expect((await grant()).statusCode).toBe(200);
    await settled();
    const first = await stampOf();
    expect(first).not.toBeNull();
    // The cached row still says "never used" (it was read before the stamp): the grants that follow must not stamp again.
    await sql`update m2m_client_secrets set last_used_at = '2000-01-01T00:00:00Z' where client_id = ${svc.id}`.execute(ctx.database.db);
    for (let i = 0; i < 5; i++) expect((await grant()).statusCode).toBe(200);
    await settled();
    expect(new Date((await stampOf())!).getUTCFullYear()).toBe(2000);
  });

  it('a change written straight to m2m_clients (no service told) reaches the cache through the trigger', async () => {
    await sql`update m2m_clients set scopes = array['c:d'] where id = ${svc.id}`.execute(ctx.database.db);
    await expectSoon((res) => res.statusCode === 200 && res.json().scope === 'c:d');
    await sql`update m2m_clients set status = 'disabled' where id = ${svc.id}`.execute(ctx.database.db);
    await expectSoon((res) => res.statusCode === 401);
    await sql`update m2m_clients set status = 'active' where id = ${svc.id}`.execute(ctx.database.db);
    await expectSoon((res) => res.statusCode === 200);
  });

  it('a catalog registration that changes nothing keeps the cached state; one that changes the catalog drops it', async () => {
    const register = async (permissions: { code: string; name: string }[]) => {
      const res = await ctx.app.inject({ method: 'POST', url: '/api/v1/admin/permissions/register', headers: bearer(ctx.adminToken), payload: { service: 'state-cat', permissions } });
      expect(res.statusCode).toBe(200);
      return res.json() as { upserted_count: number };
    };
    const manifest = [{ code: 'state-cat:read', name: 'Read' }];
    expect((await register(manifest)).upserted_count).toBe(1);
    // On PostgreSQL the catalog trigger's "*" arrives after the commit: let it land before filling the cache.
    if (TEST_DATABASE_URL) await new Promise((r) => setTimeout(r, 300));
    expect((await grant()).statusCode).toBe(200);
    const filled = ctx.app.credentialState.stats();
    expect(filled.entries).toBe(1);

    // Every service re-registers its manifest at each boot: nothing written, nothing forgotten.
    expect((await register(manifest)).upserted_count).toBe(0);
    if (TEST_DATABASE_URL) await new Promise((r) => setTimeout(r, 300));
    expect(ctx.app.credentialState.stats().entries).toBe(1);
    expect((await grant()).statusCode).toBe(200);
    expect(ctx.app.credentialState.stats()).toMatchObject({ hits: filled.hits + 1, misses: filled.misses });

    // A changed manifest can change any credential's granted scopes: forgotten at once, on this instance.
    expect((await register([...manifest, { code: 'state-cat:write', name: 'Write' }])).upserted_count).toBe(1);
    expect(ctx.app.credentialState.stats().entries).toBe(0);
    const misses = ctx.app.credentialState.stats().misses;
    expect((await grant()).statusCode).toBe(200);
    expect(ctx.app.credentialState.stats().misses).toBe(misses + 1);
  });

  it('a secret expired, replaced or deleted straight in m2m_client_secrets (no service told, m2m_clients untouched) stops granting', async () => {
    const created = await createClient(ctx, { client_id: 'sql-secret-svc', name: 'SQL secret', scopes: ['a:b'] });
    const id = created.client.id;
    const grantWith = (secret: string) =>
      ctx.app.inject({
        method: 'POST',
        url: '/api/v1/oauth/token',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({ grant_type: 'client_credentials', client_id: 'sql-secret-svc', client_secret: secret }).toString(),
      });
    const soon = async (secret: string, status: number) => {
      const started = performance.now();
      for (;;) {
        const res = await grantWith(secret);
        if (res.statusCode === status) return;
        // PGlite: told with the commit, so the very next grant; PostgreSQL: within the 1 s bound.
        expect(TEST_DATABASE_URL && performance.now() - started < 1000, `still ${res.statusCode} ${res.body}`).toBeTruthy();
        await new Promise((r) => setTimeout(r, 5));
      }
    };
    // Verified and kept: the next grants come from memory (secret cache + credential state).
    expect((await grantWith(created.client_secret)).statusCode).toBe(200);
    expect((await grantWith(created.client_secret)).statusCode).toBe(200);

    // An operator expires a leaked secret by hand.
    await sql`update m2m_client_secrets set expires_at = now() - interval '1 minute' where client_id = ${id}`.execute(ctx.database.db);
    await soon(created.client_secret, 401);
    await sql`update m2m_client_secrets set expires_at = null where client_id = ${id}`.execute(ctx.database.db);
    await soon(created.client_secret, 200);
    expect((await grantWith(created.client_secret)).statusCode).toBe(200);

    // ... replaces its hash by hand (the old plaintext must stop working) ...
    const other = await createClient(ctx, { client_id: 'sql-secret-other', name: 'Other', scopes: ['a:b'] });
    await sql`update m2m_client_secrets s set secret_hash = o.secret_hash, hash_alg = o.hash_alg, hint = o.hint
      from m2m_client_secrets o where o.client_id = ${other.client.id} and s.client_id = ${id}`.execute(ctx.database.db);
    await soon(created.client_secret, 401);
    await soon(other.client_secret, 200);

    // ... or deletes it: a secret that is no longer stored never grants.
    expect((await grantWith(other.client_secret)).statusCode).toBe(200);
    await sql`delete from m2m_client_secrets where client_id = ${id}`.execute(ctx.database.db);
    await soon(other.client_secret, 401);
  });

  it('a revoke through the API fails the very next grant on this instance', async () => {
    expect((await grant()).statusCode).toBe(200);
    expect((await grant()).statusCode).toBe(200);
    const res = await ctx.app.inject({ method: 'DELETE', url: `/api/v1/admin/m2m-clients/${svc.id}`, headers: bearer(ctx.adminToken) });
    expect(res.statusCode).toBe(204);
    expect((await grant()).statusCode).toBe(401);
  });

  it('TRUNCATE of the secrets (statement triggers only) forgets every credential', async () => {
    const created = await createClient(ctx, { client_id: 'truncated-svc', name: 'Truncated', scopes: ['a:b'] });
    const grantIt = () =>
      ctx.app.inject({
        method: 'POST',
        url: '/api/v1/oauth/token',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({ grant_type: 'client_credentials', client_id: 'truncated-svc', client_secret: created.client_secret }).toString(),
      });
    expect((await grantIt()).statusCode).toBe(200);
    expect((await grantIt()).statusCode).toBe(200);
    expect(ctx.app.credentialState.stats().entries).toBeGreaterThan(0);
    await sql`truncate m2m_client_secrets`.execute(ctx.database.db);
    await expect.poll(async () => (await grantIt()).statusCode, { timeout: 1000, interval: 5 }).toBe(401);
  });
});
