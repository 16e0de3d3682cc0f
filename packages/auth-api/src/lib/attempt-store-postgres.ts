import { createHash } from 'node:crypto';
import { type Kysely, sql } from 'kysely';
import type { Database } from '../db/schema.js';
import type { Clock } from './clock.js';
import { AttemptStoreFullError, type Attempts, type AttemptStore } from './throttle.js';

export interface PostgresAttemptStoreOptions {
  db: Kysely<Database>;
  clock: Clock;
  /** The throttle this store counts for (`grant`, `login`): each has its own room. */
  store: string;
  /** Live keys this store may hold, as the in-memory store's `maxKeys`. */
  maxKeys?: number;
  /** How often ended windows are deleted (in batches), at most; checked on use, no timer. */
  sweepIntervalMs?: number;
  /** Rows deleted per sweep, at most: a sweep stays a short statement. */
  sweepBatch?: number;
}

/**
 * The key as stored: as is when it is short printable ASCII, else a SHA-256 of it. Keys carry the
 * identity as sent (any length, any character: PostgreSQL text cannot hold NUL, and an index entry
 * has a size limit), and a key the table refused would fail the attempt closed: a 429 for a 401.
 */
function storedKey(key: string): string {
  if (key.length <= 200 && /^[\x20-\x7e]*$/.test(key)) return key;
  return `sha256:${createHash('sha256').update(key).digest('base64url')}`;
}

/** Live keys a network may still add once the store is crowded (as the in-memory store). */
const CROWDED_KEYS_PER_NETWORK = 2;

/**
 * The {@link AttemptStore} in PostgreSQL (the unlogged table `auth_attempts`),
 * so every instance on one database counts the same failures: three instances
 * allow `AUTH_FAILURE_LIMIT` failures in total, not three times that.
 *
 * Each operation is one atomic statement: `increment` an upsert that opens a
 * new window when the old one has ended (`INSERT … ON CONFLICT … DO UPDATE …
 * RETURNING`), `decrement` never below zero (a key back at zero is deleted),
 * `reset` a delete. Windows follow the injected clock, as in the in-memory
 * store. Ended windows are deleted in bounded batches, at most every
 * `sweepIntervalMs`, by whichever call comes by; no timer.
 *
 * Bounded like the in-memory store, with the same rules: once the store holds
 * nine tenths of `maxKeys` live keys, a network holding two or more gets no new
 * key, and at `maxKeys` no new key is added at all (never a live one dropped).
 * The count of live keys is taken by the sweep and kept up by this instance's
 * own inserts; other instances' inserts are seen at the next sweep, so the
 * bound is approximate by what the cluster adds between sweeps. A refused key
 * or any database error rejects: the throttle then refuses the attempt (fails closed).
 */
export function createPostgresAttemptStore({ db, clock, store, maxKeys = 100_000, sweepIntervalMs = 10_000, sweepBatch = 5_000 }: PostgresAttemptStoreOptions): AttemptStore & {
  /** Deletes ended windows (one bounded batch) and recounts the live keys. */
  sweep(): Promise<void>;
} {
  const crowdedAt = maxKeys - Math.max(1, Math.floor(maxKeys / 10));
  // Live keys at the last sweep, plus the windows this instance opened since.
  let liveKeys = 0;
  let lastSweep = Number.NEGATIVE_INFINITY;
  let sweeping: Promise<void> | undefined;

  async function sweepNow(): Promise<void> {
    const now = new Date(clock());
    await sql`delete from auth_attempts where key in (
      select key from auth_attempts where store = ${store} and window_ends <= ${now} limit ${sweepBatch})`.execute(db);
    // Counting stops past maxKeys: the cost stays bounded however large a flood made the table.
    const { rows } = await sql<{ n: string | number }>`select count(*) as n from (
      select 1 from auth_attempts where store = ${store} and window_ends > ${now} limit ${maxKeys + 1}) live`.execute(db);
    liveKeys = Number(rows[0]?.n ?? 0);
  }

  /** One sweep at a time, and none if one started less than `minGapMs` ago. */
  function sweep(minGapMs: number): Promise<void> {
    if (sweeping) return sweeping;
    const now = clock();
    if (now - lastSweep < minGapMs) return Promise.resolve();
    lastSweep = now;
    sweeping = sweepNow().finally(() => (sweeping = undefined));
    return sweeping;
  }

  const toAttempts = (row: { count: number; window_ends: Date | string }): Attempts => ({ count: Number(row.count), resetAt: new Date(row.window_ends).getTime() });

  /** Whether a new key of `group` may be added, as the in-memory store decides. */
  async function room(group: string | undefined): Promise<boolean> {
    // Crowded: ended windows may be what fills it (a full sweep at most once a second, as in memory).
    if (liveKeys >= crowdedAt) await sweep(1000);
    if (liveKeys >= maxKeys) return false;
    if (liveKeys < crowdedAt) return true;
    if (group === undefined) return false;
    const { rows } = await sql<{ n: string | number }>`select count(*) as n from (
      select 1 from auth_attempts where store = ${store} and grp = ${group} and window_ends > ${new Date(clock())} limit ${CROWDED_KEYS_PER_NETWORK}) g`.execute(db);
    return Number(rows[0]?.n ?? 0) < CROWDED_KEYS_PER_NETWORK;
  }

  return {
    async increment(rawKey, windowMs, group) {
      const key = storedKey(rawKey);
      // Housekeeping never delays or fails an attempt.
      sweep(sweepIntervalMs).catch(() => {});
      const now = new Date(clock());
      if (liveKeys >= crowdedAt) {
        // Crowded: a live key still counts; a new one must find room first.
        const { rows } = await sql<{ count: number; window_ends: Date }>`update auth_attempts set count = count + 1
          where key = ${key} and window_ends > ${now} returning count, window_ends`.execute(db);
        if (rows[0]) return toAttempts(rows[0]);
        if (!(await room(group))) throw new AttemptStoreFullError('attempt store is full of live windows');
      }
      const ends = new Date(now.getTime() + windowMs);
      const { rows } = await sql<{ count: number; window_ends: Date }>`insert into auth_attempts as a (key, store, grp, count, window_ends)
        values (${key}, ${store}, ${group ?? null}, 1, ${ends})
        on conflict (key) do update set
          count = case when a.window_ends <= ${now} then 1 else a.count + 1 end,
          grp = case when a.window_ends <= ${now} then excluded.grp else a.grp end,
          window_ends = case when a.window_ends <= ${now} then excluded.window_ends else a.window_ends end
        returning count, window_ends`.execute(db);
      const attempts = toAttempts(rows[0]!);
      if (attempts.count === 1) liveKeys += 1;
      return attempts;
    },

    async decrement(rawKey) {
      const key = storedKey(rawKey);
      // One statement: the live row is locked, then either taken down by one or, at one, deleted.
      await sql`with cur as (
          select key, count from auth_attempts where key = ${key} and window_ends > ${new Date(clock())} for update
        ), gone as (
          delete from auth_attempts a using cur where a.key = cur.key and cur.count <= 1 returning a.key
        )
        update auth_attempts a set count = a.count - 1 from cur where a.key = cur.key and cur.count > 1`.execute(db);
    },

    async reset(key) {
      await sql`delete from auth_attempts where key = ${storedKey(key)}`.execute(db);
    },

    sweep: () => sweep(0),
  };
}
