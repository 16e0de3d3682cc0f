import { request, type Dispatcher } from 'undici';
import { TokenRequestError } from '../errors.js';

/** An answer with its body parsed as JSON (undefined when it is not JSON). */
export interface JsonResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: unknown;
}

export interface SendOptions {
  method: 'GET' | 'POST';
  headers: Record<string, string>;
  body?: string;
  dispatcher: Dispatcher | undefined;
  timeoutMs: number;
  /** Aborts the request (e.g. on close); its reason is rethrown as is. */
  signal: AbortSignal;
  attempt: number;
}

/**
 * One HTTP exchange. Transport failures become `network_error` / `timeout`
 * TokenRequestErrors; an abort of `signal` rethrows its reason.
 */
export async function sendJson(url: URL, options: SendOptions): Promise<JsonResponse> {
  // The timeout bounds real I/O, so it uses a real (unref'd) timer, not the injected clock.
  const timeout = AbortSignal.timeout(options.timeoutMs);
  try {
    const response = await request(url, {
      method: options.method,
      headers: options.headers,
      body: options.body ?? null,
      dispatcher: options.dispatcher,
      signal: AbortSignal.any([options.signal, timeout]),
    });
    const text = await response.body.text();
    return { status: response.statusCode, headers: response.headers, body: parseJson(text) };
  } catch (err) {
    if (options.signal.aborted) throw options.signal.reason;
    if (timeout.aborted) {
      throw new TokenRequestError('timeout', `No answer from ${url.origin} within ${options.timeoutMs} ms`, {
        attempts: options.attempt,
      });
    }
    // undici's errors name the host, never the request's headers or body.
    throw new TokenRequestError('network_error', `Could not reach ${url.origin}`, { attempts: options.attempt, cause: err });
  }
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** The status codes worth another attempt: rate limiting and server errors. */
export function isTransientStatus(status: number): boolean {
  return status === 429 || status >= 500;
}

/** `Retry-After` (RFC 9110 §10.2.3) in ms from `now`: delay-seconds or an HTTP-date. */
export function retryAfterMs(value: string | string[] | undefined, now: number): number | undefined {
  const text = Array.isArray(value) ? value[0] : value;
  if (text === undefined || text.trim() === '') return undefined;
  if (/^\s*\d+\s*$/.test(text)) return Number(text) * 1000;
  const date = Date.parse(text);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
