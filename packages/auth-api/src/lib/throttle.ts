import { isIPv6 } from 'node:net';
import type { Clock } from './clock.js';

/** Attempts counted under one key in the current window. */
export interface Attempts {
  count: number;
  /** When the window ends, ms since the epoch. */
  resetAt: number;
}

/**
 * Where attempt counters live. In memory by default; implement this over a
 * shared store (Redis `INCR` + `PEXPIRE`, a SQL upsert) so several instances
 * share one view of an attacker. `increment` must be atomic: it both counts
 * and answers, so concurrent attempts cannot all slip under the limit. A store
 * that cannot count (full, unreachable) rejects: the throttle then refuses the
 * attempt (fails closed) rather than let it through uncounted.
 */
export interface AttemptStore {
  /** Adds one attempt and returns the new count; starts a window of `windowMs` if none is open. */
  increment(key: string, windowMs: number): Promise<Attempts>;
  /** Takes one attempt back (it succeeded), never below zero. */
  decrement(key: string): Promise<void>;
  reset(key: string): Promise<void>;
}

/** Thrown by the in-memory store when every slot holds a live window: nothing is evicted. */
export class AttemptStoreFullError extends Error {
  override name = 'AttemptStoreFullError';
}

/**
 * A fixed-window counter per key, bounded at `maxKeys`. A full store first
 * drops windows that have ended; it never drops a live one (that would hand
 * an attacker a way to wipe lockouts by flooding it with new keys) and
 * refuses the new key instead, so the throttle fails closed. Keys per window
 * are bounded by design: an address over its limit creates none (see
 * {@link createFailureThrottle}).
 */
export function createMemoryAttemptStore({ clock, maxKeys = 100_000 }: { clock: Clock; maxKeys?: number }): AttemptStore {
  // Insertion order = window start order, so the first entries are the first to end.
  const windows = new Map<string, Attempts>();
  let lastSweep = Number.NEGATIVE_INFINITY;
  const live = (key: string) => {
    const entry = windows.get(key);
    if (entry && entry.resetAt <= clock()) {
      windows.delete(key);
      return undefined;
    }
    return entry;
  };
  const makeRoom = () => {
    const now = clock();
    for (const [key, entry] of windows) {
      if (entry.resetAt > now) break;
      windows.delete(key);
    }
    // Windows of different lengths can end out of order: a full sweep, at most once a second.
    if (windows.size >= maxKeys && now - lastSweep >= 1000) {
      lastSweep = now;
      for (const [key, entry] of windows) if (entry.resetAt <= now) windows.delete(key);
    }
    return windows.size < maxKeys;
  };
  return {
    async increment(key, windowMs) {
      const entry = live(key);
      if (entry) {
        entry.count += 1;
        return { ...entry };
      }
      if (windows.size >= maxKeys && !makeRoom()) throw new AttemptStoreFullError('attempt store is full of live windows');
      const fresh = { count: 1, resetAt: clock() + windowMs };
      windows.set(key, fresh);
      return { ...fresh };
    },
    async decrement(key) {
      const entry = live(key);
      if (entry && entry.count > 0) entry.count -= 1;
    },
    async reset(key) {
      windows.delete(key);
    },
  };
}

/**
 * The address an attempt is counted under: IPv4 as is (also when mapped into
 * IPv6), IPv6 by its /64, which one subscriber usually holds whole.
 */
export function addressKey(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return mapped[1]!;
  if (!isIPv6(ip)) return ip;
  const [head = '', tail = ''] = ip.toLowerCase().split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = ip.includes('::') ? [...left, ...Array(8 - left.length - right.length).fill('0'), ...right] : left;
  return `${groups.slice(0, 4).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/64`;
}

/** What a tripped limit reports (for a warning in the log): never a secret. */
export interface ThrottleTrip {
  throttle: string;
  /** The key that went over its limit, e.g. `grant:ip:203.0.113.7`. */
  key: string;
  limit: number;
  retryAfterSec: number;
}

export interface FailureThrottleOptions {
  store: AttemptStore;
  clock: Clock;
  /** Namespace of the keys, e.g. `grant` or `login`. */
  name: string;
  windowMs: number;
  /** Failures allowed per (identity, address) in a window. */
  perIdentityAndIp: number;
  /** Failures allowed per address in a window, whatever the identity. */
  perIp: number;
  /** Told once per window and key, when a key first goes over its limit, and when the store fails. */
  onTrip?: (trip: ThrottleTrip) => void;
  onStoreError?: (err: unknown) => void;
}

/** An authentication attempt under way: counted as a failure unless it succeeds. */
export interface Attempt {
  /** Seconds until the caller may try again when over a limit, else undefined. */
  retryAfterSec: number | undefined;
  /**
   * The attempt authenticated: it stops counting, and (unless it came in over
   * a limit, from an address an attacker shares) the (identity, address) count clears.
   */
  succeeded(): Promise<void>;
  /** The attempt was never tried (shed before its check): it stops counting, nothing clears. */
  abandoned(): Promise<void>;
}

/** Seconds to wait when the store cannot count: short, the store may recover. */
const STORE_FAILURE_RETRY_SEC = 30;

/**
 * Throttles failed authentication per address and per (identity, address).
 * The address is counted first, and an address over its limit creates no
 * per-identity key: flooding with made-up identities from one address costs
 * one counter. Every attempt is counted when it starts (atomically, so a
 * burst of parallel guesses cannot pass the check) and taken back when it
 * succeeds, so only failures count: a client that authenticates correctly is
 * never slowed by its own traffic. Checked before any database read or
 * bcrypt work. A store that cannot count refuses the attempt (fail closed).
 */
export function createFailureThrottle({ store, clock, name, windowMs, perIdentityAndIp, perIp, onTrip, onStoreError }: FailureThrottleOptions) {
  const retryAfter = (resetAt: number) => Math.max(1, Math.ceil((resetAt - clock()) / 1000));
  const over = (key: string, attempts: Attempts, limit: number): number | undefined => {
    if (attempts.count <= limit) return undefined;
    const retryAfterSec = retryAfter(attempts.resetAt);
    if (attempts.count === limit + 1) onTrip?.({ throttle: name, key, limit, retryAfterSec });
    return retryAfterSec;
  };
  const ipKeyOf = (ip: string) => `${name}:ip:${addressKey(ip)}`;
  const failClosed = (err: unknown): Attempt => {
    onStoreError?.(err);
    return { retryAfterSec: STORE_FAILURE_RETRY_SEC, succeeded: async () => {}, abandoned: async () => {} };
  };

  return {
    async begin(identity: string, ip: string): Promise<Attempt> {
      const ipKey = ipKeyOf(ip);
      const pairKey = `${name}:id:${identity}|${addressKey(ip)}`;
      let byIp: Attempts;
      try {
        byIp = await store.increment(ipKey, windowMs);
      } catch (err) {
        return failClosed(err);
      }
      const ipOver = over(ipKey, byIp, perIp);
      if (ipOver !== undefined) {
        // No per-identity key from an address over its limit.
        return { retryAfterSec: ipOver, succeeded: () => store.decrement(ipKey), abandoned: () => store.decrement(ipKey) };
      }
      let pair: Attempts;
      try {
        pair = await store.increment(pairKey, windowMs);
      } catch (err) {
        await store.decrement(ipKey).catch(() => {});
        return failClosed(err);
      }
      const retryAfterSec = over(pairKey, pair, perIdentityAndIp);
      return {
        retryAfterSec,
        succeeded: async () => {
          await Promise.all([retryAfterSec === undefined ? store.reset(pairKey) : store.decrement(pairKey), store.decrement(ipKey)]);
        },
        abandoned: async () => {
          await Promise.all([store.decrement(pairKey), store.decrement(ipKey)]);
        },
      };
    },

    /**
     * A failed request that never reached {@link begin} (malformed, wrong grant
     * type, a scope it may not have): counted against the address. Returns the
     * seconds to wait when the address is over its limit, else undefined.
     */
    async failed(ip: string): Promise<number | undefined> {
      const ipKey = ipKeyOf(ip);
      try {
        return over(ipKey, await store.increment(ipKey, windowMs), perIp);
      } catch (err) {
        onStoreError?.(err);
        return STORE_FAILURE_RETRY_SEC;
      }
    },
  };
}

export type FailureThrottle = ReturnType<typeof createFailureThrottle>;
