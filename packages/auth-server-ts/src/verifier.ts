import { createHmac, createSecretKey, type KeyObject, timingSafeEqual, type webcrypto } from 'node:crypto';
import { errors as joseErrors, type JWTClaimVerificationOptions, jwtVerify, type JWTHeaderParameters, type JWTVerifyOptions, UnsecuredJWT } from 'jose';
import type { Dispatcher } from 'undici';
import { ACCESS_TOKEN_TYP, type ServiceTokenClaims } from './claims.js';
import type { Clock } from './clock.js';
import { AuthServerError, TokenVerificationError, type TokenVerificationReason } from './errors.js';
import { keyIdForSecret } from './keys.js';
import { TokenCache } from './lib/token-cache.js';
import { isSafeOrigin } from './lib/urls.js';
import { isTimerDelay, MAX_TIMER_MS } from './lib/timers.js';
import { ASYMMETRIC_ALGORITHMS, importPublicJwk, type PublicJwk, type PublicKeyEntry, RemoteKeySet, verifySignature } from './lib/public-keys.js';
import { type FeedTokenSource, type RevocationEvent, RevocationFeed } from './lib/revocation-feed.js';

export type { PublicJwk } from './lib/public-keys.js';
export type { FeedTokenSource, RevocationEvent } from './lib/revocation-feed.js';

/**
 * The `revocation` option of {@link createServiceTokenVerifier}: keep a local
 * copy of the server's revocation feed, so tokens of revoked or disabled
 * credentials, and tokens revoked one by one (RFC 7009), are refused within
 * about `intervalMs` (reason `revoked`) without a request per token.
 */
export interface RevocationOptions {
  /**
   * The service token the feed is read with: a `ServiceTokenManager` (or any
   * `{ getToken() }`) of a credential holding `auth:revocations:read`, or a
   * function returning such a token.
   */
  token: FeedTokenSource | (() => string | Promise<string>);
  /** The feed. Default: `<issuer>/api/v1/oauth/revocations` (needs `issuer` to be one URL). */
  url?: string | URL;
  /** Time between two polls, in ms. Default 2,000: a revocation is refused within about 2 s plus one request (≤ 5 s). */
  intervalMs?: number;
  /** Timeout of one feed request and of getting its token (a source that does not answer in time is a failed read), and the longest a verify() waits for the first complete read, in ms. Default 2,500. */
  timeoutMs?: number;
  /**
   * When the feed has not been read completely for this long (ms), refuse
   * every token (reason `revocation_unavailable`) until it is; counted from
   * creation before the first read. Default: never (keep the last copy and keep
   * verifying; `onEvent` reports the failures). Before the first complete read
   * every token is refused (after waiting for it) whatever this is.
   */
  failClosedAfterMs?: number;
  /** Told of the poller's state changes (ready, sync_failed, recovered, fail_closed). */
  onEvent?: (event: RevocationEvent) => void;
}

/**
 * Algorithms a service-token verifier can allow: HMAC with the shared secret
 * (RFC 7518 §3.2), or ES256 / EdDSA with the server's published public keys
 * (RFC 7518 §3.4, RFC 8037).
 */
export type ServiceTokenAlgorithm = 'HS256' | 'HS384' | 'HS512' | 'ES256' | 'EdDSA';

type HmacAlgorithm = 'HS256' | 'HS384' | 'HS512';

/** A signing secret: a string (used as its UTF-8 bytes) or raw bytes. */
export type Secret = string | Uint8Array;

/** Options of {@link createServiceTokenVerifier}. */
export interface ServiceTokenVerifierOptions {
  /**
   * The current `JWT_ACCESS_SECRET` (at least 32 bytes, RFC 7518 §3.2), for
   * HS256 tokens. Omit it to trust only the server's public keys
   * (`jwksUri` / `publicKeys`): HS* tokens are then always refused.
   */
  secret?: Secret;
  /**
   * Where the server publishes its public keys (`https://auth.example.com/.well-known/jwks.json`),
   * for ES256 / EdDSA tokens. Fetched on first use, cached (Cache-Control max-age),
   * refetched at most once per `jwksCooldownMs` when a token names an unknown kid;
   * the last good key set keeps serving while the server is unreachable.
   */
  jwksUri?: string | URL;
  /** Find the JWKS URI in the RFC 8414 metadata of `issuer` (a single string) instead of configuring `jwksUri`. */
  discoverJwksUri?: boolean;
  /** Static public keys (JWKs with a `kid`, EC P-256 or Ed25519), e.g. pinned from the JWKS. Combined with `jwksUri` if both are given. */
  publicKeys?: readonly PublicJwk[];
  /** Least time between two JWKS fetches, in ms. Default 30,000. */
  jwksCooldownMs?: number;
  /** Timeout of one JWKS (or metadata) request, in ms. Default 5,000. */
  jwksTimeoutMs?: number;
  /** undici dispatcher for the JWKS requests. Default: undici's global one. */
  dispatcher?: Dispatcher;
  /**
   * Accept a `jwksUri` (or discovered `jwks_uri` / issuer metadata) over plain
   * `http:` on a non-loopback host. Default false: a key set fetched in clear
   * text can be replaced in transit by a forger's keys.
   */
  allowInsecureHttp?: boolean;
  /**
   * Longest accepted token lifetime, `exp − iat`, in seconds. Default 86,400
   * (24 h, the server's longest SERVICE_TOKEN_TTL). Tokens above it, or whose
   * `exp` / `iat` are not integers, are refused with reason `lifetime`.
   */
  maxTokenLifetimeSec?: number;
  /** Older secrets still accepted during a key rotation (`JWT_ACCESS_SECRET_PREVIOUS`). */
  previousSecrets?: readonly Secret[];
  /** Accepted `iss` value(s). Required; pass `false` to skip the check on purpose. */
  issuer: string | readonly string[] | false;
  /** Accepted `aud` value(s): the token must name one of them. Required; pass `false` to skip the check on purpose. */
  audience: string | readonly string[] | false;
  /**
   * Allowed `alg` header values. Default: `HS256` when `secret` is given, plus
   * `ES256` and `EdDSA` when public keys are (`jwksUri`, `discoverJwksUri`,
   * `publicKeys`). HS* needs `secret`; ES256 / EdDSA need public keys. `none` is never accepted.
   */
  algorithms?: readonly ServiceTokenAlgorithm[];
  /** Leeway for `exp`, `nbf` and `iat`, in seconds. Default 5. */
  clockToleranceSec?: number;
  /** Reject tokens whose `iat` is older than this many seconds (requires `iat`). Default: no limit. */
  maxTokenAgeSec?: number;
  /**
   * Cache of verified tokens, keyed by the whole token, so a token seen again
   * skips the signature check (expiry and scopes are still checked on every
   * call). Default `{ maxEntries: 1000 }`; `false` turns it off.
   */
  cache?: { maxEntries?: number } | false;
  /** Time source. Default: the system clock. */
  clock?: Pick<Clock, 'now'>;
  /**
   * Refuse revoked tokens: poll the server's revocation feed (docs/TRUST.md,
   * "Revocation"). Default: off. Call `close()` when done with the verifier.
   */
  revocation?: RevocationOptions;
}

/** Scopes a call to {@link ServiceTokenVerifier.verify} requires. */
export interface ScopeRequirement {
  /** Required scopes. Default: none. */
  scopes?: readonly string[];
  /** `'all'` (default): every scope is required; `'any'`: one of them is enough. */
  mode?: 'all' | 'any';
}

/** The verified caller of a service token. Frozen. */
export interface ServicePrincipal {
  /** The credential's `client_id`. */
  readonly clientId: string;
  /** The credential's display name (`service_name`). */
  readonly serviceName: string;
  /** The granted scopes. */
  readonly scopes: readonly string[];
  /** Every claim of the token. */
  readonly claims: Readonly<ServiceTokenClaims>;
}

/** Verifies service tokens locally. Created by {@link createServiceTokenVerifier}. */
export interface ServiceTokenVerifier {
  /**
   * Verifies `token` (the bare JWT, without `Bearer `) and the required scopes.
   * Rejects with a {@link TokenVerificationError}.
   *
   * @example const principal = await verifier.verify(token, { scopes: ['gsku:publish'] });
   */
  verify(token: string | null | undefined, requirement?: ScopeRequirement): Promise<ServicePrincipal>;
  /** Replaces the secrets (e.g. after a rotation) and clears the cache. */
  setSecrets(secrets: { secret: Secret; previousSecrets?: readonly Secret[] }): void;
  /** Empties the cache of verified tokens. */
  clearCache(): void;
  /**
   * With the `revocation` option: reads the feed now (joining a poll under
   * way); rejects if that fails. E.g. at start, so the first requests do not
   * wait for (or, if it fails, get refused until) the first read. Without the
   * option: resolves at once.
   */
  syncRevocations(): Promise<void>;
  /** Stops the revocation poller and background key fetches. The verifier keeps verifying with what it holds. */
  close(): void;
}

/**
 * Creates a local verifier for service tokens: JWTs with header
 * `typ: at+jwt` (RFC 9068) and claim `token_type: "service"`, signed either
 * with the platform's `JWT_ACCESS_SECRET` (HS256; a previous secret during a
 * rotation) or with the server's private key (ES256 / EdDSA, public keys from
 * `jwksUri` or `publicKeys`). Both at once while a platform moves from one to
 * the other; public keys only once it has (docs/TRUST.md).
 *
 * Issuer and audience are required; `issuer: false` / `audience: false` skips
 * that check explicitly. `exp` and `iat` are always required, and
 * `exp − iat` may not exceed `maxTokenLifetimeSec`.
 *
 * @example
 * // Asymmetric: the receiver holds no secret that could mint a token.
 * const verifier = createServiceTokenVerifier({
 *   jwksUri: 'https://auth.example.com/.well-known/jwks.json',
 *   issuer: 'https://auth.example.com',
 *   audience: 'billing-api',
 * });
 *
 * @example
 * const verifier = createServiceTokenVerifier({
 *   secret: process.env.JWT_ACCESS_SECRET!,
 *   previousSecrets: process.env.JWT_ACCESS_SECRET_PREVIOUS ? [process.env.JWT_ACCESS_SECRET_PREVIOUS] : [],
 *   issuer: 'https://auth.example.com',
 *   audience: 'billing-api',
 * });
 * const principal = await verifier.verify(token, { scopes: ['gsku:publish'] });
 */
export function createServiceTokenVerifier(options: ServiceTokenVerifierOptions): ServiceTokenVerifier {
  return new Verifier(options);
}

const HMAC_ALGORITHMS: ReadonlySet<string> = new Set<HmacAlgorithm>(['HS256', 'HS384', 'HS512']);
const ALGORITHMS: ReadonlySet<string> = new Set<string>([...HMAC_ALGORITHMS, ...ASYMMETRIC_ALGORITHMS]);
type CryptoKey = webcrypto.CryptoKey;

const HASH: Record<HmacAlgorithm, string> = { HS256: 'SHA-256', HS384: 'SHA-384', HS512: 'SHA-512' };
const DEFAULT_MAX_LIFETIME_SEC = 24 * 3600;
const EMPTY_KEYS: KeySet = { list: [], byKid: new Map(), headers: new Map() };
const MIN_SECRET_BYTES = 32;
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });
const DEFAULT_CACHE_ENTRIES = 1000;

/** One secret, imported once per allowed algorithm (jose would re-import raw bytes on every call). */
interface KeyEntry {
  kid: string;
  keys: Partial<Record<string, CryptoKey>>;
  /** The raw secret as a node:crypto key, for the synchronous HS256 signature check (see #verifyHs256). */
  hmacKey: KeyObject;
}

interface KeySet {
  /** Current first: the order kid-less tokens are tried in. */
  list: KeyEntry[];
  byKid: Map<string, KeyEntry>;
  /** Header segments already checked by platformHeader (bounded). */
  headers: Map<string, KnownHeader>;
}

interface KnownHeader {
  entry: KeyEntry;
  typ: unknown;
}

/** A verified token: its principal, and until when it may be served from the cache (exp, or the maxTokenAgeSec limit). */
interface CacheEntry {
  principal: ServicePrincipal;
  validUntilMs: number;
}

class Verifier implements ServiceTokenVerifier {
  readonly #algorithms: ServiceTokenAlgorithm[];
  readonly #joseOptions: JWTVerifyOptions;
  /** The claim checks of #joseOptions, for the synchronous paths. */
  readonly #claimOptions: JWTClaimVerificationOptions;
  /** Whether acceptedClaims knows every check of #claimOptions (else jose checks every claim). */
  readonly #fastClaims: boolean;
  readonly #clock: Pick<Clock, 'now'> | undefined;
  readonly #maxTokenAgeSec: number | undefined;
  readonly #maxLifetimeSec: number;
  readonly #clockToleranceSec: number;
  readonly #cache: TokenCache<ServicePrincipal> | undefined;
  /** HMAC keys; none when no secret is configured (asymmetric only). */
  #keys: Promise<KeySet> = Promise.resolve(EMPTY_KEYS);
  #readyKeys: KeySet | undefined = EMPTY_KEYS;
  readonly #hmac: boolean;
  /** Static public keys (`publicKeys`), by kid. */
  readonly #staticKeys = new Map<string, PublicKeyEntry>();
  readonly #remoteKeys: RemoteKeySet | undefined;
  readonly #revocations: RevocationFeed | undefined;
  /** verify() calls under way: above one, asymmetric signatures are checked on the thread pool, in parallel. */
  #active = 0;
  // Bumped on every key change so a verification that started with old keys
  // does not put its result into the freshly cleared cache.
  #generation = 0;

  constructor(options: ServiceTokenVerifierOptions) {
    if (typeof options !== 'object' || options === null) invalid('options must be an object');
    const issuer = checkExpected(options.issuer, 'issuer');
    const audience = checkExpected(options.audience, 'audience');
    const hasSecret = options.secret !== undefined;
    for (const [i, jwk] of (options.publicKeys ?? []).entries()) {
      const entry = importPublicJwk(jwk);
      if (typeof entry === 'string') invalid(`publicKeys[${i}] cannot be used: ${entry}`);
      this.#staticKeys.set(entry.kid, entry);
    }
    if (options.publicKeys !== undefined && !Array.isArray(options.publicKeys)) invalid('publicKeys must be a list of JWKs');
    let jwksUri: URL | undefined;
    if (options.jwksUri !== undefined) {
      jwksUri = URL.canParse(String(options.jwksUri)) ? new URL(String(options.jwksUri)) : undefined;
      if (jwksUri === undefined || (jwksUri.protocol !== 'https:' && jwksUri.protocol !== 'http:')) invalid('jwksUri must be an http(s) URL');
    }
    const allowInsecureHttp = options.allowInsecureHttp ?? false;
    if (typeof allowInsecureHttp !== 'boolean') invalid('allowInsecureHttp must be a boolean');
    if (jwksUri !== undefined && !isSafeOrigin(jwksUri, allowInsecureHttp)) {
      invalid('jwksUri uses plain http to a remote host, where the keys could be replaced in transit: use https, or set allowInsecureHttp: true');
    }
    if (options.discoverJwksUri && typeof issuer !== 'string') invalid('discoverJwksUri needs issuer to be a single URL');
    const remote = jwksUri !== undefined || options.discoverJwksUri === true;
    const hasPublicKeys = remote || this.#staticKeys.size > 0;
    if (!hasSecret && !hasPublicKeys) invalid('secret (HS256), or jwksUri / discoverJwksUri / publicKeys (ES256, EdDSA), is required');

    const algorithms = options.algorithms ?? [...(hasSecret ? (['HS256'] as const) : []), ...(hasPublicKeys ? (['ES256', 'EdDSA'] as const) : [])];
    if (!Array.isArray(algorithms) || algorithms.length === 0 || !algorithms.every((alg) => ALGORITHMS.has(alg))) {
      invalid(`algorithms must be a non-empty list of ${[...ALGORITHMS].join(', ')}`);
    }
    if (!hasSecret && algorithms.some((alg) => HMAC_ALGORITHMS.has(alg))) invalid('HS* algorithms need a secret: without one, only ES256 / EdDSA can be verified');
    if (!hasPublicKeys && algorithms.some((alg) => ASYMMETRIC_ALGORITHMS.has(alg))) invalid('ES256 / EdDSA need jwksUri, discoverJwksUri or publicKeys');
    const clockToleranceSec = options.clockToleranceSec ?? 5;
    if (!Number.isFinite(clockToleranceSec) || clockToleranceSec < 0) invalid('clockToleranceSec must be a number ≥ 0');
    const maxTokenAgeSec = options.maxTokenAgeSec;
    if (maxTokenAgeSec !== undefined && !(Number.isFinite(maxTokenAgeSec) && maxTokenAgeSec > 0)) {
      invalid('maxTokenAgeSec must be a number > 0 when given');
    }
    const maxLifetimeSec = options.maxTokenLifetimeSec ?? DEFAULT_MAX_LIFETIME_SEC;
    if (!(Number.isFinite(maxLifetimeSec) && maxLifetimeSec > 0)) invalid('maxTokenLifetimeSec must be a number > 0');
    const cooldownMs = options.jwksCooldownMs ?? 30_000;
    const timeoutMs = options.jwksTimeoutMs ?? 5_000;
    if (!(Number.isFinite(cooldownMs) && cooldownMs >= 0)) invalid('jwksCooldownMs must be a number ≥ 0');
    if (!isTimerDelay(timeoutMs, 1)) invalid(`jwksTimeoutMs must be a number of ms from 1 to ${MAX_TIMER_MS}`);
    if (options.dispatcher !== undefined && typeof options.dispatcher?.dispatch !== 'function') invalid('dispatcher must be an undici Dispatcher');
    const cache = options.cache ?? {};
    const maxEntries = cache === false ? 0 : (cache.maxEntries ?? DEFAULT_CACHE_ENTRIES);
    if (cache !== false && !(Number.isInteger(maxEntries) && maxEntries > 0)) {
      invalid('cache.maxEntries must be an integer > 0 (use cache: false to turn the cache off)');
    }

    this.#algorithms = [...new Set(algorithms)];
    this.#hmac = this.#algorithms.some((alg) => HMAC_ALGORITHMS.has(alg));
    this.#clock = options.clock;
    this.#maxTokenAgeSec = maxTokenAgeSec;
    this.#maxLifetimeSec = maxLifetimeSec;
    this.#clockToleranceSec = clockToleranceSec;
    this.#cache = cache === false ? undefined : new TokenCache(maxEntries);
    this.#remoteKeys = remote
      ? new RemoteKeySet({
          uri: jwksUri,
          issuer: typeof issuer === 'string' ? issuer : undefined,
          cooldownMs,
          timeoutMs,
          dispatcher: options.dispatcher,
          allowInsecureHttp,
          now: () => (this.#clock ? this.#clock.now() : Date.now()),
          // Tokens a removed key signed are checked again (and refused); verifications under way do not cache.
          onKeysRemoved: () => {
            this.#generation++;
            this.#cache?.clear();
          },
        })
      : undefined;
    this.#joseOptions = {
      algorithms: this.#algorithms,
      typ: ACCESS_TOKEN_TYP,
      clockTolerance: clockToleranceSec,
      requiredClaims: ['exp', 'iat'],
      ...(issuer === false ? {} : { issuer }),
      ...(audience === false ? {} : { audience }),
      ...(maxTokenAgeSec === undefined ? {} : { maxTokenAge: maxTokenAgeSec }),
    };
    const { algorithms: _algorithms, ...claimOptions } = this.#joseOptions;
    this.#claimOptions = claimOptions;
    this.#fastClaims = canCheckClaims(claimOptions);
    if (hasSecret) this.setSecrets(options as { secret: Secret; previousSecrets?: readonly Secret[] });
    this.#revocations = options.revocation === undefined ? undefined : this.#revocationFeed(options.revocation, issuer, options, allowInsecureHttp);
  }

  #revocationFeed(revocation: RevocationOptions, issuer: string | string[] | false, options: ServiceTokenVerifierOptions, allowInsecureHttp: boolean): RevocationFeed {
    if (typeof revocation !== 'object' || revocation === null) invalid('revocation must be an object');
    const { token, url, intervalMs = 2_000, timeoutMs = 2_500, failClosedAfterMs, onEvent } = revocation;
    const isSource = typeof token === 'object' && token !== null && typeof (token as FeedTokenSource).getToken === 'function';
    if (typeof token !== 'function' && !isSource) invalid('revocation.token must be a ServiceTokenManager (or { getToken() }) or a function returning a service token');
    let feedUrl: URL | undefined;
    if (url !== undefined) feedUrl = URL.canParse(String(url)) ? new URL(String(url)) : undefined;
    else if (typeof issuer === 'string' && URL.canParse(issuer)) feedUrl = new URL(`${issuer.replace(/\/+$/, '')}/api/v1/oauth/revocations`);
    else invalid('revocation.url is required when issuer is not a single URL');
    if (feedUrl === undefined || (feedUrl.protocol !== 'https:' && feedUrl.protocol !== 'http:')) invalid('revocation.url must be an http(s) URL');
    // The feed carries a bearer token, and an attacker in the path could hide revocations.
    if (!isSafeOrigin(feedUrl, allowInsecureHttp)) invalid('revocation.url uses plain http to a remote host: use https, or set allowInsecureHttp: true');
    // Timers wait these: past MAX_TIMER_MS, setTimeout fires at once (the feed polled in a loop).
    if (!isTimerDelay(intervalMs, 100)) invalid(`revocation.intervalMs must be a number of ms from 100 to ${MAX_TIMER_MS}`);
    if (!isTimerDelay(timeoutMs, 1)) invalid(`revocation.timeoutMs must be a number of ms from 1 to ${MAX_TIMER_MS}`);
    if (failClosedAfterMs !== undefined && !(Number.isFinite(failClosedAfterMs) && failClosedAfterMs > 0)) invalid('revocation.failClosedAfterMs must be a number > 0 when given');
    if (onEvent !== undefined && typeof onEvent !== 'function') invalid('revocation.onEvent must be a function');
    return new RevocationFeed({
      url: feedUrl,
      token,
      intervalMs,
      timeoutMs,
      failClosedAfterMs,
      maxTokenLifetimeSec: this.#maxLifetimeSec,
      dispatcher: options.dispatcher,
      now: () => (this.#clock ? this.#clock.now() : Date.now()),
      onEvent,
      // A new entry, or the fail-closed switch: every token is checked again on its next verification.
      onChange: () => this.#cache?.clear(),
    });
  }

  syncRevocations(): Promise<void> {
    return this.#revocations?.sync() ?? Promise.resolve();
  }

  close(): void {
    this.#revocations?.close();
    this.#remoteKeys?.close();
  }

  async #awaitFirstSync(feed: RevocationFeed): Promise<void> {
    try {
      await feed.firstSync();
    } catch {
      throw new TokenVerificationError('invalid_token', 'The revocation feed has not been read yet', { reason: 'revocation_unavailable' });
    }
  }

  /** Refuses a revoked token (feed on): two Map lookups, once per token (cached tokens skip it; see onChange). */
  #checkRevocation(principal: ServicePrincipal, feed: RevocationFeed): void {
    if (feed.failedClosed) {
      throw new TokenVerificationError('invalid_token', 'The revocation feed could not be read for too long (failClosedAfterMs)', { reason: 'revocation_unavailable' });
    }
    if (feed.isRevoked(principal.clientId, principal.claims.iat, principal.claims.jti)) {
      throw new TokenVerificationError('invalid_token', 'The token, or its credential, was revoked', { reason: 'revoked' });
    }
  }

  setSecrets(secrets: { secret: Secret; previousSecrets?: readonly Secret[] }): void {
    if (!this.#hmac) invalid('setSecrets: this verifier accepts no HS* algorithm (it was created without a secret)');
    const all = [secrets.secret, ...(secrets.previousSecrets ?? [])];
    all.forEach((secret, i) => checkSecret(secret, i === 0 ? 'secret' : `previousSecrets[${i - 1}]`));
    this.#generation++;
    this.#readyKeys = undefined;
    this.#cache?.clear();
    const keys = importKeys(all, this.#algorithms.filter((alg): alg is HmacAlgorithm => HMAC_ALGORITHMS.has(alg)));
    this.#keys = keys;
    // Swallow here so an unobserved failure is not an unhandled rejection;
    // verify() awaits #keys and sees it.
    keys.then(
      (ready) => {
        if (this.#keys === keys) this.#readyKeys = ready;
      },
      () => {},
    );
  }

  clearCache(): void {
    this.#cache?.clear();
  }

  async verify(token: string | null | undefined, requirement?: ScopeRequirement): Promise<ServicePrincipal> {
    if (typeof token !== 'string' || token === '') {
      throw new TokenVerificationError('missing_token', 'No bearer token was presented');
    }
    const now = this.#clock ? this.#clock.now() : Date.now();
    const hit = this.#cache?.get(token, now);
    if (hit !== undefined) {
      checkScopes(hit.scopes, requirement);
      return hit;
    }

    const generation = this.#generation;
    // Platform-shaped HS256 tokens are decided synchronously once the keys are imported: no await on the hot path.
    const fast = this.#readyKeys === undefined ? undefined : this.#verifyHs256(token, this.#readyKeys, now);
    let entry: CacheEntry;
    if (fast !== undefined) {
      entry = this.#toEntry(fast, now);
    } else {
      this.#active++;
      try {
        entry = await this.#verifyFresh(token, now);
      } finally {
        this.#active--;
      }
    }
    // Checked here, synchronously before caching: a cached token was not revoked when it was
    // cached, and the cache is emptied whenever the feed brings a change.
    if (this.#revocations !== undefined) {
      // Fail closed until the feed was read once: wait for that read (bounded by timeoutMs).
      if (!this.#revocations.ready) await this.#awaitFirstSync(this.#revocations);
      this.#checkRevocation(entry.principal, this.#revocations);
    }
    if (this.#cache !== undefined && generation === this.#generation && now < entry.validUntilMs) this.#cache.set(token, entry.principal, entry.validUntilMs);
    checkScopes(entry.principal.scopes, requirement);
    return entry.principal;
  }

  async #verifyFresh(token: string, now: number): Promise<CacheEntry> {
    const keys = this.#readyKeys ?? (await this.#keys);
    const options = this.#clock ? { ...this.#joseOptions, currentDate: new Date(now) } : this.#joseOptions;
    let payload: Record<string, unknown>;
    // Fast paths: a token exactly as the platform issues it (header {alg, typ, kid}, canonical
    // base64url) naming a key we hold is checked with node:crypto directly, then by jose's own
    // claim checks. Anything else takes jose's full path below, which decides the error as before.
    const hs256 = this.#verifyHs256(token, keys, now);
    if (hs256 !== undefined) return this.#toEntry(hs256, now);
    const parsed = parsePlatformToken(token);
    if (parsed !== undefined) {
      const asymmetric = await this.#verifyAsymmetric(parsed, now);
      if (asymmetric !== undefined) return this.#toEntry(asymmetric, now);
    }
    const direct = keyNamedBy(token, keys, this.#algorithms);
    if (direct !== undefined) {
      try {
        ({ payload } = await jwtVerify(token, direct, options));
      } catch (err) {
        throw toVerificationError(err);
      }
      return this.#toEntry(payload, now);
    }
    // Tokens carry a kid (keyIdForSecret, or the JWK thumbprint) that names the key; an HS*
    // token without one is tried against each configured secret in turn. An ES256 / EdDSA key
    // is only ever used for its own algorithm, and a secret only for HS*: no algorithm confusion.
    for (let index = 0; ; index++) {
      let kidless = false;
      const resolveKey = async (header: JWTHeaderParameters): Promise<CryptoKey | KeyObject> => {
        if (ASYMMETRIC_ALGORITHMS.has(header.alg)) {
          const entry = header.kid === undefined ? undefined : await this.#publicKey(header.kid);
          if (entry === undefined || entry.alg !== header.alg) throw unknownKey(this.#remoteKeys);
          return entry.key;
        }
        let entry: KeyEntry | undefined;
        if (header.kid === undefined) {
          kidless = true;
          entry = keys.list[index];
        } else {
          entry = keys.byKid.get(header.kid);
        }
        const key = entry?.keys[header.alg];
        if (key === undefined) throw unknownKey(undefined);
        return key;
      };
      try {
        ({ payload } = await jwtVerify(token, resolveKey, options));
        break;
      } catch (err) {
        const retry = kidless && err instanceof joseErrors.JWSSignatureVerificationFailed && index + 1 < keys.list.length;
        if (!retry) throw toVerificationError(err);
      }
    }
    return this.#toEntry(payload, now);
  }

  /**
   * The common case, checked synchronously: a token exactly as the platform
   * issues it (header `{alg: "HS256", typ, kid}` naming one of our keys). The
   * HMAC is computed with node:crypto and compared in constant time (about 10×
   * faster than WebCrypto through jose, whose work queues on the libuv pool).
   * A valid token is then accepted by {@link acceptedClaims}, which passes only
   * what jose's claim checks pass; anything else on a verified signature gets
   * jose's own decision and error (`UnsecuredJWT.decode` runs the same claim
   * checks as `jwtVerify`, with the same options). Returns undefined for any
   * other shape, which takes the full jose path below.
   */
  #verifyHs256(token: string, keys: KeySet, now: number): Record<string, unknown> | undefined {
    if (!this.#algorithms.includes('HS256')) return undefined;
    const [head, body, signature, extra] = token.split('.');
    if (extra !== undefined || !head || !body || !signature) return undefined;
    const header = platformHeader(head, keys);
    if (header === undefined) return undefined;
    const given = Buffer.from(signature, 'base64url');
    // Only canonical base64url is handled here; anything odd gets jose's own decoding and errors.
    if (given.toString('base64url') !== signature) return undefined;

    const expected = createHmac('sha256', header.entry.hmacKey).update(token.slice(0, head.length + body.length + 1)).digest();
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw toVerificationError(new joseErrors.JWSSignatureVerificationFailed());
    }
    const accepted = this.#fastClaims && header.typ === ACCESS_TOKEN_TYP ? acceptedClaims(body, this.#claimOptions, now) : undefined;
    if (accepted !== undefined) return accepted;
    return this.#joseClaims(header.typ, body, now);
  }

  /** A public key by kid: static keys first, then the JWKS (fetched if the kid is unknown and the cooldown allows). */
  async #publicKey(kid: string): Promise<PublicKeyEntry | undefined> {
    return this.#staticKeys.get(kid) ?? this.#remoteKeys?.peek(kid) ?? (await this.#remoteKeys?.get(kid));
  }

  /**
   * The ES256 / EdDSA case: node:crypto verifies the signature with the
   * KeyObject of the kid (imported once), then jose's claim checks as above.
   * Returns undefined for a shape it does not handle; refuses a kid it cannot find.
   */
  async #verifyAsymmetric(token: PlatformToken, now: number): Promise<Record<string, unknown> | undefined> {
    const { alg, kid } = token.header;
    if (!ASYMMETRIC_ALGORITHMS.has(alg) || !this.#algorithms.includes(alg as ServiceTokenAlgorithm)) return undefined;
    const entry = await this.#publicKey(kid);
    if (entry === undefined || entry.alg !== alg) throw unknownKey(this.#remoteKeys);
    // One verification at a time: on this thread, no hop. Several at once: on the thread pool, in parallel.
    const ok = verifySignature(entry, token.signingInput, token.signature, this.#active > 1);
    if (!(ok === true || (ok !== false && (await ok)))) {
      throw toVerificationError(new joseErrors.JWSSignatureVerificationFailed());
    }
    return this.#claims(token, now);
  }

  #claims(token: PlatformToken, now: number): Record<string, unknown> {
    return this.#joseClaims(token.header.typ, token.body, now);
  }

  /** jose's own claim checks (the same as jwtVerify's, same options and errors) on a payload whose signature was verified. */
  #joseClaims(typ: unknown, body: string, now: number): Record<string, unknown> {
    const unsigned = `${Buffer.from(JSON.stringify({ alg: 'none', typ })).toString('base64url')}.${body}.`;
    try {
      return UnsecuredJWT.decode(unsigned, { ...this.#claimOptions, currentDate: new Date(now) }).payload as Record<string, unknown>;
    } catch (err) {
      throw toVerificationError(err);
    }
  }

  #toEntry(payload: Record<string, unknown>, now: number): CacheEntry {
    // A lifetime cap in every mode: a forged or buggy token with a one-year (or infinite,
    // or fractional) lifetime is refused even when its signature is good. An `iat` in the
    // future would stretch the cap (iat ten years ahead, exp a day later): refused too.
    const { exp, iat } = payload;
    if (
      !Number.isSafeInteger(exp) ||
      !Number.isSafeInteger(iat) ||
      (exp as number) < (iat as number) ||
      (exp as number) - (iat as number) > this.#maxLifetimeSec ||
      (iat as number) > Math.floor(now / 1000) + this.#clockToleranceSec
    ) {
      throw new TokenVerificationError('invalid_token', `The token lifetime (exp − iat) is not an integer number of seconds up to ${this.#maxLifetimeSec}, or iat is in the future`, { reason: 'lifetime' });
    }
    if (payload.token_type !== 'service') {
      throw new TokenVerificationError('invalid_token', 'Not a service token (token_type must be "service")', { reason: 'token_type' });
    }
    const clientId = payload.client_id ?? payload.sub;
    if (typeof clientId !== 'string' || clientId === '') {
      throw new TokenVerificationError('invalid_token', 'The token has no client_id', { reason: 'claims' });
    }
    const scopes = readScopes(payload);
    if (scopes === undefined) {
      throw new TokenVerificationError('invalid_token', 'The scopes / scope claim is malformed', { reason: 'claims' });
    }
    const serviceName = typeof payload.service_name === 'string' ? payload.service_name : clientId;
    // scopes is the claim's own array when the token has one (frozen with the claims), else a new one from `scope`.
    Object.freeze(scopes);
    const claims = Object.freeze(payload) as unknown as ServiceTokenClaims;
    const principal: ServicePrincipal = Object.freeze({ clientId, serviceName, scopes, claims });

    let validUntilMs = (payload.exp as number) * 1000;
    if (this.#maxTokenAgeSec !== undefined) {
      validUntilMs = Math.min(validUntilMs, ((payload.iat as number) + this.#maxTokenAgeSec) * 1000);
    }
    return { principal, validUntilMs };
  }
}

function invalid(message: string): never {
  throw new AuthServerError('invalid_options', `createServiceTokenVerifier: ${message}`);
}

function checkExpected(value: unknown, name: 'issuer' | 'audience'): string | string[] | false {
  if (value === false) return false;
  if (typeof value === 'string' && value !== '') return value;
  if (Array.isArray(value) && value.length > 0 && value.every((v) => typeof v === 'string' && v !== '')) return [...value];
  return invalid(`${name} is required: a non-empty string or list of strings, or false to skip the ${name} check on purpose`);
}

function checkSecret(secret: unknown, name: string): void {
  const bytes = typeof secret === 'string' ? Buffer.byteLength(secret) : secret instanceof Uint8Array ? secret.byteLength : -1;
  if (bytes < 0) invalid(`${name} must be a string or a Uint8Array`);
  // RFC 7518 §3.2: an HMAC key must be at least as long as the hash output.
  if (bytes < MIN_SECRET_BYTES) invalid(`${name} is too short: at least ${MIN_SECRET_BYTES} bytes are required (RFC 7518 §3.2)`);
}

async function importKeys(secrets: readonly Secret[], algorithms: readonly HmacAlgorithm[]): Promise<KeySet> {
  const list = await Promise.all(
    secrets.map(async (secret): Promise<KeyEntry> => {
      const bytes = typeof secret === 'string' ? new TextEncoder().encode(secret) : secret;
      const keys: Partial<Record<string, CryptoKey>> = {};
      for (const alg of algorithms) {
        keys[alg] = await crypto.subtle.importKey('raw', bytes, { name: 'HMAC', hash: HASH[alg] }, false, ['verify']);
      }
      // Copies: the caller may clear or reuse its buffer (WebCrypto and createSecretKey both copy the bytes).
      return { kid: keyIdForSecret(secret), keys, hmacKey: createSecretKey(bytes) };
    }),
  );
  const byKid = new Map<string, KeyEntry>();
  // The current secret wins if an old one is configured again by mistake.
  for (const entry of [...list].reverse()) byKid.set(entry.kid, entry);
  return { list, byKid, headers: new Map() };
}

/** Distinct header segments remembered per key set: platform tokens share one per key, so a few suffice. */
const MAX_KNOWN_HEADERS = 16;

/**
 * The key and `typ` of a protected header shaped exactly as the platform's
 * (`{alg: "HS256", typ, kid}` in canonical base64url and strict UTF-8, naming
 * one of our keys), or undefined. Results are remembered by segment (bounded):
 * every token signed with one key carries the same header.
 */
function platformHeader(head: string, keys: KeySet): KnownHeader | undefined {
  const known = keys.headers.get(head);
  if (known !== undefined) return known;
  const header = decodePlatformHeader(head);
  const entry = header === undefined ? undefined : keys.byKid.get(header.kid);
  if (header?.alg !== 'HS256' || entry === undefined) return undefined;
  const result: KnownHeader = { entry, typ: header.typ };
  if (keys.headers.size < MAX_KNOWN_HEADERS) keys.headers.set(head, result);
  return result;
}

/** The options acceptedClaims implements; any other (a check added later) leaves every claim to jose. */
const CLAIM_OPTIONS_CHECKED = new Set(['typ', 'clockTolerance', 'requiredClaims', 'issuer', 'audience', 'maxTokenAge']);

function canCheckClaims(options: JWTClaimVerificationOptions): boolean {
  return (
    Object.keys(options).every((key) => CLAIM_OPTIONS_CHECKED.has(key)) &&
    options.typ === ACCESS_TOKEN_TYP &&
    typeof options.clockTolerance === 'number' &&
    (options.maxTokenAge === undefined || typeof options.maxTokenAge === 'number') &&
    JSON.stringify(options.requiredClaims) === '["exp","iat"]'
  );
}

/**
 * The claims of a payload whose signature was verified, when they pass every
 * check jose's `validateClaimsSet` makes with these options (typ `at+jwt`
 * already matched): canonical base64url, strict UTF-8, a JSON object, `exp`
 * present, a finite number and not past (with the tolerance), `iat` present and a number, `nbf`
 * numbers when present and `nbf` not in the future, `maxTokenAge` on `iat`,
 * issuer and audience. Undefined when any of them fails or is odd: jose then
 * decides and words the refusal. Held to jose's decisions by a property test.
 */
function acceptedClaims(body: string, options: JWTClaimVerificationOptions, now: number): Record<string, unknown> | undefined {
  const bytes = Buffer.from(body, 'base64url');
  if (bytes.toString('base64url') !== body) return undefined;
  let claims: Record<string, unknown>;
  try {
    claims = JSON.parse(STRICT_UTF8.decode(bytes));
  } catch {
    return undefined;
  }
  if (typeof claims !== 'object' || claims === null || Array.isArray(claims)) return undefined;
  const nowSec = Math.floor(now / 1000);
  const tolerance = options.clockTolerance as number;
  const { exp, nbf, iat } = claims;
  if (!Object.hasOwn(claims, 'exp') || typeof exp !== 'number' || !Number.isFinite(exp) || exp <= nowSec - tolerance) return undefined;
  if (nbf !== undefined && (typeof nbf !== 'number' || nbf > nowSec + tolerance)) return undefined;
  if (!Object.hasOwn(claims, 'iat') || typeof iat !== 'number') return undefined;
  if (options.maxTokenAge !== undefined) {
    if (!Object.hasOwn(claims, 'iat') || typeof iat !== 'number') return undefined;
    const age = nowSec - iat;
    if (age - tolerance > (options.maxTokenAge as number) || age < -tolerance) return undefined;
  }
  const { issuer, audience } = options;
  if (issuer !== undefined && (!Object.hasOwn(claims, 'iss') || !(typeof issuer === 'string' ? [issuer] : issuer).includes(claims.iss as string))) return undefined;
  if (audience !== undefined) {
    const expected = typeof audience === 'string' ? [audience] : audience;
    const aud = claims.aud;
    const present = typeof aud === 'string' ? expected.includes(aud) : Array.isArray(aud) && expected.some((a) => aud.includes(a));
    if (!Object.hasOwn(claims, 'aud') || !present) return undefined;
  }
  return claims;
}

/** The key a token's protected header names (kid, with an allowed alg), or undefined if it names none. */
function keyNamedBy(token: string, keys: KeySet, algorithms: readonly string[]): CryptoKey | undefined {
  const dot = token.indexOf('.');
  if (dot <= 0) return undefined;
  let header: unknown;
  try {
    header = JSON.parse(Buffer.from(token.slice(0, dot), 'base64url').toString());
  } catch {
    return undefined;
  }
  if (typeof header !== 'object' || header === null) return undefined;
  const { kid, alg } = header as { kid?: unknown; alg?: unknown };
  if (typeof kid !== 'string' || typeof alg !== 'string' || !algorithms.includes(alg)) return undefined;
  return keys.byKid.get(kid)?.keys[alg];
}

/** A token split as the platform issues it: header exactly {alg, kid, typ}, canonical base64url. */
interface PlatformToken {
  header: { alg: string; kid: string; typ: unknown };
  body: string;
  signingInput: string;
  signature: Buffer;
}

function parsePlatformToken(token: string): PlatformToken | undefined {
  const [head, body, signature, extra] = token.split('.');
  if (extra !== undefined || !head || !body || !signature) return undefined;
  const header = decodePlatformHeader(head);
  if (header === undefined) return undefined;
  const signatureBytes = Buffer.from(signature, 'base64url');
  if (signatureBytes.toString('base64url') !== signature) return undefined;
  return { header, body, signingInput: `${head}.${body}`, signature: signatureBytes };
}

/**
 * A protected header shaped exactly as the platform issues it: `{alg, kid, typ}`
 * with string alg and kid, in canonical base64url and strict UTF-8 (as jose
 * decodes). Undefined for anything looser, which gets jose's full path.
 */
function decodePlatformHeader(head: string): PlatformToken['header'] | undefined {
  const headerBytes = Buffer.from(head, 'base64url');
  if (headerBytes.toString('base64url') !== head) return undefined;
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(STRICT_UTF8.decode(headerBytes));
  } catch {
    return undefined;
  }
  if (typeof header !== 'object' || header === null || Object.keys(header).sort().join() !== 'alg,kid,typ') return undefined;
  if (typeof header.alg !== 'string' || typeof header.kid !== 'string') return undefined;
  return header as PlatformToken['header'];
}

function unknownKey(remote: RemoteKeySet | undefined): TokenVerificationError {
  if (remote !== undefined && !remote.loaded) {
    return new TokenVerificationError('invalid_token', 'The key set (JWKS) could not be fetched yet', { reason: 'jwks_unavailable' });
  }
  return new TokenVerificationError('invalid_token', 'The token was signed with an unknown key', { reason: 'unknown_key' });
}

function readScopes(payload: Record<string, unknown>): string[] | undefined {
  const { scopes, scope } = payload;
  if (Array.isArray(scopes)) return scopes.every((s) => typeof s === 'string') ? (scopes as string[]) : undefined;
  if (typeof scope === 'string') return scope.split(' ').filter((s) => s !== '');
  if (scopes === undefined && scope === undefined) return [];
  return undefined;
}

// A token carries a handful of scopes: a linear search beats building a Set for every token.
function checkScopes(granted: readonly string[], requirement: ScopeRequirement | undefined): void {
  const required = requirement?.scopes;
  if (required === undefined || required.length === 0) return;
  const any = requirement?.mode === 'any';
  const ok = any ? required.some((s) => granted.includes(s)) : required.every((s) => granted.includes(s));
  if (!ok) {
    throw new TokenVerificationError(
      'insufficient_scope',
      `The token lacks ${any ? 'any' : 'all'} of the required scopes: ${required.join(' ')}`,
      { requiredScopes: [...required] },
    );
  }
}

const CLAIM_REASONS: Partial<Record<string, TokenVerificationReason>> = {
  iss: 'issuer',
  aud: 'audience',
  typ: 'type',
  nbf: 'not_yet_valid',
};

function toVerificationError(err: unknown): TokenVerificationError {
  if (err instanceof TokenVerificationError) return err;
  if (err instanceof joseErrors.JWTExpired) {
    return err.claim === 'iat'
      ? new TokenVerificationError('token_expired', 'The token is older than maxTokenAgeSec', { reason: 'too_old', cause: err })
      : new TokenVerificationError('token_expired', 'The token expired', { cause: err });
  }
  if (err instanceof joseErrors.JWTClaimValidationFailed) {
    const reason = CLAIM_REASONS[err.claim] ?? 'claims';
    return new TokenVerificationError('invalid_token', `Claim check failed (${err.claim}: ${err.reason})`, { reason, cause: err });
  }
  if (err instanceof joseErrors.JWSSignatureVerificationFailed) {
    return new TokenVerificationError('invalid_token', 'The token signature is invalid', { reason: 'signature', cause: err });
  }
  if (err instanceof joseErrors.JOSEAlgNotAllowed || err instanceof joseErrors.JOSENotSupported) {
    return new TokenVerificationError('invalid_token', 'The token algorithm is not allowed', { reason: 'algorithm', cause: err });
  }
  // JWSInvalid, JWTInvalid and anything unexpected: refuse (fail closed).
  return new TokenVerificationError('invalid_token', 'The token is malformed', { reason: 'malformed', cause: err });
}
