import { createServer, type Server } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { bootstrapAdmin } from './bootstrap.js';
import { type Config, loadConfig, startupWarnings } from './config.js';
import { connectDatabase, type DatabaseHandle } from './db/connect.js';
import { migrateToLatest } from './db/migrations.js';
import { devSecretFrom } from './dev-secret.js';
import { answerUnfinished } from './lib/draining-server.js';
import { chooseLogFormat, prettyLogStream } from './lib/log-format.js';
import { createBcryptHasher } from './lib/password.js';
import { bearerMatches } from './modules/metrics/metrics.routes.js';

const warn = (message: string) => process.stderr.write(`warning: ${message}\n`);

/** Reads and validates the environment; in development, supplies a generated JWT secret (and key-encryption key, client-secret pepper) kept in DATA_DIR. */
export function configFromEnvironment(env: NodeJS.ProcessEnv = process.env): Config {
  const dataDir = env.DATA_DIR || './.data';
  return loadConfig(
    env,
    () => devSecretFrom(dataDir, 'jwt', warn),
    () => devSecretFrom(dataDir, 'kek', warn),
    () => devSecretFrom(dataDir, 'pepper', warn),
  );
}

export async function openDatabase(config: Config): Promise<DatabaseHandle> {
  const database = await connectDatabase({ databaseUrl: config.databaseUrl, dataDir: config.dataDir });
  try {
    await migrateToLatest(database.db);
  } catch (err) {
    await database.close();
    throw err;
  }
  return database;
}

/**
 * `auth-api serve`: migrate, create the first admin if needed, listen, and on
 * SIGTERM/SIGINT stop accepting, finish in-flight requests, close the database, exit 0.
 */
export async function serve(env: NodeJS.ProcessEnv = process.env): Promise<FastifyInstance> {
  const config = configFromEnvironment(env);
  const database = await openDatabase(config);
  const hasher = createBcryptHasher(config.bcryptCost);
  let app: FastifyInstance | undefined;
  let metricsServer: Server | undefined;
  try {
    // Loaded here, not at the top: the CLI's other commands start faster without the HTTP stack.
    const { buildApp, serverLoggerOptions } = await import('./app.js');
    // Readable in a developer's terminal; JSON lines anywhere else (see lib/log-format.ts).
    const pretty = chooseLogFormat(config.env, process.stdout.isTTY) === 'pretty';
    const logger = pretty ? { ...serverLoggerOptions(config.logLevel), stream: await prettyLogStream() } : undefined;
    app = await buildApp({ config, database, hasher, ...(logger ? { logger } : {}) });
    const log = app.log;
    for (const warning of startupWarnings(config)) log.warn(warning);
    await bootstrapAdmin(config, database.db, hasher, {
      info: (m) => log.info(m),
      warn: (m) => log.warn(m),
      showOnce: (m) => process.stderr.write(m),
    });
    metricsServer = config.metrics.port === undefined ? undefined : await serveMetrics(app, config.metrics.port, config.metrics.host, config.metrics.token);
    stopOnSignals(app, database, config.http.shutdownTimeoutSec, metricsServer);
    const address = await app.listen({ port: config.port, host: config.host });
    if (config.issuerDerived) {
      log.info({ issuer: config.jwt.issuer }, 'JWT_ISSUER is not set: the issuer is derived from HOST and PORT; set JWT_ISSUER to the URL clients use to reach this server');
    }
    log.info({ address, database: database.kind, issuer: config.jwt.issuer, docs: '/docs' }, 'auth-api ready');
    return app;
  } catch (err) {
    // Release what was opened (a pg pool keeps the process alive), then report.
    metricsServer?.close();
    await app?.close();
    await database.close();
    throw err;
  }
}

/**
 * METRICS_PORT: `GET /metrics` on a port of its own (METRICS_HOST, loopback by default), for a
 * scraper on a private network; with METRICS_TOKEN set, the token is required there too.
 */
async function serveMetrics(app: FastifyInstance, port: number, host: string, token: string | undefined): Promise<Server> {
  const server = createServer((request, response) => {
    const path = (request.url ?? '').split('?')[0];
    if (request.method !== 'GET' || path !== '/metrics') return void response.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not_found","message":"Only GET /metrics is served on this port"}');
    if (token !== undefined && !bearerMatches(request.headers.authorization, token)) {
      return void response.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer realm="metrics"' }).end('{"error":"unauthorized","message":"GET /metrics needs Authorization: Bearer <METRICS_TOKEN>"}');
    }
    app.metrics.registry.metrics().then(
      (text) => response.writeHead(200, { 'content-type': app.metrics.registry.contentType, 'cache-control': 'no-store' }).end(text),
      () => response.writeHead(500).end(),
    );
  });
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(port, host, () => resolve()));
  app.log.info({ address: `http://${host}:${port}/metrics` }, 'metrics served');
  return server;
}

/** On SIGTERM/SIGINT: stop accepting, finish in-flight requests, close the database, exit 0 (or answer what is left and exit 1 at the deadline). */
function stopOnSignals(app: FastifyInstance, database: DatabaseHandle, deadlineSec: number, metricsServer?: Server): void {
  let closing = false;
  const shutdown = (signal: string) => {
    if (closing) return;
    closing = true;
    app.log.info({ signal }, 'shutting down: finishing in-flight requests');
    const force = setTimeout(() => {
      // Node stops its request-timeout check once the server closes: what is still unanswered is
      // answered now, which ends those connections and lets the drain finish (exit 0). Whatever
      // still holds it a second later (a response still being sent) is cut: exit 1.
      app.log.error(`shutdown took longer than ${deadlineSec} s: answering the requests still unfinished (408, or 503)`);
      const exit = () =>
        setTimeout(() => {
          app.log.error('shutdown still not finished; exiting');
          process.exit(1);
        }, 1000);
      answerUnfinished(app.server, 1000).then(exit, exit);
    }, deadlineSec * 1000);
    force.unref();
    metricsServer?.close();
    metricsServer?.closeAllConnections();
    app
      .close()
      .then(() => database.close())
      .then(() => process.exit(0))
      .catch((err) => {
        app.log.error({ err }, 'shutdown failed');
        process.exit(1);
      });
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}
