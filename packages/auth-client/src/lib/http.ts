import { AuthClientError, type AuthClientErrorCode, type ErrorDetail, type ServerErrorCode } from '../errors.js';
import type { TokenStorage } from '../storage.js';
import type { FetchLike, FetchResponse } from '../types.js';

export interface RequestOptions {
  /** Sent as JSON. */
  body?: unknown;
  /** Attach the stored token (default true). */
  auth?: boolean;
}

export type SendRequest = <T>(method: string, url: string, options?: RequestOptions) => Promise<T>;

// A record, so that a code added to ServerErrorCode and forgotten here fails the type check.
const SERVER_CODES = new Set<string>(
  Object.keys({
    validation_failed: true,
    unauthorized: true,
    forbidden: true,
    not_found: true,
    conflict: true,
    secret_limit: true,
    last_secret: true,
    unknown_scope: true,
    payload_too_large: true,
    headers_too_large: true,
    request_timeout: true,
    unsupported_media_type: true,
    rate_limited: true,
    service_unavailable: true,
    internal_error: true,
  } satisfies Record<ServerErrorCode, true>),
);

// For answers without our error body (a proxy's HTML page, an older server).
const CODE_BY_STATUS: Partial<Record<number, AuthClientErrorCode>> = {
  400: 'validation_failed',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  408: 'request_timeout',
  409: 'conflict',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  431: 'headers_too_large',
  429: 'rate_limited',
  500: 'internal_error',
  502: 'service_unavailable',
  503: 'service_unavailable',
  504: 'service_unavailable',
};

/** Largest answer read, in bytes: far above any real one. A longer body is cancelled, not buffered. */
export const MAX_RESPONSE_BYTES = 64 * 1024;

class TooLarge extends Error {}

/** The body as text, up to MAX_RESPONSE_BYTES; past it the stream is cancelled and TooLarge thrown. */
async function readCapped(response: FetchResponse): Promise<string> {
  const declared = Number(response.headers.get('content-length'));
  if (Number.isFinite(declared) && declared > MAX_RESPONSE_BYTES) {
    await response.body?.getReader().cancel().catch(() => {});
    throw new TooLarge();
  }
  if (!response.body) {
    // A response without a stream (a test double): its text, still bounded.
    const text = await response.text();
    if (new TextEncoder().encode(text).length > MAX_RESPONSE_BYTES) throw new TooLarge();
    return text;
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let size = 0;
  let text = '';
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return text + decoder.decode();
    size += value?.length ?? 0;
    if (size > MAX_RESPONSE_BYTES) {
      await reader.cancel().catch(() => {});
      throw new TooLarge();
    }
    text += decoder.decode(value, { stream: true });
  }
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null;

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function isDetail(value: unknown): value is ErrorDetail {
  return isObject(value) && typeof value.path === 'string' && typeof value.message === 'string';
}

function errorFromAnswer(response: FetchResponse, data: unknown, what: string): AuthClientError {
  const { status } = response;
  const body = isObject(data) ? data : undefined;
  const serverCode = typeof body?.error === 'string' && SERVER_CODES.has(body.error) ? (body.error as ServerErrorCode) : undefined;
  const code = serverCode ?? CODE_BY_STATUS[status] ?? 'http_error';
  const message =
    serverCode && typeof body?.message === 'string' ? body.message : `${what} answered HTTP ${status}${data === undefined ? ' with a body that is not JSON' : ''}`;
  const details = Array.isArray(body?.details) ? body.details.filter(isDetail) : undefined;
  // Only the delay-seconds form (RFC 9110 §10.2.3); the server never sends an HTTP date.
  const retryAfter = response.headers.get('retry-after');
  const retryAfterSec = retryAfter && /^\d+$/.test(retryAfter) ? Number(retryAfter) : undefined;
  return new AuthClientError(code, message, { status, details, retryAfterSec });
}

/**
 * The one place that talks HTTP: JSON in and out, the bearer token and the
 * app code attached, every failure turned into an AuthClientError.
 */
export function createRequest(fetch: FetchLike, storage: TokenStorage, appCode: string): SendRequest {
  return async function request<T>(method: string, url: string, { body, auth = true }: RequestOptions = {}): Promise<T> {
    const what = `${method} ${url}`;
    const token = auth ? ((await storage.get()) ?? undefined) : undefined;
    const headers: Record<string, string> = { accept: 'application/json', 'x-app-code': appCode };
    if (token) headers.authorization = `Bearer ${token}`;
    // No content-type without a body: the server refuses an empty JSON body.
    if (body !== undefined) headers['content-type'] = 'application/json';

    let response: FetchResponse;
    let text: string;
    try {
      response = await fetch(url, { method, headers, ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
      text = await readCapped(response);
    } catch (cause) {
      if (cause instanceof TooLarge) {
        throw new AuthClientError('invalid_response', `${what} answered with a body larger than ${MAX_RESPONSE_BYTES} bytes; check apiBaseUrl`, { status: response!.status });
      }
      throw new AuthClientError('network_error', `${what} failed: the server could not be reached`, { cause });
    }

    // The token is expired or revoked: forget it, unless another login replaced it meanwhile.
    if (response.status === 401 && token && (await storage.get()) === token) await storage.remove();

    const data = text === '' ? undefined : parseJson(text);
    if (!response.ok) throw errorFromAnswer(response, data, what);
    if (response.status === 204) return undefined as T;
    if (!isObject(data)) {
      throw new AuthClientError('invalid_response', `${what} answered HTTP ${response.status} without the expected JSON body; check apiBaseUrl`, {
        status: response.status,
      });
    }
    return data as T;
  };
}
