import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import proxyAddr from '@fastify/proxy-addr';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { SERVER_ERROR_BODY, type TokenEndpoint, type TokenRequestFields } from '../modules/oauth/token-endpoint.js';

/**
 * The client's address as Fastify's `request.ip` reads it with `trustProxy: trusted` (the same
 * library, the same rule): without trusted proxies the peer's address; with them, the last address
 * of the `X-Forwarded-For` chain that is not a trusted proxy. test/token-dispatch.test.ts compares the two.
 */
export function clientAddressOf(trusted: string[] | undefined): (request: IncomingMessage) => string | undefined {
  if (trusted === undefined) return (request) => request.socket.remoteAddress;
  const trust = proxyAddr.compile(trusted);
  return (request) => {
    const chain = proxyAddr.all(request, trust);
    return chain[chain.length - 1];
  };
}

/** Whether `log` writes the request line (info): at LOG_LEVEL=warn, production's usual, a request builds no line object. */
export function writesRequestLines(log: FastifyBaseLogger): boolean {
  return (log as FastifyBaseLogger & { isLevelEnabled?(level: string): boolean }).isLevelEnabled?.('info') !== false;
}

/**
 * The one line per request (`log` carries the request id): method, path without the query string
 * (it could carry a secret sent by mistake), status and duration; a token request adds its client_id
 * (as sent, bounded), auth method, outcome and address, never the secret.
 */
export function logRequestLine(log: FastifyBaseLogger, method: string, path: string, status: number, elapsedMs: number, token: TokenRequestFields | null | undefined): void {
  log.info({ method, path, status, durationMs: Math.round(elapsedMs), ...token }, 'request completed');
}

/**
 * Hands `POST <path>` (with or without a query string) straight from Node to `endpoint`, and every
 * other request to Fastify. The endpoint gets what Fastify would give a route: a request id, the
 * client's address, a logger carrying the id, and the one request line (at `info`) in the format
 * of the server's onResponse hook. Fastify stays the only other listener; it is checked, so a
 * Fastify that attached its handler differently fails here, at start, rather than serve twice.
 */
export function serveFirst(app: FastifyInstance, path: string, endpoint: TokenEndpoint, addressOf: (request: IncomingMessage) => string | undefined): void {
  const listeners = app.server.listeners('request');
  if (listeners.length !== 1) throw new Error(`expected Fastify to be the server's one request listener, found ${listeners.length}`);
  const fastify = listeners[0] as (request: IncomingMessage, response: ServerResponse) => void;
  const withQuery = `${path}?`;

  app.server.removeListener('request', fastify);
  app.server.on('request', (request: IncomingMessage, response: ServerResponse) => {
    const url = request.url ?? '';
    const ip = request.method === 'POST' && (url === path || url.startsWith(withQuery)) ? addressOf(request) : undefined;
    // Anything else, and a request whose connection is already gone (no address): Fastify's.
    if (ip === undefined) return fastify(request, response);
    const id = randomUUID();
    const startedAt = performance.now();
    let requestLog: FastifyBaseLogger | undefined;
    let fields: TokenRequestFields | undefined;
    const logOf = () => (requestLog ??= app.log.child({ reqId: id }));
    if (writesRequestLines(app.log)) response.once('finish', () => logRequestLine(logOf(), 'POST', path, response.statusCode, performance.now() - startedAt, fields));
    try {
      endpoint(request, response, {
        id,
        ip,
        startedAt,
        log: logOf,
        onFields: (f) => {
          fields = f;
        },
      });
    } catch (err) {
      // A fault of the endpoint's own (it answers every request error itself): thrown from a
      // request listener it would end the process, so it is logged and the request refused.
      logOf().error({ err }, 'token request failed');
      if (response.headersSent) return void response.destroy();
      response
        .writeHead(500, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'x-request-id': id, connection: 'close' })
        .end(SERVER_ERROR_BODY);
    }
  });
}
