import type { Clock } from '../clock.js';
import type { TokenRequestError } from '../errors.js';

/** How failed token requests are retried. */
export interface RetryPolicy {
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  maxRetryAfterMs: number;
}

/** One attempt's outcome: a value, or an error and whether another attempt may help. */
export type AttemptResult<T> =
  | { ok: true; value: T }
  | { ok: false; error: TokenRequestError; retryable: boolean; retryAfterMs?: number | undefined };

export interface RetryContext {
  policy: RetryPolicy;
  clock: Clock;
  random: () => number;
  signal: AbortSignal;
  onRetry: (attempt: number, delayMs: number, error: TokenRequestError) => void;
}

/**
 * Runs `attempt` until it succeeds, fails for good, or `maxAttempts` is
 * reached. Waits between attempts with exponential backoff and full jitter
 * (a random delay in [0, min(maxDelay, base·2^(n−1)))), or exactly what the
 * server's Retry-After asks for. A Retry-After beyond `maxRetryAfterMs` ends
 * the retries: waiting less would only be refused again.
 */
export async function withRetries<T>(attempt: (n: number) => Promise<AttemptResult<T>>, context: RetryContext): Promise<T> {
  const { policy } = context;
  for (let n = 1; ; n++) {
    const result = await attempt(n);
    if (result.ok) return result.value;
    const last = n >= policy.maxAttempts || !result.retryable;
    if (last || (result.retryAfterMs ?? 0) > policy.maxRetryAfterMs) throw result.error;
    const backoff = context.random() * Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (n - 1));
    const delayMs = result.retryAfterMs ?? Math.floor(backoff);
    context.onRetry(n, delayMs, result.error);
    await sleep(delayMs, context.clock, context.signal);
  }
}

/** Resolves after `ms` on `clock`; rejects with the signal's reason when it aborts. */
export function sleep(ms: number, clock: Clock, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clock.clearTimeout(handle);
      reject(signal.reason);
    };
    const handle = clock.setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
