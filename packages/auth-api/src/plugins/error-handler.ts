import { randomUUID } from 'node:crypto';
import { STATUS_CODES as HTTP_REASONS, type IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyError, FastifyInstance } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { isDatabaseUnavailable } from '../db/errors.js';
import { BudgetExceededError } from '../lib/work-budget.js';
import { ApiError, type ApiErrorCode, type ErrorDetail, STATUS_BY_CODE } from '../errors.js';

/** Fastify's own client errors (body parsing, content type, limits) → our codes. */
const FASTIFY_CODES: Record<string, ApiErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: 'payload_too_large',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'unsupported_media_type',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'validation_failed',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'validation_failed',
  FST_ERR_CTP_INVALID_JSON_BODY: 'validation_failed',
  FST_ERR_VALIDATION: 'validation_failed',
};

const STATUS_CODES: Partial<Record<number, ApiErrorCode>> = {
  400: 'validation_failed',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  405: 'not_found',
  409: 'conflict',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  429: 'rate_limited',
};

const DEFAULT_MESSAGES: Record<ApiErrorCode, string> = {
  validation_failed: 'The request is invalid',
  unauthorized: 'Authentication is required',
  forbidden: 'Not allowed',
  not_found: 'Not found',
  conflict: 'Conflict',
  secret_limit: 'The credential has two live secrets already',
  last_secret: "The credential's last live secret cannot be deleted",
  unknown_scope: 'A scope is not defined by the permission catalogs',
  payload_too_large: 'The request body is too large',
  headers_too_large: 'The request headers are too large',
  request_timeout: 'The request did not arrive in time',
  unsupported_media_type: 'Unsupported Content-Type: send the body as application/json',
  rate_limited: 'Too many requests; retry later',
  service_unavailable: 'The service is temporarily unavailable; retry later',
  internal_error: 'Internal error',
};

export interface ErrorBody {
  error: ApiErrorCode;
  message: string;
  details?: ErrorDetail[];
}

/**
 * Maps any error to `{error, message, details?}` with a stable code. Client
 * mistakes never become 5xx; 5xx bodies carry no internals (the log does).
 */
export function toErrorBody(err: FastifyError | Error): { status: number; body: ErrorBody } {
  if (err instanceof ApiError) {
    return { status: err.status, body: { error: err.code, message: err.message, ...(err.details ? { details: err.details } : {}) } };
  }
  if (hasZodFastifySchemaValidationErrors(err)) {
    const where = (err as FastifyError).validationContext ?? 'body';
    const details = err.validation.map((v) => ({
      path: [where, ...v.instancePath.split('/').filter(Boolean)].join('.'),
      message: v.message ?? 'is invalid',
    }));
    return { status: 400, body: { error: 'validation_failed', message: 'The request is invalid', details } };
  }
  if (err instanceof BudgetExceededError) {
    return { status: 503, body: { error: 'service_unavailable', message: 'The server is busy; retry later' } };
  }
  if (isDatabaseUnavailable(err)) {
    return { status: 503, body: { error: 'service_unavailable', message: DEFAULT_MESSAGES.service_unavailable } };
  }
  const fe = err as FastifyError;
  const statusCode = typeof fe.statusCode === 'number' ? fe.statusCode : 500;
  const code = (fe.code && FASTIFY_CODES[fe.code]) || (statusCode < 500 ? (STATUS_CODES[statusCode] ?? 'validation_failed') : undefined);
  if (code === 'unsupported_media_type') {
    return { status: 415, body: { error: code, message: DEFAULT_MESSAGES.unsupported_media_type } };
  }
  if (code) {
    // Fastify's client-error messages are safe and useful ("Body is not valid JSON…").
    return { status: STATUS_BY_CODE[code], body: { error: code, message: fe.message || DEFAULT_MESSAGES[code] } };
  }
  return { status: 500, body: { error: 'internal_error', message: DEFAULT_MESSAGES.internal_error } };
}

/** Node's parser and timeout errors (`clientError`) → our codes; anything else is malformed HTTP (400). */
const CLIENT_ERROR_CODES: Record<string, ApiErrorCode> = {
  HPE_HEADER_OVERFLOW: 'headers_too_large',
  // Chunk extensions over Node's limit (16 KiB per chunk): Node answers 413 too.
  HPE_CHUNK_EXTENSIONS_OVERFLOW: 'payload_too_large',
  // The headers (HTTP_HEADERS_TIMEOUT) or the whole request (HTTP_REQUEST_TIMEOUT) came too slowly.
  ERR_HTTP_REQUEST_TIMEOUT: 'request_timeout',
};

/**
 * Requests Node's HTTP parser refuses before any route sees them (malformed or
 * ambiguous framing such as two Content-Lengths or Content-Length with chunked,
 * headers over the limit, a request that does not arrive within the timeouts):
 * answered in the management API's error format (the route is unknown at this
 * point, so the token endpoint gets it too: docs/API.md), with the headers every
 * error carries, then the connection is closed, as Node does. Nothing of the
 * request is echoed or logged (its bytes are in `err.rawPacket`). Fastify's
 * `clientErrorHandler`; `this` is the server.
 */
export function answerClientError(this: FastifyInstance, err: NodeJS.ErrnoException, socket: Duplex): void {
  // A reset connection has no one to answer.
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const code: ApiErrorCode = (err.code && CLIENT_ERROR_CODES[err.code]) || 'validation_failed';
  const requestId = randomUUID();
  this.log.debug({ reqId: requestId, code: err.code }, 'client error');
  // As Node: no answer once a response on this connection has begun (a pipelined request after
  // it failed), since ours would land inside that response's bytes; the connection is just closed.
  if (socket.writable && !pendingResponse(socket)?.headersSent) socket.write(rawErrorResponse(code, requestId, code === 'validation_failed' ? 'The request is not valid HTTP/1.1' : undefined));
  socket.destroy();
}

/**
 * The response Node has attached to this connection (its request's headers were parsed), if any:
 * once its headers are sent, nothing else may be written into the connection.
 */
export function pendingResponse(socket: Duplex): { headersSent: boolean; req: IncomingMessage } | undefined {
  return (socket as Duplex & { _httpMessage?: { headersSent: boolean; req: IncomingMessage } | null })._httpMessage ?? undefined;
}

/**
 * A whole HTTP/1.1 error response in the management format, written straight to a socket where
 * no Fastify reply exists (a request Node's parser refused, or one unanswered at the shutdown
 * deadline): typed JSON, the request id, the headers every error carries, `Connection: close`.
 */
export function rawErrorResponse(code: ApiErrorCode, requestId: string, message: string = DEFAULT_MESSAGES[code]): string {
  const body = JSON.stringify({ error: code, message } satisfies ErrorBody);
  const status = STATUS_BY_CODE[code];
  return (
    `HTTP/1.1 ${status} ${HTTP_REASONS[status]}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n` +
    `X-Request-Id: ${requestId}\r\nX-Content-Type-Options: nosniff\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n${body}`
  );
}

export function registerErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, request, reply) => {
    const { status, body } = toErrorBody(err);
    if (err instanceof BudgetExceededError) reply.header('retry-after', String(err.retryAfterSec));
    else if (status === 503 && !(err instanceof ApiError)) request.log.warn({ code: (err as FastifyError).code, message: err.message }, 'database unavailable');
    else if (status >= 500) request.log.error({ err }, 'request failed');
    if (err instanceof ApiError && err.retryAfterSec !== undefined) reply.header('retry-after', String(err.retryAfterSec));
    // RFC 9110 §15.5.16: the media type that would have been accepted.
    if (status === 415) reply.header('accept', 'application/json');
    // The body is built here: plain JSON, never refused by a route's documented error schema. The type is
    // set here too (a custom serializer sets none): an error body can echo input (an unknown query key),
    // and without a type a browser would guess one.
    return reply.status(status).type('application/json; charset=utf-8').serializer(JSON.stringify).send(body);
  });
  app.setNotFoundHandler((request, reply) =>
    reply.status(404).send({ error: 'not_found', message: `No route ${request.method} ${request.url.split('?')[0]}` } satisfies ErrorBody),
  );
}
