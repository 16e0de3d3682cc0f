/**
 * Service tokens shaped like the ones auth-api issues (packages/auth-api/src/lib/tokens.ts):
 * header `{alg: HS256, typ: at+jwt, kid: keyIdForSecret(secret)}`, ServiceTokenClaims,
 * one HMAC-SHA256 over header.payload. Signed with node:crypto so pre-signing
 * tens of thousands of them takes milliseconds.
 */
import { createHmac, randomUUID } from 'node:crypto';
import { keyIdForSecret, type ServiceTokenClaims } from '@rw3iss/auth-server-ts';

export const TOKEN_SECRET = 'bench-verifier-secret-Qm4Zx7Lp1Wn8Ty3Bc6Hd0Fg5Js2Ua9V';
export const TOKEN_ISSUER = 'https://auth.example.com';
export const TOKEN_AUDIENCE = 'catalog-api';

const header = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'at+jwt', kid: keyIdForSecret(TOKEN_SECRET) })).toString('base64url');

/** A signed service token for credential number `n`, valid for `ttlSec` from `nowMs`. */
export function serviceToken(n: number, options: { nowMs?: number; ttlSec?: number; secret?: string } = {}): string {
  const iat = Math.floor((options.nowMs ?? Date.now()) / 1000);
  const clientId = `svc-${n.toString(36)}`;
  const scopes = ['gsku:publish'];
  const claims: ServiceTokenClaims = {
    iss: TOKEN_ISSUER,
    sub: clientId,
    aud: TOKEN_AUDIENCE,
    iat,
    nbf: iat,
    exp: iat + (options.ttlSec ?? 900),
    jti: randomUUID(),
    token_type: 'service',
    client_id: clientId,
    service_name: 'Billing',
    scopes,
    scope: scopes.join(' '),
  };
  const input = `${header}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  return `${input}.${createHmac('sha256', options.secret ?? TOKEN_SECRET).update(input).digest('base64url')}`;
}

/** `count` distinct tokens (distinct client ids and jti). */
export function serviceTokens(count: number, first = 0): string[] {
  const nowMs = Date.now();
  return Array.from({ length: count }, (_, i) => serviceToken(first + i, { nowMs }));
}
