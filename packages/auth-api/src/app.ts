import { randomUUID } from 'node:crypto';
import fastifySwagger from '@fastify/swagger';
import fastifySwaggerUi from '@fastify/swagger-ui';
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyServerOptions, LogController } from 'fastify';
import { jsonSchemaTransform, serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Config } from './config.js';
import type { DatabaseHandle } from './db/connect.js';
import { isDatabaseUnavailable } from './db/errors.js';
import { type Clock, systemClock } from './lib/clock.js';
import { documentErrorResponses, PACKAGE_VERSION } from './lib/openapi.js';
import { createBcryptHasher, type PasswordHasher } from './lib/password.js';
import { createServiceTokenVerifier, createTokenIssuer } from './lib/tokens.js';
import { adminAuthRoutes } from './modules/admin-auth/admin-auth.routes.js';
import { createAdminAuthService } from './modules/admin-auth/admin-auth.service.js';
import { healthRoutes } from './modules/health/health.routes.js';
import { m2mClientsRoutes } from './modules/m2m-clients/m2m-clients.routes.js';
import { createM2MClientsService } from './modules/m2m-clients/m2m-clients.service.js';
import { createClientSecretsService } from './modules/m2m-clients/client-secrets.service.js';
import { createClientSecretHasher } from './lib/client-secret-hash.js';
import { metadataRoutes } from './modules/oauth/metadata.routes.js';
import { oauthRoutes } from './modules/oauth/oauth.routes.js';
import { createTokenEndpoint } from './modules/oauth/token-endpoint.js';
import { clientAddressOf, logRequestLine, serveFirst, writesRequestLines } from './lib/serve-first.js';
import { boundedJsonParser } from './lib/read-body.js';
import { jwksRoutes, signingKeysRoutes } from './modules/signing-keys/signing-keys.routes.js';
import { createSigningKeyService, type SigningKeyService } from './modules/signing-keys/signing-keys.service.js';
import { permissionsRoutes } from './modules/permissions/permissions.routes.js';
import { createPermissionsService } from './modules/permissions/permissions.service.js';
import { createOAuthService } from './modules/oauth/oauth.service.js';
import { createCredentialState, type CredentialState } from './modules/oauth/credential-state.js';
import { findClientForGrant, type GrantClientRow } from './modules/m2m-clients/m2m-clients.repository.js';
import { type ChangeFeed, CREDENTIAL_CHANNEL } from './db/change-feed.js';
import { revocationFeedRoutes } from './modules/revocations/revocations.routes.js';
import { createRevocationsService } from './modules/revocations/revocations.service.js';
import { createVerifiedSecretCache, type VerifiedSecretCache } from './lib/secret-cache.js';
import { createPostgresAttemptStore } from './lib/attempt-store-postgres.js';
import { addressKey, type AttemptStore, createFailureThrottle, createMemoryAttemptStore } from './lib/throttle.js';
import { createWorkBudget } from './lib/work-budget.js';
import { drainOnClose } from './lib/draining-server.js';
import { countLookups, countRejections, createMetrics, type Metrics } from './modules/metrics/metrics.js';
import { metricsRoutes } from './modules/metrics/metrics.routes.js';
import { createAuthEventRecorder } from './modules/auth-events/auth-events.recorder.js';
import { authEventsRoutes } from './modules/auth-events/auth-events.routes.js';
import { auditRoutes } from './modules/audit/audit.routes.js';
import { consoleRoutes, DEFAULT_CONSOLE_DIR } from './modules/console/console.routes.js';
import fastifyRateLimit from '@fastify/rate-limit';
import { createUserGuards } from './plugins/admin-guard.js';
import { answerClientError, registerErrorHandlers } from './plugins/error-handler.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** The service-token signing keys (refreshed every 30 s; `refresh()` forces it). */
    signingKeys: SigningKeyService;
    /** The grant's credential-state cache: `stats()` for metrics (hits, misses, entries, whether the change feed is live). */
    credentialState: Pick<CredentialState<GrantClientRow>, 'stats'>;
    /** Prometheus metrics; `metrics.listenerUp` is the invalidation listener's gauge. */
    metrics: Metrics;
  }
}

export const API_PREFIX = '/api/v1';
/** Largest request body accepted, in bytes: far above any valid request. */
export const BODY_LIMIT = 64 * 1024;
/**
 * Closing (lib/draining-server.ts): connections are accepted until the accept queue is empty and none
 * came for 100 ms (at most 10 s), then every accepted connection is served; one silent for 2 s is closed.
 */
export const DRAIN = { acceptQuietMs: 100, acceptMaxMs: 10_000, drainIdleMs: 2_000 };

export interface BuildAppOptions {
  config: Config;
  database: DatabaseHandle;
  clock?: Clock;
  hasher?: PasswordHasher;
  /** Verified client secrets, so repeat grants skip bcrypt. Default: in memory, 10 minutes. */
  secretCache?: VerifiedSecretCache;
  /**
   * Failed-authentication counters, one store per throttle (`login`, `grant`) so a flood of one
   * cannot crowd out the other, `AUTH_THROTTLE_MAX_KEYS` each. Default (`AUTH_THROTTLE_STORE=auto`):
   * the database's `auth_attempts` table on PostgreSQL (shared by every instance), in memory on PGlite.
   */
  attemptStore?: AttemptStore | ((throttle: 'login' | 'grant') => AttemptStore);
  /** Where the metrics go (`/metrics`). Default: a registry of this app's own. */
  metrics?: Metrics;
  /** The built admin console served at `/admin`, or `false` for none. Default: this package's `dist/console/`. */
  consoleDir?: string | false;
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
  '*.current_password',
  '*.new_password',
  '*.access_token',
  '*.client_secret_hash',
  '*.secret_hash',
  '*.password_hash',
  '*.token_hash',
  // The embedded database's errors carry the query's bound values (a password hash, a token hash).
  'err.params',
];

/**
 * The server's logger settings: pino JSON lines at `level`, secrets redacted, a
 * request summarised by method and path only. Exported so tests log exactly
 * as production does (add a `stream` to capture the lines).
 */
export function serverLoggerOptions(level: string) {
  return {
    level,
    redact: { paths: REDACTED_LOG_PATHS, censor: '[redacted]' },
    serializers: {
      // Method and path only: a query string could carry a secret sent by mistake.
      req: (req: { method: string; url: string; ip: string }) => ({ method: req.method, url: req.url.split('?')[0], remoteAddress: req.ip }),
    },
  };
}

function loggerOptions(options: BuildAppOptions): Pick<FastifyServerOptions, 'logger' | 'loggerInstance' | 'logController'> {
  // Fastify's two lines per request are replaced by one, from the onResponse hook in buildApp.
  const logController = new LogController({ disableRequestLogging: true });
  const { logger } = options;
  if (logger && typeof logger === 'object' && 'child' in logger && typeof logger.child === 'function') {
    return { loggerInstance: logger as FastifyBaseLogger, logController };
  }
  if (logger !== undefined && (typeof logger === 'boolean' || typeof logger === 'object')) return { logger, logController };
  return { logger: serverLoggerOptions(options.config.logLevel), logController };
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
    // Slow clients: headers within headersTimeout, the whole request within requestTimeout, both
    // checked every connectionsCheckingInterval (Node's default, 30 s, let them hold a socket twice as long).
    requestTimeout: config.http.requestTimeoutSec * 1000,
    connectionTimeout: 30_000,
    http: {
      headersTimeout: config.http.headersTimeoutSec * 1000,
      requestTimeout: config.http.requestTimeoutSec * 1000,
      connectionsCheckingInterval: config.http.connectionsCheckIntervalSec * 1000,
    },
    // A request that reaches a closing server was accepted: it is served (with Connection: close), not refused.
    return503OnClosing: false,
    ...(config.trustProxy === undefined ? {} : { trustProxy: config.trustProxy }),
    // Malformed URLs and over-long path parameters never reach a route: answer them in our format too.
    frameworkErrors: (_err, _request, reply) => {
      void (reply as FastifyReply).status(400).send({ error: 'validation_failed', message: 'The URL is malformed' });
    },
    // Requests Node's parser refuses (bad framing, oversized headers, too slow): our error format too.
    clientErrorHandler: answerClientError,
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 200 },
  }).withTypeProvider<ZodTypeProvider>();

  app.server.maxConnections = config.http.maxConnections;
  // On close, every connection already accepted is served, then closed; none is reset.
  drainOnClose(app.server, DRAIN);
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  // JSON only on the management API; the token endpoint adds form bodies in its own scope.
  app.removeContentTypeParser('text/plain');
  // Fastify's JSON parsing, of a body read into one buffer (lib/read-body.ts): Fastify's own reader
  // keeps a body as the chunks it came in, and a login sent a byte per chunk held 12 MB of heap.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', boundedJsonParser(app.getDefaultJsonParser('error', 'error')));
  // Hooks run on every request, the token endpoint's hot path included: callback style, no promise each.
  // Draining on close: every response sent from then on (in-flight requests included) says
  // Connection: close, so each keep-alive connection ends after its response instead of holding the shutdown open.
  let closing = false;
  app.addHook('preClose', (done) => {
    closing = true;
    done();
  });
  app.addHook('onSend', (request, reply, payload, done) => {
    reply.header('x-request-id', request.id);
    reply.header('x-content-type-options', 'nosniff');
    if (request.url.startsWith('/docs')) reply.header('x-frame-options', 'DENY').header('referrer-policy', 'no-referrer');
    if (closing) reply.header('connection', 'close');
    done(null, payload);
  });
  // One line per request (lib/serve-first.ts, logRequestLine); request.log already carries reqId.
  app.decorateRequest('tokenRequest', null);
  app.addHook('onResponse', (request, reply, done) => {
    if (writesRequestLines(request.log)) logRequestLine(request.log, request.method, request.url.split('?')[0]!, reply.statusCode, reply.elapsedTime, request.tokenRequest);
    done();
  });
  registerErrorHandlers(app);
  // Before any route: every route's OpenAPI entry lists the errors it can answer.
  app.addHook('onRoute', documentErrorResponses(API_PREFIX));

  await app.register(fastifySwagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'auth-api: service credentials',
        version: PACKAGE_VERSION,
        description:
          'Service (machine-to-machine) credential registry and OAuth 2.0 client_credentials token endpoint (RFC 6749 §4.4). Management routes need a system_admin session token (`POST /api/v1/auth/login`); errors are `{error, message, details?}` with a stable `error` code. The token endpoint speaks RFC 6749 §5.2 (`{error, error_description}`).',
      },
      components: {
        securitySchemes: {
          bearerAuth: { type: 'http', scheme: 'bearer', description: 'An admin session token from `POST /api/v1/auth/login` (opaque, not a JWT)' },
          serviceBearer: {
            type: 'http',
            scheme: 'bearer',
            bearerFormat: 'JWT',
            description: 'A service token (`POST /api/v1/oauth/token`) carrying the scope the route names, e.g. `auth:revocations:read`',
          },
          clientBasic: {
            type: 'http',
            scheme: 'basic',
            description: '`client_secret_basic` (RFC 6749 §2.3.1): the client_id and client_secret, each form-urlencoded, as HTTP Basic credentials',
          },
        },
      },
    },
    transform: jsonSchemaTransform,
  });
  // The docs UI is the one HTML surface: a strict CSP on its static files (staticCSP) and framing refused.
  await app.register(fastifySwaggerUi, { routePrefix: '/docs', staticCSP: true });

  const signingKeys = createSigningKeyService({
    db: database.db,
    clock,
    alg: config.serviceTokens.alg,
    keyEncryptionKey: config.serviceTokens.keyEncryptionKey,
    serviceTokenTtlSec: config.serviceTokenTtlSec,
    publishDelaySec: config.serviceTokens.publishDelaySec,
  });
  // Asymmetric: activates the first key if needed and loads the current one (a wrong KEK fails here, at start).
  await signingKeys.refresh();
  signingKeys.start((err) => app.log.warn({ err }, 'could not refresh the signing keys; keeping the last ones'));
  app.decorate('signingKeys', signingKeys);
  app.addHook('onClose', (_instance, done) => {
    signingKeys.stop();
    done();
  });
  const tokenKeys = { ...config.jwt };
  const tokens = createTokenIssuer(tokenKeys, clock, signingKeys.signer);
  const sharedThrottle = config.limits.throttleStore === 'database' || (config.limits.throttleStore === 'auto' && database.kind === 'postgres');
  const storeFor = (name: 'login' | 'grant'): AttemptStore => {
    const given = options.attemptStore;
    if (typeof given === 'function') return given(name);
    if (given) return given;
    const maxKeys = config.limits.throttleMaxKeys;
    // Several instances on one PostgreSQL count the same failures; PGlite serves one process.
    return sharedThrottle ? createPostgresAttemptStore({ db: database.db, clock, store: name, maxKeys }) : createMemoryAttemptStore({ clock, maxKeys });
  };
  // All bcrypt work shares one budget, kept below libuv's 4 threads so WebCrypto, DNS and fs never wait behind it.
  const budget = createWorkBudget({ concurrency: config.bcrypt.concurrency, maxWaitMs: config.bcrypt.maxWaitMs, maxQueued: 256, maxQueuedPerParty: 64 });
  const metrics = options.metrics ?? createMetrics({ database, bcryptLoad: budget.load, version: PACKAGE_VERSION });
  app.decorate('metrics', metrics);
  const throttle = (name: 'login' | 'grant') => countRejections(name, metrics, createFailureThrottle({
      store: storeFor(name),
      clock,
      name,
      windowMs: config.limits.failureWindowSec * 1000,
      perIdentityAndIp: config.limits.failuresPerIdentityAndIp,
      perIp: config.limits.failuresPerIp,
      onTrip: (trip) => app.log.warn(trip, 'throttle tripped'),
      // The shared store is the database: while it is unreachable, refuse as every other database read does (503).
      isUnavailable: isDatabaseUnavailable,
      onStoreError: (err) => app.log.warn({ err: { name: (err as Error).name, message: (err as Error).message } }, 'throttle store refused an attempt (failing closed)'),
    }));
  const auth = createAdminAuthService({ db: database.db, hasher, clock, budget, throttle: throttle('login'), userTokenTtlSec: config.userTokenTtlSec });
  const secretCache = countLookups(options.secretCache ?? createVerifiedSecretCache({ clock }), metrics);
  // The grant's credential state from memory, while the change feed (LISTEN on the credential
  // triggers' channel) is live; without a feed, every grant reads the database.
  let feed: ChangeFeed | undefined;
  const credentialState = createCredentialState({ read: (clientId) => findClientForGrant(database.db, clientId), clock, live: () => feed?.live() ?? false });
  feed = database.openChangeFeed?.(CREDENTIAL_CHANNEL, {
    onNotify: credentialState.onNotify,
    onReset: credentialState.forgetAll,
    onStateChange: (state, err) => {
      metrics.listenerUp.set(state === 'live' ? 1 : 0);
      if (state === 'live') app.log.info('credential change feed is live');
      else app.log.warn({ err: err && { name: (err as Error).name, code: (err as { code?: string }).code } }, 'credential change feed is down; reading credentials from the database until it is back');
    },
  });
  app.decorate('credentialState', credentialState);
  app.addHook('onClose', async () => feed?.close());
  // This instance's own changes take effect here at once; other instances learn them from the feed.
  // The verified-secret cache is left alone: every grant checks a remembered secret against this
  // state (still held, same hash, live, credential usable) and forgets it when that fails, so a
  // rotation does not make the fleet's current secret pay bcrypt again.
  const credentialChanged = (credential: { client_id: string }) => credentialState.changed(credential.client_id);
  const permissions = createPermissionsService({ db: database.db, clock, onCatalogChange: credentialState.forgetAll });
  const adminHasher = { ...hasher, hash: (plain: string) => budget.run('admin', () => hasher.hash(plain), { trusted: true }) };
  // New secrets are hashed within the bcrypt budget (as an admin's work); grants verify within it too.
  const secretHasherOf = (bcrypt: PasswordHasher) => createClientSecretHasher({ alg: config.clientSecrets.hash, bcrypt, pepper: config.clientSecrets.pepper });
  const adminSecretHasher = secretHasherOf(adminHasher);
  const clientSecrets = createClientSecretsService({ db: database.db, hasher: adminSecretHasher, clock, onChange: credentialChanged });
  const clients = createM2MClientsService({
    db: database.db,
    secrets: adminSecretHasher,
    clock,
    checkScopes: permissions.assertScopesDefined,
    onChange: credentialChanged,
  });
  const grantThrottle = throttle('grant');
  const authEvents = createAuthEventRecorder({
    db: database.db,
    clock,
    retentionDays: config.authEvents.retentionDays,
    maxKeysPerMinute: config.authEvents.maxKeysPerMinute,
    onError: (err) => app.log.warn({ code: (err as { code?: string }).code }, 'could not write auth events'),
  });
  app.addHook('onClose', async () => authEvents.close());
  const oauth = createOAuthService({
    db: database.db,
    secrets: secretHasherOf(hasher),
    budget,
    tokens,
    secretCache,
    throttle: grantThrottle,
    clock,
    serviceTokenTtlSec: config.serviceTokenTtlSec,
    defaultAudience: config.jwt.audience,
    readClient: credentialState.get,
    onStampError: (err) => app.log.warn({ code: (err as { code?: string }).code }, 'could not record last_used_at'),
  });
  const verifyServiceToken = createServiceTokenVerifier(tokenKeys, clock, {
    publishedKeys: () => signingKeys.jwks().keys,
    acceptHs256: config.serviceTokens.alg === 'HS256',
  });
  const guards = createUserGuards({ authenticate: auth.authenticate, verifyServiceToken });
  const revocations = createRevocationsService({
    db: database.db,
    clock,
    verifyServiceToken,
    verifyAnyAudience: createServiceTokenVerifier(tokenKeys, clock, {
      publishedKeys: () => signingKeys.jwks().keys,
      acceptHs256: config.serviceTokens.alg === 'HS256',
      anyAudience: true,
    }),
  });

  await app.register(healthRoutes, { database });
  if (config.metrics.token) await app.register(metricsRoutes, { registry: metrics.registry, token: config.metrics.token });
  await app.register(metadataRoutes, { issuer: config.jwt.issuer, apiPrefix: API_PREFIX });
  await app.register(jwksRoutes, { keys: signingKeys, maxAgeSec: config.serviceTokens.jwksMaxAgeSec });
  if (options.consoleDir !== false) {
    await app.register(consoleRoutes, {
      dir: options.consoleDir ?? DEFAULT_CONSOLE_DIR,
      onMissing: (dir) => app.log.warn({ dir }, 'the admin console is not built: /admin answers 404 (pnpm build builds it)'),
    });
  }
  const tokenEndpoint = createTokenEndpoint({ oauth, throttle: grantThrottle, authEvents, onOutcome: metrics.grant, closing: () => closing });
  // The token requests go straight from Node to the endpoint, without Fastify's per-request work
  // (token-endpoint.ts); the route registered below serves what still reaches Fastify.
  serveFirst(app, `${API_PREFIX}/oauth/token`, tokenEndpoint, clientAddressOf(config.trustProxy));
  // The OAuth endpoints (token, revocation, introspection, the revocation feed) have no request
  // ceiling: fleets behind one NAT renew and poll legitimately in bulk. Their abuse control is the
  // failure throttle (client authentication) or the service token the feed requires.
  await app.register(
    async (oauthApi) => {
      await oauthApi.register(oauthRoutes, { tokenEndpoint, oauth, throttle: grantThrottle, authEvents, revocations, onOutcome: metrics.grant, onLifecycleOutcome: metrics.tokenLifecycle });
      await oauthApi.register(revocationFeedRoutes, { revocations });
    },
    { prefix: API_PREFIX },
  );
  await app.register(
    async (api) => {
      if (config.limits.requestsPerMinute > 0) {
        // A request ceiling per IP on login and management, keyed like the failure throttle: IPv6 by
        // its /64, so one subscriber cannot rotate past it. A hook of this scope, so it runs before
        // the routes' own hooks (the admin guard): a flood of bad tokens is limited too, not verified first.
        await api.register(fastifyRateLimit, { global: false, max: config.limits.requestsPerMinute, timeWindow: 60_000, keyGenerator: (request) => addressKey(request.ip) });
        api.addHook('onRequest', api.rateLimit());
      }
      await api.register(adminAuthRoutes, { auth, guards });
      await api.register(m2mClientsRoutes, { clients, secrets: clientSecrets, guards });
      await api.register(permissionsRoutes, { permissions, guards, verifyServiceToken });
      await api.register(authEventsRoutes, { db: database.db, recorder: authEvents, guards });
      await api.register(auditRoutes, { db: database.db, guards });
      await api.register(signingKeysRoutes, { keys: signingKeys, guards });
    },
    { prefix: API_PREFIX },
  );

  return app;
}
