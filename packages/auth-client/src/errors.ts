/** Codes the server sends in its error body `{error, message, details?}`. */
export type ServerErrorCode =
  | 'validation_failed'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'conflict'
  | 'secret_limit'
  | 'last_secret'
  | 'unknown_scope'
  | 'payload_too_large'
  | 'headers_too_large'
  | 'request_timeout'
  | 'unsupported_media_type'
  | 'rate_limited'
  | 'service_unavailable'
  | 'internal_error';

/**
 * Every code an {@link AuthClientError} can carry: the server's codes, plus
 * - `network_error`: no HTTP answer at all (DNS, refused connection, CORS, abort);
 * - `invalid_response`: a 2xx answer that is not the JSON expected (often a wrong `apiBaseUrl`);
 * - `incompatible_server`: `ready()` found no compatible auth server at that address;
 * - `http_error`: an error status with no recognisable body or code.
 */
export type AuthClientErrorCode = ServerErrorCode | 'network_error' | 'invalid_response' | 'incompatible_server' | 'http_error';

/** One field problem of a `validation_failed` error, e.g. `{path: 'body.client_id', message: '…'}`. */
export interface ErrorDetail {
  path: string;
  message: string;
}

/**
 * The one error this SDK throws. Switch on `code`, never on `message`.
 *
 * @example
 * try { await client.services.create(req); }
 * catch (err) {
 *   if (err instanceof AuthClientError && err.code === 'conflict') { … }
 * }
 */
export class AuthClientError extends Error {
  override name = 'AuthClientError';
  /** Stable code: the server's `error` field, or one of the client-side codes. */
  readonly code: AuthClientErrorCode;
  /** HTTP status of the answer; `0` when there was none (`network_error`). */
  readonly status: number;
  /** Field details, sent with `validation_failed`, `unknown_scope` (one per unknown scope) and `conflict` on catalogs. */
  readonly details: ErrorDetail[] | undefined;
  /** Seconds to wait before retrying, from the `Retry-After` header (`rate_limited`, `service_unavailable`). */
  readonly retryAfterSec: number | undefined;

  constructor(
    code: AuthClientErrorCode,
    message: string,
    options: { status?: number; details?: ErrorDetail[]; retryAfterSec?: number; cause?: unknown } = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = options.status ?? 0;
    this.details = options.details;
    this.retryAfterSec = options.retryAfterSec;
  }
}
