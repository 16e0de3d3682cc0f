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
  /**
   * Adds one attempt and returns the new count; starts a window of `windowMs` if none is open.
   * `group` names the network the key belongs to ({@link networkKey}): a store short of room
   * may refuse new keys of a network that already holds many.
   */
  increment(key: string, windowMs: number, group?: string): Promise<Attempts>;
  /** Takes one attempt back (it succeeded, or was never tried), never below zero. A key back at zero may be dropped. */
  decrement(key: string): Promise<void>;
  reset(key: string): Promise<void>;
}

/** Thrown by the in-memory store when every slot holds a live window: nothing is evicted. */
export class AttemptStoreFullError extends Error {
  override name = 'AttemptStoreFullError';
}

/** Live keys a network may still add once the store is crowded: an address with no failures needs two (its own and one identity's). */
const CROWDED_KEYS_PER_NETWORK = 2;

/**
 * A fixed-window counter per key, bounded at `maxKeys`. A full store first
 * drops windows that have ended; it never drops a live one (that would hand
 * an attacker a way to wipe lockouts by flooding it with new keys) and
 * refuses the new key instead, so the throttle fails closed. A key taken back
 * to zero is dropped (it holds no failure). The last tenth of the room is
 * kept for networks holding fewer than two keys: once the store is that
 * crowded, a network that already holds many gets no new key, so a client
 * with no failures from elsewhere still gets counted and served. Keys per
 * address and window are bounded by design (see {@link createFailureThrottle}).
 */
export function createMemoryAttemptStore({ clock, maxKeys = 100_000 }: { clock: Clock; maxKeys?: number }): AttemptStore {
  interface Window extends Attempts {
    group: string | undefined;
  }
  // Insertion order = window start order, so the first entries are the first to end.
  const windows = new Map<string, Window>();
  // Live keys per network, for keys created with a group.
  const perGroup = new Map<string, number>();
  const crowdedAt = maxKeys - Math.max(1, Math.floor(maxKeys / 10));
  let lastSweep = Number.NEGATIVE_INFINITY;
  const drop = (key: string) => {
    const entry = windows.get(key);
    if (!entry) return;
    windows.delete(key);
    if (entry.group === undefined) return;
    const left = (perGroup.get(entry.group) ?? 1) - 1;
    if (left > 0) perGroup.set(entry.group, left);
    else perGroup.delete(entry.group);
  };
  const live = (key: string) => {
    const entry = windows.get(key);
    if (entry && entry.resetAt <= clock()) {
      drop(key);
      return undefined;
    }
    return entry;
  };
  /** Whether a new key of `group` fits, after dropping windows that have ended. */
  const makeRoom = (group: string | undefined) => {
    const now = clock();
    for (const [key, entry] of windows) {
      if (entry.resetAt > now) break;
      drop(key);
    }
    // Windows of different lengths can end out of order: a full sweep, at most once a second.
    if (windows.size >= crowdedAt && now - lastSweep >= 1000) {
      lastSweep = now;
      for (const [key, entry] of windows) if (entry.resetAt <= now) drop(key);
    }
    if (windows.size >= maxKeys) return false;
    return windows.size < crowdedAt || (group !== undefined && (perGroup.get(group) ?? 0) < CROWDED_KEYS_PER_NETWORK);
  };
  return {
    async increment(key, windowMs, group) {
      const entry = live(key);
      if (entry) {
        entry.count += 1;
        return { count: entry.count, resetAt: entry.resetAt };
      }
      if (windows.size >= crowdedAt && !makeRoom(group)) throw new AttemptStoreFullError('attempt store is full of live windows');
      const fresh: Window = { count: 1, resetAt: clock() + windowMs, group };
      windows.set(key, fresh);
      if (group !== undefined) perGroup.set(group, (perGroup.get(group) ?? 0) + 1);
      return { count: 1, resetAt: fresh.resetAt };
    },
    async decrement(key) {
      const entry = live(key);
      if (!entry) return;
      entry.count -= 1;
      if (entry.count <= 0) drop(key);
    },
    async reset(key) {
      drop(key);
    },
  };
}

/**
 * The address an attempt is counted under: IPv4 as is (also when mapped into
 * IPv6), IPv6 by its /64, which one subscriber usually holds whole.
 */
export function addressKey(ip: string): string {
  return ipPrefix(ip, 4);
}

/**
 * The network an address belongs to, for sharing limited room fairly: IPv4
 * as is, IPv6 by its /48 (a site; one holder commonly has 65,536 /64s).
 */
export function networkKey(ip: string): string {
  return ipPrefix(ip, 3);
}

/** IPv4 (also mapped into IPv6) as is; IPv6 cut to its first `groups` 16-bit groups. */
function ipPrefix(ip: string, groups: number): string {
  // No colon: IPv4 (every request's audit line passes here, so no regex for the common case).
  if (!ip.includes(':')) return ip;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip);
  if (mapped) return mapped[1]!;
  if (!isIPv6(ip)) return ip;
  const [head = '', tail = ''] = ip.toLowerCase().split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const all = ip.includes('::') ? [...left, ...Array(8 - left.length - right.length).fill('0'), ...right] : left;
  return `${all.slice(0, groups).map((g) => g.replace(/^0+(?=.)/, '')).join(':')}::/${groups * 16}`;
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
  /**
   * Store errors that mean "the database is unreachable": {@link begin} rethrows them, so the
   * attempt is refused as the database's other failures are (503 with Retry-After), not as throttled.
   */
  isUnavailable?: (err: unknown) => boolean;
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
  /**
   * The attempt was never tried (shed before its check): the identity's count
   * is taken back (its key dropped at zero, so shed requests fill no store),
   * the address's is not: a shed request still counts against its address.
   */
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
export function createFailureThrottle({ store, clock, name, windowMs, perIdentityAndIp, perIp, onTrip, onStoreError, isUnavailable }: FailureThrottleOptions) {
  const retryAfter = (resetAt: number) => Math.max(1, Math.ceil((resetAt - clock()) / 1000));
  const over = (key: string, attempts: Attempts, limit: number): number | undefined => {
    if (attempts.count <= limit) return undefined;
    const retryAfterSec = retryAfter(attempts.resetAt);
    if (attempts.count === limit + 1) onTrip?.({ throttle: name, key, limit, retryAfterSec });
    return retryAfterSec;
  };
  const ipKeyOf = (ip: string) => `${name}:ip:${addressKey(ip)}`;
  const failClosed = (err: unknown): Attempt => {
    if (isUnavailable?.(err)) throw err;
    onStoreError?.(err);
    return { retryAfterSec: STORE_FAILURE_RETRY_SEC, succeeded: async () => {}, abandoned: async () => {} };
  };

  return {
    async begin(identity: string, ip: string): Promise<Attempt> {
      const ipKey = ipKeyOf(ip);
      const pairKey = `${name}:id:${identity}|${addressKey(ip)}`;
      const group = networkKey(ip);
      let byIp: Attempts;
      try {
        byIp = await store.increment(ipKey, windowMs, group);
      } catch (err) {
        return failClosed(err);
      }
      const ipOver = over(ipKey, byIp, perIp);
      if (ipOver !== undefined) {
        // No per-identity key from an address over its limit.
        return { retryAfterSec: ipOver, succeeded: () => store.decrement(ipKey), abandoned: async () => {} };
      }
      let pair: Attempts;
      try {
        pair = await store.increment(pairKey, windowMs, group);
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
        abandoned: () => store.decrement(pairKey),
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
        return over(ipKey, await store.increment(ipKey, windowMs, networkKey(ip)), perIp);
      } catch (err) {
        onStoreError?.(err);
        return STORE_FAILURE_RETRY_SEC;
      }
    },
  };
}

export type FailureThrottle = ReturnType<typeof createFailureThrottle>;
