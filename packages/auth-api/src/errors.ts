/** Stable error codes of the management API (docs/API.md, "Errors outside OAuth"). Callers switch on these, never on messages. */
export type ApiErrorCode =
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

export const STATUS_BY_CODE: Record<ApiErrorCode, number> = {
  validation_failed: 400,
  unauthorized: 401,
  forbidden: 403,
  not_found: 404,
  conflict: 409,
  secret_limit: 409,
  last_secret: 409,
  unknown_scope: 400,
  payload_too_large: 413,
  headers_too_large: 431,
  request_timeout: 408,
  unsupported_media_type: 415,
  rate_limited: 429,
  service_unavailable: 503,
  internal_error: 500,
};

export interface ErrorDetail {
  path: string;
  message: string;
}

/** The one error type the server's own code throws. The error handler turns it into `{error, message, details?}`. */
export class ApiError extends Error {
  override name = 'ApiError';
  readonly status: number;
  /** For `rate_limited`: seconds until a retry may succeed (the Retry-After header). */
  readonly retryAfterSec: number | undefined;
  constructor(
    readonly code: ApiErrorCode,
    message: string,
    readonly details?: ErrorDetail[],
    options?: { cause?: unknown; retryAfterSec?: number },
  ) {
    super(message, options);
    this.status = STATUS_BY_CODE[code];
    this.retryAfterSec = options?.retryAfterSec;
  }
}

/** RFC 6749 §5.2 error codes of the token endpoint, plus 503 `temporarily_unavailable`. */
export type OAuthErrorCode =
  | 'invalid_request'
  | 'invalid_client'
  | 'unsupported_grant_type'
  | 'invalid_scope'
  | 'temporarily_unavailable'
  | 'server_error'
  | 'invalid_target'
  | 'slow_down'
  /** RFC 7009 §2.2.1: a token_type_hint naming a type the server does not have. */
  | 'unsupported_token_type'
  /** RFC 6749 §5.2: the authenticated client may not use this endpoint (introspection without its scope). */
  | 'unauthorized_client';

/** An error of the token endpoint, answered as `{error, error_description}`. */
export class OAuthError extends Error {
  override name = 'OAuthError';
  /** Seconds for the Retry-After header (429, 503). */
  readonly retryAfterSec: number | undefined;
  /** Already counted by the failure throttle (the route must not count it again). */
  readonly counted: boolean;
  /** What the audit trail records, when it is not the code (`throttled`, `shed`). */
  readonly outcome: string;
  constructor(
    readonly code: OAuthErrorCode,
    readonly description: string,
    readonly status: number = code === 'invalid_client' ? 401 : code === 'temporarily_unavailable' ? 503 : code === 'server_error' ? 500 : 400,
    options?: { cause?: unknown; retryAfterSec?: number; counted?: boolean; outcome?: string },
  ) {
    super(description, options);
    this.retryAfterSec = options?.retryAfterSec;
    this.counted = options?.counted ?? false;
    this.outcome = options?.outcome ?? (code === 'slow_down' ? 'throttled' : code);
  }
}
