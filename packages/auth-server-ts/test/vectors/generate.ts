/**
 * Writes service-tokens.json: a corpus of service tokens, each with the
 * decision every verifier of the platform (this SDK, rw3iss/auth-server-laravel)
 * must reach on it. Deterministic: running it again gives the same file.
 *
 *   pnpm exec tsx packages/auth-server-ts/test/vectors/generate.ts
 *
 * Every refused token has exactly one defect, so the decision does not depend
 * on the order in which a verifier runs its checks. Verifiers use the fixed
 * clock `now` of the file, so the corpus never expires.
 */
import { createHmac, createPrivateKey, sign as signWith } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { TokenVerificationError } from '../../src/errors.js';
import { keyIdForSecret } from '../../src/keys.js';
import { bearerErrorResponse } from '../../src/lib/guard.js';

// Test-only secrets: they sign nothing but this corpus.
const SECRET = 'vectors-secret-current-0123456789abcdef-0123456789';
const PREVIOUS_SECRET = 'vectors-secret-previous-0123456789abcdef-012345678';
const FOREIGN_SECRET = 'vectors-secret-someone-else-0123456789abcdef-01234';
const ISSUER = 'https://auth.vectors.test';
const AUDIENCE = 'catalog-api';
const NOW = 1_893_456_000; // 2030-01-01T00:00:00Z
const LEEWAY = 5;
const MAX_LIFETIME = 86_400;

type Json = Record<string, unknown>;

interface Expectation {
  ok: boolean;
  code?: 'missing_token' | 'invalid_token' | 'token_expired' | 'insufficient_scope';
  reason?: string;
  client_id?: string;
  service_name?: string;
  scopes?: string[];
}

/** One token and its decision (vectors.test.ts reads the corpus with this type). */
export interface Vector {
  name: string;
  description: string;
  token: string;
  /** Scopes the route asks for, and how. */
  required_scopes: string[];
  mode: 'all' | 'any';
  /** Verifier options that differ from the corpus' defaults for this vector only. */
  verifier?: Json;
  /** A check that not every verifier has yet (see the tests); the decision is still binding. */
  feature?: 'lifetime_cap' | 'asymmetric';
  /** ECDSA signatures are randomized: regenerating gives another (equally valid) signature. */
  randomized_signature?: boolean;
  expect: Expectation;
}

const b64 = (value: string | Buffer) => Buffer.from(value).toString('base64url');

function claims(overrides: Json = {}, omit: string[] = []): Json {
  const base: Json = {
    iss: ISSUER,
    sub: 'billing-svc',
    aud: AUDIENCE,
    iat: NOW - 60,
    nbf: NOW - 60,
    exp: NOW - 60 + 900,
    jti: '7f2c1a9e-0000-4000-8000-000000000001',
    token_type: 'service',
    client_id: 'billing-svc',
    service_name: 'Billing backend',
    scopes: ['gsku:publish', 'gsku:read'],
    scope: 'gsku:publish gsku:read',
    ...overrides,
  };
  for (const name of omit) delete base[name];
  return base;
}

const HASHES: Record<string, string> = { HS256: 'sha256', HS384: 'sha384', HS512: 'sha512' };

function sign(
  options: { header?: Json; omitHeader?: string[]; claims?: Json; rawPayload?: string | Buffer; secret?: string; signAs?: string } = {},
): string {
  const secret = options.secret ?? SECRET;
  const header: Json = { alg: 'HS256', typ: 'at+jwt', kid: keyIdForSecret(secret), ...options.header };
  for (const name of options.omitHeader ?? []) delete header[name];
  const input = `${b64(JSON.stringify(header))}.${b64(options.rawPayload ?? JSON.stringify(options.claims ?? claims()))}`;
  const alg = options.signAs ?? (header.alg as string);
  const hash = HASHES[alg];
  const signature = hash === undefined ? '' : createHmac(hash, secret).update(input).digest('base64url');
  return `${input}.${signature}`;
}

const ok = (extra: Partial<Expectation> = {}): Expectation => ({
  ok: true,
  client_id: 'billing-svc',
  service_name: 'Billing backend',
  scopes: ['gsku:publish', 'gsku:read'],
  ...extra,
});
const refused = (code: NonNullable<Expectation['code']>, reason?: string): Expectation =>
  reason === undefined ? { ok: false, code } : { ok: false, code, reason };

function flip(text: string, index: number): string {
  const c = text[index]!;
  return text.slice(0, index) + (c === 'A' ? 'B' : 'A') + text.slice(index + 1);
}

const valid = sign();
const [vh, vp, vs] = valid.split('.') as [string, string, string];

const vectors: Vector[] = [];
function add(name: string, description: string, token: string, expect: Expectation, extra: Partial<Vector> = {}): void {
  vectors.push({ name, description, token, required_scopes: ['gsku:publish'], mode: 'all', ...extra, expect });
}

// Accepted.
add('valid', 'A token exactly as auth-api issues it', valid, ok());
add('valid_no_scope_required', 'A route that asks for no scope', valid, ok(), { required_scopes: [] });
add('valid_previous_secret', 'Signed with the previous secret (key rotation), named by its kid', sign({ secret: PREVIOUS_SECRET }), ok());
add('valid_kidless_current', 'No kid: tried against each configured secret, the current one matches', sign({ omitHeader: ['kid'] }), ok());
add('valid_kidless_previous', 'No kid: tried against each configured secret, the previous one matches', sign({ omitHeader: ['kid'], secret: PREVIOUS_SECRET }), ok());
add('valid_audience_array', 'aud is a list that names this audience', sign({ claims: claims({ aud: ['other-api', AUDIENCE] }) }), ok());
add('valid_scope_string_only', 'Only the space-delimited scope claim (RFC 9068), no scopes array', sign({ claims: claims({ scope: 'gsku:read gsku:publish' }, ['scopes']) }), ok({ scopes: ['gsku:read', 'gsku:publish'] }));
add('valid_no_scopes_at_all', 'Neither scopes nor scope: no scope granted; a route that asks for none accepts it', sign({ claims: claims({}, ['scopes', 'scope']) }), ok({ scopes: [] }), { required_scopes: [] });
add('valid_client_id_from_sub', 'No client_id claim: the client is sub', sign({ claims: claims({}, ['client_id']) }), ok());
add('valid_no_service_name', 'No service_name: the name is the client id', sign({ claims: claims({}, ['service_name']) }), ok({ service_name: 'billing-svc' }));
add('valid_typ_media_type', 'typ "application/at+jwt" is the same media type as "at+jwt" (RFC 8725 §3.11)', sign({ header: { typ: 'application/at+jwt' } }), ok());
add('valid_typ_upper_case', 'typ is compared case-insensitively (media types are)', sign({ header: { typ: 'AT+JWT' } }), ok());
add('valid_exp_within_leeway', 'exp passed 4 s ago, within the 5 s leeway', sign({ claims: claims({ iat: NOW - 904, nbf: NOW - 904, exp: NOW - 4 }) }), ok());
add('valid_nbf_within_leeway', 'nbf is 5 s ahead, within the 5 s leeway', sign({ claims: claims({ iat: NOW + 5, nbf: NOW + 5, exp: NOW + 905 }) }), ok());
add('valid_mode_any', 'mode any: one of the required scopes is enough', valid, ok(), { required_scopes: ['gsku:admin', 'gsku:read'], mode: 'any' });
add('valid_mode_all_two_scopes', 'mode all: both required scopes are granted', valid, ok(), { required_scopes: ['gsku:publish', 'gsku:read'] });
add('valid_hs512_when_allowed', 'HS512 with the verifier allowing it', sign({ header: { alg: 'HS512' } }), ok(), { verifier: { algorithms: ['HS256', 'HS512'] } });
add('valid_lifetime_at_cap', 'exp − iat is exactly the 24 h cap', sign({ claims: claims({ iat: NOW - 60, nbf: NOW - 60, exp: NOW - 60 + MAX_LIFETIME }) }), ok());
add('valid_issuer_list', 'The verifier accepts several issuers, the token names one', valid, ok(), { verifier: { issuer: ['https://other.test', ISSUER] } });

// Refused: no token or no JWS.
add('missing_token', 'Nothing presented', '', refused('missing_token'));
add('two_segments', 'Not a compact JWS (two segments)', `${vh}.${vp}`, refused('invalid_token', 'malformed'));
add('four_segments', 'Not a compact JWS (four segments)', `${valid}.${vs}`, refused('invalid_token', 'malformed'));
add('header_not_json', 'The header segment is not JSON', `${b64('not json')}.${vp}.${vs}`, refused('invalid_token', 'malformed'));
add('header_json_array', 'The header is JSON but not an object', `${b64('["HS256"]')}.${vp}.${vs}`, refused('invalid_token', 'malformed'));
add('signature_not_base64url', 'The signature segment is not base64url', `${vh}.${vp}.!!!!`, refused('invalid_token', 'malformed'));
add('payload_not_json', 'Correctly signed, but the payload is not JSON', sign({ rawPayload: 'hello' }), refused('invalid_token', 'malformed'));
add('payload_json_array', 'Correctly signed, but the payload is a JSON array', sign({ rawPayload: '[1,2]' }), refused('invalid_token', 'malformed'));
add('payload_invalid_utf8', 'Correctly signed, but the payload is not UTF-8', sign({ rawPayload: Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x31, 0x7d]) }), refused('invalid_token', 'malformed'));
add('alg_missing', 'No alg header', sign({ omitHeader: ['alg'], signAs: 'HS256' }), refused('invalid_token', 'malformed'));

// Refused: algorithm and key.
add('alg_none', 'alg "none" with an empty signature', sign({ header: { alg: 'none' } }), refused('invalid_token', 'algorithm'));
add('alg_none_lowercase_variant', 'alg "None" with an empty signature', sign({ header: { alg: 'None' } }), refused('invalid_token', 'algorithm'));
add('alg_hs512_not_allowed', 'HS512 while only HS256 is allowed', sign({ header: { alg: 'HS512' } }), refused('invalid_token', 'algorithm'));
add('alg_rs256', 'An asymmetric alg naming the HMAC secret (key confusion)', sign({ header: { alg: 'RS256' }, signAs: 'HS256' }), refused('invalid_token', 'algorithm'));
add('crit_unknown_extension', 'A critical header extension nobody understands', sign({ header: { crit: ['x-custom'], 'x-custom': 1 } }), refused('invalid_token', 'algorithm'));
add('kid_unknown', 'A kid that names no configured key', sign({ header: { kid: 'unknown-kid-0000' } }), refused('invalid_token', 'unknown_key'));
add('foreign_key', 'Signed with someone else\'s secret (its own kid)', sign({ secret: FOREIGN_SECRET }), refused('invalid_token', 'unknown_key'));
add('foreign_key_kidless', 'Signed with someone else\'s secret, no kid', sign({ secret: FOREIGN_SECRET, omitHeader: ['kid'] }), refused('invalid_token', 'signature'));
add('kid_of_current_signed_with_foreign', 'Names our kid, signed with another secret', sign({ secret: FOREIGN_SECRET, header: { kid: keyIdForSecret(SECRET) } }), refused('invalid_token', 'signature'));
add('tampered_payload', 'One character of the payload changed after signing', `${vh}.${flip(vp, 10)}.${vs}`, refused('invalid_token', 'signature'));
add('tampered_scopes', 'Scopes widened after signing', `${vh}.${b64(JSON.stringify(claims({ scopes: ['gsku:publish', 'gsku:admin'], scope: 'gsku:publish gsku:admin' })))}.${vs}`, refused('invalid_token', 'signature'), { required_scopes: ['gsku:admin'] });
add('tampered_signature', 'One character of the signature changed', `${vh}.${vp}.${flip(vs, 5)}`, refused('invalid_token', 'signature'));
add('empty_signature', 'An HS256 header with the signature removed', `${vh}.${vp}.`, refused('invalid_token', 'signature'));

// Refused: header type and claims.
add('typ_jwt', 'typ "JWT" instead of "at+jwt" (not an access token)', sign({ header: { typ: 'JWT' } }), refused('invalid_token', 'type'));
add('typ_missing', 'No typ header', sign({ omitHeader: ['typ'] }), refused('invalid_token', 'type'));
add('issuer_wrong', 'Another issuer', sign({ claims: claims({ iss: 'https://evil.test' }) }), refused('invalid_token', 'issuer'));
add('issuer_missing', 'No iss claim', sign({ claims: claims({}, ['iss']) }), refused('invalid_token', 'issuer'));
add('audience_wrong', 'Another audience', sign({ claims: claims({ aud: 'other-api' }) }), refused('invalid_token', 'audience'));
add('audience_list_without_ours', 'aud is a list that does not name this audience', sign({ claims: claims({ aud: ['a-api', 'b-api'] }) }), refused('invalid_token', 'audience'));
add('audience_missing', 'No aud claim', sign({ claims: claims({}, ['aud']) }), refused('invalid_token', 'audience'));
add('exp_missing', 'No exp claim', sign({ claims: claims({}, ['exp']) }), refused('invalid_token', 'claims'));
add('exp_string', 'exp is a string', sign({ claims: claims({ exp: String(NOW + 840) }) }), refused('invalid_token', 'claims'));
add('iat_string', 'iat is a string', sign({ claims: claims({ iat: String(NOW - 60) }) }), refused('invalid_token', 'claims'));
add('nbf_string', 'nbf is a string', sign({ claims: claims({ nbf: String(NOW - 60) }) }), refused('invalid_token', 'not_yet_valid'));
add('expired', 'exp passed 10 minutes ago', sign({ claims: claims({ iat: NOW - 1500, nbf: NOW - 1500, exp: NOW - 600 }) }), refused('token_expired'));
add('expired_at_leeway', 'exp passed exactly 5 s ago: the leeway is exclusive', sign({ claims: claims({ iat: NOW - 905, nbf: NOW - 905, exp: NOW - 5 }) }), refused('token_expired'));
add('not_yet_valid', 'nbf is 10 minutes ahead', sign({ claims: claims({ iat: NOW + 600, nbf: NOW + 600, exp: NOW + 1500 }) }), refused('invalid_token', 'not_yet_valid'));
add('not_yet_valid_past_leeway', 'nbf is 6 s ahead, beyond the 5 s leeway', sign({ claims: claims({ iat: NOW + 6, nbf: NOW + 6, exp: NOW + 906 }) }), refused('invalid_token', 'not_yet_valid'));
add('user_token', 'A user (admin) token: same issuer and key, token_type "user"', sign({ claims: { iss: ISSUER, sub: 'b5c7a0e2-0000-4000-8000-000000000002', aud: AUDIENCE, iat: NOW - 60, nbf: NOW - 60, exp: NOW + 840, jti: 'u-1', token_type: 'user', email: 'admin@example.com', roles: ['system_admin'] } }), refused('invalid_token', 'token_type'));
add('token_type_missing', 'No token_type claim', sign({ claims: claims({}, ['token_type']) }), refused('invalid_token', 'token_type'));
add('token_type_wrong_case', 'token_type "Service"', sign({ claims: claims({ token_type: 'Service' }) }), refused('invalid_token', 'token_type'));
add('no_client', 'Neither client_id nor sub', sign({ claims: claims({}, ['client_id', 'sub']) }), refused('invalid_token', 'claims'));
add('client_id_not_string', 'client_id is a number', sign({ claims: claims({ client_id: 42 }) }), refused('invalid_token', 'claims'));
add('scopes_not_strings', 'scopes holds a number', sign({ claims: claims({ scopes: ['gsku:publish', 7] }) }), refused('invalid_token', 'claims'));
add('scope_not_string', 'No scopes array and scope is a number', sign({ claims: claims({ scope: 7 }, ['scopes']) }), refused('invalid_token', 'claims'));

// Refused: scope.
add('insufficient_scope', 'Valid token without the required scope', valid, refused('insufficient_scope'), { required_scopes: ['gsku:admin'] });
add('insufficient_scope_all', 'mode all: one of two required scopes is missing', valid, refused('insufficient_scope'), { required_scopes: ['gsku:admin', 'gsku:publish'] });
add('insufficient_scope_any', 'mode any: none of the required scopes is granted', valid, refused('insufficient_scope'), { required_scopes: ['gsku:admin', 'gsku:delete'], mode: 'any' });
add('scope_prefix_is_not_scope', 'Granted "gsku:publish" does not satisfy "gsku:pub"', valid, refused('insufficient_scope'), { required_scopes: ['gsku:pub'] });

// Refused: lifetime cap (iat required; exp − iat between 0 and max_lifetime_sec, both safe integers).
const lifetime = { feature: 'lifetime_cap' as const };
add('lifetime_too_long', 'exp − iat is 24 h + 1 s', sign({ claims: claims({ iat: NOW - 60, nbf: NOW - 60, exp: NOW - 60 + MAX_LIFETIME + 1 }) }), refused('invalid_token', 'lifetime'), lifetime);
add('lifetime_one_year', 'A year-long token', sign({ claims: claims({ iat: NOW - 60, nbf: NOW - 60, exp: NOW + 365 * 86_400 }) }), refused('invalid_token', 'lifetime'), lifetime);
add('lifetime_configured_cap', 'A 901 s token with the cap set to 900 s', sign({ claims: claims({ iat: NOW - 60, nbf: NOW - 60, exp: NOW + 841 }) }), refused('invalid_token', 'lifetime'), { ...lifetime, verifier: { max_lifetime_sec: 900 } });
add('iat_missing', 'No iat: required with the lifetime cap (a missing claim)', sign({ claims: claims({}, ['iat']) }), refused('invalid_token', 'claims'), lifetime);
add('lifetime_exp_fraction', 'exp is not an integer', sign({ claims: claims({ exp: NOW + 840.5 }) }), refused('invalid_token', 'lifetime'), lifetime);
add('lifetime_iat_fraction', 'iat is not an integer', sign({ claims: claims({ iat: NOW - 59.5 }) }), refused('invalid_token', 'lifetime'), lifetime);
add('lifetime_iat_future', 'iat ten years ahead, exp an hour after it: the cap would not bind', sign({ claims: claims({ iat: NOW + 315_360_000, nbf: NOW - 60, exp: NOW + 315_360_000 + 3600 }) }), refused('invalid_token', 'lifetime'), lifetime);
add('lifetime_negative', 'exp before iat', sign({ claims: claims({ iat: NOW + 900, nbf: NOW - 60, exp: NOW + 840 }) }), refused('invalid_token', 'lifetime'), lifetime);
add('lifetime_unsafe_integers', 'iat and exp 100 s apart, beyond 2^53 (not exact in JSON numbers)', sign({ rawPayload: JSON.stringify(claims({ iat: 0, nbf: NOW - 60, exp: 0 })).replace('"iat":0', '"iat":9007199254741000').replace('"exp":0', '"exp":9007199254741100') }), refused('invalid_token', 'lifetime'), lifetime);

// Asymmetric tokens (ES256, EdDSA) verified with the server's public keys (JWKs), no secret.
// Test-only keys: they sign nothing but this corpus.
const EC_PRIVATE = { kty: 'EC', crv: 'P-256', x: 'Zl27v5IjNA9Mwios03w9KWJmEU6MRE6oLTj6hSBQOWA', y: '2KNPwyyP1ZusUho6DpoO7LkF6ZqgLSoyrbG-4AsITk4', d: '5fUhwYKD8eyQ4NpkrV2pGGpbImnqeri284I4kuDg5gA' };
const ED_PRIVATE = { kty: 'OKP', crv: 'Ed25519', x: 'bGKYyrRs-2dSxvlxXw3nK5UtNPrRPmLTcHjAjnsNLVo', d: 'amQWbOn1EKW3zNwXKXNJO_FkAaca5GKbxlMbzfska50' };
const EC_KID = 'vectors-es256-1';
const ED_KID = 'vectors-eddsa-1';
const { d: _ecD, ...EC_PUBLIC } = EC_PRIVATE;
const { d: _edD, ...ED_PUBLIC } = ED_PRIVATE;
const PUBLIC_KEYS = [
  { ...EC_PUBLIC, kid: EC_KID, alg: 'ES256', use: 'sig' },
  { ...ED_PUBLIC, kid: ED_KID, alg: 'EdDSA', use: 'sig' },
];

function signAsymmetric(options: { alg: 'ES256' | 'EdDSA'; kid?: string; claims?: Json; der?: boolean; header?: Json }): string {
  const header: Json = { alg: options.alg, typ: 'at+jwt', ...(options.kid === undefined ? {} : { kid: options.kid }), ...options.header };
  const input = `${b64(JSON.stringify(header))}.${b64(JSON.stringify(options.claims ?? claims()))}`;
  const signature =
    options.alg === 'ES256'
      ? signWith('sha256', Buffer.from(input), { key: createPrivateKey({ key: EC_PRIVATE, format: 'jwk' }), dsaEncoding: options.der ? 'der' : 'ieee-p1363' })
      : signWith(null, Buffer.from(input), createPrivateKey({ key: ED_PRIVATE, format: 'jwk' }));
  return `${input}.${signature.toString('base64url')}`;
}

const asymmetric = { feature: 'asymmetric' as const, verifier: { secret: null, previous_secrets: [], public_keys: PUBLIC_KEYS, algorithms: ['ES256', 'EdDSA'] } };
const ecdsa = { ...asymmetric, randomized_signature: true };
const es256 = signAsymmetric({ alg: 'ES256', kid: EC_KID });
const eddsa = signAsymmetric({ alg: 'EdDSA', kid: ED_KID });
add('asym_valid_es256', 'ES256 (P-256) with the kid of a published public key', es256, ok(), ecdsa);
add('asym_valid_eddsa', 'EdDSA (Ed25519) with the kid of a published public key', eddsa, ok(), asymmetric);
add('asym_mixed_mode_hs256', 'Both modes configured (a migration): an HS256 token still verifies', valid, ok(), { ...asymmetric, verifier: { public_keys: PUBLIC_KEYS, algorithms: ['HS256', 'ES256', 'EdDSA'] } });
add('asym_mixed_mode_eddsa', 'Both modes configured (a migration): an EdDSA token verifies', eddsa, ok(), { ...asymmetric, verifier: { public_keys: PUBLIC_KEYS, algorithms: ['HS256', 'ES256', 'EdDSA'] } });
add('asym_kid_unknown', 'ES256 with a kid no published key has', signAsymmetric({ alg: 'ES256', kid: 'vectors-es256-unknown' }), refused('invalid_token', 'unknown_key'), ecdsa);
add('asym_kid_missing', 'EdDSA without a kid', signAsymmetric({ alg: 'EdDSA' }), refused('invalid_token', 'unknown_key'), asymmetric);
add('asym_alg_key_mismatch', 'alg ES256 naming the Ed25519 key', signAsymmetric({ alg: 'ES256', kid: ED_KID }), refused('invalid_token', 'unknown_key'), ecdsa);
add('asym_tampered_payload', 'EdDSA token with its payload changed after signing', (() => { const [h, p, sig] = eddsa.split('.'); return `${h}.${flip(p!, 12)}.${sig}`; })(), refused('invalid_token', 'signature'), asymmetric);
add('asym_tampered_signature', 'ES256 token with one signature character changed', (() => { const [h, p, sig] = es256.split('.'); return `${h}.${p}.${flip(sig!, 8)}`; })(), refused('invalid_token', 'signature'), ecdsa);
add('asym_es256_der_signature', 'ES256 with a DER signature instead of JWS\'s R||S', signAsymmetric({ alg: 'ES256', kid: EC_KID, der: true }), refused('invalid_token', 'signature'), ecdsa);
add('asym_hs256_without_secret', 'HS256 while only public keys are trusted (no secret to check it)', valid, refused('invalid_token', 'algorithm'), asymmetric);
add('asym_hs256_with_public_key_as_secret', 'Key confusion: HS256 "signed" with the public key\'s x as the secret, naming its kid', sign({ header: { kid: ED_KID }, secret: ED_PUBLIC.x }), refused('invalid_token', 'algorithm'), asymmetric);
add('asym_user_token', 'An EdDSA user token', signAsymmetric({ alg: 'EdDSA', kid: ED_KID, claims: claims({ token_type: 'user' }) }), refused('invalid_token', 'token_type'), asymmetric);
add('asym_expired', 'An expired EdDSA token', signAsymmetric({ alg: 'EdDSA', kid: ED_KID, claims: claims({ iat: NOW - 1500, nbf: NOW - 1500, exp: NOW - 600 }) }), refused('token_expired'), asymmetric);
add('asym_lifetime_too_long', 'An EdDSA token living 2 days', signAsymmetric({ alg: 'EdDSA', kid: ED_KID, claims: claims({ exp: NOW - 60 + 2 * 86_400 }) }), refused('invalid_token', 'lifetime'), asymmetric);
add('asym_insufficient_scope', 'A valid ES256 token without the scope', es256, refused('insufficient_scope'), { ...ecdsa, required_scopes: ['gsku:admin'] });

/**
 * What a guard answers for each refusal (the Node guards' bearerErrorResponse), for a
 * route that requires `gsku:publish`: every middleware of the platform answers the same.
 */
function guardAnswers() {
  return (['missing_token', 'invalid_token', 'token_expired', 'insufficient_scope'] as const).map((code) => {
    const { status, headers, body } = bearerErrorResponse(new TokenVerificationError(code, 'x', { requiredScopes: ['gsku:publish'] }));
    return { code, status, headers, body };
  });
}

export const corpus = {
  about:
    'Service tokens and the decision every platform verifier must reach on each (generated by generate.ts beside this file; do not edit by hand). ' +
    'Verify each token with the options in `verifier`, merged with the vector\'s own `verifier` overrides, at the fixed time `now` (seconds), ' +
    'requiring `required_scopes` in `mode`. `expect.ok` true: accepted, with that client_id, service_name and scopes; false: refused with that ' +
    'error code and, for invalid_token, that reason. `secret: null` means no secret (public keys only); `public_keys` are JWKs. ' +
    'Vectors with `randomized_signature` carry an ECDSA signature, which changes each time the corpus is generated.',
  verifier: {
    secret: SECRET,
    previous_secrets: [PREVIOUS_SECRET],
    issuer: ISSUER,
    audience: AUDIENCE,
    algorithms: ['HS256'],
    clock_tolerance_sec: LEEWAY,
    max_lifetime_sec: MAX_LIFETIME,
    now: NOW,
  },
  vectors,
  guard_answers: guardAnswers(),
};

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const names = new Set(vectors.map((v) => v.name));
  if (names.size !== vectors.length) throw new Error('duplicate vector names');
  const out = fileURLToPath(new URL('./service-tokens.json', import.meta.url));
  writeFileSync(out, `${JSON.stringify(corpus, null, 2)}\n`);
  console.log(`wrote ${vectors.length} vectors to ${out}`);
}
