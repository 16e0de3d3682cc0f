/**
 * Every code an error of this package can carry. Stable: switch on it, never
 * on the message.
 *
 * - `invalid_options`: a constructor or factory got options it cannot use.
 * - `closed`: the `ServiceTokenManager` was closed.
 * - `aborted`: the caller's `AbortSignal` fired.
 * - `destination_refused`: `ServiceTokenManager.fetch()` would have sent a token over
 *   plain http to a remote host, or to an origin outside `fetchOrigins`.
 * - `oauth_error`, `http_error`, `network_error`, `timeout`, `invalid_response`,
 *   `discovery_failed`, `secret_unavailable`: see {@link TokenRequestError}.
 * - `missing_token`, `invalid_token`, `token_expired`, `insufficient_scope`:
 *   see {@link TokenVerificationError}.
 */
export type AuthServerErrorCode =
  | 'invalid_options'
  | 'closed'
  | 'aborted'
  | 'destination_refused'
  | TokenRequestErrorCode
  | TokenVerificationErrorCode;

/**
 * Base class of every error this package throws.
 *
 * @example
 * try { await manager.getToken(); }
 * catch (err) { if (err instanceof AuthServerError && err.code === 'closed') … }
 */
export class AuthServerError extends Error {
  override name = 'AuthServerError';
  readonly code: AuthServerErrorCode;

  constructor(code: AuthServerErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/**
 * Why a token request failed.
 *
 * - `oauth_error`: the server answered with an RFC 6749 §5.2 error, a 400 or 401
 *   with an `error` field (`invalid_client`, `invalid_scope`, …); see `error`, `errorDescription`, `status`.
 * - `http_error`: any other non-2xx answer (a 404 from a wrong URL, 503 after the last retry, 429).
 * - `network_error`: the connection failed.
 * - `timeout`: no complete answer within `requestTimeoutMs`.
 * - `invalid_response`: a 2xx answer that is not a usable token response.
 * - `discovery_failed`: the RFC 8414 metadata names another issuer (the message names the
 *   one found and the one expected) or has no usable `token_endpoint` on its origin.
 * - `secret_unavailable`: the `clientSecret` function threw (its error is the `cause`) or
 *   returned no non-empty string; no request was made. The next call asks it again.
 */
export type TokenRequestErrorCode =
  | 'oauth_error'
  | 'http_error'
  | 'network_error'
  | 'timeout'
  | 'invalid_response'
  | 'discovery_failed'
  | 'secret_unavailable';

/**
 * A client_credentials token request (RFC 6749 §4.4) that failed, after
 * `attempts` attempts. Never contains the client secret.
 *
 * @example
 * catch (err) {
 *   if (err instanceof TokenRequestError && err.error === 'invalid_client') alertOps();
 * }
 */
export class TokenRequestError extends AuthServerError {
  override name = 'TokenRequestError';
  declare readonly code: TokenRequestErrorCode;
  /** The OAuth `error` (RFC 6749 §5.2) when the server sent one. */
  readonly error: string | undefined;
  /** The OAuth `error_description` when the server sent one. */
  readonly errorDescription: string | undefined;
  /** The HTTP status of the last answer, if there was one. */
  readonly status: number | undefined;
  /** How many HTTP requests were made before giving up. */
  readonly attempts: number;

  constructor(
    code: TokenRequestErrorCode,
    message: string,
    details: { error?: string; errorDescription?: string; status?: number; attempts?: number; cause?: unknown } = {},
  ) {
    super(code, message, { cause: details.cause });
    this.error = details.error;
    this.errorDescription = details.errorDescription;
    this.status = details.status;
    this.attempts = details.attempts ?? 1;
  }
}

/**
 * Why a presented token was refused.
 *
 * - `missing_token`: no bearer token (401, `WWW-Authenticate: Bearer`).
 * - `invalid_token`: malformed, bad signature, unknown key, wrong `alg`, `typ`,
 *   `token_type`, issuer or audience, not yet valid, too old (401).
 * - `token_expired`: `exp` has passed (401, reported as `invalid_token` on the wire).
 * - `insufficient_scope`: valid token without the required scope (403).
 */
export type TokenVerificationErrorCode = 'missing_token' | 'invalid_token' | 'token_expired' | 'insufficient_scope';

/**
 * Finer detail for `invalid_token`, for logs and tests. Not sent to the caller.
 */
export type TokenVerificationReason =
  | 'malformed'
  | 'signature'
  | 'unknown_key'
  | 'algorithm'
  | 'type'
  | 'token_type'
  | 'issuer'
  | 'audience'
  | 'claims'
  | 'not_yet_valid'
  | 'too_old'
  /** `exp − iat` above `maxTokenLifetimeSec`, or `exp` / `iat` not integers. */
  | 'lifetime'
  /** A JWKS-based verifier has never obtained the key set (the server was unreachable). */
  | 'jwks_unavailable'
  /** The revocation feed lists the token's jti, or its credential was revoked or disabled after the token was issued. */
  | 'revoked'
  /** `revocation.failClosedAfterMs` passed without a complete read of the revocation feed. */
  | 'revocation_unavailable';

// Fixed, caller-safe descriptions: the wire never says *why* a token failed
// beyond its code, and these stay within RFC 6750's quoted-string charset.
const DESCRIPTIONS: Record<TokenVerificationErrorCode, string> = {
  missing_token: 'A bearer token is required',
  invalid_token: 'The access token is invalid',
  token_expired: 'The access token expired',
  insufficient_scope: 'The access token lacks the required scope',
};

/**
 * A service token that was missing or refused, with its RFC 6750 HTTP mapping.
 *
 * @example
 * catch (err) {
 *   if (err instanceof TokenVerificationError) {
 *     res.writeHead(err.httpStatus, { 'www-authenticate': err.wwwAuthenticate() });
 *   }
 * }
 */
export class TokenVerificationError extends AuthServerError {
  override name = 'TokenVerificationError';
  declare readonly code: TokenVerificationErrorCode;
  /** Detail for `invalid_token` (and `token_expired`). */
  readonly reason: TokenVerificationReason | undefined;
  /** For `insufficient_scope`: the scopes the route asked for. */
  readonly requiredScopes: readonly string[];

  constructor(
    code: TokenVerificationErrorCode,
    message: string,
    details: { reason?: TokenVerificationReason; requiredScopes?: readonly string[]; cause?: unknown } = {},
  ) {
    super(code, message, { cause: details.cause });
    this.reason = details.reason;
    this.requiredScopes = details.requiredScopes ?? [];
  }

  /** 403 for `insufficient_scope`, 401 otherwise (RFC 6750 §3.1). */
  get httpStatus(): 401 | 403 {
    return this.code === 'insufficient_scope' ? 403 : 401;
  }

  /** A caller-safe description of the code (no verification detail). */
  get description(): string {
    return DESCRIPTIONS[this.code];
  }

  /**
   * The `WWW-Authenticate` header value (RFC 6750 §3):
   * `Bearer` for a missing token, `Bearer error="invalid_token", …` for a refused one,
   * `Bearer error="insufficient_scope", scope="…"` for a missing scope.
   */
  wwwAuthenticate(): string {
    switch (this.code) {
      case 'missing_token':
        return 'Bearer';
      case 'insufficient_scope':
        return `Bearer error="insufficient_scope", error_description="${this.description}", scope="${this.requiredScopes.join(' ')}"`;
      default:
        return `Bearer error="invalid_token", error_description="${this.description}"`;
    }
  }
}
