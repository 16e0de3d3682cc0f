import { fetch as undiciFetch, Headers, type Dispatcher, type RequestInit, type Response } from 'undici';
import { systemClock, type Clock } from './clock.js';
import { AuthServerError, TokenRequestError, type TokenRequestErrorCode } from './errors.js';
import { isLoopback } from './lib/urls.js';
import { isObject, isTransientStatus, retryAfterMs, sendJson, type JsonResponse } from './lib/http.js';
import { withRetries, type AttemptResult, type RetryContext, type RetryPolicy } from './lib/retry.js';
import { normalizeScopes } from './lib/scopes.js';
import { isTimerDelay, MAX_TIMER_MS } from './lib/timers.js';

/** How the client authenticates at the token endpoint (RFC 6749 §2.3.1). */
export type ClientAuthMethod = 'client_secret_basic' | 'client_secret_post';

/** Retry policy for transient failures (network error, timeout, 429, 5xx). */
export interface RetryOptions {
  /** Attempts in total, the first included. Default 4; 1 turns retries off. */
  maxAttempts?: number;
  /** Backoff base: attempt n waits a random time in [0, min(maxDelayMs, baseDelayMs·2^(n−1))). Default 200. */
  baseDelayMs?: number;
  /** Backoff ceiling. Default 10 000. */
  maxDelayMs?: number;
  /** A `Retry-After` longer than this ends the retries instead of waiting. Default 60 000. */
  maxRetryAfterMs?: number;
}

/** When a cached token is renewed, measured from when its request started. */
export interface RefreshOptions {
  /** Renew at least this many seconds before `expires_in` runs out. Default 60. */
  skewSec?: number;
  /** …and no later than this fraction of the lifetime. Default 0.8. */
  lifetimeFraction?: number;
  /** Renew up to this fraction of the lifetime earlier, at random, so a fleet does not renew in step. Default 0.05. */
  jitterFraction?: number;
  /**
   * `fetch()` renews its token on a 401 only when the token is at least this
   * many seconds old. A fresher token was not stale: the 401 is the
   * downstream's answer (wrong audience or scope, a key it does not know yet),
   * and a new grant would not change it. Default 30.
   */
  minAgeToRenewOn401Sec?: number;
}

/** Options of {@link ServiceTokenManager}. Give `tokenEndpoint` or `serverUrl`, not both. */
export interface ServiceTokenManagerOptions {
  /** The token endpoint, e.g. `https://auth.example.com/api/v1/oauth/token`. */
  tokenEndpoint?: string | URL;
  /**
   * The auth server's origin, e.g. `https://auth.example.com`: the token endpoint
   * is read once from `/.well-known/oauth-authorization-server` at its root (RFC 8414).
   */
  serverUrl?: string | URL;
  clientId: string;
  /**
   * The client secret, or a function (sync or async) that returns it, e.g. a
   * read from your secret manager. A function is called at the first token
   * request and again, once, after an `invalid_client` answer: when it then
   * returns another secret, the grant is retried once with it. So a service
   * picks up a rotated secret (`POST /admin/m2m-clients/:id/secrets`) without
   * a restart. Never appears in errors, events or logs.
   */
  clientSecret: string | (() => string | Promise<string>);
  /** Default `client_secret_basic`. */
  authMethod?: ClientAuthMethod;
  /** Scopes requested when `getToken()` names none. Default: none (the server grants all of the credential's). */
  scopes?: readonly string[];
  /** Audience requested when `getToken()` names none, sent as the `audience` form parameter. */
  audience?: string;
  /** Per-attempt timeout (connect, headers and body), in ms. Default 10 000. */
  requestTimeoutMs?: number;
  retry?: RetryOptions;
  refresh?: RefreshOptions;
  /** undici dispatcher (Agent, ProxyAgent, MockAgent…) for the token endpoint and for `fetch()`. Default: undici's global one. */
  dispatcher?: Dispatcher;
  /** Time source for expiry, renewal and backoff. Default: the system clock. */
  clock?: Clock;
  /** Random numbers in [0, 1) for jitter. Default `Math.random`. */
  random?: () => number;
  /** Called for every {@link ServiceTokenEvent}; route them to your logger. Errors it throws are ignored. */
  onEvent?: (event: ServiceTokenEvent) => void;
  /**
   * Allow plain `http:` to a non-loopback host (the secret, and the tokens `fetch()` attaches,
   * would travel unencrypted). Default `false`: http is accepted only for localhost / 127.0.0.0/8 / ::1.
   */
  allowInsecureHttp?: boolean;
  /**
   * The origins `fetch()` may send a token to, e.g. `['https://catalog.internal']`. Unset: any
   * origin that passes the https rule above. A token is a bearer credential: list the services
   * that should receive it, so a URL built from untrusted input cannot leak it.
   */
  fetchOrigins?: readonly (string | URL)[];
}

/** Per-call options of {@link ServiceTokenManager.getToken}. */
export interface GetTokenOptions {
  /** Scopes to request instead of the default ones. */
  scopes?: readonly string[];
  /** Audience to request instead of the default one. */
  audience?: string;
  /** Stops waiting (rejects with code `aborted`); a request shared with other callers goes on. */
  signal?: AbortSignal;
}

/** `fetch()` options plus the token to attach. */
export type ServiceFetchInit = RequestInit & { token?: Omit<GetTokenOptions, 'signal'> };

/** What the manager reports through `onEvent`. Carries no secret and no token. */
export type ServiceTokenEvent =
  | { type: 'token_request'; attempt: number; scopes: readonly string[]; audience: string | undefined; background: boolean }
  | { type: 'token_retry'; attempt: number; delayMs: number; code: TokenRequestErrorCode; status: number | undefined }
  | {
      type: 'token_acquired';
      scopes: readonly string[];
      audience: string | undefined;
      /** The lifetime the token is cached for: `expires_in`, at most 86,400 (24 h). */
      expiresInSec: number;
      renewInMs: number;
      background: boolean;
    }
  | {
      type: 'token_request_failed';
      scopes: readonly string[];
      audience: string | undefined;
      background: boolean;
      error: TokenRequestError;
    }
  | { type: 'token_invalidated'; scopes: readonly string[]; audience: string | undefined };

interface CachedToken {
  value: string;
  /** When the request that obtained it started. */
  obtainedAt: number;
  /** `Promise.resolve(value)`, made on the first cache hit and handed to every later one. */
  settled?: Promise<string>;
  expiresAt: number;
  renewAt: number;
  expiresInSec: number;
}

/** One cache entry per (sorted scopes, audience); the endpoint and client are the manager's own. */
interface Slot {
  scopes: readonly string[];
  audience: string | undefined;
  token: CachedToken | undefined;
  pending: Promise<CachedToken> | undefined;
  /** Handed out since it was fetched: only a token in use is renewed ahead of time. */
  used: boolean;
  timer: unknown;
}

const WELL_KNOWN = '/.well-known/oauth-authorization-server';
const NO_OPTIONS: GetTokenOptions = Object.freeze({});
/**
 * Longest time a token is cached, whatever `expires_in` says: the server's longest
 * SERVICE_TOKEN_TTL (24 h). A larger value is a fault (or a hostile answer); believed, it
 * would outlive the token's real `exp`, and past Node's timer limit (2^31 − 1 ms, about
 * 24.8 days) the renewal timer fires at once, every time: a renewal loop.
 */
const MAX_CACHED_LIFETIME_SEC = 24 * 3600;

function originOf(url: string): string | undefined {
  try {
    return new URL(url).origin;
  } catch {
    return undefined;
  }
}

/**
 * Gets service tokens with the OAuth 2.0 client_credentials grant (RFC 6749
 * §4.4), caches them per (scopes, audience), renews them before they expire,
 * shares one request among concurrent callers and retries transient failures.
 *
 * @example
 * const tokens = new ServiceTokenManager({
 *   serverUrl: 'https://auth.example.com',
 *   clientId: 'billing-svc',
 *   clientSecret: process.env.BILLING_SVC_SECRET!,
 *   scopes: ['gsku:publish'],
 * });
 * const res = await tokens.fetch('https://catalog.internal/api/publish', { method: 'POST', body });
 * await tokens.close();
 */
export class ServiceTokenManager {
  readonly #tokenEndpoint: URL | undefined;
  readonly #metadataUrl: URL | undefined;
  readonly #allowInsecureHttp: boolean;
  readonly #fetchOrigins: ReadonlySet<string> | undefined;
  readonly #clientId: string;
  readonly #authMethod: ClientAuthMethod;
  /** The clientSecret function; undefined when a string was given. */
  readonly #secretSource: (() => string | Promise<string>) | undefined;
  // The only place the secret lives: the current value, or the read of it under way.
  #secret: Promise<string> | undefined;
  /** `key`: the default slot's cache key, computed once (getToken() with no scopes or audience is the hot path). */
  readonly #defaults: { scopes: readonly string[]; audience: string | undefined; key: string };
  readonly #timeoutMs: number;
  readonly #retry: RetryPolicy;
  readonly #refresh: Required<RefreshOptions>;
  readonly #dispatcher: Dispatcher | undefined;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #onEvent: ((event: ServiceTokenEvent) => void) | undefined;
  readonly #slots = new Map<string, Slot>();
  readonly #lifetime = new AbortController();
  #discovered: Promise<URL> | undefined;
  #closed = false;
  /** Callers waiting in getToken(), and the timer that keeps the process alive meanwhile. */
  #waiting = 0;
  #keepAlive: ReturnType<typeof setInterval> | undefined;

  /** Validates the options; throws an `AuthServerError` with code `invalid_options`. No request is made yet. */
  constructor(options: ServiceTokenManagerOptions) {
    if (!isObject(options)) invalid('options must be an object');
    const allowInsecureHttp = options.allowInsecureHttp ?? false;
    if (typeof allowInsecureHttp !== 'boolean') invalid('allowInsecureHttp must be a boolean');
    this.#allowInsecureHttp = allowInsecureHttp;
    if (options.fetchOrigins !== undefined) {
      if (!Array.isArray(options.fetchOrigins) || options.fetchOrigins.length === 0) invalid('fetchOrigins must be a non-empty array of origins');
      this.#fetchOrigins = new Set(options.fetchOrigins.map((origin) => parseUrl(origin, 'fetchOrigins', allowInsecureHttp).origin));
    }

    if ((options.tokenEndpoint === undefined) === (options.serverUrl === undefined)) {
      invalid('give exactly one of tokenEndpoint (the token URL) or serverUrl (discovery via RFC 8414)');
    }
    if (options.tokenEndpoint !== undefined) {
      this.#tokenEndpoint = parseUrl(options.tokenEndpoint, 'tokenEndpoint', allowInsecureHttp);
    } else {
      const server = parseUrl(options.serverUrl, 'serverUrl', allowInsecureHttp);
      this.#metadataUrl = new URL(WELL_KNOWN, server.origin);
    }

    const { clientId, clientSecret } = options;
    if (typeof clientId !== 'string' || clientId === '') invalid('clientId must be a non-empty string');
    if (typeof clientSecret === 'function') this.#secretSource = clientSecret;
    else if (typeof clientSecret !== 'string' || clientSecret === '') invalid('clientSecret must be a non-empty string or a function returning one');
    else this.#secret = Promise.resolve(clientSecret);
    this.#clientId = clientId;
    const authMethod = options.authMethod ?? 'client_secret_basic';
    if (authMethod !== 'client_secret_basic' && authMethod !== 'client_secret_post') invalid(`authMethod must be 'client_secret_basic' or 'client_secret_post'`);
    this.#authMethod = authMethod;

    const scopes = checkScopes(options.scopes ?? [], 'scopes');
    const audience = checkAudience(options.audience, 'audience');
    this.#defaults = { scopes, audience, key: slotKey(scopes, audience) };
    this.#timeoutMs = timerDelay(options.requestTimeoutMs ?? 10_000, 'requestTimeoutMs', 1);

    const retry = options.retry ?? {};
    const maxAttempts = retry.maxAttempts ?? 4;
    if (!Number.isInteger(maxAttempts) || maxAttempts < 1) invalid('retry.maxAttempts must be an integer ≥ 1');
    this.#retry = {
      maxAttempts,
      baseDelayMs: timerDelay(retry.baseDelayMs ?? 200, 'retry.baseDelayMs', 0),
      maxDelayMs: timerDelay(retry.maxDelayMs ?? 10_000, 'retry.maxDelayMs', 0),
      maxRetryAfterMs: timerDelay(retry.maxRetryAfterMs ?? 60_000, 'retry.maxRetryAfterMs', 0),
    };

    const refresh = options.refresh ?? {};
    this.#refresh = {
      skewSec: nonNegative(refresh.skewSec ?? 60, 'refresh.skewSec'),
      lifetimeFraction: fraction(refresh.lifetimeFraction ?? 0.8, 'refresh.lifetimeFraction'),
      jitterFraction: fraction(refresh.jitterFraction ?? 0.05, 'refresh.jitterFraction'),
      minAgeToRenewOn401Sec: nonNegative(refresh.minAgeToRenewOn401Sec ?? 30, 'refresh.minAgeToRenewOn401Sec'),
    };

    if (options.dispatcher !== undefined && typeof options.dispatcher?.dispatch !== 'function') {
      invalid('dispatcher must be an undici Dispatcher');
    }
    this.#dispatcher = options.dispatcher;
    const clock = options.clock ?? systemClock;
    if (!['now', 'setTimeout', 'clearTimeout'].every((m) => typeof (clock as unknown as Record<string, unknown>)[m] === 'function')) {
      invalid('clock must have now(), setTimeout() and clearTimeout()');
    }
    this.#clock = clock;
    this.#random = options.random ?? Math.random;
    if (typeof this.#random !== 'function') invalid('random must be a function');
    if (options.onEvent !== undefined && typeof options.onEvent !== 'function') invalid('onEvent must be a function');
    this.#onEvent = options.onEvent;
  }

  /**
   * Resolves to a valid access token for the default (or given) scopes and
   * audience, from the cache when it can. Concurrent callers share one
   * request; failures are never cached. Rejects with a `TokenRequestError`,
   * or an `AuthServerError` coded `closed` / `aborted`.
   *
   * @example const token = await tokens.getToken({ scopes: ['gsku:publish'] });
   */
  getToken(options: GetTokenOptions = NO_OPTIONS): Promise<string> {
    let slot: Slot;
    try {
      throwIfAborted(options.signal);
      this.#throwIfClosed();
      slot = this.#slotFor(options);
    } catch (error) {
      return Promise.reject(error);
    }
    const cached = slot.token;
    const now = this.#clock.now();
    if (cached !== undefined && now < cached.expiresAt) {
      if (now >= cached.renewAt) this.#renewInBackground(slot);
      slot.used = true;
      // A cache hit is the hot path: no async frame, and one settled promise per token for every caller.
      return (cached.settled ??= Promise.resolve(cached.value));
    }
    return this.#awaitToken(slot, options.signal);
  }

  async #awaitToken(slot: Slot, signal: AbortSignal | undefined): Promise<string> {
    const token = await this.#keepingProcessAlive(abortable(this.#fetch(slot, false), signal));
    slot.used = true;
    return token.value;
  }

  /**
   * `Bearer <token>`, for an `Authorization` header (RFC 6750 §2.1).
   *
   * @example await undici.request(url, { headers: { authorization: await tokens.authorizationHeader() } });
   */
  async authorizationHeader(options?: GetTokenOptions): Promise<string> {
    return `Bearer ${await this.getToken(options)}`;
  }

  /**
   * Drops `token` from the cache if it is still the cached one, so the next
   * `getToken()` fetches a new one. Call it when a downstream API answers 401:
   * when many requests fail with the same token at once, only the first
   * eviction counts and they all share one renewal. Returns whether it evicted.
   */
  invalidate(token: string): boolean {
    for (const slot of this.#slots.values()) {
      if (slot.token?.value !== token) continue;
      slot.token = undefined;
      this.#clearTimer(slot);
      this.#emit({ type: 'token_invalidated', scopes: slot.scopes, audience: slot.audience });
      return true;
    }
    return false;
  }

  /**
   * undici `fetch` with `Authorization: Bearer <token>` attached. On a 401
   * it invalidates the token and retries once with a fresh one, when the
   * token is older than `refresh.minAgeToRenewOn401Sec` (a token obtained
   * seconds ago was not stale) and the body is not a stream (which cannot be
   * sent twice). Refuses, with code `destination_refused` and before any
   * token is requested, a URL that is plain http to a non-loopback host
   * (unless `allowInsecureHttp`) or outside `fetchOrigins`. Uses the
   * manager's dispatcher unless `init.dispatcher` is given.
   *
   * @example
   * const res = await tokens.fetch('https://catalog.internal/api/items', { token: { scopes: ['gsku:read'] } });
   */
  async fetch(input: string | URL, init: ServiceFetchInit = {}): Promise<Response> {
    const { token: tokenOptions, ...requestInit } = init;
    this.#checkDestination(input);
    const send = async () => {
      const token = await this.getToken({ ...tokenOptions, signal: requestInit.signal ?? undefined });
      const headers = new Headers(requestInit.headers);
      headers.set('authorization', `Bearer ${token}`);
      const response = await undiciFetch(input, {
        ...requestInit,
        headers,
        dispatcher: requestInit.dispatcher ?? this.#dispatcher,
      });
      return { token, response };
    };
    const first = await send();
    if (first.response.status !== 401 || !isReplayable(requestInit.body) || !this.#oldEnoughToRenew(first.token)) return first.response;
    await first.response.body?.cancel();
    this.invalidate(first.token);
    return (await send()).response;
  }

  /**
   * Stops renewal timers, aborts requests in flight and empties the cache;
   * later calls reject with code `closed`. Idempotent.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#lifetime.abort(new AuthServerError('closed', 'The ServiceTokenManager is closed'));
    const pending: Promise<unknown>[] = [];
    for (const slot of this.#slots.values()) {
      this.#clearTimer(slot);
      slot.token = undefined;
      if (slot.pending !== undefined) pending.push(slot.pending);
    }
    this.#slots.clear();
    await Promise.allSettled(pending);
  }

  /** The https rule of the token endpoint, and the allow-list, for where `fetch()` sends a token. */
  #checkDestination(input: string | URL): void {
    let url: URL;
    try {
      url = new URL(String(input));
    } catch {
      throw new AuthServerError('destination_refused', 'fetch() needs an absolute http(s) URL');
    }
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new AuthServerError('destination_refused', 'fetch() sends tokens over http(s) only');
    if (url.protocol === 'http:' && !this.#allowInsecureHttp && !isLoopback(url.hostname)) {
      throw new AuthServerError('destination_refused', `fetch() will not send a token over plain http to ${url.host}: use https, or set allowInsecureHttp: true`);
    }
    if (this.#fetchOrigins !== undefined && !this.#fetchOrigins.has(url.origin)) {
      throw new AuthServerError('destination_refused', `fetch() will not send a token to ${url.origin}: it is not in fetchOrigins`);
    }
  }

  /** Whether a 401 may renew `token`: it is no longer cached, or was obtained long enough ago. */
  #oldEnoughToRenew(token: string): boolean {
    for (const slot of this.#slots.values()) {
      if (slot.token?.value === token) return this.#clock.now() - slot.token.obtainedAt >= this.#refresh.minAgeToRenewOn401Sec * 1000;
    }
    return true;
  }

  #slotFor(options: GetTokenOptions): Slot {
    const scopes = options.scopes === undefined ? this.#defaults.scopes : checkScopes(options.scopes, 'getToken scopes');
    const audience = options.audience === undefined ? this.#defaults.audience : checkAudience(options.audience, 'getToken audience');
    const key = options.scopes === undefined && options.audience === undefined ? this.#defaults.key : slotKey(scopes, audience);
    let slot = this.#slots.get(key);
    if (slot === undefined) {
      slot = { scopes, audience, token: undefined, pending: undefined, used: false, timer: undefined };
      this.#slots.set(key, slot);
    }
    return slot;
  }

  /** The slot's request in flight, or a new one. Its result replaces the cached token. */
  #fetch(slot: Slot, background: boolean): Promise<CachedToken> {
    if (slot.pending !== undefined) return slot.pending;
    const pending = this.#requestToken(slot, background).then(
      (token) => {
        slot.pending = undefined;
        if (this.#closed) return token;
        slot.token = token;
        slot.used = false;
        this.#schedule(slot);
        const renewInMs = token.renewAt - this.#clock.now();
        this.#emit({ ...describe(slot), type: 'token_acquired', expiresInSec: token.expiresInSec, renewInMs, background });
        return token;
      },
      (error: unknown) => {
        slot.pending = undefined;
        if (error instanceof TokenRequestError) this.#emit({ ...describe(slot), type: 'token_request_failed', background, error });
        throw error;
      },
    );
    // Callers may stop waiting (abort); the rejection must not go unhandled.
    pending.catch(() => {});
    slot.pending = pending;
    return pending;
  }

  #renewInBackground(slot: Slot): void {
    if (slot.pending !== undefined || this.#closed) return;
    const renewing = slot.token;
    this.#fetch(slot, true).catch(() => {
      // Keep serving the still-valid token; try again after a pause rather than on every call.
      if (this.#closed || renewing === undefined || slot.token !== renewing) return;
      const renewAt = Math.min(renewing.expiresAt, this.#clock.now() + this.#retry.maxDelayMs);
      slot.token = { ...renewing, renewAt };
      this.#schedule(slot);
    });
  }

  #schedule(slot: Slot): void {
    this.#clearTimer(slot);
    const token = slot.token;
    if (token === undefined || this.#closed) return;
    const delay = Math.max(0, token.renewAt - this.#clock.now());
    slot.timer = this.#clock.setTimeout(() => {
      slot.timer = undefined;
      const current = slot.token;
      if (slot.used && current !== undefined && this.#clock.now() < current.expiresAt) this.#renewInBackground(slot);
    }, delay);
  }

  #clearTimer(slot: Slot): void {
    if (slot.timer === undefined) return;
    this.#clock.clearTimeout(slot.timer);
    slot.timer = undefined;
  }

  async #requestToken(slot: Slot, background: boolean): Promise<CachedToken> {
    const endpoint = await this.#endpoint();
    const secret = await this.#currentSecret();
    try {
      return await this.#grant(endpoint, slot, background, secret);
    } catch (error) {
      if (!(error instanceof TokenRequestError && error.error === 'invalid_client')) throw error;
      // The secret may have been rotated: ask the clientSecret function again, once, and retry once if it changed.
      const rotated = await this.#rotatedSecret(secret).catch(() => undefined);
      if (rotated === undefined) throw error;
      return this.#grant(endpoint, slot, background, rotated);
    }
  }

  /** The current secret (read from the clientSecret function the first time). */
  #currentSecret(): Promise<string> {
    this.#secret ??= this.#readSecret();
    return this.#secret;
  }

  #readSecret(): Promise<string> {
    const source = this.#secretSource!;
    const read = (async () => {
      let value: unknown;
      try {
        value = await source();
      } catch (cause) {
        throw new TokenRequestError('secret_unavailable', 'The clientSecret function failed', { attempts: 0, cause });
      }
      if (typeof value !== 'string' || value === '') throw new TokenRequestError('secret_unavailable', 'The clientSecret function returned no non-empty string', { attempts: 0 });
      return value;
    })();
    // A failed read is not kept: the next request asks again.
    read.catch(() => {
      if (this.#secret === read) this.#secret = undefined;
    });
    return read;
  }

  /**
   * After `used` was refused with invalid_client: a different secret to retry with, or undefined.
   * Requests refused together share one call of the clientSecret function.
   */
  async #rotatedSecret(used: string): Promise<string | undefined> {
    if (this.#secretSource === undefined) return undefined;
    const current = this.#secret;
    const known = current === undefined ? undefined : await current.catch(() => undefined);
    if (known === undefined || known === used) {
      if (this.#secret === current) this.#secret = this.#readSecret();
    }
    const next = await this.#currentSecret();
    return next === used ? undefined : next;
  }

  /** One client_credentials grant with `secret`, with retries for transient failures. */
  #grant(endpoint: URL, slot: Slot, background: boolean, secret: string): Promise<CachedToken> {
    const form = new URLSearchParams({ grant_type: 'client_credentials' });
    const headers: Record<string, string> = { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' };
    if (this.#authMethod === 'client_secret_basic') {
      // RFC 6749 §2.3.1: form-urlencode id and secret, then base64 "id:secret".
      headers.authorization = `Basic ${Buffer.from(`${formEncode(this.#clientId)}:${formEncode(secret)}`).toString('base64')}`;
    } else {
      form.set('client_id', this.#clientId);
      form.set('client_secret', secret);
    }
    if (slot.scopes.length > 0) form.set('scope', slot.scopes.join(' '));
    if (slot.audience !== undefined) form.set('audience', slot.audience);
    const body = form.toString();
    return withRetries(async (attempt) => {
      this.#emit({ ...describe(slot), type: 'token_request', attempt, background });
      const startedAt = this.#clock.now();
      const response = await this.#send(endpoint, attempt, { method: 'POST', headers, body });
      if (!('status' in response)) return response;
      if (response.status < 200 || response.status > 299) return this.#failure(response, attempt, 'The token endpoint');
      return this.#parseToken(response, startedAt, attempt);
    }, this.#retryContext());
  }

  /** The token endpoint: configured, or discovered once (RFC 8414); a failed discovery is retried by the next call. */
  #endpoint(): Promise<URL> {
    if (this.#tokenEndpoint !== undefined) return Promise.resolve(this.#tokenEndpoint);
    this.#discovered ??= this.#discover().catch((error: unknown) => {
      this.#discovered = undefined;
      throw error;
    });
    return this.#discovered;
  }

  async #discover(): Promise<URL> {
    const metadataUrl = this.#metadataUrl!;
    return withRetries(async (attempt) => {
      const response = await this.#send(metadataUrl, attempt, { method: 'GET', headers: { accept: 'application/json' } });
      if (!('status' in response)) return response;
      if (response.status !== 200) return this.#failure(response, attempt, 'The metadata endpoint');
      const endpoint = isObject(response.body) ? response.body.token_endpoint : undefined;
      let url: URL | undefined;
      try {
        url = typeof endpoint === 'string' ? parseUrl(endpoint, 'token_endpoint', this.#allowInsecureHttp) : undefined;
      } catch {
        url = undefined;
      }
      // RFC 8414 §3.3: the metadata must name the server it was fetched from, and the secret is
      // only ever sent to that origin, whatever a wrong or poisoned document says.
      const issuer = isObject(response.body) && typeof response.body.issuer === 'string' ? response.body.issuer : undefined;
      const expected = metadataUrl.origin;
      let problem: string | undefined;
      if (issuer === undefined || originOf(issuer) !== expected) {
        problem = `names the issuer ${quote(issuer)}, expected ${JSON.stringify(expected)} (the serverUrl it was fetched from: set the server's JWT_ISSUER to it, or use that issuer as serverUrl)`;
      } else if (url === undefined) {
        problem = `has no usable token_endpoint (found ${quote(endpoint)})`;
      } else if (url.origin !== expected) {
        problem = `names a token_endpoint on another origin (${url.origin}, expected ${expected})`;
      }
      if (problem !== undefined || url === undefined) {
        const error = new TokenRequestError('discovery_failed', `The metadata at ${metadataUrl.href} ${problem}`, {
          status: response.status,
          attempts: attempt,
        });
        return { ok: false, error, retryable: false };
      }
      return { ok: true, value: url };
    }, this.#retryContext());
  }

  /** One exchange; transport failures come back as a retryable result, an abort (close) rejects. */
  async #send(
    url: URL,
    attempt: number,
    request: { method: 'GET' | 'POST'; headers: Record<string, string>; body?: string },
  ): Promise<JsonResponse | AttemptResult<never>> {
    try {
      return await sendJson(url, {
        ...request,
        dispatcher: this.#dispatcher,
        timeoutMs: this.#timeoutMs,
        signal: this.#lifetime.signal,
        attempt,
      });
    } catch (error) {
      // A body too large to be a real answer is not a passing fault: not retried.
      if (error instanceof TokenRequestError) return { ok: false, error, retryable: error.code !== 'invalid_response' };
      throw error;
    }
  }

  /** A non-2xx answer: 429 and 5xx may be retried; other 4xx are final (RFC 6749 §5.2 errors keep their fields). */
  #failure(response: JsonResponse, attempt: number, what: string): AttemptResult<never> {
    const body = isObject(response.body) ? response.body : {};
    const error = typeof body.error === 'string' ? body.error : undefined;
    const errorDescription = typeof body.error_description === 'string' ? body.error_description : undefined;
    const transient = isTransientStatus(response.status);
    // RFC 6749 §5.2 errors come with 400 (or 401 for invalid_client); any other status with an
    // `error` field (a 404 from a wrong URL, a proxy's 403) is not the token endpoint speaking OAuth.
    const code = (response.status === 400 || response.status === 401) && error !== undefined ? 'oauth_error' : 'http_error';
    const message = `${what} answered ${response.status}${error === undefined ? '' : ` ${error}`}`;
    return {
      ok: false,
      error: new TokenRequestError(code, message, { error, errorDescription, status: response.status, attempts: attempt }),
      retryable: transient,
      retryAfterMs: transient ? retryAfterMs(response.headers['retry-after'], this.#clock.now()) : undefined,
    };
  }

  #parseToken(response: JsonResponse, startedAt: number, attempt: number): AttemptResult<CachedToken> {
    const body = isObject(response.body) ? response.body : {};
    const { access_token: value, token_type: tokenType, expires_in: rawExpiresIn } = body;
    const expiresInSec = typeof rawExpiresIn === 'number' ? rawExpiresIn : typeof rawExpiresIn === 'string' ? Number(rawExpiresIn) : NaN;
    const usable =
      typeof value === 'string' &&
      value !== '' &&
      typeof tokenType === 'string' &&
      tokenType.toLowerCase() === 'bearer' &&
      Number.isFinite(expiresInSec) &&
      expiresInSec > 0;
    if (!usable) {
      const error = new TokenRequestError(
        'invalid_response',
        'The token endpoint answered without a Bearer access_token and a positive expires_in',
        { status: response.status, attempts: attempt },
      );
      return { ok: false, error, retryable: false };
    }
    // Renew at the earlier of exp − skew and lifetimeFraction of the lifetime, minus
    // some jitter, counted from when the request started (the server's clock
    // started the lifetime no earlier than that).
    const lifetimeMs = Math.min(expiresInSec, MAX_CACHED_LIFETIME_SEC) * 1000;
    const { skewSec, lifetimeFraction, jitterFraction } = this.#refresh;
    const jitterMs = this.#random() * jitterFraction * lifetimeMs;
    const renewInMs = Math.max(0, Math.min(lifetimeMs - skewSec * 1000, lifetimeMs * lifetimeFraction) - jitterMs);
    return { ok: true, value: { value, obtainedAt: startedAt, expiresAt: startedAt + lifetimeMs, renewAt: startedAt + renewInMs, expiresInSec: lifetimeMs / 1000 } };
  }

  #retryContext(): RetryContext {
    return {
      policy: this.#retry,
      clock: this.#clock,
      random: this.#random,
      signal: this.#lifetime.signal,
      onRetry: (attempt, delayMs, error) =>
        this.#emit({ type: 'token_retry', attempt, delayMs, code: error.code, status: error.status }),
    };
  }

  #emit(event: ServiceTokenEvent): void {
    try {
      this.#onEvent?.(event);
    } catch {
      // A faulty listener must not break token handling.
    }
  }

  /**
   * Holds the process open while a caller waits on `promise`. The backoff and
   * renewal timers are unref'd (a cached token must never keep a server from
   * exiting), so without this a short-lived script whose token endpoint is
   * down would exit in the middle of a retry and its `await` would never settle.
   */
  async #keepingProcessAlive<T>(promise: Promise<T>): Promise<T> {
    // A real, ref'd timer: this is about the process's lifetime, not the injected clock's time.
    if (this.#waiting++ === 0) this.#keepAlive = setInterval(() => {}, 2 ** 31 - 1);
    try {
      return await promise;
    } finally {
      if (--this.#waiting === 0) {
        clearInterval(this.#keepAlive);
        this.#keepAlive = undefined;
      }
    }
  }

  #throwIfClosed(): void {
    if (this.#closed) throw new AuthServerError('closed', 'The ServiceTokenManager is closed');
  }
}

/** The cache key of a slot: its sorted scopes and audience. */
function slotKey(scopes: readonly string[], audience: string | undefined): string {
  return JSON.stringify([scopes, audience ?? null]);
}

function describe(slot: Slot): { scopes: readonly string[]; audience: string | undefined } {
  return { scopes: slot.scopes, audience: slot.audience };
}

/** A value from a server's answer, quoted and cut short for an error message. */
function quote(value: unknown): string {
  const text = JSON.stringify(value ?? null) ?? 'null';
  return text.length > 120 ? `${text.slice(0, 119)}…` : text;
}

function invalid(message: string): never {
  throw new AuthServerError('invalid_options', `ServiceTokenManager: ${message}`);
}

function parseUrl(value: unknown, name: string, allowInsecureHttp: boolean): URL {
  let url: URL;
  try {
    url = new URL(String(value));
  } catch {
    return invalid(`${name} must be an absolute URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') invalid(`${name} must be an https URL`);
  if (url.protocol === 'http:' && !allowInsecureHttp && !isLoopback(url.hostname)) {
    invalid(`${name} uses plain http to a remote host, which would send the client secret unencrypted: use https, or set allowInsecureHttp: true`);
  }
  return url;
}

function checkScopes(scopes: readonly string[], name: string): readonly string[] {
  return Object.freeze(normalizeScopes(scopes, `ServiceTokenManager: ${name}`));
}

function checkAudience(audience: unknown, name: string): string | undefined {
  if (audience !== undefined && (typeof audience !== 'string' || audience === '')) invalid(`${name} must be a non-empty string`);
  return audience as string | undefined;
}

/** A delay the manager waits with a timer: past MAX_TIMER_MS, setTimeout would fire at once (a retry loop). */
function timerDelay(value: number, name: string, min: number): number {
  if (!isTimerDelay(value, min)) invalid(`${name} must be a number of ms from ${min} to ${MAX_TIMER_MS} (the longest timer Node.js runs, about 24.8 days)`);
  return value;
}

function nonNegative(value: number, name: string): number {
  if (!(Number.isFinite(value) && value >= 0)) invalid(`${name} must be a number ≥ 0`);
  return value;
}

function fraction(value: number, name: string): number {
  if (!(Number.isFinite(value) && value >= 0 && value <= 1)) invalid(`${name} must be between 0 and 1`);
  return value;
}

/** application/x-www-form-urlencoded encoding of one value (RFC 6749 Appendix B). */
function formEncode(value: string): string {
  return new URLSearchParams({ v: value }).toString().slice(2);
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new AuthServerError('aborted', 'The operation was aborted', { cause: signal.reason });
}

/** Waits for `promise` unless `signal` aborts first; the promise itself goes on. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(new AuthServerError('aborted', 'The operation was aborted', { cause: signal.reason }));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort));
  });
}

/** Whether a request body can be sent a second time. Streams cannot. */
function isReplayable(body: unknown): boolean {
  if (body === undefined || body === null || typeof body === 'string') return true;
  if (typeof body !== 'object') return false;
  const candidate = body as Record<PropertyKey, unknown>;
  return typeof candidate.getReader !== 'function' && typeof candidate.pipe !== 'function' && !(Symbol.asyncIterator in candidate);
}
