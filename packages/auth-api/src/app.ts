import { randomUUID } from 'node:crypto';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Config } from './config.js';
import type { DatabaseHandle } from './db/connect.js';
import { type Clock, systemClock } from './lib/clock.js';
import { createBcryptHasher, type PasswordHasher } from './lib/password.js';
import { createAccessTokenVerifier, createTokenIssuer } from './lib/tokens.js';
import { adminAuthRoutes } from './modules/admin-auth/admin-auth.routes.js';
import { createAdminAuthService } from './modules/admin-auth/admin-auth.service.js';
import { healthRoutes } from './modules/health/health.routes.js';
import { m2mClientsRoutes } from './modules/m2m-clients/m2m-clients.routes.js';
import { createM2MClientsService } from './modules/m2m-clients/m2m-clients.service.js';
import { metadataRoutes } from './modules/oauth/metadata.routes.js';
import { oauthRoutes } from './modules/oauth/oauth.routes.js';
import { createOAuthService } from './modules/oauth/oauth.service.js';
import { createVerifiedSecretCache, type VerifiedSecretCache } from './lib/secret-cache.js';
import { createUserGuards } from './plugins/admin-guard.js';
import { registerErrorHandlers } from './plugins/error-handler.js';

export const API_PREFIX = '/api/v1';
/** Largest request body accepted, in bytes: far above any valid request. */
export const BODY_LIMIT = 64 * 1024;

export interface BuildAppOptions {
  config: Config;
  database: DatabaseHandle;
  clock?: Clock;
  hasher?: PasswordHasher;
  /** Verified client secrets, so repeat grants skip bcrypt. Default: in memory, 10 minutes. */
  secretCache?: VerifiedSecretCache;
  /** A pino logger, `false` to log nothing, or fastify logger options. Default: JSON at `config.logLevel`. */
  logger?: FastifyBaseLogger | FastifyServerOptions['logger'];
}

/** Paths of values that must never reach a log line. */
export const REDACTED_LOG_PATHS = [
  'req.headers.authorization',
  'req.headers.cookie',
  'headers.authorization',
  '*.client_secret',
  '*.password',
  '*.access_token',
  '*.client_secret_hash',
  '*.password_hash',
];

function loggerOptions(options: BuildAppOptions): Pick<FastifyServerOptions, 'logger' | 'loggerInstance'> {
  const { logger } = options;
  if (logger && typeof logger === 'object' && 'child' in logger && typeof logger.child === 'function') {
    return { loggerInstance: logger as FastifyBaseLogger };
  }
  if (logger !== undefined && (typeof logger === 'boolean' || typeof logger === 'object')) return { logger };
  return {
    logger: {
      level: options.config.logLevel,
      redact: { paths: REDACTED_LOG_PATHS, censor: '[redacted]' },
      serializers: {
        // Method and path only: a query string could carry a secret sent by mistake.
        req: (req) => ({ method: req.method, url: req.url.split('?')[0], remoteAddress: req.ip }),
      },
    },
  };
}

/**
 * Builds the server, not yet listening. Every dependency comes in through
 * `options`, so tests build their own app on their own database and clock.
 */
export async function buildApp(options: BuildAppOptions): Promise<FastifyInstance> {
  const { config, database } = options;
  const clock = options.clock ?? systemClock;
  const hasher = options.hasher ?? createBcryptHasher(config.bcryptCost);

  const app = Fastify({
    ...loggerOptions(options),
    bodyLimit: BODY_LIMIT,
    genReqId: () => randomUUID(),
    requestIdHeader: false,
    requestTimeout: 30_000,
    connectionTimeout: 30_000,
    return503OnClosing: true,
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 200 },
  }).withTypeProvider<ZodTypeProvider>();

  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  // JSON only on the management API; the token endpoint adds form bodies in its own scope.
  app.removeContentTypeParser('text/plain');
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  registerErrorHandlers(app);

  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'auth-api: service credentials', version: '1.0.0', description: 'Service (machine-to-machine) credential registry and OAuth 2.0 client_credentials token endpoint.' },
      components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
    },
    transform: jsonSchemaTransform,
  });
  await app.register(fastifySwaggerUi, { routePrefix: '/docs' });

  const tokenKeys = { ...config.jwt };
  const tokens = createTokenIssuer(tokenKeys, clock);
  const verifyAccessToken = createAccessTokenVerifier(tokenKeys, clock);
  const auth = createAdminAuthService({ db: database.db, hasher, tokens, userTokenTtlSec: config.userTokenTtlSec });
  const secretCache = options.secretCache ?? createVerifiedSecretCache({ clock });
  const clients = createM2MClientsService({ db: database.db, hasher, clock, onChange: (id) => secretCache.delete(id) });
  const oauth = createOAuthService({
    db: database.db,
    hasher,
    tokens,
    secretCache,
    clock,
    serviceTokenTtlSec: config.serviceTokenTtlSec,
    defaultAudience: config.jwt.audience,
    onStampError: (err) => app.log.warn({ code: (err as { code?: string }).code }, 'could not record last_used_at'),
  });
  const guards = createUserGuards({ verifyAccessToken, findUser: auth.findUser });

  await app.register(healthRoutes, { database });
  await app.register(metadataRoutes, { issuer: config.jwt.issuer, apiPrefix: API_PREFIX });
  await app.register(
    async (api) => {
      await api.register(adminAuthRoutes, { auth, guards });
      await api.register(m2mClientsRoutes, { clients, guards });
      await api.register(oauthRoutes, { oauth });
    },
    { prefix: API_PREFIX },
  );

  return app;
}
