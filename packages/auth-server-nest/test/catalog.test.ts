// Catalog registration at boot, with real tokens from a running auth-api: against auth-api's own route, and
// (for the failure policies, which need scripted answers) against
// a minimal registration endpoint that checks method, path, token, scope and body.
import 'reflect-metadata';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Module } from '@nestjs/common';
import { createServiceTokenVerifier } from '@rw3iss/auth-server-ts';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { AUDIENCE, ISSUER, TEST_SECRET, createClient, createTestContext, type TestContext } from '../../auth-api/test/helpers.js';
import { CatalogRegistration, type CatalogOptions, ServiceTokenModule, ServiceTokenModuleError } from '../src/index.js';
import { memoryLogger, PLATFORMS, startNest } from './helpers.js';

const PATH = '/api/v1/admin/permissions/register';
const PERMISSIONS = [
  { code: 'gsku:publish', name: 'Publish SKUs', description: 'Push SKUs live', resource: 'sku', action: 'publish', category: 'catalog' },
  { code: 'gsku:read', name: 'Read SKUs' },
];

let ctx: TestContext;
let tokenEndpoint: string;
const secrets: Record<string, string> = {};

/** What the endpoint saw of one request, and whether it was acceptable. */
interface Seen {
  method: string | undefined;
  path: string | undefined;
  contentType: string | undefined;
  body: unknown;
  verdict: string;
}

/** The registration route, reduced to its contract: answers with the next scripted status once the request checks out. */
let endpoint: { url: string; seen: Seen[]; script: number[]; server: Server };

const verifier = createServiceTokenVerifier({ secret: TEST_SECRET, issuer: ISSUER, audience: AUDIENCE });

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString();
}

beforeAll(async () => {
  ctx = await createTestContext();
  await ctx.app.listen({ port: 0, host: '127.0.0.1' });
  tokenEndpoint = `http://127.0.0.1:${(ctx.app.server.address() as AddressInfo).port}/api/v1/oauth/token`;
  secrets.gsku = (await createClient(ctx, { client_id: 'gsku-svc', name: 'GSKU', scopes: ['gsku:publish', 'auth:catalog:gsku'] })).client_secret;
  secrets.plain = (await createClient(ctx, { client_id: 'plain-svc', name: 'Plain', scopes: ['gsku:publish'] })).client_secret;

  const seen: Seen[] = [];
  const script: number[] = [];
  const server = createServer(async (req, res) => {
    const text = await readBody(req);
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
    const service = (body as { service?: string })?.service;
    let verdict = 'ok';
    try {
      // The token must be the service's own, with the catalog scope for this service.
      await verifier.verify(/^Bearer (.+)$/.exec(req.headers.authorization ?? '')?.[1], { scopes: [`auth:catalog:${service}`] });
    } catch (err) {
      verdict = `token: ${(err as { code: string }).code}`;
    }
    if (req.method !== 'POST' || req.url !== PATH || !req.headers['content-type']?.startsWith('application/json')) verdict = 'request';
    seen.push({ method: req.method, path: req.url, contentType: req.headers['content-type'], body, verdict });
    const status = verdict === 'ok' ? (script.shift() ?? 200) : 400;
    const answer =
      status === 200
        ? { service, upserted_count: (body as { permissions: unknown[] }).permissions.length, pruned_codes: ['gsku:old'] }
        : { error: status === 403 ? 'forbidden' : status === 400 ? 'validation_failed' : 'service_unavailable', message: 'scripted' };
    res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(answer));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  endpoint = { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}${PATH}`, seen, script, server };
});

afterAll(async () => {
  endpoint?.server.closeAllConnections();
  await new Promise((done) => endpoint?.server.close(done));
  await ctx?.close();
});

beforeEach(() => {
  endpoint.seen.length = 0;
  endpoint.script.length = 0;
});

function appModule(catalog: Partial<CatalogOptions>, clientId = 'gsku-svc', secret = secrets.gsku!) {
  @Module({
    imports: [
      ServiceTokenModule.forRoot({
        manager: { tokenEndpoint, clientId, clientSecret: secret, scopes: ['gsku:publish'] },
        catalog: { service: 'gsku', permissions: PERMISSIONS, url: endpoint.url, retry: { baseDelayMs: 20, maxDelayMs: 40 }, ...catalog },
      }),
    ],
  })
  class AppModule {}
  return AppModule;
}

const bootError = async (promise: Promise<unknown>) => {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ServiceTokenModuleError);
  return err as ServiceTokenModuleError;
};

async function until(condition: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

describe('catalog at boot', () => {
  for (const platform of PLATFORMS) {
    it(`registers the catalog with the service's own token before listen() resolves (${platform})`, async () => {
      const logger = memoryLogger();
      const { app } = await startNest(platform, appModule({}), logger);
      expect(endpoint.seen).toEqual([
        { method: 'POST', path: PATH, contentType: 'application/json', body: { service: 'gsku', permissions: PERMISSIONS }, verdict: 'ok' },
      ]);
      const registration = app.get(CatalogRegistration);
      expect(registration.state).toBe('registered');
      expect(registration.result).toEqual({ service: 'gsku', upserted_count: 2, pruned_codes: ['gsku:old'] });
      expect(logger.lines).toContainEqual({ level: 'log', message: 'Permission catalog of "gsku" registered: 2 upserted, pruned gsku:old' });
      await app.close();
    });
  }

  it('without a catalog nothing is registered', async () => {
    @Module({ imports: [ServiceTokenModule.forRoot({ manager: { tokenEndpoint, clientId: 'gsku-svc', clientSecret: secrets.gsku! } })] })
    class AppModule {}
    const { app } = await startNest('express', AppModule);
    expect(app.get(CatalogRegistration).state).toBe('disabled');
    expect(endpoint.seen).toEqual([]);
    await app.close();
  });
});

describe("failure policy 'fail' (the default)", () => {
  it('a refusal (403) fails the boot at once, without retrying', async () => {
    endpoint.script.push(403);
    const err = await bootError(startNest('fastify', appModule({})));
    expect(err).toMatchObject({ code: 'catalog_registration_failed', status: 403, error: 'forbidden', retryable: false });
    expect(endpoint.seen).toHaveLength(1);
  });

  it('a credential without the catalog scope fails the boot with invalid_scope, nothing is sent', async () => {
    const logger = memoryLogger();
    const err = await bootError(startNest('express', appModule({}, 'plain-svc', secrets.plain!), logger));
    expect(err).toMatchObject({ code: 'catalog_registration_failed', status: 400, error: 'invalid_scope', retryable: false });
    expect(endpoint.seen).toEqual([]);
    const logged = JSON.stringify(logger.lines);
    expect(logged).toContain('invalid_scope');
    expect(logged).not.toContain(secrets.plain);
  });

  it('transient failures (503) are retried, and the boot goes on once registered', async () => {
    endpoint.script.push(503, 503);
    const { app } = await startNest('express', appModule({ retry: { maxAttempts: 3, baseDelayMs: 10, maxDelayMs: 20 } }));
    expect(endpoint.seen.map((s) => s.verdict)).toEqual(['ok', 'ok', 'ok']);
    expect(app.get(CatalogRegistration).state).toBe('registered');
    await app.close();
  });

  it('…up to retry.maxAttempts, then the boot fails', async () => {
    endpoint.script.push(503, 503, 503);
    const err = await bootError(startNest('fastify', appModule({ retry: { maxAttempts: 2, baseDelayMs: 10, maxDelayMs: 20 } })));
    expect(err).toMatchObject({ code: 'catalog_registration_failed', status: 503, error: 'service_unavailable', retryable: true });
    expect(endpoint.seen).toHaveLength(2);
  });
});

describe("failure policy 'warn'", () => {
  it('boots at once, logs, and retries in the background until registered', async () => {
    endpoint.script.push(503, 503);
    const logger = memoryLogger();
    const { app } = await startNest('fastify', appModule({ onFailure: 'warn' }), logger);
    const registration = app.get(CatalogRegistration);
    expect(registration.state).toBe('retrying');
    expect(registration.lastError).toMatchObject({ status: 503 });
    await until(() => registration.state === 'registered');
    expect(endpoint.seen).toHaveLength(3);
    expect(logger.lines.filter((l) => l.level === 'warn').map((l) => l.message)).toEqual([
      expect.stringContaining('answered 503 service_unavailable (attempt 1)'),
      expect.stringMatching(/trying again in \d+ s$/),
      expect.stringContaining('(attempt 2)'),
      expect.stringMatching(/trying again in \d+ s$/),
    ]);
    await app.close();
  });

  it('retries a refusal too (an operator may fix the credential), and stops when the application closes', async () => {
    endpoint.script.push(...Array(1000).fill(403));
    const { app } = await startNest('express', appModule({ onFailure: 'warn' }));
    await until(() => endpoint.seen.length >= 3);
    const registration = app.get(CatalogRegistration);
    await app.close();
    expect(registration.state).toBe('stopped');
    const after = endpoint.seen.length;
    await new Promise((resolve) => setTimeout(resolve, 200)); // several backoff periods
    expect(endpoint.seen.length).toBe(after);
  });
});

describe("against auth-api's own registration route", () => {
  it('registers at boot with the default URL (beside the token endpoint), idempotently; the catalog is then listed', async () => {
    const { client_secret } = await createClient(ctx, { client_id: 'real-svc', name: 'Real', scopes: ['auth:catalog:realcat'] });
    const permissions = [
      { code: 'realcat:publish', name: 'Publish', description: 'Push items live', resource: 'item', action: 'publish', category: 'catalog' },
      { code: 'realcat:read', name: 'Read' },
    ];
    @Module({
      imports: [
        ServiceTokenModule.forRoot({
          manager: { tokenEndpoint, clientId: 'real-svc', clientSecret: client_secret },
          catalog: { service: 'realcat', permissions },
        }),
      ],
    })
    class AppModule {}
    for (const [platform, upserted] of [['express', 2], ['fastify', 0]] as const) {
      const { app } = await startNest(platform, AppModule);
      expect(app.get(CatalogRegistration).result).toEqual({ service: 'realcat', upserted_count: upserted, pruned_codes: [] });
      await app.close();
    }
    const listed = await ctx.app.inject({ method: 'GET', url: '/api/v1/admin/permissions?service=realcat', headers: { authorization: `Bearer ${ctx.adminToken}` } });
    expect(listed.statusCode).toBe(200);
    expect((listed.json() as { permissions: Array<{ code: string }> }).permissions.map((p) => p.code).sort()).toEqual(['realcat:publish', 'realcat:read']);
  });

  it("another service's catalog scope is refused by the route: the boot fails with 403", async () => {
    const { client_secret } = await createClient(ctx, { client_id: 'intruder-svc', name: 'Intruder', scopes: ['auth:catalog:intruder'] });
    @Module({
      imports: [
        ServiceTokenModule.forRoot({
          manager: { tokenEndpoint, clientId: 'intruder-svc', clientSecret: client_secret },
          catalog: { service: 'realcat', permissions: [{ code: 'realcat:admin', name: 'Admin' }], scopes: ['auth:catalog:intruder'] },
        }),
      ],
    })
    class AppModule {}
    const err = await bootError(startNest('express', AppModule));
    expect(err).toMatchObject({ code: 'catalog_registration_failed', status: 403, retryable: false });
  });
});
