import { createPublicKey, type KeyObject, verify } from 'node:crypto';
import type { Dispatcher } from 'undici';
import { isObject, sendJson } from './http.js';
import { isSafeOrigin } from './urls.js';

/** Asymmetric algorithms a verifier can accept (RFC 7518 §3.4, RFC 8037 §3.1). */
export type AsymmetricAlgorithm = 'ES256' | 'EdDSA';
export const ASYMMETRIC_ALGORITHMS: ReadonlySet<string> = new Set<AsymmetricAlgorithm>(['ES256', 'EdDSA']);

/** A public key ready to verify: imported once, checked against its algorithm. */
export interface PublicKeyEntry {
  kid: string;
  alg: AsymmetricAlgorithm;
  key: KeyObject;
}

/** A public JSON Web Key (RFC 7517) as published at a JWKS URI: EC P-256 or Ed25519, with a `kid`. */
export interface PublicJwk {
  kty?: string;
  kid?: string | undefined;
  alg?: string;
  use?: string;
  crv?: string;
  x?: string;
  y?: string;
  /** Private material: a JWK carrying it is refused. */
  d?: string;
}

/**
 * The algorithm a JWK can verify, or a reason it cannot be used. The key type
 * decides (EC P-256 → ES256, OKP Ed25519 → EdDSA); a JWK whose `alg` says
 * otherwise, or that carries private material, is refused.
 */
export function importPublicJwk(jwk: unknown): PublicKeyEntry | string {
  if (!isObject(jwk)) return 'not a JSON object';
  if (typeof jwk.kid !== 'string' || jwk.kid === '') return 'has no kid';
  if ('d' in jwk) return `${jwk.kid}: contains a private key`;
  if (jwk.use !== undefined && jwk.use !== 'sig') return `${jwk.kid}: use is not "sig"`;
  let alg: AsymmetricAlgorithm;
  if (jwk.kty === 'EC' && jwk.crv === 'P-256') alg = 'ES256';
  else if (jwk.kty === 'OKP' && jwk.crv === 'Ed25519') alg = 'EdDSA';
  else return `${jwk.kid}: not an EC P-256 or Ed25519 key`;
  if (jwk.alg !== undefined && jwk.alg !== alg) return `${jwk.kid}: alg ${String(jwk.alg)} does not match the key type`;
  try {
    const { kty, crv, x, y } = jwk;
    const key = createPublicKey({ key: { kty, crv, x, ...(y === undefined ? {} : { y }) } as never, format: 'jwk' });
    return { kid: jwk.kid, alg, key };
  } catch {
    return `${jwk.kid}: not a valid public key`;
  }
}

/**
 * Checks a JWS signature over `input` with node:crypto (ES256 as the R||S
 * pair JWS uses). `offload`: on the libuv thread pool (several verifications
 * in parallel, as WebCrypto does) instead of on the calling thread (no hop:
 * faster for one verification at a time).
 */
export function verifySignature(entry: PublicKeyEntry, input: string, signature: Buffer, offload: boolean): boolean | Promise<boolean> {
  if (signature.length !== 64) return false;
  const digest = entry.alg === 'ES256' ? 'sha256' : null;
  const key = entry.alg === 'ES256' ? { key: entry.key, dsaEncoding: 'ieee-p1363' as const } : entry.key;
  if (!offload) return verify(digest, Buffer.from(input), key, signature);
  return new Promise((resolve, reject) => verify(digest, Buffer.from(input), key, signature, (err, ok) => (err ? reject(err) : resolve(ok))));
}

export interface RemoteKeySetOptions {
  /** The JWKS URI, or undefined to discover it from `issuer`'s RFC 8414 metadata. */
  uri: URL | undefined;
  issuer: string | undefined;
  cooldownMs: number;
  timeoutMs: number;
  dispatcher: Dispatcher | undefined;
  /** Accept a plain-http JWKS (or metadata) on a non-loopback host. */
  allowInsecureHttp: boolean;
  now(): number;
  /** Called when a fetched set drops or replaces a key the previous set had (the verifier empties its cache of verified tokens). */
  onKeysRemoved?: () => void;
}

/** Longest time a key set is used without a background refresh, whatever its Cache-Control says. */
const MAX_AGE_CAP_MS = 24 * 3600_000;
const DEFAULT_MAX_AGE_MS = 300_000;

/**
 * A remote JWKS (RFC 7517), cached. A kid it does not know triggers at most
 * one fetch per cooldown (shared by every caller), so a flood of tokens with
 * random kids costs one request. When a fetch fails, the last good key set
 * keeps serving. Once older than its Cache-Control max-age, the set is
 * refreshed in the background (also at most once per cooldown), so removed
 * keys go away.
 */
export class RemoteKeySet {
  readonly #options: RemoteKeySetOptions;
  #uri: URL | undefined;
  #keys: Map<string, PublicKeyEntry> | undefined;
  #fetchedAt = 0;
  #maxAgeMs = DEFAULT_MAX_AGE_MS;
  #attemptedAt = Number.NEGATIVE_INFINITY;
  #inflight: Promise<void> | undefined;
  readonly #closer = new AbortController();

  constructor(options: RemoteKeySetOptions) {
    this.#options = options;
    this.#uri = options.uri;
  }

  /** Cancels a fetch under way and every later one: the keys already loaded keep serving. */
  close(): void {
    this.#closer.abort();
  }

  /** Whether a key set was ever loaded. */
  get loaded(): boolean {
    return this.#keys !== undefined;
  }

  /** The key for `kid` from the cached set, without waiting; starts a background refresh when the set is stale. */
  peek(kid: string): PublicKeyEntry | undefined {
    if (this.#keys !== undefined && this.#options.now() - this.#fetchedAt >= this.#maxAgeMs) this.#refreshIfAllowed();
    return this.#keys?.get(kid);
  }

  /** The key for `kid`, fetching the set when it is unknown and the cooldown allows. */
  async get(kid: string): Promise<PublicKeyEntry | undefined> {
    const hit = this.peek(kid);
    if (hit !== undefined) return hit;
    const refresh = this.#inflight ?? this.#refreshIfAllowed();
    if (refresh !== undefined) await refresh;
    return this.#keys?.get(kid);
  }

  /** Fetches now unless a fetch is under way or the cooldown has not passed. */
  #refreshIfAllowed(): Promise<void> | undefined {
    if (this.#inflight !== undefined) return this.#inflight;
    const now = this.#options.now();
    if (now - this.#attemptedAt < this.#options.cooldownMs) return undefined;
    this.#attemptedAt = now;
    const flight = this.#fetch().finally(() => {
      this.#inflight = undefined;
    });
    this.#inflight = flight;
    return flight;
  }

  async #fetch(): Promise<void> {
    try {
      const uri = this.#uri ?? (await this.#discover());
      const response = await this.#get(uri);
      if (response.status !== 200 || !isObject(response.body) || !Array.isArray(response.body.keys)) return;
      const keys = new Map<string, PublicKeyEntry>();
      for (const jwk of response.body.keys) {
        const entry = importPublicJwk(jwk);
        // Keys of other types (RSA, encryption keys) may share the set: skipped, not fatal.
        if (typeof entry !== 'string' && !keys.has(entry.kid)) keys.set(entry.kid, entry);
      }
      const previous = this.#keys;
      this.#keys = keys;
      this.#fetchedAt = this.#options.now();
      // A key rotated out (e.g. after a leak): tokens it signed must not outlive it in a cache.
      if (previous !== undefined && [...previous].some(([kid, old]) => !keys.get(kid)?.key.equals(old.key))) this.#options.onKeysRemoved?.();
      this.#maxAgeMs = maxAgeOf(response.headers['cache-control'], this.#options.cooldownMs);
    } catch {
      // Down, slow or answering nonsense: keep the last good set (or none) until the next allowed attempt.
    }
  }

  async #discover(): Promise<URL> {
    const issuer = this.#options.issuer!;
    const metadataUrl = new URL(`${issuer.replace(/\/+$/, '')}/.well-known/oauth-authorization-server`);
    // Keys fetched over plain http from a remote host could be swapped in transit: a forger's key.
    if (!isSafeOrigin(metadataUrl, this.#options.allowInsecureHttp)) throw new Error('discovery failed');
    const response = await this.#get(metadataUrl);
    const body = response.body;
    // RFC 8414 §3.3: the metadata must name the issuer it was fetched for.
    if (response.status !== 200 || !isObject(body) || body.issuer !== issuer || typeof body.jwks_uri !== 'string') throw new Error('discovery failed');
    const uri = new URL(body.jwks_uri);
    if (!isSafeOrigin(uri, this.#options.allowInsecureHttp)) throw new Error('discovery failed');
    this.#uri = uri;
    return uri;
  }

  #get(url: URL) {
    return sendJson(url, {
      method: 'GET',
      headers: { accept: 'application/jwk-set+json, application/json' },
      dispatcher: this.#options.dispatcher,
      timeoutMs: this.#options.timeoutMs,
      signal: this.#closer.signal,
      attempt: 1,
    });
  }
}

function maxAgeOf(header: string | string[] | undefined, floorMs: number): number {
  const text = Array.isArray(header) ? header.join(',') : (header ?? '');
  const match = /(?:^|,)\s*max-age\s*=\s*(\d+)/i.exec(text);
  const ms = match ? Number(match[1]) * 1000 : DEFAULT_MAX_AGE_MS;
  return Math.min(Math.max(ms, floorMs), MAX_AGE_CAP_MS);
}
