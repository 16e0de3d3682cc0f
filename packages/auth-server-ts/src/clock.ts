/**
 * Time as the SDK sees it. Inject one to control expiry, renewal and backoff
 * in tests; the default is the system clock with `unref()`ed timers.
 *
 * @example
 * const clock: Clock = { now: () => fakeNow, setTimeout: …, clearTimeout: … };
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Calls `callback` after `ms`; must not keep the process alive. */
  setTimeout(callback: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

/** The system clock. Its timers are `unref()`ed so they never hold the process open. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (callback, ms) => setTimeout(callback, ms).unref(),
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
};
