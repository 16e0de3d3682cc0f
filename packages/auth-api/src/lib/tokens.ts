import { createHmac, randomUUID } from 'node:crypto';
import { ACCESS_TOKEN_TYP, keyIdForSecret, type ServiceTokenClaims } from '@rw3iss/auth-server-ts';
import type { Clock } from './clock.js';

export interface TokenKeys {
  secret: string;
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
