import { hash, randomUUID } from 'node:crypto';
import { ACCESS_TOKEN_TYP, keyIdForSecret, type ServiceTokenClaims } from '@rw3iss/auth-server-ts';
import { errors as joseErrors, importJWK, type JWK, jwtVerify } from 'jose';
import type { ServiceTokenSigner } from '../modules/signing-keys/signing-keys.service.js';
import type { Clock } from './clock.js';

export interface TokenKeys {
  secret: string;
  /** Still accepted by the service-token verifier during a key rotation. */
  previousSecret?: string | undefined;
  issuer: string;
  audience: string;
}

/** SHA-256's block size in bytes (RFC 6234). */
const SHA256_BLOCK = 64;

/**
 * HMAC-SHA256 (RFC 2104) under one key: `H((K ⊕ opad) ‖ H((K ⊕ ipad) ‖ m))`, with the two padded
 * keys computed once. Node 20's `createHmac` looks its digest up in OpenSSL on every call; the
 * one-shot `crypto.hash` keeps the one it looked up, and in the serving process that difference
 * is most of the token signature's cost (docs/BENCHMARKS.md). Equal to `createHmac('sha256', key)` for every key and message, long keys
 * (hashed first) included: test/tokens.test.ts compares the two and checks RFC 4231's vectors.
 */
export function hmacSha256(key: Uint8Array): (message: string | Uint8Array) => Buffer {
  const k = key.length > SHA256_BLOCK ? hash('sha256', key, 'buffer') : key;
  const inner = Buffer.alloc(SHA256_BLOCK, 0x36);
  const outer = Buffer.alloc(SHA256_BLOCK, 0x5c);
  for (let i = 0; i < k.length; i++) {
    inner[i]! ^= k[i]!;
    outer[i]! ^= k[i]!;
  }
  // The outer hash's input, (K ⊕ opad) ‖ H(inner): its second half is overwritten on every call,
  // which is safe because a call runs to its end without yielding.
  const outerInput = Buffer.alloc(SHA256_BLOCK + 32);
  outer.copy(outerInput);
  return (message) => {
    // (K ⊕ ipad) ‖ m, written into one buffer rather than encoded, then concatenated.
    const length = typeof message === 'string' ? Buffer.byteLength(message, 'utf8') : message.length;
    const innerInput = Buffer.allocUnsafe(SHA256_BLOCK + length);
    inner.copy(innerInput);
    if (typeof message === 'string') innerInput.write(message, SHA256_BLOCK, 'utf8');
    else innerInput.set(message, SHA256_BLOCK);
    hash('sha256', innerInput, 'buffer').copy(outerInput, SHA256_BLOCK);
    return hash('sha256', outerInput, 'buffer');
  };
}

type ServiceClaimsInput = Pick<ServiceTokenClaims, 'sub' | 'client_id' | 'service_name' | 'scopes'> & { aud?: string | string[] };

/**
 * Issues service tokens (RFC 9068 shape). Admins never get a JWT: their
 * bearer token is an opaque server-side session (modules/admin-auth), so no
 * signing key can mint admin access. HS256 signing is a single HMAC over
 * a pre-encoded header and the JSON payload: measured at ~30x jose's SignJWT
 * on a 2-core Node 20 machine (docs/API.md, "The service token"), and there is no parsing on this side, so
 * nothing for a library to guard. Verifiers use jose.
 *
 * `serviceSigner`, when it returns a signer (SERVICE_TOKEN_ALG ES256 / EdDSA),
 * signs service tokens with the current private key instead.
 */
export function createTokenIssuer(keys: TokenKeys, clock: Clock, serviceSigner: () => ServiceTokenSigner | undefined = () => undefined) {
  const kid = keyIdForSecret(keys.secret);
  const encodedHeader = Buffer.from(JSON.stringify({ alg: 'HS256', typ: ACCESS_TOKEN_TYP, kid })).toString('base64url');
  const mac = hmacSha256(Buffer.from(keys.secret, 'utf8'));

  function sign(payload: Record<string, unknown>): string {
    const input = `${encodedHeader}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
    return `${input}.${mac(input).toString('base64url')}`;
  }

  function baseClaims(ttlSec: number) {
    const iat = Math.floor(clock() / 1000);
    return { iss: keys.issuer, iat, nbf: iat, exp: iat + ttlSec, jti: randomUUID() };
  }

  return {
    /** A service token for the client_credentials grant. */
    async serviceToken(input: ServiceClaimsInput, ttlSec: number): Promise<{ token: string; claims: ServiceTokenClaims }> {
      const { iss, iat, nbf, exp, jti } = baseClaims(ttlSec);
      const claims: ServiceTokenClaims = {
        iss,
        sub: input.sub,
        aud: input.aud ?? keys.audience,
        iat,
        nbf,
        exp,
        jti,
        token_type: 'service',
        client_id: input.client_id,
        service_name: input.service_name,
        scopes: input.scopes,
        scope: input.scopes.join(' '),
      };
      const signer = serviceSigner();
      return { token: signer ? await signer.sign(JSON.stringify(claims)) : sign(claims as unknown as Record<string, unknown>), claims };
    },
  };
}

export type TokenIssuer = ReturnType<typeof createTokenIssuer>;

/** Longest service-token lifetime any verifier here accepts: the largest SERVICE_TOKEN_TTL. */
const MAX_SERVICE_TOKEN_LIFETIME_SEC = 86_400;
const CLOCK_TOLERANCE_SEC = 5;

export interface ServiceTokenVerifierOptions {
  /** This server's published public keys (the JWKS), for ES256 / EdDSA tokens. */
  publishedKeys?: () => readonly JWK[];
  /**
   * Whether HS256 tokens (the shared JWT_ACCESS_SECRET) are accepted: true with
   * SERVICE_TOKEN_ALG=HS256. With ES256 / EdDSA every receiver holding the shared
   * secret could forge an HS256 token, so none is accepted.
   */
  acceptHs256: boolean;
  /**
   * Accept a token for any audience (this server's own tokens for any of a credential's
   * `allowed_audiences`): for revocation and introspection, which answer about every token the
   * server issued. Default false: the server's audience (`JWT_AUDIENCE`) only.
   */
  anyAudience?: boolean;
}

/**
 * The server's one verification of its own service tokens, for routes a
 * service calls with its token (catalog registration), with jose: `typ:
 * at+jwt`, issuer, audience, expiry; HS256 with the current or previous secret
 * chosen by `kid` (only in HS256 mode), or ES256 / EdDSA with this server's
 * published key of that kid and alg; the lifetime cap every verifier applies
 * (`exp − iat` integers up to 24 h, `iat` not in the future); and only
 * `token_type: "service"` with a consistent `client_id` and `scopes` passes.
 * Returns undefined for anything else. (Admins never hold a JWT: their bearer
 * token is a server-side session, modules/admin-auth.)
 *
 * Key handling (which algorithm and key signs service tokens) lives here and
 * only here, so a change of signing scheme changes this one function.
 */
export function createServiceTokenVerifier(keys: TokenKeys, clock: Clock, options: ServiceTokenVerifierOptions) {
  const encoder = new TextEncoder();
  const byKid = new Map<string, Uint8Array>([[keyIdForSecret(keys.secret), encoder.encode(keys.secret)]]);
  if (keys.previousSecret) byKid.set(keyIdForSecret(keys.previousSecret), encoder.encode(keys.previousSecret));
  const publishedKeys = options.publishedKeys ?? (() => []);
  // Public keys imported once each, by the published JWK object (a rotation publishes new objects).
  const imported = new WeakMap<JWK, ReturnType<typeof importJWK>>();
  const algorithms = options.acceptHs256 ? ['HS256', 'ES256', 'EdDSA'] : ['ES256', 'EdDSA'];

  return async function verifyServiceToken(token: string): Promise<ServiceTokenClaims | undefined> {
    let claims: Record<string, unknown>;
    const now = clock();
    try {
      ({ payload: claims } = await jwtVerify(
        token,
        async (header) => {
          if (header.alg === 'HS256') {
            const key = header.kid === undefined ? undefined : byKid.get(header.kid);
            if (!key) throw new joseErrors.JWKSNoMatchingKey();
            return key;
          }
          // A public key only for its own alg: no algorithm confusion. Imported once per published key
          // (the feed's readers and introspection verify here on every call).
          const jwk = publishedKeys().find((k) => k.kid !== undefined && k.kid === header.kid && k.alg === header.alg);
          if (!jwk) throw new joseErrors.JWKSNoMatchingKey();
          let key = imported.get(jwk);
          if (!key) imported.set(jwk, (key = importJWK(jwk, header.alg)));
          return key;
        },
        {
          algorithms,
          typ: ACCESS_TOKEN_TYP,
          issuer: keys.issuer,
          ...(options.anyAudience ? {} : { audience: keys.audience }),
          requiredClaims: ['exp', 'iat', 'sub'],
          currentDate: new Date(now),
          clockTolerance: CLOCK_TOLERANCE_SEC,
        },
      ));
    } catch {
      return undefined;
    }
    const { exp, iat } = claims;
    if (
      !Number.isSafeInteger(exp) ||
      !Number.isSafeInteger(iat) ||
      (exp as number) < (iat as number) ||
      (exp as number) - (iat as number) > MAX_SERVICE_TOKEN_LIFETIME_SEC ||
      (iat as number) > Math.floor(now / 1000) + CLOCK_TOLERANCE_SEC
    ) {
      return undefined;
    }
    if (
      claims.token_type !== 'service' ||
      typeof claims.client_id !== 'string' ||
      claims.client_id !== claims.sub ||
      !Array.isArray(claims.scopes) ||
      !claims.scopes.every((s) => typeof s === 'string')
    ) {
      return undefined;
    }
    return claims as unknown as ServiceTokenClaims;
  };
}

export type ServiceTokenVerifier = ReturnType<typeof createServiceTokenVerifier>;
