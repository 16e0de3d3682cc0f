// Real Nest applications, on Express and on Fastify, against a running auth-api with real tokens.
import 'reflect-metadata';
import type { AddressInfo } from 'node:net';
import { Controller, Get, HttpCode, Injectable, type INestApplication, Module, Post, UseGuards } from '@nestjs/common';
import { APP_GUARD } from '@nestjs/core';
import { createServiceTokenVerifier, ServiceTokenManager as SdkManager } from '@rw3iss/auth-server-ts';
import { requireServiceToken as expressGuard } from '@rw3iss/auth-server-ts/express';
import { requireServiceToken as fastifyGuard, serviceTokenPlugin } from '@rw3iss/auth-server-ts/fastify';
import express from 'express';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Server } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AUDIENCE, ISSUER, TEST_SECRET, createClient, createTestContext, type TestContext } from '../../auth-api/test/helpers.js';
import {
  InjectServiceTokens,
  Public,
  RequireScopes,
  ServicePrincipal,
  ServiceTokenGuard,
  ServiceTokenManager,
  ServiceTokenModule,
  ServiceTokenModuleError,
} from '../src/index.js';
import { baseClaims, PLATFORMS, type Platform, signToken, startNest } from './helpers.js';

let ctx: TestContext;
let tokenEndpoint: string;
let publisherSecret: string;
/** The caller's manager (not the one under test): gets the tokens the tests present. */
let caller: SdkManager;

@Controller('items')
@UseGuards(ServiceTokenGuard)
class ItemsController {
  @Post('publish')
  @HttpCode(200)
  @RequireScopes('gsku:publish')
  publish(@ServicePrincipal() principal: ServicePrincipal) {
    return { by: principal.clientId, name: principal.serviceName, scopes: principal.scopes, sub: principal.claims.sub };
  }

  @Post('admin')
  @HttpCode(200)
  @RequireScopes('gsku:admin')
  admin() {
    return { ok: true };
  }

  @Post('either')
  @HttpCode(200)
  @RequireScopes('gsku:admin', 'gsku:read', { mode: 'any' })
  either() {
    return { ok: 'any' };
  }

  @Post('both')
  @HttpCode(200)
  @RequireScopes('gsku:admin', 'gsku:read')
  both() {
    return { ok: 'all' };
  }

  @Get('whoami')
  whoami(@ServicePrincipal() principal: ServicePrincipal) {
    return { by: principal.clientId };
  }

  @Get('open')
  @Public()
  open(@ServicePrincipal({ optional: true }) principal: ServicePrincipal | undefined) {
    return { open: true, principal: principal ?? null };
  }
}

/** The calling side, as an application writes it: the manager injected, tokens attached by its fetch. */
@Injectable()
class Outbound {
  constructor(
    @InjectServiceTokens() readonly tokens: ServiceTokenManager,
    readonly byClass: ServiceTokenManager,
  ) {}

  async publishTo(base: string) {
    const res = await this.tokens.fetch(`${base}/items/publish`, { method: 'POST' });
    return { status: res.status, body: await res.json() };
  }
}

/** Per-route guard, options through forRootAsync (as from a ConfigService). */
function perRouteModule() {
  @Module({ providers: [{ provide: 'CONFIG', useValue: { secret: TEST_SECRET, issuer: ISSUER, audience: AUDIENCE } }], exports: ['CONFIG'] })
  class ConfigModule {}

  @Module({
    imports: [
      ServiceTokenModule.forRootAsync({
        imports: [ConfigModule],
        inject: ['CONFIG'],
        useFactory: (config: { secret: string; issuer: string; audience: string }) => ({
          verifier: config,
          manager: { tokenEndpoint, clientId: 'publisher-svc', clientSecret: publisherSecret },
        }),
      }),
    ],
    controllers: [ItemsController],
    providers: [Outbound],
  })
  class AppModule {}
  return AppModule;
}

@Controller('global')
class GlobalController {
  @Get('guarded')
  guarded(@ServicePrincipal() principal: ServicePrincipal) {
    return { by: principal.clientId };
  }

  @Post('publish')
  @HttpCode(200)
  @RequireScopes('gsku:publish')
  publish() {
    return { published: true };
  }

  @Get('health')
  @Public()
  health() {
    return { ok: true };
  }
}

@Public()
@Controller('public')
class PublicController {
  @Get()
  index() {
    return { public: true };
  }

  // A route's own @RequireScopes() decides before its controller's @Public() (fail closed).
  @Post('admin')
  @HttpCode(200)
  @RequireScopes('gsku:admin')
  admin() {
    return { admin: true };
  }

  @Post('publish')
  @HttpCode(200)
  @RequireScopes('gsku:publish')
  publish(@ServicePrincipal() principal: ServicePrincipal) {
    return { by: principal.clientId };
  }
}

/** Every route guarded by APP_GUARD; forRoot with isGlobal. */
function globalGuardModule() {
  @Module({
    imports: [ServiceTokenModule.forRoot({ isGlobal: true, verifier: { secret: TEST_SECRET, issuer: ISSUER, audience: AUDIENCE } })],
    controllers: [GlobalController, PublicController],
    providers: [{ provide: APP_GUARD, useClass: ServiceTokenGuard }],
  })
  class AppModule {}
  return AppModule;
}

const apps: INestApplication[] = [];
const perRoute: Record<string, string> = {};
const global: Record<string, string> = {};
let reference: { fastify: FastifyInstance; express: Server; urls: Record<Platform, string> };

beforeAll(async () => {
  ctx = await createTestContext();
  await ctx.app.listen({ port: 0, host: '127.0.0.1' });
  tokenEndpoint = `http://127.0.0.1:${(ctx.app.server.address() as AddressInfo).port}/api/v1/oauth/token`;
  ({ client_secret: publisherSecret } = await createClient(ctx, { client_id: 'publisher-svc', name: 'Publisher', scopes: ['gsku:publish', 'gsku:read'] }));
  caller = new SdkManager({ tokenEndpoint, clientId: 'publisher-svc', clientSecret: publisherSecret });

  for (const platform of PLATFORMS) {
    const a = await startNest(platform, perRouteModule());
    const b = await startNest(platform, globalGuardModule());
    apps.push(a.app, b.app);
    perRoute[platform] = a.url;
    global[platform] = b.url;
  }

  // The SDK's own guards, whose answers the Nest guard must repeat exactly.
  const verifier = createServiceTokenVerifier({ secret: TEST_SECRET, issuer: ISSUER, audience: AUDIENCE });
  const fastify = Fastify();
  await fastify.register(serviceTokenPlugin, { verifier });
  fastify.post('/items/publish', { preHandler: fastifyGuard('gsku:publish') }, async () => ({}));
  fastify.post('/items/admin', { preHandler: fastifyGuard('gsku:admin') }, async () => ({}));
  await fastify.listen({ port: 0, host: '127.0.0.1' });
  const app = express();
  app.post('/items/publish', expressGuard(verifier, 'gsku:publish'), (_req, res) => void res.json({}));
  app.post('/items/admin', expressGuard(verifier, 'gsku:admin'), (_req, res) => void res.json({}));
  const expressServer = await new Promise<Server>((done) => {
    const server = app.listen(0, '127.0.0.1', () => done(server));
  });
  reference = {
    fastify,
    express: expressServer,
    urls: {
      fastify: `http://127.0.0.1:${(fastify.server.address() as AddressInfo).port}`,
      express: `http://127.0.0.1:${(expressServer.address() as AddressInfo).port}`,
    },
  };
});

afterAll(async () => {
  await Promise.all(apps.map((app) => app.close()));
  await caller?.close();
  await reference?.fastify.close();
  await new Promise((done) => reference?.express.close(done));
  await ctx?.close();
});

const call = (url: string, token?: string, method: 'GET' | 'POST' = 'POST') =>
  fetch(url, { method, headers: token === undefined ? {} : { authorization: `Bearer ${token}` } });

/** What a client sees of a refusal: status, the RFC 6750 headers and the body. */
async function answer(res: Response) {
  return {
    status: res.status,
    'www-authenticate': res.headers.get('www-authenticate'),
    'cache-control': res.headers.get('cache-control'),
    'content-type': res.headers.get('content-type'),
    body: (await res.json()) as { error?: string; scope?: string },
  };
}

function refusedTokens(good: string): Record<string, string | undefined> {
  const now = Math.floor(Date.now() / 1000);
  const claims = { sub: 'publisher-svc', client_id: 'publisher-svc', service_name: 'Publisher', token_type: 'service', scopes: ['gsku:publish'], scope: 'gsku:publish' };
  const [h, p, s] = good.split('.');
  const payload = JSON.parse(Buffer.from(p!, 'base64url').toString());
  return {
    missing: undefined,
    'auth-api user token': ctx.userToken,
    'user token, platform key': signToken(TEST_SECRET, { ...baseClaims(ISSUER, AUDIENCE, now, 300), sub: 'u1', token_type: 'user', email: 'a@b.c', roles: ['system_admin'] }),
    expired: signToken(TEST_SECRET, { ...baseClaims(ISSUER, AUDIENCE, now - 3600, 300), ...claims }),
    tampered: `${h}.${Buffer.from(JSON.stringify({ ...payload, scopes: ['gsku:publish', 'gsku:admin'] })).toString('base64url')}.${s}`,
    'other secret': signToken('another-secret-of-enough-length-0123456789', { ...baseClaims(ISSUER, AUDIENCE, now, 300), ...claims }),
    'alg none': `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt' })).toString('base64url')}.${p}.`,
    'other audience': signToken(TEST_SECRET, { ...baseClaims(ISSUER, 'someone-else', now, 300), ...claims }),
  };
}

for (const platform of PLATFORMS) {
  describe(`@nestjs/platform-${platform}, guard per route`, () => {
    it('200 with the scope, the principal injected', async () => {
      const res = await call(`${perRoute[platform]}/items/publish`, await caller.getToken());
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ by: 'publisher-svc', name: 'Publisher', scopes: ['gsku:publish', 'gsku:read'], sub: 'publisher-svc' });
    });

    it('403 insufficient_scope without it, identical to the SDK guards', async () => {
      const token = await caller.getToken();
      const nest = await answer(await call(`${perRoute[platform]}/items/admin`, token));
      expect(nest).toEqual({
        status: 403,
        'www-authenticate': 'Bearer error="insufficient_scope", error_description="The access token lacks the required scope", scope="gsku:admin"',
        'cache-control': 'no-store',
        'content-type': 'application/json; charset=utf-8',
        body: { error: 'insufficient_scope', error_description: 'The access token lacks the required scope', scope: 'gsku:admin' },
      });
      expect(nest).toEqual(await answer(await call(`${reference.urls[platform]}/items/admin`, token)));
    });

    it("mode 'any' needs one of the scopes, the default 'all' every one", async () => {
      const token = await caller.getToken();
      const either = await call(`${perRoute[platform]}/items/either`, token);
      expect(either.status).toBe(200);
      expect(await either.json()).toEqual({ ok: 'any' });
      const both = await answer(await call(`${perRoute[platform]}/items/both`, token));
      expect(both.status).toBe(403);
      expect(both.body).toEqual({ error: 'insufficient_scope', error_description: 'The access token lacks the required scope', scope: 'gsku:admin gsku:read' });
    });

    it('401 for a missing, user, expired, tampered, foreign-key, alg:none and wrong-audience token, identical to the SDK guards', async () => {
      for (const [label, token] of Object.entries(refusedTokens(await caller.getToken()))) {
        const nest = await answer(await call(`${perRoute[platform]}/items/publish`, token));
        const sdk = await answer(await call(`${reference.urls[platform]}/items/publish`, token));
        expect({ label, ...nest }).toEqual({ label, ...sdk });
        expect({ label, status: nest.status }).toEqual({ label, status: 401 });
        expect(nest['www-authenticate']).toBe(token === undefined ? 'Bearer' : sdk['www-authenticate']);
        if (token !== undefined) expect(nest['www-authenticate']).toContain('error="invalid_token"');
        expect(nest.body.error).toBe(token === undefined ? 'missing_token' : label === 'expired' ? 'token_expired' : 'invalid_token');
      }
    });

    it('a route without @RequireScopes needs a valid service token, no scope', async () => {
      const res = await call(`${perRoute[platform]}/items/whoami`, await caller.getToken({ scopes: ['gsku:read'] }), 'GET');
      expect(res.status).toBe(200);
      expect(await res.json()).toEqual({ by: 'publisher-svc' });
      expect((await call(`${perRoute[platform]}/items/whoami`, undefined, 'GET')).status).toBe(401);
    });

    it('@Public() is open, without or with a token (the principal is then not read)', async () => {
      for (const token of [undefined, 'garbage']) {
        const res = await call(`${perRoute[platform]}/items/open`, token, 'GET');
        expect(res.status).toBe(200);
        expect(await res.json()).toEqual({ open: true, principal: null });
      }
    });

    it('the manager is injectable by decorator and by class, and its fetch attaches the token', async () => {
      const outbound = apps[PLATFORMS.indexOf(platform) * 2]!.get(Outbound);
      expect(outbound.tokens).toBeInstanceOf(SdkManager);
      expect(outbound.byClass).toBe(outbound.tokens);
      // The Nest service calls the other platform's Nest service with its own token.
      const other = PLATFORMS.find((p) => p !== platform)!;
      expect(await outbound.publishTo(perRoute[other]!)).toEqual({
        status: 200,
        body: { by: 'publisher-svc', name: 'Publisher', scopes: ['gsku:publish', 'gsku:read'], sub: 'publisher-svc' },
      });
    });
  });

  describe(`@nestjs/platform-${platform}, APP_GUARD`, () => {
    it('guards every route, with or without @RequireScopes', async () => {
      expect((await call(`${global[platform]}/global/guarded`, undefined, 'GET')).status).toBe(401);
      const ok = await call(`${global[platform]}/global/guarded`, await caller.getToken(), 'GET');
      expect(ok.status).toBe(200);
      expect(await ok.json()).toEqual({ by: 'publisher-svc' });
      const published = await call(`${global[platform]}/global/publish`, await caller.getToken());
      expect(published.status).toBe(200);
      const refused = await answer(await call(`${global[platform]}/global/publish`, await caller.getToken({ scopes: ['gsku:read'] })));
      expect(refused.status).toBe(403);
      expect(refused.body.scope).toBe('gsku:publish');
    });

    it('@Public() opens a route or a whole controller', async () => {
      const health = await call(`${global[platform]}/global/health`, undefined, 'GET');
      expect(health.status).toBe(200);
      expect(await health.json()).toEqual({ ok: true });
      const index = await call(`${global[platform]}/public`, undefined, 'GET');
      expect(index.status).toBe(200);
      expect(await index.json()).toEqual({ public: true });
    });

    it("a route's own @RequireScopes() in a @Public() controller is guarded", async () => {
      const anonymous = await answer(await call(`${global[platform]}/public/admin`, undefined));
      expect(anonymous.status).toBe(401);
      expect(anonymous.body.error).toBe('missing_token');
      const forged = await call(`${global[platform]}/public/admin`, 'not-a-token');
      expect(forged.status).toBe(401);
      const lacking = await answer(await call(`${global[platform]}/public/admin`, await caller.getToken()));
      expect(lacking.status).toBe(403);
      expect(lacking.body.scope).toBe('gsku:admin');
      const granted = await call(`${global[platform]}/public/publish`, await caller.getToken());
      expect(granted.status).toBe(200);
      expect(await granted.json()).toEqual({ by: 'publisher-svc' });
    });

    it('an unknown route is still a 404, not a 401', async () => {
      expect((await call(`${global[platform]}/nowhere`, undefined, 'GET')).status).toBe(404);
    });
  });
}

describe('lifecycle and wiring', () => {
  it('closes the manager it created when the application closes', async () => {
    const { app } = await startNest('express', perRouteModule());
    const manager = app.get(ServiceTokenManager);
    await expect(manager.getToken()).resolves.toEqual(expect.any(String));
    await app.close();
    await expect(manager.getToken()).rejects.toMatchObject({ code: 'closed' });
  });

  it('leaves a manager it was given open', async () => {
    const manager = new SdkManager({ tokenEndpoint, clientId: 'publisher-svc', clientSecret: publisherSecret });
    @Module({ imports: [ServiceTokenModule.forRoot({ manager })] })
    class AppModule {}
    const { app } = await startNest('fastify', AppModule);
    expect(app.get(ServiceTokenManager)).toBe(manager);
    await app.close();
    await expect(manager.getToken()).resolves.toEqual(expect.any(String));
    await manager.close();
  });

  it('without manager options the calling side fails with not_configured', async () => {
    @Module({ imports: [ServiceTokenModule.forRoot({ verifier: { secret: TEST_SECRET, issuer: ISSUER, audience: AUDIENCE } })] })
    class AppModule {}
    const { app } = await startNest('express', AppModule);
    const err = await app.get(ServiceTokenManager).getToken().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServiceTokenModuleError);
    expect((err as ServiceTokenModuleError).code).toBe('not_configured');
    await app.close();
  });

  it('@ServicePrincipal() on a route the guard did not check is a 500, never an unchecked caller', async () => {
    @Controller('unguarded')
    class UnguardedController {
      @Get()
      who(@ServicePrincipal() principal: ServicePrincipal) {
        return { by: principal.clientId };
      }
    }
    @Module({ imports: [ServiceTokenModule.forRoot({ verifier: { secret: TEST_SECRET, issuer: ISSUER, audience: AUDIENCE } })], controllers: [UnguardedController] })
    class AppModule {}
    for (const platform of PLATFORMS) {
      const { app, url } = await startNest(platform, AppModule);
      const res = await call(`${url}/unguarded`, await caller.getToken(), 'GET');
      expect(res.status).toBe(500);
      expect(await res.text()).not.toContain('publisher-svc');
      await app.close();
    }
  });

  it('ServiceTokenGuard without verifier options refuses to boot', async () => {
    @Module({
      imports: [ServiceTokenModule.forRoot({ manager: { tokenEndpoint, clientId: 'publisher-svc', clientSecret: publisherSecret } })],
      controllers: [ItemsController],
    })
    class AppModule {}
    const err = await startNest('express', AppModule).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServiceTokenModuleError);
    expect((err as ServiceTokenModuleError).code).toBe('invalid_options');
  });
});
