import { createHmac } from 'node:crypto';
import fc from 'fast-check';
import { jwtVerify, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { createServiceTokenVerifier, keyIdForSecret, TokenVerificationError } from '../src/index.js';
import { AUDIENCE, ISSUER, OTHER_SECRET, PREVIOUS_SECRET, SECRET, signToken } from './helpers.js';

/**
 * The verifier checks platform-shaped HS256 tokens synchronously (node:crypto
 * HMAC, then jose's claim checks). Property: on any token, it decides exactly
 * as jose's full `jwtVerify` with the same options does: accepted or refused,
 * and expired vs invalid, plus the lifetime rule every mode applies after
 * jose's checks (`exp` and `iat` integers, `0 ≤ exp − iat ≤ 24 h`).
 */
const NOW = Date.parse('2026-11-25T12:00:00Z');
const nowSec = NOW / 1000;
const clock = { now: () => NOW };
const keys = new Map([SECRET, PREVIOUS_SECRET].map((s) => [keyIdForSecret(s), new TextEncoder().encode(s)]));

async function reference(token: string): Promise<string> {
  try {
    const { payload } = await jwtVerify(token, (header) => keys.get(header.kid ?? '') ?? new Uint8Array(32), {
      algorithms: ['HS256'],
      typ: 'at+jwt',
      issuer: ISSUER,
      audience: AUDIENCE,
      requiredClaims: ['exp', 'iat'],
      clockTolerance: 5,
      currentDate: new Date(NOW),
    });
    const { exp, iat } = payload as { exp: unknown; iat: unknown };
    const lifetimeOk = Number.isSafeInteger(exp) && Number.isSafeInteger(iat) && (exp as number) >= (iat as number) && (exp as number) - (iat as number) <= 86_400;
    return payload.token_type === 'service' && lifetimeOk ? 'ok' : 'invalid_token';
  } catch (err) {
    return (err as { code?: string }).code === 'ERR_JWT_EXPIRED' ? 'token_expired' : 'invalid_token';
  }
}

async function ours(token: string): Promise<string> {
  const verifier = createServiceTokenVerifier({ secret: SECRET, previousSecrets: [PREVIOUS_SECRET], issuer: ISSUER, audience: AUDIENCE, clock, cache: false });
  try {
    await verifier.verify(token);
    return 'ok';
  } catch (err) {
    expect(err).toBeInstanceOf(TokenVerificationError);
    return (err as TokenVerificationError).code;
  }
}

const claimsArb = fc.record(
  {
    iss: fc.constantFrom(ISSUER, 'https://evil.test', undefined, 42),
    aud: fc.constantFrom(AUDIENCE, [AUDIENCE, 'x'], ['x'], 'other', undefined),
    exp: fc.oneof(
      fc.integer({ min: -3600, max: 3600 }).map((d) => nowSec + d),
      fc.constantFrom(undefined, 'soon', nowSec + 4, nowSec - 4, nowSec - 6, nowSec + 600.5, nowSec + 86_400, nowSec + 86_401, nowSec + 365 * 86_400, Number.MAX_VALUE),
    ),
    nbf: fc.oneof(fc.integer({ min: -60, max: 60 }).map((d) => nowSec + d), fc.constantFrom(undefined, 'x')),
    iat: fc.oneof(fc.integer({ min: -3600, max: 60 }).map((d) => nowSec + d), fc.constantFrom(undefined, null, nowSec - 0.5, String(nowSec), nowSec - 86_400)),
    token_type: fc.constantFrom('service', 'user', undefined),
  },
  { requiredKeys: [] },
);
const headerArb = fc.record({
  typ: fc.constantFrom('at+jwt', 'application/at+jwt', 'AT+JWT', 'JWT', undefined),
  kid: fc.constantFrom(keyIdForSecret(SECRET), keyIdForSecret(PREVIOUS_SECRET), keyIdForSecret(OTHER_SECRET), 'nope'),
});
const secretArb = fc.constantFrom(SECRET, PREVIOUS_SECRET, OTHER_SECRET);
const tamperArb = fc.option(fc.tuple(fc.integer({ min: 0, max: 2 }), fc.nat(), fc.constantFrom('A', 'B', '_', '-', '0')), { nil: undefined });

function tamper(token: string, how: [number, number, string] | undefined): string {
  if (!how) return token;
  const parts = token.split('.');
  const [segment, at, char] = how;
  const s = parts[segment]!;
  const i = at % s.length;
  parts[segment] = s.slice(0, i) + char + s.slice(i + 1);
  return parts.join('.');
}

describe('the synchronous HS256 path decides as jose does', () => {
  it('on random claims, headers, keys and tampering', async () => {
    await fc.assert(
      fc.asyncProperty(claimsArb, headerArb, secretArb, tamperArb, async (claims, header, secret, how) => {
        const omit = Object.entries(claims).filter(([, v]) => v === undefined).map(([k]) => k);
        const typ = header.typ;
        const token = tamper(
          await signToken({ secret, now: NOW, claims, omit, header: { kid: header.kid, ...(typ === undefined ? {} : { typ }) } }),
          how,
        );
        // A header without typ has only two fields: that shape takes jose's path; both must still agree.
        expect(await ours(token)).toBe(await reference(token));
      }),
      { numRuns: 400 },
    );
  });

  it('accepts a platform token and refuses its forgeries', async () => {
    const token = await signToken({ now: NOW });
    expect(await ours(token)).toBe('ok');
    const [h, p] = token.split('.');
    const forged = `${h}.${p}.${Buffer.alloc(32).toString('base64url')}`;
    expect(await ours(forged)).toBe('invalid_token');
    const stripped = `${h}.${p}.`;
    expect(await ours(stripped)).toBe('invalid_token');
  });
});

describe('the synchronous path is not looser than jose', () => {
  it('keeps its own copy of a Uint8Array secret: clearing the caller buffer forges nothing', async () => {
    const buffer = new TextEncoder().encode(SECRET);
    const verifier = createServiceTokenVerifier({ secret: buffer, issuer: ISSUER, audience: AUDIENCE, clock, cache: false });
    const good = await signToken({ now: NOW });
    await expect(verifier.verify(good)).resolves.toBeDefined();
    buffer.fill(0);
    // Signed with an empty key, which HMAC pads to what an all-zero key would be.
    const forged = await new SignJWT({ iss: ISSUER, aud: AUDIENCE, exp: nowSec + 600, token_type: 'service', client_id: 'attacker', scopes: ['admin:all'] })
      .setProtectedHeader({ alg: 'HS256', typ: 'at+jwt', kid: keyIdForSecret(SECRET) })
      .sign(new Uint8Array(0))
      .catch(() => undefined);
    const manual = forged ?? (() => {
      const h = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'at+jwt', kid: keyIdForSecret(SECRET) })).toString('base64url');
      const p = Buffer.from(JSON.stringify({ iss: ISSUER, aud: AUDIENCE, exp: nowSec + 600, token_type: 'service', client_id: 'attacker', scopes: ['admin:all'] })).toString('base64url');
      return `${h}.${p}.${createHmac('sha256', Buffer.alloc(0)).update(`${h}.${p}`).digest('base64url')}`;
    })();
    expect((await verifier.verify(manual).catch((e: TokenVerificationError) => e)) instanceof TokenVerificationError).toBe(true);
    await expect(verifier.verify(good)).resolves.toBeDefined();
  });

  it('a header with non-canonical base64url or non-ASCII characters is decided as jose decides it', async () => {
    const token = await signToken({ now: NOW });
    const [h, p] = token.split('.');
    for (const head of [`${h}!!`, `${h}é`, `${h}=AAAA`]) {
      const input = `${head}.${p}`;
      const signed = `${input}.${createHmac('sha256', SECRET).update(input).digest('base64url')}`;
      expect(await ours(signed)).toBe(await reference(signed));
      expect(await ours(signed)).toBe('invalid_token');
    }
  });
});
