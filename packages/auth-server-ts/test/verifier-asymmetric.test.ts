import { createHmac, createPublicKey, generateKeyPairSync, type KeyObject, randomBytes, sign } from 'node:crypto';
import Fastify from 'fastify';
import { calculateJwkThumbprint, exportJWK, type JWK, SignJWT } from 'jose';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { requireServiceToken, serviceTokenPlugin } from '../src/fastify.js';
import { AuthServerError, createServiceTokenVerifier, keyIdForSecret, type ServiceTokenVerifierOptions, TokenVerificationError } from '../src/index.js';
import { AUDIENCE, FakeClock, ISSUER, SECRET, signToken, startServer, type TestServer, until } from './helpers.js';

interface TestKey {
  alg: 'ES256' | 'EdDSA';
  kid: string;
  privateKey: KeyObject;
  publicJwk: JWK;
}

async function newKey(alg: 'ES256' | 'EdDSA'): Promise<TestKey> {
  const { privateKey, publicKey } = alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519');
  const jwk = await exportJWK(publicKey);
  const kid = await calculateJwkThumbprint(jwk);
  return { alg, kid, privateKey, publicJwk: { ...jwk, kid, alg, use: 'sig' } };
}

const nowSec = () => Math.floor(Date.now() / 1000);
function claims(overrides: Record<string, unknown> = {}, at = nowSec()) {
  return {
    iss: ISSUER,
    sub: 'billing-svc',
    aud: AUDIENCE,
    iat: at,
    nbf: at,
    exp: at + 900,
    jti: randomBytes(8).toString('hex'),
    token_type: 'service',
    client_id: 'billing-svc',
    service_name: 'Billing backend',
    scopes: ['gsku:publish'],
    scope: 'gsku:publish',
    ...overrides,
  };
}

/** Signed by jose (an implementation independent of the verifier's node:crypto path). */
function signAsym(key: TestKey, overrides: Record<string, unknown> = {}, header: Record<string, unknown> = {}, at?: number): Promise<string> {
  return new SignJWT(claims(overrides, at))
    .setProtectedHeader({ alg: key.alg, typ: 'at+jwt', kid: key.kid, ...header } as { alg: string })
    .sign(key.privateKey);
}

/** A compact JWS over a raw payload text (for values JSON.stringify cannot write, like 1e999). */
function signRaw(key: TestKey, payloadJson: string): string {
  const input = `${Buffer.from(JSON.stringify({ alg: key.alg, typ: 'at+jwt', kid: key.kid })).toString('base64url')}.${Buffer.from(payloadJson).toString('base64url')}`;
  const signature = key.alg === 'ES256' ? sign('sha256', Buffer.from(input), { key: key.privateKey, dsaEncoding: 'ieee-p1363' }) : sign(null, Buffer.from(input), key.privateKey);
  return `${input}.${signature.toString('base64url')}`;
}

function hs256(secret: Uint8Array | string, header: Record<string, unknown>, payload = claims()): string {
  const input = `${Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'at+jwt', ...header })).toString('base64url')}.${Buffer.from(JSON.stringify(payload)).toString('base64url')}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

async function refusal(promise: Promise<unknown>): Promise<TokenVerificationError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(TokenVerificationError);
  return err as TokenVerificationError;
}

let es: TestKey;
let ed: TestKey;
let stranger: TestKey;
beforeAll(async () => {
  [es, ed, stranger] = await Promise.all([newKey('ES256'), newKey('EdDSA'), newKey('ES256')]);
});

const base = { issuer: ISSUER, audience: AUDIENCE } as const;

describe('static publicKeys', () => {
  it.each(['ES256', 'EdDSA'] as const)('accept %s tokens from the platform and expose the principal', async (alg) => {
    const key = alg === 'ES256' ? es : ed;
    const verifier = createServiceTokenVerifier({ ...base, publicKeys: [es.publicJwk, ed.publicJwk] });
    const token = await signAsym(key);
    const principal = await verifier.verify(token, { scopes: ['gsku:publish'] });
    expect(principal).toMatchObject({ clientId: 'billing-svc', serviceName: 'Billing backend', scopes: ['gsku:publish'] });
    // Repeated: served from the cache, the same principal object.
    expect(await verifier.verify(token)).toBe(principal);
    expect(await refusal(verifier.verify(token, { scopes: ['admin'] }))).toMatchObject({ code: 'insufficient_scope' });
  });

  it('refuse a wrong signature, an unknown kid, and an alg that does not match the key', async () => {
    const verifier = createServiceTokenVerifier({ ...base, publicKeys: [es.publicJwk, ed.publicJwk] });
    const forged = await signAsym(stranger, {}, { kid: es.kid });
    expect(await refusal(verifier.verify(forged))).toMatchObject({ code: 'invalid_token', reason: 'signature' });
    expect(await refusal(verifier.verify(await signAsym(stranger)))).toMatchObject({ code: 'invalid_token', reason: 'unknown_key' });
    // An Ed25519 signature presented under the ES256 key's kid.
    expect(await refusal(verifier.verify(await signAsym(ed, {}, { kid: es.kid })))).toMatchObject({ code: 'invalid_token', reason: 'unknown_key' });
    const tampered = (await signAsym(es)).replace(/\.([^.]+)\./, (_m, p: string) => `.${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p, 'base64url').toString()), scopes: ['admin'] })).toString('base64url')}.`);
    expect(await refusal(verifier.verify(tampered))).toMatchObject({ reason: 'signature' });
  });

  it('refuse keys that cannot be used, at construction', () => {
    const bad: [string, Partial<ServiceTokenVerifierOptions>][] = [
      ['no key source at all', {}],
      ['HS256 allowed without a secret', { publicKeys: [es.publicJwk], algorithms: ['HS256'] }],
      ['ES256 allowed without public keys', { secret: SECRET, algorithms: ['ES256'] }],
      ['a private JWK', { publicKeys: [{ ...es.publicJwk, d: 'AAAA' }] }],
      ['a JWK without kid', { publicKeys: [{ ...es.publicJwk, kid: undefined }] }],
      ['a JWK whose alg contradicts its type', { publicKeys: [{ ...es.publicJwk, alg: 'EdDSA' }] }],
      ['a non-http jwksUri', { jwksUri: 'file:///etc/passwd' }],
      ['a JWKS timeout past the longest timer (setTimeout would fire at once)', { jwksUri: 'https://auth.example.com/.well-known/jwks.json', jwksTimeoutMs: 2 ** 31 }],
      ['a zero lifetime cap', { secret: SECRET, maxTokenLifetimeSec: 0 }],
    ];
    for (const [what, options] of bad) {
      let error: unknown;
      try {
        createServiceTokenVerifier({ ...base, ...options } as ServiceTokenVerifierOptions);
      } catch (err) {
        error = err;
      }
      expect({ what, code: (error as AuthServerError | undefined)?.code }).toEqual({ what, code: 'invalid_options' });
    }
  });
});

describe('jwksUri', () => {
  let server: TestServer;
  let keys: JWK[];
  let down = false;
  afterEach(async () => {
    await server?.close();
    down = false;
  });
  const serve = async () => {
    server = await startServer((request) => {
      if (down) return { status: 503, body: { error: 'down' } };
      if (request.url === '/.well-known/oauth-authorization-server') return { status: 200, body: { issuer: server.url, jwks_uri: `${server.url}/.well-known/jwks.json` } };
      return { status: 200, headers: { 'cache-control': 'public, max-age=300' }, body: { keys } };
    });
  };
  const jwksRequests = () => server.requests.filter((r) => r.url === '/.well-known/jwks.json').length;

  it('fetches once, then serves from cache; random kids cost at most one fetch per cooldown', async () => {
    keys = [es.publicJwk, ed.publicJwk];
    await serve();
    const clock = new FakeClock(Date.now());
    const verifier = createServiceTokenVerifier({ ...base, jwksUri: `${server.url}/.well-known/jwks.json`, clock, jwksCooldownMs: 30_000 });
    await verifier.verify(await signAsym(es));
    await verifier.verify(await signAsym(ed));
    expect(jwksRequests()).toBe(1);
    expect(server.requests[0]!.headers.accept).toMatch(/jwk-set\+json/);

    // An attacker floods tokens naming random kids, concurrently and one after another.
    const forged = await Promise.all(Array.from({ length: 50 }, () => signAsym(stranger, {}, { kid: randomBytes(32).toString('base64url') })));
    const refused = await Promise.all(forged.map((t) => refusal(verifier.verify(t))));
    expect(new Set(refused.map((e) => e.reason))).toEqual(new Set(['unknown_key']));
    for (const t of forged.slice(0, 20)) await refusal(verifier.verify(t));
    // The first fetch was just now: the cooldown has not passed, so no new request at all.
    expect(jwksRequests()).toBe(1);

    clock.advance(30_000);
    await Promise.all(forged.slice(0, 30).map((t) => refusal(verifier.verify(t))));
    expect(jwksRequests()).toBe(2);
  });

  it('picks up a new key (rotation) on its first token once the cooldown allows, and keeps the last good set when the server is down', async () => {
    keys = [es.publicJwk];
    await serve();
    const clock = new FakeClock(Date.now());
    const verifier = createServiceTokenVerifier({ ...base, jwksUri: `${server.url}/.well-known/jwks.json`, clock });
    await verifier.verify(await signAsym(es));

    down = true;
    clock.advance(10 * 60_000); // past max-age: a background refresh is attempted and fails
    await verifier.verify(await signAsym(es));
    await new Promise((r) => setTimeout(r, 50));
    await verifier.verify(await signAsym(es));
    expect(jwksRequests()).toBe(2);

    down = false;
    keys = [es.publicJwk, ed.publicJwk];
    clock.advance(30_000);
    await verifier.verify(await signAsym(ed));
    expect(jwksRequests()).toBe(3);
  });

  it('a key removed from the set (rotated out after a leak) stops verifying, also tokens it signed that were already verified and cached', async () => {
    keys = [es.publicJwk, ed.publicJwk];
    await serve();
    const clock = new FakeClock(Date.now());
    const verifier = createServiceTokenVerifier({ ...base, jwksUri: `${server.url}/.well-known/jwks.json`, clock });
    const forged = await signAsym(es, { jti: 'minted-with-the-leaked-key' });
    expect((await verifier.verify(forged)).clientId).toBe('billing-svc');
    expect((await verifier.verify(forged)).clientId).toBe('billing-svc'); // now served from the cache

    keys = [ed.publicJwk];
    clock.advance(300_000); // past max-age: the next verification refreshes the set in the background
    await verifier.verify(await signAsym(ed));
    await until(() => jwksRequests() === 2);
    await new Promise((r) => setTimeout(r, 20));
    expect((await refusal(verifier.verify(forged))).reason).toBe('unknown_key');
    expect((await verifier.verify(await signAsym(ed))).clientId).toBe('billing-svc');
  });

  it('reports jwks_unavailable while it never obtained a key set, then recovers', async () => {
    keys = [es.publicJwk];
    await serve();
    down = true;
    const clock = new FakeClock(Date.now());
    const verifier = createServiceTokenVerifier({ ...base, jwksUri: `${server.url}/.well-known/jwks.json`, clock });
    expect(await refusal(verifier.verify(await signAsym(es)))).toMatchObject({ code: 'invalid_token', reason: 'jwks_unavailable' });
    down = false;
    clock.advance(30_000);
    await expect(verifier.verify(await signAsym(es))).resolves.toMatchObject({ clientId: 'billing-svc' });
  });

  it('discovers the JWKS URI from the issuer metadata (RFC 8414)', async () => {
    keys = [ed.publicJwk];
    await serve();
    const key = ed;
    const verifier = createServiceTokenVerifier({ issuer: server.url, audience: AUDIENCE, discoverJwksUri: true });
    const token = await new SignJWT(claims({ iss: server.url })).setProtectedHeader({ alg: key.alg, typ: 'at+jwt', kid: key.kid }).sign(key.privateKey);
    await expect(verifier.verify(token)).resolves.toMatchObject({ clientId: 'billing-svc' });
    expect(server.requests.map((r) => r.url)).toEqual(['/.well-known/oauth-authorization-server', '/.well-known/jwks.json']);
  });
});

describe('no algorithm confusion: a receiver holding only the JWKS cannot mint a token any verifier accepts', () => {
  /** Every token an attacker can make from the public keys alone. */
  async function forgeries(): Promise<[string, string][]> {
    const pemBytes = Buffer.from(createPublicKey(es.privateKey).export({ format: 'pem', type: 'spki' }) as string);
    const derBytes = createPublicKey(es.privateKey).export({ format: 'der', type: 'spki' });
    const jwkBytes = Buffer.from(JSON.stringify(es.publicJwk));
    const xBytes = Buffer.from(String(ed.publicJwk.x), 'base64url');
    const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt', kid: es.kid })).toString('base64url')}.${Buffer.from(JSON.stringify(claims())).toString('base64url')}.`;
    return [
      ['HS256 keyed with the PEM public key, kid of the ES256 key', hs256(pemBytes, { kid: es.kid })],
      ['HS256 keyed with the DER public key', hs256(derBytes, { kid: es.kid })],
      ['HS256 keyed with the JWK text', hs256(jwkBytes, { kid: es.kid })],
      ['HS256 keyed with the Ed25519 x coordinate', hs256(xBytes, { kid: ed.kid })],
      ['HS256 keyed with the PEM, kid derived from it', hs256(pemBytes, { kid: keyIdForSecret(pemBytes) })],
      ['alg none', none],
      ['ES256 with its own key, kid of the real one', await signAsym(stranger, {}, { kid: es.kid })],
      ['ES256 with its own key embedded as jwk', await signAsym(stranger, {}, { kid: stranger.kid, jwk: stranger.publicJwk })],
      ['ES256 with a jku of its own', await signAsym(stranger, {}, { kid: stranger.kid, jku: 'https://attacker.test/jwks.json' })],
    ];
  }

  it.each([
    ['asymmetric only', () => ({ publicKeys: [es.publicJwk, ed.publicJwk] })],
    ['migration: secret and public keys', () => ({ secret: SECRET, publicKeys: [es.publicJwk, ed.publicJwk] })],
    ['HS256 only', () => ({ secret: SECRET })],
  ] as const)('%s: every forgery refused', async (_mode, options) => {
    const verifier = createServiceTokenVerifier({ ...base, ...options(), cache: false });
    for (const [what, token] of await forgeries()) {
      const err = await refusal(verifier.verify(token));
      expect({ what, code: err.code }).toEqual({ what, code: 'invalid_token' });
    }
  });

  it('a compromised HS256 receiver (it holds JWT_ACCESS_SECRET) forges a token an asymmetric verifier refuses', async () => {
    const forged = await signToken({ claims: { client_id: 'payments-svc', sub: 'payments-svc', scopes: ['payments:refund'], scope: 'payments:refund' } });
    const hsVerifier = createServiceTokenVerifier({ ...base, secret: SECRET });
    await expect(hsVerifier.verify(forged)).resolves.toBeDefined(); // what the shared secret allows
    const asymmetric = createServiceTokenVerifier({ ...base, publicKeys: [es.publicJwk] });
    expect(await refusal(asymmetric.verify(forged))).toMatchObject({ code: 'invalid_token', reason: 'algorithm' });
  });

  it('migration: one verifier accepts both kinds until the secret is dropped', async () => {
    const both = createServiceTokenVerifier({ ...base, secret: SECRET, publicKeys: [es.publicJwk] });
    await expect(both.verify(await signToken())).resolves.toBeDefined();
    await expect(both.verify(await signAsym(es))).resolves.toBeDefined();
    const after = createServiceTokenVerifier({ ...base, publicKeys: [es.publicJwk] });
    expect(await refusal(after.verify(await signToken()))).toMatchObject({ reason: 'algorithm' });
    await expect(after.verify(await signAsym(es))).resolves.toBeDefined();
  });
});

describe('lifetime cap, in every mode', () => {
  it('refuses exp − iat above 24 h, infinite, fractional or string values; accepts exactly 24 h', async () => {
    const at = nowSec();
    // The verifier's clock stands still at `at`: the ±1 s edges below must not move while the cases run.
    const verifier = createServiceTokenVerifier({ ...base, publicKeys: [es.publicJwk], cache: false, clock: new FakeClock(at * 1000) });
    const cases: [string, string, string | undefined][] = [
      ['24 h', JSON.stringify(claims({ exp: at + 86_400 }, at)), undefined],
      ['one year', JSON.stringify(claims({ exp: at + 365 * 86_400 }, at)), 'lifetime'],
      ['exp 1e999', JSON.stringify(claims({}, at)).replace(/"exp":\d+/, '"exp":1e999'), 'lifetime'],
      ['a float iat', JSON.stringify(claims({ iat: at - 0.5 }, at)), 'lifetime'],
      ['a string iat', JSON.stringify(claims({ iat: String(at) }, at)), 'claims'],
      ['no iat', JSON.stringify({ ...claims({}, at), iat: undefined }), 'claims'],
      ['exp before iat', JSON.stringify(claims({ iat: at + 10, nbf: at, exp: at + 5 }, at)), 'lifetime'],
      // An iat far ahead would stretch the cap to any date: ten years out, valid for a day after that.
      ['iat ten years ahead', JSON.stringify(claims({ iat: at + 315_360_000, nbf: at, exp: at + 315_360_000 + 86_400 }, at)), 'lifetime'],
      ['iat just past the tolerance', JSON.stringify(claims({ iat: at + 6, nbf: at, exp: at + 600 }, at)), 'lifetime'],
      ['iat within the tolerance', JSON.stringify(claims({ iat: at + 5, nbf: at, exp: at + 600 }, at)), undefined],
    ];
    for (const [what, payload, reason] of cases) {
      const result = await verifier.verify(signRaw(es, payload)).then(
        () => undefined,
        (e: TokenVerificationError) => e.reason,
      );
      expect({ what, result }).toEqual({ what, result: reason });
    }
  });

  it('HS256 too, with a configurable maximum', async () => {
    const at = nowSec();
    const year = await signToken({ claims: { iat: at, nbf: at, exp: at + 365 * 86_400 } });
    expect(await refusal(createServiceTokenVerifier({ ...base, secret: SECRET }).verify(year))).toMatchObject({ code: 'invalid_token', reason: 'lifetime' });
    const strict = createServiceTokenVerifier({ ...base, secret: SECRET, maxTokenLifetimeSec: 600 });
    expect(await refusal(strict.verify(await signToken()))).toMatchObject({ reason: 'lifetime' }); // 900 s
    const future = await signToken({ claims: { iat: at + 315_360_000, nbf: at, exp: at + 315_360_000 + 3600 } });
    expect(await refusal(createServiceTokenVerifier({ ...base, secret: SECRET }).verify(future))).toMatchObject({ code: 'invalid_token', reason: 'lifetime' });
  });
});

describe('key sets travel over https only', () => {
  it('refuses a plain-http jwksUri on a remote host at construction, unless allowInsecureHttp', () => {
    const make = (options: object) => () => createServiceTokenVerifier({ ...base, ...options });
    expect(make({ jwksUri: 'http://auth.example.com/.well-known/jwks.json' })).toThrow(expect.objectContaining({ code: 'invalid_options' }));
    expect(make({ jwksUri: 'http://auth.example.com/.well-known/jwks.json', allowInsecureHttp: true })).not.toThrow();
    expect(make({ jwksUri: 'https://auth.example.com/.well-known/jwks.json' })).not.toThrow();
    expect(make({ jwksUri: 'http://127.0.0.1:1/.well-known/jwks.json' })).not.toThrow();
  });

  it('discovery never fetches metadata or keys over plain http from a remote host', async () => {
    const requests: string[] = [];
    const dispatcher = { dispatch: (opts: { origin?: unknown; path: string }) => { requests.push(`${String(opts.origin)}${opts.path}`); throw new Error('no network in this test'); } };
    const verifier = createServiceTokenVerifier({ ...base, issuer: 'http://auth.example.com', discoverJwksUri: true, dispatcher: dispatcher as never, cache: false });
    expect(await refusal(verifier.verify(signRaw(es, JSON.stringify(claims({}, nowSec())))))).toMatchObject({ reason: 'jwks_unavailable' });
    expect(requests).toEqual([]);
  });
});

describe('guards with an asymmetric verifier', () => {
  it('the Fastify guard accepts an EdDSA token and refuses an HS256 one with 401', async () => {
    const app = Fastify();
    await app.register(serviceTokenPlugin, { ...base, publicKeys: [ed.publicJwk] });
    app.get('/publish', { preHandler: requireServiceToken({ scopes: ['gsku:publish'] }) }, async (request) => ({ clientId: request.servicePrincipal?.clientId }));
    const ok = await app.inject({ url: '/publish', headers: { authorization: `Bearer ${await signAsym(ed)}` } });
    expect({ status: ok.statusCode, body: ok.json() }).toEqual({ status: 200, body: { clientId: 'billing-svc' } });
    const hs = await app.inject({ url: '/publish', headers: { authorization: `Bearer ${await signToken()}` } });
    expect(hs.statusCode).toBe(401);
    expect(hs.headers['www-authenticate']).toMatch(/error="invalid_token"/);
    await app.close();
  });
});
