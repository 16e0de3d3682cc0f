import { jwtVerify } from 'jose';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_SECRET, createClient, createTestContext, type TestContext } from './helpers.js';
import { freePort } from './process-helpers.js';

/** A standard OAuth client this project did not write, over a real socket, with discovery. */
let ctx: TestContext;
let issuer: string;
let secret: string;

beforeAll(async () => {
  const port = await freePort();
  issuer = `http://127.0.0.1:${port}`;
  ctx = await createTestContext({ env: { JWT_ISSUER: issuer } });
  await ctx.app.listen({ port, host: '127.0.0.1' });
  secret = (await createClient(ctx, { client_id: 'oidc-client-svc', name: 'Standard client', scopes: ['gsku:publish', 'gsku:read'] })).client_secret;
});
afterAll(() => ctx?.close());

describe('openid-client v6 with discovery from the RFC 8414 metadata', () => {
  for (const [label, auth] of [
    ['client_secret_basic', () => oidc.ClientSecretBasic(secret)],
    ['client_secret_post', () => oidc.ClientSecretPost(secret)],
  ] as const) {
    it(`obtains a token with ${label}`, async () => {
      const config = await oidc.discovery(new URL(issuer), 'oidc-client-svc', undefined, auth(), {
        algorithm: 'oauth2',
        execute: [oidc.allowInsecureRequests],
      });
      expect(config.serverMetadata().token_endpoint).toBe(`${issuer}/api/v1/oauth/token`);
      const tokens = await oidc.clientCredentialsGrant(config, { scope: 'gsku:publish' });
      expect(tokens.token_type).toBe('bearer');
      expect(tokens.expires_in).toBe(900);
      expect(tokens.scope).toBe('gsku:publish');
      const { payload } = await jwtVerify(tokens.access_token, new TextEncoder().encode(TEST_SECRET), { issuer, typ: 'at+jwt', algorithms: ['HS256'] });
      expect(payload).toMatchObject({ token_type: 'service', client_id: 'oidc-client-svc', scopes: ['gsku:publish'] });
    });
  }

  it('surfaces invalid_client to the standard client', async () => {
    const config = await oidc.discovery(new URL(issuer), 'oidc-client-svc', undefined, oidc.ClientSecretBasic('m2msk_wrong'), {
      algorithm: 'oauth2',
      execute: [oidc.allowInsecureRequests],
    });
    const err = await oidc.clientCredentialsGrant(config).catch((e: unknown) => e);
    // The 401 carries `WWW-Authenticate: Basic`, which openid-client reports as a challenge.
    expect(err).toBeInstanceOf(oidc.WWWAuthenticateChallengeError);
    const challenge = err as oidc.WWWAuthenticateChallengeError;
    expect(challenge.status).toBe(401);
    expect(challenge.cause[0]?.scheme).toBe('basic');
    expect(await challenge.response.json()).toEqual({ error: 'invalid_client', error_description: 'Client authentication failed' });
  });
});
