import type { Kysely } from 'kysely';
import type { Database } from '../../db/schema.js';
import type { Clock } from '../../lib/clock.js';
import { addAuthEventCounts, type AuthEventCount, pruneAuthEvents } from './auth-events.repository.js';

/** client_ids are stored as sent, cut to this many characters. */
export const AUTH_EVENT_CLIENT_ID_MAX = 100;
/** The row that absorbs what is past the per-minute bound. */
export const OVERFLOW = '*';

export interface AuthEventRecorderOptions {
  db: Kysely<Database>;
  clock: Clock;
  /** How often counts are written. Default 5 s. */
  flushIntervalMs?: number;
  /**
   * Distinct (client_id, address, outcome) rows per minute. Past it, counts keep their address
   * under client_id `*`; past as many distinct (address, outcome) pairs of those, the address is `*` too.
   */
  maxKeysPerMinute: number;
  /** Rows older than this are deleted (checked at most hourly). */
  retentionDays: number;
  onError?: (err: unknown) => void;
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

/**
 * Counts token-endpoint outcomes in memory and adds them to `auth_events` in
 * one upsert every few seconds, so the grant path does a Map update, not a
 * write. Growth is bounded twice: at most about 2 × `maxKeysPerMinute` rows
 * per minute, and rows past `retentionDays` are deleted. A flood of made-up
 * client_ids cannot hide who sends them, nor anyone else: past the bound the
 * client_id is collapsed to `*` but the address is kept; only a flood of
 * distinct addresses as well collapses the address. A failed write is
 * reported and its counts are dropped, never retried without end.
 */
export function createAuthEventRecorder({ db, clock, flushIntervalMs = 5_000, maxKeysPerMinute, retentionDays, onError }: AuthEventRecorderOptions) {
  let pending = new Map<string, AuthEventCount>();
  let minuteKeys = new Set<string>();
  // (outcome, address) pairs counted under client_id `*` this minute.
  let minuteAddresses = new Set<string>();
  let currentMinute = 0;
  let lastPrune = Number.NEGATIVE_INFINITY;
  let flushing: Promise<void> = Promise.resolve();
  const timer = setInterval(() => void flush(), flushIntervalMs);
  timer.unref();

  function add(minute: number, clientId: string, address: string, outcome: string) {
    const key = `${minute}\0${outcome}\0${address}\0${clientId}`;
    const entry = pending.get(key);
    if (entry) entry.count += 1;
    else pending.set(key, { minute: new Date(minute), client_id: clientId, address, outcome, count: 1 });
  }

  function flush(): Promise<void> {
    flushing = flushing.then(async () => {
      const rows = [...pending.values()];
      pending = new Map();
      try {
        for (let i = 0; i < rows.length; i += 500) await addAuthEventCounts(db, rows.slice(i, i + 500));
        const now = clock();
        if (now - lastPrune >= HOUR) {
          lastPrune = now;
          await pruneAuthEvents(db, new Date(now - retentionDays * 24 * HOUR));
        }
      } catch (err) {
        onError?.(err);
      }
    });
    return flushing;
  }

  return {
    /** Counts one token request's outcome. `address` should be the throttle's address key. */
    record(clientId: string, address: string, outcome: string): void {
      const minute = Math.floor(clock() / MINUTE) * MINUTE;
      if (minute !== currentMinute) {
        currentMinute = minute;
        minuteKeys = new Set();
        minuteAddresses = new Set();
      }
      // As sent, but without NUL: PostgreSQL refuses it in text, and one such row failed the whole
      // batch, so a request a flush interval could erase everyone's counts.
      const id = clientId.slice(0, AUTH_EVENT_CLIENT_ID_MAX).replaceAll('\u0000', '\uFFFD');
      const key = `${outcome}\0${address}\0${id}`;
      if (minuteKeys.has(key)) return add(minute, id, address, outcome);
      if (minuteKeys.size < maxKeysPerMinute) {
        minuteKeys.add(key);
        return add(minute, id, address, outcome);
      }
      const byAddress = `${outcome}\0${address}`;
      if (minuteAddresses.has(byAddress) || minuteAddresses.size < maxKeysPerMinute) {
        minuteAddresses.add(byAddress);
        return add(minute, OVERFLOW, address, outcome);
      }
      add(minute, OVERFLOW, OVERFLOW, outcome);
    },
    /** Writes what is counted so far (the admin route calls it before reading). */
    flush,
    async close(): Promise<void> {
      clearInterval(timer);
      await flush();
    },
  };
}

export type AuthEventRecorder = ReturnType<typeof createAuthEventRecorder>;
