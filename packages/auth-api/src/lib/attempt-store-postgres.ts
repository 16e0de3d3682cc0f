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

/** Keys per upsert statement, at most. */
const UPSERT_BATCH = 500;

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
 * `reset` a delete. Increments that arrive while one statement is under way
 * go together in the next one (up to 500 keys, in key order), so a flood of
 * attempts costs the database one statement per round trip, not one each. Windows follow the injected clock, as in the in-memory
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
  // Windows this instance opened while a count ran: the count may have missed them, so they are added to it.
  let openedDuringCount: { n: number } | undefined;

  async function sweepNow(): Promise<void> {
    const now = new Date(clock());
    await sql`delete from auth_attempts where key in (
      select key from auth_attempts where store = ${store} and window_ends <= ${now} limit ${sweepBatch})`.execute(db);
    // Counting stops past maxKeys: the cost stays bounded however large a flood made the table.
    const opened = { n: 0 };
    openedDuringCount = opened;
    try {
      const { rows } = await sql<{ n: string | number }>`select count(*) as n from (
        select 1 from auth_attempts where store = ${store} and window_ends > ${now} limit ${maxKeys + 1}) live`.execute(db);
      // Some of those may be counted twice: erring high only crowds the store sooner.
      liveKeys = Number(rows[0]?.n ?? 0) + opened.n;
    } finally {
      if (openedDuringCount === opened) openedDuringCount = undefined;
    }
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

  /** Keys this instance deleted: they no longer take room (the next sweep recounts the cluster's). */
  const forget = (deleted: number) => {
    liveKeys = Math.max(0, liveKeys - deleted);
  };

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

  // Increments waiting for the next statement, by stored key: a burst of attempts costs one
  // statement per round trip, not one per attempt (a flood must not tie up the database).
  interface Waiting {
    windowMs: number;
    group: string | undefined;
    callers: Array<{ resolve(a: Attempts): void; reject(err: unknown): void }>;
  }
  let queue = new Map<string, Waiting>();
  let flushing = false;

  function upsert(key: string, windowMs: number, group: string | undefined): Promise<Attempts> {
    return new Promise((resolve, reject) => {
      let waiting = queue.get(key);
      if (!waiting) {
        waiting = { windowMs, group, callers: [] };
        queue.set(key, waiting);
      }
      waiting.callers.push({ resolve, reject });
      if (!flushing) void flush();
    });
  }

  async function flush(): Promise<void> {
    flushing = true;
    try {
      while (queue.size > 0) {
        const batch = [...queue].slice(0, UPSERT_BATCH);
        if (batch.length === queue.size) queue = new Map();
        else for (const [key] of batch) queue.delete(key);
        // Sorted: instances upserting overlapping keys lock their rows in one order (no deadlock).
        batch.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
        await upsertBatch(batch);
      }
    } finally {
      flushing = false;
    }
  }

  /**
   * One statement for the batch: each key gains as many attempts as callers wait on it, in a new
   * window if its window has ended. The callers of a key get distinct counts, the last one the total.
   */
  async function upsertBatch(batch: Array<[string, Waiting]>): Promise<void> {
    const now = new Date(clock());
    try {
      const { rows } = await sql<{ key: string; count: number; window_ends: Date }>`insert into auth_attempts as a (key, store, grp, count, window_ends)
        select t.key, ${store}, t.grp, t.n, t.ends
        from unnest(${batch.map(([k]) => k)}::text[], ${batch.map(([, w]) => w.group ?? null)}::text[],
          ${batch.map(([, w]) => w.callers.length)}::int[], ${batch.map(([, w]) => new Date(now.getTime() + w.windowMs).toISOString())}::timestamptz[]) as t(key, grp, n, ends)
        on conflict (key) do update set
          count = case when a.window_ends <= ${now} then excluded.count else a.count + excluded.count end,
          grp = case when a.window_ends <= ${now} then excluded.grp else a.grp end,
          window_ends = case when a.window_ends <= ${now} then excluded.window_ends else a.window_ends end
        returning a.key, a.count, a.window_ends`.execute(db);
      const byKey = new Map(rows.map((r) => [r.key, r]));
      for (const [key, waiting] of batch) {
        const row = byKey.get(key);
        if (!row) {
          for (const caller of waiting.callers) caller.reject(new Error('attempt store: a counter was not returned'));
          continue;
        }
        const total = Number(row.count);
        const n = waiting.callers.length;
        // A window this statement opened.
        if (total === n) {
          liveKeys += 1;
          if (openedDuringCount) openedDuringCount.n += 1;
        }
        const resetAt = new Date(row.window_ends).getTime();
        waiting.callers.forEach((caller, i) => caller.resolve({ count: total - n + 1 + i, resetAt }));
      }
    } catch (err) {
      for (const [, waiting] of batch) for (const caller of waiting.callers) caller.reject(err);
    }
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
      return upsert(key, windowMs, group);
    },

    async decrement(rawKey) {
      const key = storedKey(rawKey);
      // One statement: the live row is locked, then either taken down by one or, at one, deleted.
      const { rows } = await sql<{ gone: string | number }>`with cur as (
          select key, count from auth_attempts where key = ${key} and window_ends > ${new Date(clock())} for update
        ), gone as (
          delete from auth_attempts a using cur where a.key = cur.key and cur.count <= 1 returning a.key
        ), down as (
          update auth_attempts a set count = a.count - 1 from cur where a.key = cur.key and cur.count > 1 returning a.key
        )
        select count(*) as gone from gone`.execute(db);
      // A key taken back to zero frees its room at once (as in memory), not at the next sweep: a flood
      // of abandoned attempts must not leave the store looking full to the next clean address.
      forget(Number(rows[0]?.gone ?? 0));
    },

    async reset(key) {
      const { rows } = await sql<{ key: string }>`delete from auth_attempts where key = ${storedKey(key)} returning key`.execute(db);
      forget(rows.length);
    },

    sweep: () => sweep(0),
  };
}
