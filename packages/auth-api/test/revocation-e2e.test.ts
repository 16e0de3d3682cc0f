import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { createServiceTokenVerifier, type RevocationEvent, ServiceTokenManager, type ServiceTokenVerifier, type TokenVerificationError } from '@rw3iss/auth-server-ts';
import { requireServiceToken as expressGuard } from '@rw3iss/auth-server-ts/express';
import { requireServiceToken as fastifyGuard, serviceTokenPlugin } from '@rw3iss/auth-server-ts/fastify';
import express from 'express';
import Fastify, { type FastifyInstance } from 'fastify';
import * as oidc from 'openid-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';
import { AUDIENCE, TEST_SECRET, bearer, createClient, createTestContext, type TestContext } from './helpers.js';
import { freePort } from './process-helpers.js';

/**
 * End to end over real sockets, on the real clock: auth-api, a Fastify and an
 * Express service guarded by the SDK verifier with the `revocation` option
 * (default interval), and managers getting real tokens. A revoked credential's
 * unexpired token, and a token revoked by RFC 7009, are refused within 5 s.
 */
let ctx: TestContext;
let issuer: string;
let verifier: ServiceTokenVerifier;
let fastifyService: FastifyInstance;
let expressService: Server;
const services: Record<string, string> = {};
const managers: ServiceTokenManager[] = [];
const refusals: { reason: string | undefined; at: number }[] = [];
const events: RevocationEvent[] = [];
const secrets: Record<string, { id: string; secret: string }> = {};

function managerFor(clientId: string): ServiceTokenManager {
  const manager = new ServiceTokenManager({ tokenEndpoint: `${issuer}/api/v1/oauth/token`, clientId, clientSecret: secrets[clientId]!.secret });
  managers.push(manager);
  return manager;
}

const call = (kind: string, token: string) => fetch(`${services[kind]}/publish`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });

/** Calls the service until it answers 401, at most `limitMs`; the time it took. */
async function msUntilRefused(kind: string, token: string, since: number, limitMs = 8000): Promise<number> {
  for (;;) {
    const res = await call(kind, token);
    if (res.status === 401) return Date.now() - since;
    expect(res.status).toBe(200);
    if (Date.now() - since > limitMs) throw new Error(`still accepted after ${limitMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

beforeAll(async () => {
  const port = await freePort();
  issuer = `http://127.0.0.1:${port}`;
  ctx = await createTestContext({ env: { JWT_ISSUER: issuer } });
  await ctx.app.listen({ port, host: '127.0.0.1' });
  for (const [clientId, scopes] of [
    ['feed-reader', ['auth:revocations:read']],
    ['publisher-a', ['gsku:publish']],
    ['publisher-b', ['gsku:publish']],
    ['introspector', ['auth:introspect']],
    ['publisher-c', ['gsku:publish']],
  ] as const) {
    const { client, client_secret } = await createClient(ctx, { client_id: clientId, name: clientId, scopes });
    secrets[clientId] = { id: client.id, secret: client_secret };
  }

  // The receiving side: defaults, but the feed URL derived from the issuer and the reader's manager.
  verifier = createServiceTokenVerifier({
    secret: TEST_SECRET,
    issuer,
    audience: AUDIENCE,
    revocation: { token: managerFor('feed-reader'), onEvent: (e) => events.push(e) },
  });
  await verifier.syncRevocations();
  fastifyService = Fastify();
  await fastifyService.register(serviceTokenPlugin, { verifier, onRefused: (err: TokenVerificationError) => refusals.push({ reason: err.reason, at: Date.now() }) });
  fastifyService.post('/publish', { preHandler: fastifyGuard('gsku:publish') }, async (request) => ({ by: request.servicePrincipal!.clientId }));
  await fastifyService.listen({ port: 0, host: '127.0.0.1' });
  services.fastify = `http://127.0.0.1:${(fastifyService.server.address() as AddressInfo).port}`;
  const app = express();
  app.post('/publish', expressGuard(verifier, 'gsku:publish'), (req, res) => {
    res.json({ by: req.servicePrincipal!.clientId });
  });
  expressService = await new Promise<Server>((done) => {
    const server = app.listen(0, '127.0.0.1', () => done(server));
  });
  services.express = `http://127.0.0.1:${(expressService.address() as AddressInfo).port}`;
});

afterAll(async () => {
  verifier?.close();
  for (const m of managers) await m.close();
  await fastifyService?.close();
  await new Promise((done) => expressService?.close(done));
  await ctx?.close();
});

describe('revocation reaches a guarded service within the bound', () => {
  it('revoking a credential (DELETE) refuses its unexpired token at the Fastify and Express services within 5 s, reason revoked', async () => {
    const token = await managerFor('publisher-a').getToken();
    for (const kind of ['fastify', 'express']) expect((await call(kind, token)).status).toBe(200);
    const revokedAt = Date.now();
    const res = await ctx.app.inject({ method: 'DELETE', url: `/api/v1/admin/m2m-clients/${secrets['publisher-a']!.id}`, headers: bearer(ctx.adminToken) });
    expect(res.statusCode).toBe(204);
    const elapsed = await msUntilRefused('fastify', token, revokedAt);
    expect(elapsed).toBeLessThanOrEqual(5000);
    expect(refusals.at(-1)?.reason).toBe('revoked');
    const refused = await call('express', token);
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toContain('error="invalid_token"');
    expect(events[0]).toMatchObject({ type: 'ready' });
  });

  it('a token whose iat is after the revocation (minted by an instance whose clock runs 3 s ahead, or while the revocation committed) is refused too', async () => {
    // A second instance on the same database, its clock 3 s ahead, mints before the revocation commits.
    const ahead = await buildApp({ logger: false, config: ctx.config, database: ctx.database, hasher: ctx.hasher, clock: () => Date.now() + 3000 });
    try {
      await ahead.ready();
      const minted = await ahead.inject({
        method: 'POST',
        url: '/api/v1/oauth/token',
        headers: { authorization: `Basic ${Buffer.from(`publisher-c:${secrets['publisher-c']!.secret}`).toString('base64')}` },
        payload: { grant_type: 'client_credentials' },
      });
      expect(minted.statusCode, minted.body).toBe(200);
      const token: string = minted.json().access_token;
      const iat = JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()).iat;
      expect(iat).toBeGreaterThanOrEqual(Math.floor(Date.now() / 1000) + 2);
      expect((await call('fastify', token)).status).toBe(200);
      const revokedAt = Date.now();
      const res = await ctx.app.inject({ method: 'DELETE', url: `/api/v1/admin/m2m-clients/${secrets['publisher-c']!.id}`, headers: bearer(ctx.adminToken) });
      expect(res.statusCode).toBe(204);
      expect(await msUntilRefused('fastify', token, revokedAt)).toBeLessThanOrEqual(5000);
      expect(refusals.at(-1)?.reason).toBe('revoked');
      expect((await call('express', token)).status).toBe(401);
    } finally {
      await ahead.close();
    }
  });

  it('a token revoked by its client at /oauth/revoke (RFC 7009) is refused within 5 s; the client\'s next token is accepted', async () => {
    const manager = managerFor('publisher-b');
    const token = await manager.getToken();
    expect((await call('fastify', token)).status).toBe(200);
    const revokedAt = Date.now();
    const res = await fetch(`${issuer}/api/v1/oauth/revoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token, client_id: 'publisher-b', client_secret: secrets['publisher-b']!.secret }),
    });
    expect(res.status).toBe(200);
    expect(await msUntilRefused('fastify', token, revokedAt)).toBeLessThanOrEqual(5000);
    expect(refusals.at(-1)?.reason).toBe('revoked');
    manager.invalidate(token);
    expect((await call('fastify', await manager.getToken())).status).toBe(200);
  });
});

describe('openid-client as a stock client of /oauth/revoke and /oauth/introspect (found through the metadata)', () => {
  const configFor = (clientId: string) =>
    oidc.discovery(new URL(issuer), clientId, undefined, oidc.ClientSecretBasic(secrets[clientId]!.secret), { algorithm: 'oauth2', execute: [oidc.allowInsecureRequests] });

  it('introspects a live token, revokes it with tokenRevocation, then introspection says inactive', async () => {
    const { client, client_secret } = await createClient(ctx, { client_id: 'oidc-svc', name: 'oidc', scopes: ['gsku:publish'] });
    secrets['oidc-svc'] = { id: client.id, secret: client_secret };
    const own = await configFor('oidc-svc');
    expect(own.serverMetadata()).toMatchObject({ revocation_endpoint: `${issuer}/api/v1/oauth/revoke`, introspection_endpoint: `${issuer}/api/v1/oauth/introspect` });
    const { access_token } = await oidc.clientCredentialsGrant(own);
    const introspector = await configFor('introspector');
    const live = await oidc.tokenIntrospection(introspector, access_token);
    expect(live).toMatchObject({ active: true, client_id: 'oidc-svc', scope: 'gsku:publish', token_type: 'Bearer', iss: issuer });
    await oidc.tokenRevocation(own, access_token, { token_type_hint: 'access_token' });
    expect(await oidc.tokenIntrospection(introspector, access_token)).toEqual({ active: false });
    // Garbage: still a plain success to the stock client (RFC 7009 §2.2).
    await expect(oidc.tokenRevocation(own, 'not-a-token')).resolves.toBeUndefined();
  });

  it('a credential without auth:introspect gets unauthorized_client', async () => {
    const own = await configFor('oidc-svc');
    const { access_token } = await oidc.clientCredentialsGrant(own);
    const err = await oidc.tokenIntrospection(own, access_token).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(oidc.ResponseBodyError);
    expect((err as oidc.ResponseBodyError).error).toBe('unauthorized_client');
    expect((err as oidc.ResponseBodyError).status).toBe(403);
  });
});
