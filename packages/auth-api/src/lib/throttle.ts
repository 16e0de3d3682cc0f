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
 * and answers, so concurrent attempts cannot all slip under the limit.
 */
export interface AttemptStore {
  /** Adds one attempt and returns the new count; starts a window of `windowMs` if none is open. */
  increment(key: string, windowMs: number): Promise<Attempts>;
  /** Takes one attempt back (it succeeded), never below zero. */
  decrement(key: string): Promise<void>;
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
}

/**
 * Throttles failed authentication per (identity, address) and per address.
 * Every attempt is counted when it starts (atomically, so a burst of parallel
 * guesses cannot all pass the check) and taken back when it succeeds, so only
 * failures count: a client that authenticates correctly is never slowed by
 * its own traffic. Checked before any bcrypt work.
 */
export function createFailureThrottle({ store, clock, name, windowMs, perIdentityAndIp, perIp }: FailureThrottleOptions) {
  return {
    async begin(identity: string, ip: string): Promise<Attempt> {
      const address = addressKey(ip);
      const pairKey = `${name}:id:${identity}|${address}`;
      const ipKey = `${name}:ip:${address}`;
      const [pair, byIp] = await Promise.all([store.increment(pairKey, windowMs), store.increment(ipKey, windowMs)]);
      const over = [pair.count > perIdentityAndIp ? pair : undefined, byIp.count > perIp ? byIp : undefined].filter((a) => a !== undefined);
      const retryAfterSec = over.length === 0 ? undefined : Math.max(1, Math.ceil((Math.max(...over.map((a) => a.resetAt)) - clock()) / 1000));
      return {
        retryAfterSec,
        succeeded: async () => {
          await Promise.all([retryAfterSec === undefined ? store.reset(pairKey) : store.decrement(pairKey), store.decrement(ipKey)]);
        },
      };
    },
  };
}

export type FailureThrottle = ReturnType<typeof createFailureThrottle>;
