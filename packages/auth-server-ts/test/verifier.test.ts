import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  AuthServerError,
  bearerErrorResponse,
  createServiceTokenVerifier,
  keyIdForSecret,
  TokenVerificationError,
  type ServiceTokenVerifierOptions,
} from '../src/index.js';
import { AUDIENCE, FakeClock, ISSUER, OTHER_SECRET, PREVIOUS_SECRET, SECRET, signToken } from './helpers.js';

const base: ServiceTokenVerifierOptions = { secret: SECRET, issuer: ISSUER, audience: AUDIENCE };

async function refusal(promise: Promise<unknown>): Promise<TokenVerificationError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(TokenVerificationError);
    return err as TokenVerificationError;
  }
  throw new Error('expected the token to be refused');
}

const INVALID_TOKEN_CHALLENGE = 'Bearer error="invalid_token", error_description="The access token is invalid"';

afterEach(() => {
  vi.restoreAllMocks();
});

describe('createServiceTokenVerifier: accepts', () => {
  it('a valid service token and returns a frozen ServicePrincipal', async () => {
    const verifier = createServiceTokenVerifier(base);
    const principal = await verifier.verify(await signToken(), { scopes: ['gsku:publish'] });
    expect(principal).toMatchObject({
      clientId: 'billing-svc',
      serviceName: 'Billing backend',
      scopes: ['gsku:publish', 'gsku:read'],
    });
    expect(principal.claims).toMatchObject({ token_type: 'service', iss: ISSUER, aud: AUDIENCE, sub: 'billing-svc' });
    expect(Object.isFrozen(principal)).toBe(true);
    expect(Object.isFrozen(principal.scopes)).toBe(true);
  });

  it('scopes from the space-delimited scope claim when there is no scopes array', async () => {
    const verifier = createServiceTokenVerifier(base);
    const token = await signToken({ omit: ['scopes'], claims: { scope: 'a b' } });
    expect((await verifier.verify(token, { scopes: ['b'] })).scopes).toEqual(['a', 'b']);
  });

  it('mode any: one of the scopes is enough; mode all: each is required', async () => {
    const verifier = createServiceTokenVerifier(base);
    const token = await signToken();
    await expect(verifier.verify(token, { scopes: ['nope', 'gsku:read'], mode: 'any' })).resolves.toBeDefined();
    await expect(verifier.verify(token, { scopes: ['gsku:publish', 'gsku:read'], mode: 'all' })).resolves.toBeDefined();
  });

  it('issuer: false and audience: false skip those checks on purpose', async () => {
    const verifier = createServiceTokenVerifier({ secret: SECRET, issuer: false, audience: false });
    const token = await signToken({ claims: { iss: 'https://elsewhere', aud: 'other' } });
    await expect(verifier.verify(token)).resolves.toMatchObject({ clientId: 'billing-svc' });
  });

  it('a list of accepted audiences', async () => {
    const verifier = createServiceTokenVerifier({ ...base, audience: ['a', AUDIENCE] });
    await expect(verifier.verify(await signToken())).resolves.toBeDefined();
  });

  it('a token not yet valid within the clock tolerance', async () => {
    const verifier = createServiceTokenVerifier(base);
    const token = await signToken({ claims: { nbf: Math.floor(Date.now() / 1000) + 3 } });
    await expect(verifier.verify(token)).resolves.toBeDefined();
  });
});

describe('createServiceTokenVerifier: refuses (code, reason, HTTP mapping)', () => {
  const now = Math.floor(Date.now() / 1000);
  const cases: Array<[string, () => Promise<string>, string, string | undefined]> = [
    ['a user token', () => signToken({ claims: { token_type: 'user', roles: ['system_admin'] } }), 'invalid_token', 'token_type'],
    ['an expired token', () => signToken({ claims: { iat: now - 1000, nbf: now - 1000, exp: now - 60 } }), 'token_expired', undefined],
    [
      'a tampered token',
      async () => {
        const [h, , s] = (await signToken()).split('.');
        const forged = Buffer.from(JSON.stringify({ token_type: 'service', scopes: ['*'], exp: now + 900 })).toString('base64url');
        return `${h}.${forged}.${s}`;
      },
      'invalid_token',
      'signature',
    ],
    ['a token from another secret (its own kid)', () => signToken({ secret: OTHER_SECRET }), 'invalid_token', 'unknown_key'],
    [
      'a token from another secret (no kid)',
      () => signToken({ secret: OTHER_SECRET, header: { kid: undefined } }),
      'invalid_token',
      'signature',
    ],
    [
      'a token with the current kid but another secret',
      () => signToken({ secret: OTHER_SECRET, header: { kid: keyIdForSecret(SECRET) } }),
      'invalid_token',
      'signature',
    ],
    [
      'alg: none',
      async () => {
        const [, payload] = (await signToken()).split('.');
        return `${Buffer.from('{"alg":"none","typ":"at+jwt"}').toString('base64url')}.${payload}.`;
      },
      'invalid_token',
      'algorithm',
    ],
    ['an algorithm outside the allow-list', () => signToken({ header: { alg: 'HS512' } }), 'invalid_token', 'algorithm'],
    ['typ JWT', () => signToken({ header: { typ: 'JWT' } }), 'invalid_token', 'type'],
    ['no typ', () => signToken({ header: { typ: undefined } }), 'invalid_token', 'type'],
    ['a wrong issuer', () => signToken({ claims: { iss: 'https://evil.test' } }), 'invalid_token', 'issuer'],
    ['a wrong audience', () => signToken({ claims: { aud: 'someone-else' } }), 'invalid_token', 'audience'],
    ['no exp', () => signToken({ omit: ['exp'] }), 'invalid_token', 'claims'],
    ['a token not yet valid', () => signToken({ claims: { nbf: now + 600 } }), 'invalid_token', 'not_yet_valid'],
    ['garbage', async () => 'not.a.jwt', 'invalid_token', 'malformed'],
  ];

  it.each(cases)('%s', async (_, make, code, reason) => {
    const verifier = createServiceTokenVerifier(base);
    const err = await refusal(verifier.verify(await make()));
    expect(err.code).toBe(code);
    expect(err.reason).toBe(reason);
    expect(err.httpStatus).toBe(401);
    expect(err.wwwAuthenticate()).toBe(
      code === 'token_expired'
        ? 'Bearer error="invalid_token", error_description="The access token expired"'
        : INVALID_TOKEN_CHALLENGE,
    );
  });

  it('a missing token: 401 with a bare Bearer challenge', async () => {
    const verifier = createServiceTokenVerifier(base);
    for (const token of [undefined, null, '']) {
      const err = await refusal(verifier.verify(token));
      expect(err.code).toBe('missing_token');
      expect(err.httpStatus).toBe(401);
      expect(err.wwwAuthenticate()).toBe('Bearer');
    }
  });

  it('a missing scope (all): 403 insufficient_scope naming the scopes', async () => {
    const verifier = createServiceTokenVerifier(base);
    const err = await refusal(verifier.verify(await signToken(), { scopes: ['gsku:publish', 'gsku:admin'] }));
    expect(err.code).toBe('insufficient_scope');
    expect(err.httpStatus).toBe(403);
    expect(err.requiredScopes).toEqual(['gsku:publish', 'gsku:admin']);
    expect(err.wwwAuthenticate()).toBe(
      'Bearer error="insufficient_scope", error_description="The access token lacks the required scope", scope="gsku:publish gsku:admin"',
    );
    expect(bearerErrorResponse(err)).toEqual({
      status: 403,
      headers: {
        'content-type': 'application/json; charset=utf-8',
        'cache-control': 'no-store',
        'www-authenticate': err.wwwAuthenticate(),
      },
      body: {
        error: 'insufficient_scope',
        error_description: 'The access token lacks the required scope',
        scope: 'gsku:publish gsku:admin',
      },
    });
  });

  it('a missing scope (any): none of them granted', async () => {
    const verifier = createServiceTokenVerifier(base);
    const err = await refusal(verifier.verify(await signToken(), { scopes: ['a', 'b'], mode: 'any' }));
    expect(err.code).toBe('insufficient_scope');
    expect(err.httpStatus).toBe(403);
  });

  it('a token older than maxTokenAgeSec', async () => {
    const verifier = createServiceTokenVerifier({ ...base, maxTokenAgeSec: 60 });
    const iat = Math.floor(Date.now() / 1000) - 120;
    const err = await refusal(verifier.verify(await signToken({ claims: { iat, nbf: iat } })));
    expect(err.code).toBe('token_expired');
    expect(err.reason).toBe('too_old');
  });
});

describe('createServiceTokenVerifier: key rotation', () => {
  it('accepts the previous secret while it is configured, and not after it is removed', async () => {
    const verifier = createServiceTokenVerifier({ ...base, previousSecrets: [PREVIOUS_SECRET] });
    const old = await signToken({ secret: PREVIOUS_SECRET });
    const oldWithoutKid = await signToken({ secret: PREVIOUS_SECRET, header: { kid: undefined }, claims: { jti: 'other' } });
    const current = await signToken();

    await expect(verifier.verify(old)).resolves.toMatchObject({ clientId: 'billing-svc' });
    await expect(verifier.verify(oldWithoutKid)).resolves.toMatchObject({ clientId: 'billing-svc' });
    await expect(verifier.verify(current)).resolves.toBeDefined();

    verifier.setSecrets({ secret: SECRET });
    expect((await refusal(verifier.verify(old))).reason).toBe('unknown_key');
    expect((await refusal(verifier.verify(oldWithoutKid))).reason).toBe('signature');
    await expect(verifier.verify(current)).resolves.toBeDefined();

    const fresh = createServiceTokenVerifier(base);
    expect((await refusal(fresh.verify(old))).code).toBe('invalid_token');
  });

  it('accepts tokens of the new secret once it becomes current', async () => {
    const verifier = createServiceTokenVerifier({ ...base, secret: PREVIOUS_SECRET });
    const next = await signToken();
    expect((await refusal(verifier.verify(next))).reason).toBe('unknown_key');
    verifier.setSecrets({ secret: SECRET, previousSecrets: [PREVIOUS_SECRET] });
    await expect(verifier.verify(next)).resolves.toBeDefined();
    await expect(verifier.verify(await signToken({ secret: PREVIOUS_SECRET }))).resolves.toBeDefined();
  });
});

// These tests count signature checks with a spy on WebCrypto's verify, so their tokens carry a
// header field the platform never sets: that sends them through jose's full path instead of the
// synchronous HS256 check. The cache sits in front of both paths alike.
const viaJose = (options: Parameters<typeof signToken>[0] = {}) => signToken({ ...options, header: { 'x-test-path': 'jose', ...options.header } });

describe('createServiceTokenVerifier: cache of verified tokens', () => {
  it('checks the signature once per token, but scopes on every call', async () => {
    const verify = vi.spyOn(crypto.subtle, 'verify');
    const verifier = createServiceTokenVerifier(base);
    const token = await viaJose();
    for (let i = 0; i < 5; i++) await verifier.verify(token, { scopes: ['gsku:publish'] });
    expect(verify).toHaveBeenCalledTimes(1);

    const err = await refusal(verifier.verify(token, { scopes: ['gsku:admin'] }));
    expect(err.code).toBe('insufficient_scope');
    expect(verify).toHaveBeenCalledTimes(1);
  });

  it('never serves a cached token past exp', async () => {
    const clock = new FakeClock(Date.now());
    const verifier = createServiceTokenVerifier({ ...base, clock, clockToleranceSec: 0 });
    const token = await signToken({ now: clock.now() });
    await verifier.verify(token);
    clock.advance(899_000);
    await expect(verifier.verify(token)).resolves.toBeDefined();
    clock.advance(1_000);
    expect((await refusal(verifier.verify(token))).code).toBe('token_expired');
  });

  it('is cleared when the keys change', async () => {
    const verify = vi.spyOn(crypto.subtle, 'verify');
    const verifier = createServiceTokenVerifier(base);
    const token = await viaJose();
    await verifier.verify(token);
    verifier.setSecrets({ secret: SECRET });
    await verifier.verify(token);
    expect(verify).toHaveBeenCalledTimes(2);
  });

  it('can be turned off', async () => {
    const verify = vi.spyOn(crypto.subtle, 'verify');
    const verifier = createServiceTokenVerifier({ ...base, cache: false });
    const token = await viaJose();
    await verifier.verify(token);
    await verifier.verify(token);
    expect(verify).toHaveBeenCalledTimes(2);
  });

  it('is bounded', async () => {
    const verify = vi.spyOn(crypto.subtle, 'verify');
    const verifier = createServiceTokenVerifier({ ...base, cache: { maxEntries: 2 } });
    const tokens = await Promise.all(['1', '2', '3'].map((jti) => viaJose({ claims: { jti } })));
    for (const token of tokens) await verifier.verify(token);
    await verifier.verify(tokens[2]!); // cached
    expect(verify).toHaveBeenCalledTimes(3);
    await verifier.verify(tokens[0]!); // evicted: checked again
    expect(verify).toHaveBeenCalledTimes(4);
  });

  it('serves only the exact token: a cached token’s signature on another payload is refused', async () => {
    const verifier = createServiceTokenVerifier(base);
    const token = await signToken();
    await verifier.verify(token, { scopes: ['gsku:publish'] });
    const [head, body, signature] = token.split('.') as [string, string, string];
    const claims = JSON.parse(Buffer.from(body, 'base64url').toString());
    const grafted = `${head}.${Buffer.from(JSON.stringify({ ...claims, scopes: ['gsku:admin'], scope: 'gsku:admin' })).toString('base64url')}.${signature}`;
    expect(await refusal(verifier.verify(grafted, { scopes: ['gsku:admin'] }))).toMatchObject({ code: 'invalid_token', reason: 'signature' });
    // Both paths: the same graft of a token verified through jose.
    const viaJoseToken = await viaJose({ claims: { jti: 'jose-1' } });
    await verifier.verify(viaJoseToken);
    const [h2, b2, s2] = viaJoseToken.split('.') as [string, string, string];
    const grafted2 = `${h2}.${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(b2, 'base64url').toString()), client_id: 'intruder' })).toString('base64url')}.${s2}`;
    expect(await refusal(verifier.verify(grafted2))).toMatchObject({ code: 'invalid_token', reason: 'signature' });
    // The originals are still served.
    await expect(verifier.verify(token)).resolves.toMatchObject({ clientId: 'billing-svc' });
  });

  it('does not cache refused tokens', async () => {
    const verifier = createServiceTokenVerifier(base);
    const token = await signToken({ claims: { token_type: 'user' } });
    expect((await refusal(verifier.verify(token))).reason).toBe('token_type');
    expect((await refusal(verifier.verify(token))).reason).toBe('token_type');
  });
});

describe('createServiceTokenVerifier: options', () => {
  const cases: Array<[string, Record<string, unknown>]> = [
    ['no issuer', { issuer: undefined }],
    ['an empty issuer', { issuer: '' }],
    ['no audience', { audience: undefined }],
    ['audience: true', { audience: true }],
    ['a short secret', { secret: 'short' }],
    ['a short previous secret', { previousSecrets: ['short'] }],
    ['an empty algorithm list', { algorithms: [] }],
    ['alg none', { algorithms: ['none'] }],
    ['an asymmetric alg', { algorithms: ['RS256'] }],
    ['a negative tolerance', { clockToleranceSec: -1 }],
    ['a zero max age', { maxTokenAgeSec: 0 }],
    ['a zero cache size', { cache: { maxEntries: 0 } }],
  ];
  it.each(cases)('rejects %s with invalid_options', (_, override) => {
    let error: unknown;
    try {
      createServiceTokenVerifier({ ...base, ...override } as ServiceTokenVerifierOptions);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(AuthServerError);
    expect((error as AuthServerError).code).toBe('invalid_options');
    expect(String(error)).not.toContain(SECRET);
  });
});
