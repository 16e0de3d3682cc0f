import { sql } from 'kysely';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { DatabaseHandle } from '../src/db/connect.js';
import { createPostgresAttemptStore } from '../src/lib/attempt-store-postgres.js';
import { AttemptStoreFullError, createFailureThrottle } from '../src/lib/throttle.js';
import { createTestDatabase } from './helpers.js';

/** The PostgreSQL attempt store (the `auth_attempts` table), on whichever database the suite runs. */
let database: DatabaseHandle;
let now = Date.parse('2026-11-26T12:00:00Z');
const clock = () => now;

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database?.close());
beforeEach(async () => {
  await database.db.deleteFrom('auth_attempts').execute();
});

const rows = () => database.db.selectFrom('auth_attempts').selectAll().orderBy('key').execute();

describe('PostgreSQL attempt store', () => {
  it('counts atomically: 40 concurrent increments of one key get 1..40, one row', async () => {
    const store = createPostgresAttemptStore({ db: database.db, clock, store: 'grant' });
    const counts = await Promise.all(Array.from({ length: 40 }, () => store.increment('grant:ip:198.51.100.1', 60_000, '198.51.100.1')));
    expect(counts.map((c) => c.count).sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect(new Set(counts.map((c) => c.resetAt))).toEqual(new Set([now + 60_000]));
    expect(await rows()).toEqual([{ key: 'grant:ip:198.51.100.1', store: 'grant', grp: '198.51.100.1', count: 40, window_ends: new Date(now + 60_000) }]);
  });

  it('a window that ended starts again at 1; decrement never goes below zero and drops the key at zero; reset drops it', async () => {
    const store = createPostgresAttemptStore({ db: database.db, clock, store: 'grant' });
    await store.increment('k', 1000, 'g');
    await store.increment('k', 1000, 'g');
    now += 1000;
    expect(await store.increment('k', 1000, 'g')).toEqual({ count: 1, resetAt: now + 1000 });
    await store.increment('k', 1000, 'g');
    await store.decrement('k');
    expect((await rows()).map((r) => r.count)).toEqual([1]);
    await store.decrement('k');
    expect(await rows()).toEqual([]);
    await store.decrement('k');
    expect(await rows()).toEqual([]);
    expect(await store.increment('k', 1000, 'g')).toEqual({ count: 1, resetAt: now + 1000 });
    await store.increment('k', 1000, 'g');
    await store.reset('k');
    expect(await rows()).toEqual([]);
  });

  it('concurrent decrements and increments never leave a count below zero', async () => {
    const store = createPostgresAttemptStore({ db: database.db, clock, store: 'grant' });
    await store.increment('k', 60_000, 'g');
    await Promise.all([...Array.from({ length: 10 }, () => store.decrement('k')), ...Array.from({ length: 5 }, () => store.increment('k', 60_000, 'g'))]);
    const left = await rows();
    expect(left.every((r) => r.count > 0)).toBe(true);
    expect(left.length).toBeLessThanOrEqual(1);
  });

  it('keys the table cannot hold as text (NUL, very long) are stored by their hash, one per key', async () => {
    const store = createPostgresAttemptStore({ db: database.db, clock, store: 'grant' });
    const nul = 'grant:id:bad\u0000id|127.0.0.1';
    const long = `grant:id:${'x'.repeat(5000)}|127.0.0.1`;
    expect((await store.increment(nul, 60_000, 'g')).count).toBe(1);
    expect((await store.increment(nul, 60_000, 'g')).count).toBe(2);
    expect((await store.increment('grant:id:bad\u0001id|127.0.0.1', 60_000, 'g')).count).toBe(1);
    expect((await store.increment(long, 60_000, 'g')).count).toBe(1);
    await store.decrement(nul);
    expect((await rows()).map((r) => [r.key.slice(0, 7), r.count])).toEqual([
      ['sha256:', 1],
      ['sha256:', 1],
      ['sha256:', 1],
    ]);
    await store.reset(long);
    expect(await rows()).toHaveLength(2);
  });

  it('sweeps ended windows in bounded batches, only its own store', async () => {
    const grant = createPostgresAttemptStore({ db: database.db, clock, store: 'grant', sweepBatch: 3 });
    const login = createPostgresAttemptStore({ db: database.db, clock, store: 'login' });
    for (let i = 0; i < 5; i++) await grant.increment(`grant:${i}`, 1000, `g${i}`);
    await login.increment('login:0', 1000, 'g');
    await grant.increment('grant:live', 60_000, 'g');
    now += 1000;
    await grant.sweep();
    expect((await rows()).map((r) => r.key)).toEqual(['grant:3', 'grant:4', 'grant:live', 'login:0'].sort());
    await grant.sweep();
    expect((await rows()).map((r) => r.key)).toEqual(['grant:live', 'login:0']);
  });

  it('full: refuses new keys (never drops a live one), crowded: only networks holding fewer than two get one', async () => {
    const store = createPostgresAttemptStore({ db: database.db, clock, store: 'grant', maxKeys: 10 });
    // The first count now, so no sweep (it would run on the next call) races the inserts below.
    await store.sweep();
    // Nine tenths of the room: anyone may add keys.
    for (let i = 0; i < 9; i++) await store.increment(`grant:${i}`, 60_000, 'flood');
    // Crowded: the flooding network gets no new key, a live key still counts, a quiet network still gets one.
    await expect(store.increment('grant:new', 60_000, 'flood')).rejects.toBeInstanceOf(AttemptStoreFullError);
    expect((await store.increment('grant:0', 60_000, 'flood')).count).toBe(2);
    expect((await store.increment('grant:quiet', 60_000, 'quiet')).count).toBe(1);
    // Full of live windows: nobody gets a new key.
    await expect(store.increment('grant:other', 60_000, 'other')).rejects.toBeInstanceOf(AttemptStoreFullError);
    expect((await rows()).length).toBe(10);
    // Once the windows end, there is room again.
    now += 60_000;
    expect((await store.increment('grant:other', 60_000, 'other')).count).toBe(1);
  });

  it('fails closed: when the database refuses, the throttle refuses the attempt', async () => {
    const store = createPostgresAttemptStore({ db: database.db, clock, store: 'grant' });
    const errors: unknown[] = [];
    const throttle = createFailureThrottle({ store, clock, name: 'grant', windowMs: 60_000, perIdentityAndIp: 10, perIp: 100, onStoreError: (err) => errors.push(err) });
    // The table gone for a moment: every statement fails, as with an unreachable database.
    await sql`alter table auth_attempts rename to auth_attempts_away`.execute(database.db);
    try {
      await expect(store.increment('k', 1000, 'g')).rejects.toThrow();
      const attempt = await throttle.begin('svc', '198.51.100.9');
      expect(attempt.retryAfterSec).toBeGreaterThan(0);
      expect(await throttle.failed('198.51.100.9')).toBeGreaterThan(0);
      expect(errors).toHaveLength(2);
      // An unreachable database is refused as the database's other failures are (the route's 503), never let through.
      const unavailable = createFailureThrottle({ store, clock, name: 'grant', windowMs: 60_000, perIdentityAndIp: 10, perIp: 100, isUnavailable: () => true });
      await expect(unavailable.begin('svc', '198.51.100.9')).rejects.toThrow();
    } finally {
      await sql`alter table auth_attempts_away rename to auth_attempts`.execute(database.db);
    }
    expect((await throttle.begin('svc', '198.51.100.9')).retryAfterSec).toBeUndefined();
  });
});
