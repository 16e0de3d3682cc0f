/**
 * Every code a {@link ServiceTokenModuleError} can carry. Stable: switch on it, never on the message.
 *
 * - `invalid_options`: `ServiceTokenModule.forRoot()` / `forRootAsync()` or a decorator got options it cannot use.
 * - `not_configured`: the calling side was used (`getToken()`, `fetch()`, …) but no `manager` options were given.
 * - `catalog_registration_failed`: the permission catalog could not be registered (see `status`, `error`).
 */
export type ServiceTokenModuleErrorCode = 'invalid_options' | 'not_configured' | 'catalog_registration_failed';

/**
 * The error of this package. Errors of the SDK underneath (`TokenRequestError`,
 * `TokenVerificationError`, `AuthServerError`) pass through unchanged or as `cause`.
 *
 * @example
 * catch (err) { if (err instanceof ServiceTokenModuleError && err.code === 'catalog_registration_failed') … }
 */
export class ServiceTokenModuleError extends Error {
  override name = 'ServiceTokenModuleError';
  readonly code: ServiceTokenModuleErrorCode;
  /** For `catalog_registration_failed`: the HTTP status of the auth server's answer, if there was one. */
  readonly status: number | undefined;
  /** For `catalog_registration_failed`: the auth server's error code (`forbidden`, `validation_failed`, `invalid_client`, …), if it sent one. */
  readonly error: string | undefined;
  /** For `catalog_registration_failed`: whether trying again later may succeed (network, timeout, 429, 5xx). */
  readonly retryable: boolean;

  constructor(
    code: ServiceTokenModuleErrorCode,
    message: string,
    details: { status?: number; error?: string; retryable?: boolean; cause?: unknown } = {},
  ) {
    super(message, { cause: details.cause });
    this.code = code;
    this.status = details.status;
    this.error = details.error;
    this.retryable = details.retryable ?? false;
  }
}

export function invalidOptions(message: string): never {
  throw new ServiceTokenModuleError('invalid_options', message);
}
