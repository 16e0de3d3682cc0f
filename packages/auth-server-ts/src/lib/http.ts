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

/** Largest token-endpoint or metadata response read, in bytes: far above any real one. */
export const MAX_RESPONSE_BYTES = 64 * 1024;

/**
 * One HTTP exchange. Transport failures become `network_error` / `timeout`
 * TokenRequestErrors; a body past {@link MAX_RESPONSE_BYTES} is abandoned
 * (the connection is dropped) as `invalid_response`; an abort of `signal`
 * rethrows its reason.
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
    const text = await readCapped(response.body, response.headers['content-length'], url, options.attempt);
    return { status: response.statusCode, headers: response.headers, body: parseJson(text) };
  } catch (err) {
    if (options.signal.aborted) throw options.signal.reason;
    if (err instanceof TokenRequestError) throw err;
    if (timeout.aborted) {
      throw new TokenRequestError('timeout', `No answer from ${url.origin} within ${options.timeoutMs} ms`, {
        attempts: options.attempt,
      });
    }
    // undici's errors name the host, never the request's headers or body.
    throw new TokenRequestError('network_error', `Could not reach ${url.origin}`, { attempts: options.attempt, cause: err });
  }
}

/** The body as text, refusing (and destroying the stream) past MAX_RESPONSE_BYTES: a never-ending body cannot grow the caller. */
async function readCapped(body: Dispatcher.ResponseData['body'], contentLength: string | string[] | undefined, url: URL, attempt: number): Promise<string> {
  const tooLarge = () => {
    body.destroy();
    return new TokenRequestError('invalid_response', `${url.origin} answered with a body larger than ${MAX_RESPONSE_BYTES} bytes`, { attempts: attempt });
  };
  if (typeof contentLength === 'string' && Number(contentLength) > MAX_RESPONSE_BYTES) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_RESPONSE_BYTES) throw tooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
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
