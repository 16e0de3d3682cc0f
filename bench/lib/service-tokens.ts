/**
 * Service tokens shaped like the ones auth-api issues (packages/auth-api/src/lib/tokens.ts):
 * header `{alg: HS256, typ: at+jwt, kid: keyIdForSecret(secret)}`, ServiceTokenClaims,
 * one HMAC-SHA256 over header.payload. Signed with node:crypto so pre-signing
 * tens of thousands of them takes milliseconds.
 */
import { createHmac, generateKeyPairSync, type KeyObject, randomUUID, sign } from 'node:crypto';
import { keyIdForSecret, type ServiceTokenClaims } from '@rw3iss/auth-server-ts';
import { calculateJwkThumbprint, type JWK } from 'jose';

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

/** A key pair shaped like auth-api's asymmetric signing keys: public JWK with kid (RFC 7638 thumbprint), alg, use. */
export interface AsymmetricBenchKey {
  alg: 'ES256' | 'EdDSA';
  kid: string;
  privateKey: KeyObject;
  publicJwk: JWK;
}

export async function asymmetricKey(alg: 'ES256' | 'EdDSA'): Promise<AsymmetricBenchKey> {
  const { privateKey, publicKey } = alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519');
  const jwk = publicKey.export({ format: 'jwk' }) as JWK;
  const kid = await calculateJwkThumbprint(jwk);
  return { alg, kid, privateKey, publicJwk: { ...jwk, kid, alg, use: 'sig' } };
}

/** `count` distinct ES256 / EdDSA service tokens, signed as auth-api signs them (node:crypto, JWS R||S for ES256). */
export function asymmetricTokens(key: AsymmetricBenchKey, count: number, first = 0): string[] {
  const nowMs = Date.now();
  const head = Buffer.from(JSON.stringify({ alg: key.alg, typ: 'at+jwt', kid: key.kid })).toString('base64url');
  const signingKey = key.alg === 'ES256' ? { key: key.privateKey, dsaEncoding: 'ieee-p1363' as const } : key.privateKey;
  return Array.from({ length: count }, (_, i) => {
    const hsToken = serviceToken(first + i, { nowMs });
    const input = `${head}.${hsToken.split('.')[1]}`;
    return `${input}.${sign(key.alg === 'ES256' ? 'sha256' : null, Buffer.from(input), signingKey).toString('base64url')}`;
  });
}
