import { createHmac, randomUUID } from 'node:crypto';
import { ACCESS_TOKEN_TYP, keyIdForSecret, type ServiceTokenClaims, type UserTokenClaims } from '@rw3iss/auth-server-ts';
import { decodeProtectedHeader, errors as joseErrors, importJWK, type JWK, jwtVerify } from 'jose';
import type { ServiceTokenSigner } from '../modules/signing-keys/signing-keys.service.js';
import type { Clock } from './clock.js';

export interface TokenKeys {
  secret: string;
  previousSecret?: string | undefined;
  issuer: string;
  audience: string;
}

type ServiceClaimsInput = Pick<ServiceTokenClaims, 'sub' | 'client_id' | 'service_name' | 'scopes'> & { aud?: string | string[] };
type UserClaimsInput = Pick<UserTokenClaims, 'sub' | 'email' | 'roles'>;

/**
 * Issues access tokens (RFC 9068 shape). HS256 signing is a single HMAC over
 * a pre-encoded header and the JSON payload: measured at ~30x jose's SignJWT
 * on a 2-core Node 20 machine (docs/API.md, "The service token"), and there is no parsing on this side, so
 * nothing for a library to guard. Verifiers use jose.
 *
 * `serviceSigner`, when it returns a signer (SERVICE_TOKEN_ALG ES256 / EdDSA),
 * signs service tokens with the current private key instead; user tokens stay
 * HS256.
 */
export function createTokenIssuer(keys: TokenKeys, clock: Clock, serviceSigner: () => ServiceTokenSigner | undefined = () => undefined) {
  const kid = keyIdForSecret(keys.secret);
  const encodedHeader = Buffer.from(JSON.stringify({ alg: 'HS256', typ: ACCESS_TOKEN_TYP, kid })).toString('base64url');

  function sign(payload: Record<string, unknown>): string {
    const input = `${encodedHeader}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
    return `${input}.${createHmac('sha256', keys.secret).update(input).digest('base64url')}`;
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
    /** A user (admin) token for `POST /auth/login`. */
    userToken(input: UserClaimsInput, ttlSec: number): { token: string; claims: UserTokenClaims } {
      const claims: UserTokenClaims = { ...baseClaims(ttlSec), aud: keys.audience, token_type: 'user', ...input };
      return { token: sign(claims as unknown as Record<string, unknown>), claims };
    },
  };
}

export type TokenIssuer = ReturnType<typeof createTokenIssuer>;

/** The claims of a verified token of either kind. */
export type AccessTokenClaims = (ServiceTokenClaims | UserTokenClaims) & Record<string, unknown>;

/**
 * Verifies a bearer token issued by this server (either kind) with jose:
 * HS256 only, `typ: at+jwt`, issuer, audience, expiry; current or previous
 * secret chosen by `kid`. Returns undefined for any invalid token: callers
 * only need to know whether to answer 401.
 */
export function createAccessTokenVerifier(keys: TokenKeys, clock: Clock) {
  const encoder = new TextEncoder();
  const byKid = new Map<string, Uint8Array>([[keyIdForSecret(keys.secret), encoder.encode(keys.secret)]]);
  if (keys.previousSecret) byKid.set(keyIdForSecret(keys.previousSecret), encoder.encode(keys.previousSecret));

  return async function verifyAccessToken(token: string): Promise<AccessTokenClaims | undefined> {
    try {
      const { payload } = await jwtVerify(
        token,
        (header) => {
          const key = header.kid === undefined ? undefined : byKid.get(header.kid);
          if (!key) throw new joseErrors.JWKSNoMatchingKey();
          return key;
        },
        {
          algorithms: ['HS256'],
          typ: ACCESS_TOKEN_TYP,
          issuer: keys.issuer,
          audience: keys.audience,
          requiredClaims: ['exp', 'iat', 'sub'],
          currentDate: new Date(clock()),
          clockTolerance: 5,
        },
      );
      if (payload.token_type !== 'service' && payload.token_type !== 'user') return undefined;
      return payload as AccessTokenClaims;
    } catch {
      return undefined;
    }
  };
}

/**
 * The server's one verification of its own service tokens, for routes a
 * service calls with its token (catalog registration). Every check of
 * {@link createAccessTokenVerifier}, and only `token_type: "service"` passes:
 * a user token never does. Returns undefined for anything else.
 *
 * Key handling (which algorithm and key signs service tokens) lives here and
 * only here, so a change of signing scheme changes this one function.
 */
export function createServiceTokenVerifier(keys: TokenKeys, clock: Clock, publishedKeys: () => readonly JWK[] = () => []) {
  const verifyAccessToken = createAccessTokenVerifier(keys, clock);
  // ES256 / EdDSA service tokens (SERVICE_TOKEN_ALG): checked against this server's own published
  // keys, a key only for its own alg. Rare (catalog registration), so the JWK is imported per call.
  async function verifyAsymmetric(token: string): Promise<AccessTokenClaims | undefined> {
    try {
      const { payload } = await jwtVerify(
        token,
        async (header) => {
          const jwk = publishedKeys().find((k) => k.kid !== undefined && k.kid === header.kid && k.alg === header.alg);
          if (!jwk) throw new joseErrors.JWKSNoMatchingKey();
          return importJWK(jwk, header.alg);
        },
        {
          algorithms: ['ES256', 'EdDSA'],
          typ: ACCESS_TOKEN_TYP,
          issuer: keys.issuer,
          audience: keys.audience,
          requiredClaims: ['exp', 'iat', 'sub'],
          currentDate: new Date(clock()),
          clockTolerance: 5,
        },
      );
      return payload as AccessTokenClaims;
    } catch {
      return undefined;
    }
  }
  return async function verifyServiceToken(token: string): Promise<ServiceTokenClaims | undefined> {
    let alg: unknown;
    try {
      alg = decodeProtectedHeader(token).alg;
    } catch {
      return undefined;
    }
    const claims = alg === 'ES256' || alg === 'EdDSA' ? await verifyAsymmetric(token) : await verifyAccessToken(token);
    if (
      claims?.token_type !== 'service' ||
      typeof claims.client_id !== 'string' ||
      claims.client_id !== claims.sub ||
      !Array.isArray(claims.scopes) ||
      !claims.scopes.every((s) => typeof s === 'string')
    ) {
      return undefined;
    }
    return claims as ServiceTokenClaims;
  };
}

export type ServiceTokenVerifier = ReturnType<typeof createServiceTokenVerifier>;
