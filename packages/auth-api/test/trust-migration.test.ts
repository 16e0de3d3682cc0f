import { randomBytes } from 'node:crypto';
import { createServiceTokenVerifier, ServiceTokenManager, TokenVerificationError } from '@rw3iss/auth-server-ts';
import { decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';
import type { DatabaseHandle } from '../src/db/connect.js';
import { createSigningKeyService } from '../src/modules/signing-keys/signing-keys.service.js';
import { AUDIENCE, bearer, createTestContext, TEST_SECRET, testConfig, type TestContext } from './helpers.js';

/**
 * The documented move from HS256 to ES256 with no failed verification
 * (docs/TRUST.md): receivers accept both, the key is published before it
 * signs, the server switches, receivers drop the secret.
 */
const KEK = randomBytes(32).toString('base64');

describe('HS256 → ES256 with receivers accepting both during the switch', () => {
  let hsCtx: TestContext;
  let database: DatabaseHandle;
  let credential: { client_id: string; secret: string };
  let issuer: string;
  const closers: (() => Promise<unknown>)[] = [];

  beforeAll(async () => {
    hsCtx = await createTestContext();
    database = hsCtx.database;
    const res = await hsCtx.app.inject({ method: 'POST', url: '/api/v1/admin/m2m-clients', headers: bearer(hsCtx.adminToken), payload: { client_id: 'migrating-svc', name: 'Migrating', scopes: ['gsku:publish'] } });
    credential = { client_id: 'migrating-svc', secret: res.json().client_secret };
    await hsCtx.app.listen({ port: 0, host: '127.0.0.1' });
    issuer = `http://127.0.0.1:${(hsCtx.app.server.address() as { port: number }).port}`;
  });
  afterAll(async () => {
    for (const close of closers.reverse()) await close();
    await hsCtx?.close();
  });

  const grantFrom = async (base: string) => {
    const manager = new ServiceTokenManager({ tokenEndpoint: `${base}/api/v1/oauth/token`, clientId: credential.client_id, clientSecret: credential.secret });
    try {
      return await manager.getToken();
    } finally {
      await manager.close();
    }
  };

  it('runs the documented steps', async () => {
    // The tokens name the issuer from the test config; the receiver checks that issuer and fetches keys from the server's address.
    const configIssuer = hsCtx.config.jwt.issuer;
    const jwksUri = `${issuer}/.well-known/jwks.json`;

    // 1. Receivers configure both: the shared secret and the JWKS URI.
    const both = createServiceTokenVerifier({ secret: TEST_SECRET, jwksUri, issuer: configIssuer, audience: AUDIENCE });
    const hsToken = await grantFrom(issuer);
    expect(decodeProtectedHeader(hsToken).alg).toBe('HS256');
    await expect(both.verify(hsToken)).resolves.toMatchObject({ clientId: 'migrating-svc' });

    // 2. The operator prepares the key while the server still signs HS256 (`SERVICE_TOKEN_ALG=ES256 auth-api keys rotate`).
    // Run 700 s ago: the key has been published longer than SIGNING_KEY_PUBLISH_DELAY (600 s) + one refresh.
    const rotatedAt = Date.now() - 700_000;
    const cli = createSigningKeyService({ db: database.db, clock: () => rotatedAt, alg: 'ES256', keyEncryptionKey: Buffer.from(KEK, 'base64'), serviceTokenTtlSec: 900, publishDelaySec: 600 });
    const { key } = await cli.rotate({ id: null, label: 'cli', ip: null });
    await hsCtx.app.signingKeys.refresh(); // what its 30 s timer does
    const published = (await (await fetch(jwksUri)).json()) as { keys: { kid: string }[] };
    expect(published.keys.map((k) => k.kid)).toEqual([key.kid]);
    // The HS256 server keeps signing HS256 and never activates the key itself.
    expect(decodeProtectedHeader(await grantFrom(issuer)).alg).toBe('HS256');

    // A switch too early (here: at the moment of the rotation) keeps signing HS256 until the key is due.
    const early = await buildApp({ config: testConfig({ SERVICE_TOKEN_ALG: 'ES256', KEY_ENCRYPTION_KEY: KEK }), database, logger: false, clock: () => rotatedAt });
    const earlyGrant = await early.inject({
      method: 'POST',
      url: '/api/v1/oauth/token',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ grant_type: 'client_credentials', client_id: credential.client_id, client_secret: credential.secret }).toString(),
    });
    expect(decodeProtectedHeader(earlyGrant.json().access_token).alg).toBe('HS256');
    await early.close();
    expect((await database.db.selectFrom('signing_keys').select('state').execute()).map((r) => r.state)).toEqual(['next']);

    // 3. The server switches (a restart with SERVICE_TOKEN_ALG=ES256) once the key is due: it signs at once.
    const esApp = await buildApp({ config: testConfig({ SERVICE_TOKEN_ALG: 'ES256', KEY_ENCRYPTION_KEY: KEK }), database, logger: false });
    closers.push(() => esApp.close());
    await esApp.listen({ port: 0, host: '127.0.0.1' });
    const esBase = `http://127.0.0.1:${(esApp.server.address() as { port: number }).port}`;
    const esToken = await grantFrom(esBase);
    expect(decodeProtectedHeader(esToken)).toEqual({ alg: 'ES256', typ: 'at+jwt', kid: key.kid });
    // Both kinds verify during the switch: HS256 tokens still in flight, ES256 from now on.
    await expect(both.verify(esToken)).resolves.toMatchObject({ clientId: 'migrating-svc' });
    await expect(both.verify(await grantFrom(issuer))).resolves.toBeDefined();

    // 4. After the longest HS256 token has expired, receivers drop the secret: HS256 is refused from then on.
    const asymmetricOnly = createServiceTokenVerifier({ jwksUri: `${esBase}/.well-known/jwks.json`, issuer: configIssuer, audience: AUDIENCE });
    await expect(asymmetricOnly.verify(esToken)).resolves.toMatchObject({ clientId: 'migrating-svc' });
    const refused = await asymmetricOnly.verify(hsToken).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(TokenVerificationError);
    expect(refused).toMatchObject({ code: 'invalid_token', reason: 'algorithm' });
  });
});
