import type { LoggerService } from '@nestjs/common';
import { AuthServerError, type ServiceTokenManager, TokenRequestError } from '@rw3iss/auth-server-ts';
import { ServiceTokenModuleError } from './errors.js';
import type { ResolvedCatalog } from './service-token.options.js';

/** Where the catalog registration stands. */
export type CatalogRegistrationState = 'disabled' | 'pending' | 'registered' | 'retrying' | 'failed' | 'stopped';

/** The auth server's answer to a successful registration. */
export interface CatalogRegistrationResult {
  service: string;
  upserted_count: number;
  pruned_codes: string[];
}

// The answer is a few hundred bytes; a larger one is not the auth server's.
const MAX_ANSWER_BYTES = 64 * 1024;

/**
 * Registers the service's permission catalog (`POST /api/v1/admin/permissions/register`)
 * with the service's own token, at boot, under the module's failure policy.
 * Injectable (`CatalogRegistration`) so a health check can read `state`.
 */
export class CatalogRegistration {
  #state: CatalogRegistrationState;
  #result: CatalogRegistrationResult | undefined;
  #lastError: ServiceTokenModuleError | undefined;
  #timer: NodeJS.Timeout | undefined;
  readonly #lifetime = new AbortController();
  readonly #catalog: ResolvedCatalog | undefined;
  readonly #manager: ServiceTokenManager | undefined;
  readonly #logger: LoggerService;
  readonly #random: () => number;

  constructor(catalog: ResolvedCatalog | undefined, manager: ServiceTokenManager | undefined, logger: LoggerService, random: () => number = Math.random) {
    this.#catalog = catalog;
    this.#manager = manager;
    this.#logger = logger;
    this.#random = random;
    this.#state = catalog === undefined ? 'disabled' : 'pending';
  }

  /** `disabled` (no catalog configured), `pending`, `registered`, `retrying` (warn policy), `failed` (fail policy) or `stopped` (closed first). */
  get state(): CatalogRegistrationState {
    return this.#state;
  }

  /** The server's answer once registered. */
  get result(): CatalogRegistrationResult | undefined {
    return this.#result;
  }

  /** The last failure, if any. */
  get lastError(): ServiceTokenModuleError | undefined {
    return this.#lastError;
  }

  /** Called at `onApplicationBootstrap`: resolves once registered or handed to the background (warn); rejects to fail the boot (fail). */
  async start(): Promise<void> {
    const catalog = this.#catalog;
    if (catalog === undefined) return;
    if (catalog.onFailure === 'warn') {
      if (!(await this.#attempt(1))) this.#retryLater(1);
      return;
    }
    for (let attempt = 1; ; attempt++) {
      if (await this.#attempt(attempt)) return;
      const error = this.#lastError!;
      if (this.#state === 'stopped') throw error;
      if (!error.retryable || attempt >= catalog.maxAttempts) {
        this.#state = 'failed';
        throw error;
      }
      await this.#sleep(this.#delay(attempt));
    }
  }

  /** Stops background retries and aborts a registration in flight. Idempotent. */
  stop(): void {
    if (this.#state === 'pending' || this.#state === 'retrying') this.#state = 'stopped';
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#lifetime.abort(new AuthServerError('closed', 'The application is closing'));
  }

  #retryLater(attempt: number): void {
    if (this.#lifetime.signal.aborted) return;
    this.#state = 'retrying';
    const delay = this.#delay(attempt);
    this.#logger.warn(`Permission catalog of "${this.#catalog!.service}": trying again in ${Math.round(delay / 1000)} s`, 'ServiceTokenModule');
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#attempt(attempt + 1).then((ok) => {
        if (!ok) this.#retryLater(attempt + 1);
      });
    }, delay).unref();
  }

  /** One registration; true when registered. Never rejects. */
  async #attempt(attempt: number): Promise<boolean> {
    const catalog = this.#catalog!;
    try {
      this.#result = await this.#register(catalog);
      this.#state = 'registered';
      this.#lastError = undefined;
      const pruned = this.#result.pruned_codes.length > 0 ? `, pruned ${this.#result.pruned_codes.join(' ')}` : '';
      this.#logger.log(`Permission catalog of "${catalog.service}" registered: ${this.#result.upserted_count} upserted${pruned}`, 'ServiceTokenModule');
      return true;
    } catch (err) {
      const error = this.#lifetime.signal.aborted
        ? new ServiceTokenModuleError('catalog_registration_failed', `Permission catalog of "${catalog.service}": stopped, the application is closing`, { cause: err })
        : toRegistrationError(err, catalog.service);
      this.#lastError = error;
      if (this.#lifetime.signal.aborted) {
        this.#state = 'stopped';
      } else {
        const level = catalog.onFailure === 'warn' ? 'warn' : 'error';
        this.#logger[level](`${error.message} (attempt ${attempt})`, 'ServiceTokenModule');
      }
      return false;
    }
  }

  async #register(catalog: ResolvedCatalog): Promise<CatalogRegistrationResult> {
    const response = await this.#manager!.fetch(catalog.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ service: catalog.service, permissions: catalog.permissions }),
      token: { scopes: catalog.scopes },
      signal: this.#lifetime.signal,
    });
    const text = await readCapped(response);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = undefined;
    }
    const fields = typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {};
    if (response.status !== 200) {
      const error = typeof fields.error === 'string' ? fields.error : undefined;
      const retryable = response.status === 429 || response.status >= 500;
      throw new ServiceTokenModuleError(
        'catalog_registration_failed',
        `Permission catalog of "${catalog.service}": ${catalog.url.href} answered ${response.status}${error === undefined ? '' : ` ${error}`}`,
        { status: response.status, error, retryable },
      );
    }
    if (typeof fields.upserted_count !== 'number' || !Array.isArray(fields.pruned_codes)) {
      throw new ServiceTokenModuleError(
        'catalog_registration_failed',
        `Permission catalog of "${catalog.service}": ${catalog.url.href} answered 200 without {upserted_count, pruned_codes}`,
        { status: 200, retryable: false },
      );
    }
    return { service: catalog.service, upserted_count: fields.upserted_count, pruned_codes: fields.pruned_codes.map(String) };
  }

  /** Exponential backoff with jitter: a random delay in [½, 1] × min(max, base·2^(attempt−1)). */
  #delay(attempt: number): number {
    const catalog = this.#catalog!;
    const ceiling = Math.min(catalog.maxDelayMs, catalog.baseDelayMs * 2 ** (attempt - 1));
    return ceiling * (0.5 + this.#random() / 2);
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const onAbort = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.#lifetime.signal.removeEventListener('abort', onAbort);
        resolve();
      }, ms).unref();
      this.#lifetime.signal.addEventListener('abort', onAbort, { once: true });
    });
  }
}

async function readCapped(response: Awaited<ReturnType<ServiceTokenManager['fetch']>>): Promise<string> {
  const length = Number(response.headers.get('content-length'));
  if (Number.isFinite(length) && length > MAX_ANSWER_BYTES) {
    await response.body?.cancel();
    return '';
  }
  const text = await response.text();
  return text.length > MAX_ANSWER_BYTES ? '' : text;
}

/** A failure of the token request or of the registration, as one error with a caller-safe message. */
function toRegistrationError(err: unknown, service: string): ServiceTokenModuleError {
  if (err instanceof ServiceTokenModuleError) return err;
  const prefix = `Permission catalog of "${service}"`;
  if (err instanceof TokenRequestError) {
    // oauth_error (invalid_client, invalid_scope…) and a bad token response need an operator; the rest may pass.
    const retryable = err.code !== 'oauth_error' && err.code !== 'invalid_response';
    return new ServiceTokenModuleError('catalog_registration_failed', `${prefix}: no service token (${err.message})`, {
      status: err.status,
      error: err.error ?? err.code,
      retryable,
      cause: err,
    });
  }
  if (err instanceof AuthServerError) {
    return new ServiceTokenModuleError('catalog_registration_failed', `${prefix}: ${err.message}`, { error: err.code, cause: err });
  }
  // undici's fetch: network failures and timeouts.
  return new ServiceTokenModuleError('catalog_registration_failed', `${prefix}: the request failed (${(err as Error)?.message ?? 'unknown error'})`, {
    retryable: true,
    cause: err,
  });
}
