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
 * and expired vs invalid.
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
      requiredClaims: ['exp'],
      clockTolerance: 5,
      currentDate: new Date(NOW),
    });
    return payload.token_type === 'service' ? 'ok' : 'invalid_token';
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

const KEEP = Symbol('keep the default claim');
const claimsArb = fc.record(
  {
    iss: fc.constantFrom(ISSUER, 'https://evil.test', undefined, 42),
    aud: fc.constantFrom(AUDIENCE, [AUDIENCE, 'x'], ['x'], 'other', undefined),
    exp: fc.oneof(fc.integer({ min: -3600, max: 3600 }).map((d) => nowSec + d), fc.constantFrom(undefined, 'soon', nowSec + 4, nowSec - 4, nowSec - 6)),
    nbf: fc.oneof(fc.integer({ min: -60, max: 60 }).map((d) => nowSec + d), fc.constantFrom(undefined, 'x')),
    iat: fc.oneof(fc.integer({ min: -3600, max: 60 }).map((d) => nowSec + d), fc.constantFrom(undefined, null)),
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

  it('under other options too: issuer and audience lists, maxTokenAgeSec, clock tolerance', async () => {
    const optionsArb = fc.record({
      issuer: fc.constantFrom<string | string[]>(ISSUER, [ISSUER, 'https://other.test'], ['https://other.test']),
      audience: fc.constantFrom<string | string[]>(AUDIENCE, ['x', AUDIENCE], ['x']),
      maxTokenAgeSec: fc.constantFrom(undefined, 60, 3600),
      clockToleranceSec: fc.constantFrom(0, 5, 30),
    });
    // Mostly valid claims, each changed now and then, often to just before, at or after a boundary of the
    // options drawn (exp and nbf against the clock tolerance, iat against maxTokenAgeSec), so acceptance is exercised too.
    const sometimes = <T>(arb: fc.Arbitrary<T>) => fc.oneof({ weight: 2, arbitrary: fc.constant(KEEP) }, { weight: 1, arbitrary: arb });
    const at = (...offsets: number[]) => fc.constantFrom(...offsets.flatMap((d) => [d - 1, d, d + 1])).map((d) => nowSec + d);
    const claimsFor = (options: { maxTokenAgeSec: number | undefined; clockToleranceSec: number }) => {
      const tol = options.clockToleranceSec;
      const age = options.maxTokenAgeSec ?? 3600;
      return fc
        .record({
          iss: sometimes(fc.constantFrom(ISSUER, 'https://other.test', 42, undefined)),
          aud: sometimes(fc.constantFrom(AUDIENCE, 'x', ['x', AUDIENCE], ['x'], [], 7, undefined)),
          exp: sometimes(fc.oneof(at(-tol), fc.integer({ min: -3700, max: 40 }).map((d) => nowSec + d), fc.constantFrom(undefined, null, 'soon', nowSec + 0.5))),
          nbf: sometimes(fc.oneof(at(tol), fc.integer({ min: -40, max: 40 }).map((d) => nowSec + d), fc.constantFrom(undefined, null, 'x'))),
          iat: sometimes(fc.oneof(at(-age - tol, tol), fc.integer({ min: -4000, max: 40 }).map((d) => nowSec + d), fc.constantFrom(undefined, null, 'x'))),
          token_type: sometimes(fc.constantFrom('service', 'user')),
        })
        .map((claims) => Object.fromEntries(Object.entries(claims).filter(([, v]) => v !== KEEP)));
    };
    await fc.assert(
      fc.asyncProperty(optionsArb.chain((options) => fc.tuple(fc.constant(options), claimsFor(options))), fc.boolean(), async ([options, claims], platformTyp) => {
        const omit = Object.entries(claims).filter(([, v]) => v === undefined).map(([k]) => k);
        const token = await signToken({ now: NOW, claims, omit, header: { kid: keyIdForSecret(SECRET), typ: platformTyp ? 'at+jwt' : 'application/at+jwt' } });
        const verifier = createServiceTokenVerifier({ secret: SECRET, ...options, clock, cache: false });
        const decided = await verifier.verify(token).then(
          () => 'ok',
          (err: TokenVerificationError) => err.code,
        );
        let expected: string;
        try {
          const { payload } = await jwtVerify(token, new TextEncoder().encode(SECRET), {
            algorithms: ['HS256'],
            typ: 'at+jwt',
            issuer: options.issuer,
            audience: options.audience,
            requiredClaims: ['exp'],
            clockTolerance: options.clockToleranceSec,
            ...(options.maxTokenAgeSec === undefined ? {} : { maxTokenAge: options.maxTokenAgeSec }),
            currentDate: new Date(NOW),
          });
          expected = payload.token_type === 'service' ? 'ok' : 'invalid_token';
        } catch (err) {
          expected = (err as { code?: string }).code === 'ERR_JWT_EXPIRED' ? 'token_expired' : 'invalid_token';
        }
        expect(decided).toBe(expected);
      }),
      { numRuns: 1000 },
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
