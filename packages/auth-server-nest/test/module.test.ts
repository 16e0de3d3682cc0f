// Options and decorators checked once, early, with errors a person can act on. No network.
import 'reflect-metadata';
import { Controller, Get, Injectable, Module, UseGuards } from '@nestjs/common';
import { ServiceTokenManager } from '@rw3iss/auth-server-ts';
import { describe, expect, it } from 'vitest';
import {
  RequireScopes,
  ServicePrincipal,
  ServiceTokenGuard,
  ServiceTokenModule,
  ServiceTokenModuleError,
  type ServiceTokenModuleOptions as ModuleOptions,
  SERVICE_TOKEN_VERIFIER,
} from '../src/index.js';
import { resolveOptions, type ServiceTokenModuleOptions } from '../src/service-token.options.js';
import { baseClaims, PLATFORMS, signToken, startNest } from './helpers.js';

const SECRET = 'a-test-secret-that-is-long-enough-0123456789';
const manager = { tokenEndpoint: 'https://auth.example.com/api/v1/oauth/token', clientId: 'gsku-svc', clientSecret: 's3cret' };
const catalog = { service: 'gsku', permissions: [{ code: 'gsku:publish', name: 'Publish' }] };

function optionsError(options: unknown): ServiceTokenModuleError {
  try {
    resolveOptions(options as ServiceTokenModuleOptions);
  } catch (err) {
    expect(err).toBeInstanceOf(ServiceTokenModuleError);
    expect((err as ServiceTokenModuleError).code).toBe('invalid_options');
    return err as ServiceTokenModuleError;
  }
  throw new Error('accepted');
}

describe('catalog.url', () => {
  it('defaults to the route beside the token endpoint, or on the server URL', () => {
    expect(resolveOptions({ manager, catalog }).catalog?.url.href).toBe('https://auth.example.com/api/v1/admin/permissions/register');
    const { tokenEndpoint: _, ...rest } = manager;
    const viaServer = resolveOptions({ manager: { ...rest, serverUrl: 'https://auth.example.com' }, catalog });
    expect(viaServer.catalog?.url.href).toBe('https://auth.example.com/api/v1/admin/permissions/register');
    expect(resolveOptions({ manager, catalog: { ...catalog, url: 'https://other.example.com/register' } }).catalog?.url.href).toBe('https://other.example.com/register');
  });

  it('plain http only to loopback, or with allowInsecureHttp', () => {
    const local = { ...manager, tokenEndpoint: 'http://127.0.0.1:4800/api/v1/oauth/token' };
    expect(resolveOptions({ manager: local, catalog }).catalog?.url.href).toBe('http://127.0.0.1:4800/api/v1/admin/permissions/register');
    const remote = { ...manager, tokenEndpoint: 'http://auth.internal/api/v1/oauth/token', allowInsecureHttp: true };
    expect(resolveOptions({ manager: remote, catalog }).catalog?.url.href).toBe('http://auth.internal/api/v1/admin/permissions/register');
  });

  it('defaults: fail policy, the catalog scope, 3 attempts', () => {
    expect(resolveOptions({ manager, catalog }).catalog).toMatchObject({ onFailure: 'fail', scopes: ['auth:catalog:gsku'], maxAttempts: 3 });
  });

  it('is required with a manager instance', () => {
    const instance = new ServiceTokenManager(manager);
    expect(optionsError({ manager: instance, catalog }).message).toContain('catalog.url is required');
    expect(resolveOptions({ manager: instance, catalog: { ...catalog, url: 'https://a.example/r' } }).ownsManager).toBe(false);
  });
});

describe('invalid options', () => {
  const cases: Record<string, unknown> = {
    'not an object': null,
    'catalog without manager': { catalog },
    'empty service': { manager, catalog: { ...catalog, service: ' ' } },
    'permissions not an array': { manager, catalog: { ...catalog, permissions: 'gsku:publish' } },
    'permission without name': { manager, catalog: { ...catalog, permissions: [{ code: 'a:b' }] } },
    'unknown permission field': { manager, catalog: { ...catalog, permissions: [{ code: 'a:b', name: 'A', scope: 'x' }] } },
    'duplicate code': { manager, catalog: { ...catalog, permissions: [{ code: 'a:b', name: 'A' }, { code: 'a:b', name: 'B' }] } },
    'unknown policy': { manager, catalog: { ...catalog, onFailure: 'ignore' } },
    'zero attempts': { manager, catalog: { ...catalog, retry: { maxAttempts: 0 } } },
    // Past 2^31 − 1 ms setTimeout fires at once: the registration would be retried in a loop.
    'a retry delay past the longest timer': { manager, catalog: { ...catalog, retry: { maxDelayMs: 2 ** 31 } } },
    'a base delay past the longest timer': { manager, catalog: { ...catalog, retry: { baseDelayMs: 2 ** 31, maxDelayMs: 2 ** 32 } } },
    'relative url': { manager, catalog: { ...catalog, url: '/register' } },
    'plain http to a remote host': { manager, catalog: { ...catalog, url: 'http://auth.example.com/api/v1/admin/permissions/register' } },
  };
  for (const [label, options] of Object.entries(cases)) {
    it(label, () => {
      optionsError(options);
    });
  }

  it("the SDK's own checks still apply (a short secret, a missing issuer)", () => {
    expect(() => resolveOptions({ verifier: { secret: 'short', issuer: 'i', audience: 'a' } })).toThrow(expect.objectContaining({ code: 'invalid_options' }));
    expect(() => resolveOptions({ verifier: { secret: SECRET, audience: 'a' } as never })).toThrow(/issuer is required/);
  });

  it('fail the boot of a Nest application, forRootAsync included', async () => {
    @Module({ imports: [ServiceTokenModule.forRootAsync({ useFactory: async () => ({ catalog }) as ServiceTokenModuleOptions })] })
    class AppModule {}
    const err = await startNest('express', AppModule).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ServiceTokenModuleError);
    expect((err as ServiceTokenModuleError).message).toContain('catalog needs manager options');
  });

  it('@RequireScopes refuses no scope, a scope with a space, a misplaced options object and an unknown mode', () => {
    expect(() => RequireScopes()).toThrow(expect.objectContaining({ code: 'invalid_options' }));
    expect(() => RequireScopes('gsku publish')).toThrow(expect.objectContaining({ code: 'invalid_options' }));
    expect(() => (RequireScopes as (...a: unknown[]) => unknown)({ mode: 'any' }, 'a:b')).toThrow(expect.objectContaining({ code: 'invalid_options' }));
    expect(() => RequireScopes('a:b', { mode: 'some' as 'any' })).toThrow(expect.objectContaining({ code: 'invalid_options' }));
  });
});

describe('forRootAsync', () => {
  it('takes options from an injected factory and exposes the verifier', async () => {
    @Module({ providers: [{ provide: 'SECRET', useValue: SECRET }], exports: ['SECRET'] })
    class ConfigModule {}
    @Module({
      imports: [
        ServiceTokenModule.forRootAsync({
          imports: [ConfigModule],
          inject: ['SECRET'],
          useFactory: (secret: string) => ({ verifier: { secret, issuer: 'https://auth.example.com', audience: 'gsku' } }),
        }),
      ],
    })
    class AppModule {}
    const { app } = await startNest('fastify', AppModule);
    const verifier = app.get(SERVICE_TOKEN_VERIFIER);
    await expect(verifier.verify('not-a-token')).rejects.toMatchObject({ code: 'invalid_token' });
    await app.close();
  });
});

describe('forRootAsync with useClass', () => {
  it('takes the options from the class’s create()', async () => {
    @Injectable()
    class OptionsFromConfig {
      create(): ModuleOptions {
        return { verifier: { secret: SECRET, issuer: 'https://auth.example.com', audience: 'gsku' } };
      }
    }
    @Module({ imports: [ServiceTokenModule.forRootAsync({ useClass: OptionsFromConfig })] })
    class AppModule {}
    const { app } = await startNest('express', AppModule);
    const now = Math.floor(Date.now() / 1000);
    const token = signToken(SECRET, { ...baseClaims('https://auth.example.com', 'gsku', now, 60), client_id: 'caller-svc', token_type: 'service', scopes: [] });
    await expect(app.get(SERVICE_TOKEN_VERIFIER).verify(token)).resolves.toMatchObject({ clientId: 'caller-svc' });
    await app.close();
  });
});

describe('isGlobal', () => {
  const verifier = { secret: SECRET, issuer: 'https://auth.example.com', audience: 'gsku' };

  @Controller('feature')
  @UseGuards(ServiceTokenGuard)
  class GuardedController {
    @Get()
    @RequireScopes('gsku:read')
    get(@ServicePrincipal() caller: ServicePrincipal) {
      return { by: caller.clientId };
    }
  }

  @Injectable()
  class Caller {
    constructor(readonly tokens: ServiceTokenManager) {}
  }

  /** ServiceTokenModule imported by the root module only; the feature module uses its guard or its manager without importing it. */
  function appModule(isGlobal: boolean, feature: 'guard' | 'manager') {
    @Module(feature === 'guard' ? { controllers: [GuardedController] } : { providers: [Caller] })
    class FeatureModule {}
    @Module({ imports: [ServiceTokenModule.forRoot({ isGlobal, verifier, manager }), FeatureModule] })
    class AppModule {}
    return AppModule;
  }

  for (const platform of PLATFORMS) {
    it(`true: a module that does not import ServiceTokenModule uses its guard (${platform})`, async () => {
      const { app, url } = await startNest(platform, appModule(true, 'guard'));
      const now = Math.floor(Date.now() / 1000);
      const token = (scopes: string[]) =>
        signToken(SECRET, { ...baseClaims(verifier.issuer, verifier.audience, now, 60), client_id: 'caller-svc', token_type: 'service', scopes });
      const ok = await fetch(`${url}/feature`, { headers: { authorization: `Bearer ${token(['gsku:read'])}` } });
      expect([ok.status, await ok.json()]).toEqual([200, { by: 'caller-svc' }]);
      expect((await fetch(`${url}/feature`, { headers: { authorization: `Bearer ${token(['gsku:write'])}` } })).status).toBe(403);
      expect((await fetch(`${url}/feature`)).status).toBe(401);
      await app.close();
    });
  }

  it('true: the manager is injectable there too', async () => {
    const { app } = await startNest('express', appModule(true, 'manager'));
    expect(app.get(Caller).tokens).toBeInstanceOf(ServiceTokenManager);
    await app.close();
  });

  it('false (the default): that module gets no verifier (the guard refuses to boot) and no manager', async () => {
    const guardOnly = await startNest('express', appModule(false, 'guard')).catch((e: unknown) => e);
    expect(guardOnly).toBeInstanceOf(ServiceTokenModuleError);
    expect(guardOnly).toMatchObject({ code: 'invalid_options', message: expect.stringContaining('isGlobal: true') });
    const managerOnly = await startNest('express', appModule(false, 'manager')).catch((e: unknown) => e);
    expect(String(managerOnly)).toMatch(/can't resolve dependencies of the Caller/);
  });
});
