/**
 * Baseline: a bare Fastify route in the auth-api's server configuration
 * (same logger settings, form parser, body limit, request ids), answering a
 * token-shaped JSON body without doing any work. Usage: tsx bare-server.ts PORT
 */
import { randomUUID } from 'node:crypto';
import fastifyFormbody from '@fastify/formbody';
import Fastify, { LogController } from 'fastify';
import { serverLoggerOptions } from '@rw3iss/auth-api/dist/app.js';

const port = Number(process.argv[2]);
const app = Fastify({
  logger: serverLoggerOptions('warn'),
  logController: new LogController({ disableRequestLogging: true }),
  bodyLimit: 64 * 1024,
  genReqId: () => randomUUID(),
  requestIdHeader: false,
});
await app.register(fastifyFormbody, { bodyLimit: 8 * 1024 });
const body = JSON.stringify({ access_token: 'x'.repeat(520), token_type: 'Bearer', expires_in: 900, scope: 'bench:read' });
app.post('/token', async (_request, reply) =>
  reply.header('cache-control', 'no-store').header('pragma', 'no-cache').header('content-type', 'application/json; charset=utf-8').send(body),
);
app.get('/healthz', async () => ({ status: 'ok' }));
await app.listen({ port, host: '127.0.0.1' });
process.on('SIGTERM', () => app.close().then(() => process.exit(0)));
