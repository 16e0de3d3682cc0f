import { createHmac, randomUUID } from 'node:crypto';
import { ACCESS_TOKEN_TYP, keyIdForSecret, type ServiceTokenClaims } from '@rw3iss/auth-server-ts';
import { errors as joseErrors, jwtVerify } from 'jose';
import type { Clock } from './clock.js';

export interface TokenKeys {
  secret: string;
  /** Still accepted by the service-token verifier during a key rotation. */
  previousSecret?: string | undefined;
  issuer: string;
  audience: string;
}

type ServiceClaimsInput = Pick<ServiceTokenClaims, 'sub' | 'client_id' | 'service_name' | 'scopes'> & { aud?: string | string[] };

/**
 * Issues HS256 service tokens (RFC 9068 shape). Admins never get a JWT: their
 * bearer token is an opaque server-side session (modules/admin-auth), so this
 * key cannot mint admin access. Signing is a single HMAC over
 * a pre-encoded header and the JSON payload: measured at ~30x jose's SignJWT
 * on this hardware (TOOLCHAIN.md), and there is no parsing on this side, so
 * nothing for a library to guard. Verifiers use jose.
 */
export function createTokenIssuer(keys: TokenKeys, clock: Clock) {
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
    serviceToken(input: ServiceClaimsInput, ttlSec: number): { token: string; claims: ServiceTokenClaims } {
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
      return { token: sign(claims as unknown as Record<string, unknown>), claims };
    },
  };
}

export type TokenIssuer = ReturnType<typeof createTokenIssuer>;

/**
 * The server's one verification of its own service tokens, for routes a
 * service calls with its token (catalog registration), with jose: HS256 only,
 * `typ: at+jwt`, issuer, audience, expiry; current or previous secret chosen
 * by `kid`; and only `token_type: "service"` with a consistent `client_id` and
 * `scopes` passes. Returns undefined for anything else: callers only need to
 * know whether to fall back to the admin session check. (Admins never hold a
 * JWT: their bearer token is a server-side session, modules/admin-auth.)
 *
 * Key handling (which algorithm and key signs service tokens) lives here and
 * only here, so a change of signing scheme changes this one function.
 */
export function createServiceTokenVerifier(keys: TokenKeys, clock: Clock) {
  const encoder = new TextEncoder();
  const byKid = new Map<string, Uint8Array>([[keyIdForSecret(keys.secret), encoder.encode(keys.secret)]]);
  if (keys.previousSecret) byKid.set(keyIdForSecret(keys.previousSecret), encoder.encode(keys.previousSecret));

  return async function verifyServiceToken(token: string): Promise<ServiceTokenClaims | undefined> {
    let claims: Record<string, unknown>;
    try {
      ({ payload: claims } = await jwtVerify(
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
      ));
    } catch {
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
