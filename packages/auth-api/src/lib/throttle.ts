import type { Clock } from './clock.js';

/** Failures counted under one key in the current window. */
export interface Attempts {
  count: number;
  /** When the window ends, ms since the epoch. */
  resetAt: number;
}

/**
 * Where failure counters live. In memory by default; implement this over a
 * shared store (Redis `INCR` + `PEXPIRE`, a SQL table) so several instances
 * share one view of an attacker.
 */
export interface AttemptStore {
  get(key: string): Promise<Attempts | undefined>;
  /** Adds one failure; starts a window of `windowMs` if none is open. */
  increment(key: string, windowMs: number): Promise<Attempts>;
  reset(key: string): Promise<void>;
}

/** A fixed-window counter per key, bounded: past `maxKeys` the oldest window is dropped. */
export function createMemoryAttemptStore({ clock, maxKeys = 100_000 }: { clock: Clock; maxKeys?: number }): AttemptStore {
  const windows = new Map<string, Attempts>();
  const live = (key: string) => {
    const entry = windows.get(key);
    if (entry && entry.resetAt <= clock()) {
      windows.delete(key);
      return undefined;
    }
    return entry;
  };
  return {
    async get(key) {
      return live(key);
    },
    async increment(key, windowMs) {
      const entry = live(key);
      if (entry) {
        entry.count += 1;
        return { ...entry };
      }
      if (windows.size >= maxKeys) windows.delete(windows.keys().next().value!);
      const fresh = { count: 1, resetAt: clock() + windowMs };
      windows.set(key, fresh);
      return { ...fresh };
    },
    async reset(key) {
      windows.delete(key);
    },
  };
}

export interface FailureThrottleOptions {
  store: AttemptStore;
  clock: Clock;
  /** Namespace of the keys, e.g. `grant` or `login`. */
  name: string;
  windowMs: number;
  /** Failures allowed per (identity, IP) in a window. */
  perIdentityAndIp: number;
  /** Failures allowed per IP in a window, whatever the identity. */
  perIp: number;
}

/**
 * Throttles failed authentication per (identity, IP) and per IP. Only failures
 * count, so a client that authenticates correctly from its own address is
 * never slowed by an attacker elsewhere. Checked before any bcrypt work.
 */
export function createFailureThrottle({ store, clock, name, windowMs, perIdentityAndIp, perIp }: FailureThrottleOptions) {
  const keys = (identity: string, ip: string) => [`${name}:id:${identity}|${ip}`, `${name}:ip:${ip}`] as const;
  return {
    /** Seconds until the caller may try again, or undefined when not throttled. */
    async retryAfter(identity: string, ip: string): Promise<number | undefined> {
      const [pairKey, ipKey] = keys(identity, ip);
      const [pair, byIp] = await Promise.all([store.get(pairKey), store.get(ipKey)]);
      const blocked = [pair && pair.count >= perIdentityAndIp ? pair : undefined, byIp && byIp.count >= perIp ? byIp : undefined].filter((a) => a !== undefined);
      if (blocked.length === 0) return undefined;
      return Math.max(1, Math.ceil((Math.max(...blocked.map((a) => a.resetAt)) - clock()) / 1000));
    },
    async failed(identity: string, ip: string): Promise<void> {
      const [pairKey, ipKey] = keys(identity, ip);
      await Promise.all([store.increment(pairKey, windowMs), store.increment(ipKey, windowMs)]);
    },
    /** A success clears the (identity, IP) counter; the per-IP one runs its course. */
    async succeeded(identity: string, ip: string): Promise<void> {
      const [pairKey] = keys(identity, ip);
      if (await store.get(pairKey)) await store.reset(pairKey);
    },
  };
}

export type FailureThrottle = ReturnType<typeof createFailureThrottle>;
