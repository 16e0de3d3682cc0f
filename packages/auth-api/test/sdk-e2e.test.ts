import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import { createServiceTokenVerifier, ServiceTokenManager } from '@rw3iss/auth-server-ts';
import { requireServiceToken as expressGuard } from '@rw3iss/auth-server-ts/express';
import { requireServiceToken as fastifyGuard, serviceTokenPlugin } from '@rw3iss/auth-server-ts/fastify';
import express from 'express';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTokenIssuer } from '../src/lib/tokens.js';
import { AUDIENCE, ISSUER, TEST_SECRET, createClient, createTestContext, type TestContext } from './helpers.js';

/**
 * End to end over real sockets: the SDK's manager gets a token from the real
 * auth-api; a Fastify and an Express service, guarded by the SDK's verifier,
 * accept it with the right scope and refuse everything else.
 */
let ctx: TestContext;
let authBase: string;
let manager: ServiceTokenManager;
let fastifyService: FastifyInstance;
let expressService: Server;
const services: Record<string, string> = {};

beforeAll(async () => {
  ctx = await createTestContext();
  await ctx.app.listen({ port: 0, host: '127.0.0.1' });
  authBase = `http://127.0.0.1:${(ctx.app.server.address() as AddressInfo).port}`;
  const { client_secret } = await createClient(ctx, { client_id: 'publisher-svc', name: 'Publisher', scopes: ['gsku:publish', 'gsku:read'] });
  manager = new ServiceTokenManager({ tokenEndpoint: `${authBase}/api/v1/oauth/token`, clientId: 'publisher-svc', clientSecret: client_secret });

  const verifier = createServiceTokenVerifier({ secret: TEST_SECRET, issuer: ISSUER, audience: AUDIENCE });

  fastifyService = Fastify();
  await fastifyService.register(serviceTokenPlugin, { verifier });
  fastifyService.post('/publish', { preHandler: fastifyGuard('gsku:publish') }, async (request) => ({ by: request.servicePrincipal!.clientId }));
  fastifyService.post('/admin', { preHandler: fastifyGuard('gsku:admin') }, async () => ({ ok: true }));
  await fastifyService.listen({ port: 0, host: '127.0.0.1' });
  services.fastify = `http://127.0.0.1:${(fastifyService.server.address() as AddressInfo).port}`;

  const app = express();
  app.post('/publish', expressGuard(verifier, 'gsku:publish'), (req, res) => {
    res.json({ by: req.servicePrincipal!.clientId });
  });
  app.post('/admin', expressGuard(verifier, 'gsku:admin'), (_req, res) => {
    res.json({ ok: true });
  });
  expressService = await new Promise<Server>((done) => {
    const server = app.listen(0, '127.0.0.1', () => done(server));
  });
  services.express = `http://127.0.0.1:${(expressService.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await manager?.close();
  await fastifyService?.close();
  await new Promise((done) => expressService?.close(done));
  await ctx?.close();
});

const call = (base: string, path: string, token?: string) =>
  fetch(`${base}${path}`, { method: 'POST', headers: token ? { authorization: `Bearer ${token}` } : {} });

const other = createTokenIssuer({ secret: 'a-completely-different-secret-of-enough-length', issuer: ISSUER, audience: AUDIENCE }, Date.now);
const past = createTokenIssuer({ secret: TEST_SECRET, issuer: ISSUER, audience: AUDIENCE }, () => Date.now() - 3600_000);
const claims = { sub: 'publisher-svc', client_id: 'publisher-svc', service_name: 'Publisher', scopes: ['gsku:publish'] };

for (const kind of ['fastify', 'express'] as const) {
  describe(`${kind} service guarded by the SDK`, () => {
    it('accepts the token the manager got from auth-api, with the right scope', async () => {
      const res = await call(services[kind]!, '/publish', await manager.getToken());
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ by: 'publisher-svc' });
    });

    it('403 insufficient_scope without the scope', async () => {
      const res = await call(services[kind]!, '/admin', await manager.getToken());
      expect(res.status).toBe(403);
      expect(res.headers.get('www-authenticate')).toContain('error="insufficient_scope"');
      expect(res.headers.get('www-authenticate')).toContain('scope="gsku:admin"');
      expect(((await res.json()) as { error: string }).error).toBe('insufficient_scope');
    });

    it('401 for a missing, admin-session, expired, tampered, foreign-key and alg:none token', async () => {
      const good = await manager.getToken();
      const [h, p, s] = good.split('.');
      const payload = JSON.parse(Buffer.from(p!, 'base64url').toString());
      const tampered = `${h}.${Buffer.from(JSON.stringify({ ...payload, scopes: ['gsku:publish', 'gsku:admin'] })).toString('base64url')}.${s}`;
      const none = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt' })).toString('base64url')}.${p}.`;
      const cases: Record<string, string | undefined> = {
        missing: undefined,
        'admin session': ctx.adminToken,
        expired: (await past.serviceToken(claims, 300)).token,
        tampered,
        'other secret': (await other.serviceToken(claims, 300)).token,
        'alg none': none,
      };
      for (const [label, token] of Object.entries(cases)) {
        const res = await call(services[kind]!, '/publish', token);
        expect({ label, status: res.status }).toEqual({ label, status: 401 });
        const header = res.headers.get('www-authenticate') ?? '';
        expect(header.startsWith('Bearer')).toBe(true);
        if (token) expect(header).toContain('error="invalid_token"');
      }
    });
  });
}
