import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import { performance } from 'node:perf_hooks';
import { parse as parseForm } from 'fast-querystring';
import type { FastifyBaseLogger, FastifyError } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import secureJson from 'secure-json-parse';
import { isDatabaseUnavailable } from '../../db/errors.js';
import { OAuthError } from '../../errors.js';
import { readBody } from '../../lib/read-body.js';
import { BudgetExceededError } from '../../lib/work-budget.js';
import { addressKey, type FailureThrottle } from '../../lib/throttle.js';
import type { AuthEventRecorder } from '../auth-events/auth-events.recorder.js';
import { type ClientAuthMethod, readClientCredentials } from './client-auth.js';
import { tokenRequestSchema } from './oauth.schemas.js';
import type { OAuthService } from './oauth.service.js';

/** Token requests are small; anything bigger is refused before parsing. */
export const TOKEN_BODY_LIMIT = 8 * 1024;
export const BASIC_REALM = 'auth-api';
const FORM = 'application/x-www-form-urlencoded';
const JSON_TYPE = 'application/json';
/** What the token endpoint reads: the RFC's form encoding, and JSON. */
export const TOKEN_MEDIA_TYPES = [FORM, JSON_TYPE];
/** client_ids are logged as sent, cut to this length. */
const LOGGED_CLIENT_ID_MAX = 100;
const TOO_LARGE = () => new OAuthError('invalid_request', 'The request body is too large', 413);
const MALFORMED = () => new OAuthError('invalid_request', 'The request is malformed');
const UNSUPPORTED_TYPE = () => new OAuthError('invalid_request', `Unsupported Content-Type: send the parameters as ${TOKEN_MEDIA_TYPES.join(' or ')}`, 415);

/** The answer to a fault of the server's own, as RFC 6749 §5.2 writes it: no internals (the log has them). */
export const SERVER_ERROR_BODY = JSON.stringify({ error: 'server_error', error_description: 'The authorization server encountered an error' });

/** Any error on the OAuth endpoints → RFC 6749 §5.2 `{error, error_description}` (no internals: the log has them). */
export function toOAuthError(err: unknown): OAuthError {
  if (err instanceof OAuthError) return err;
  if (hasZodFastifySchemaValidationErrors(err)) {
    const first = err.validation[0];
    return new OAuthError('invalid_request', first?.message ?? 'The request is invalid');
  }
  if (err instanceof BudgetExceededError) return new OAuthError('temporarily_unavailable', 'The authorization server is busy; retry later', 503, { retryAfterSec: err.retryAfterSec, outcome: 'shed' });
  if (isDatabaseUnavailable(err)) return new OAuthError('temporarily_unavailable', 'The authorization server is temporarily unavailable; retry later');
  const fe = err as FastifyError;
  switch (fe.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return TOO_LARGE();
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return UNSUPPORTED_TYPE();
  }
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) return MALFORMED();
  return new OAuthError('server_error', 'The authorization server encountered an error', 500);
}

/** What the request log line and the audit trail carry for a token request: never the secret. */
export interface TokenRequestFields {
  client_id: string;
  auth_method: ClientAuthMethod | 'none';
  outcome: string;
  address: string;
}

/** The fields of one token, revocation or introspection request, from what it sent. */
export function tokenRequestFields(
  sent: { clientId: string; method: ClientAuthMethod } | undefined,
  body: unknown,
  authorization: string | undefined,
  outcome: string,
  address: string,
): TokenRequestFields {
  const params = (typeof body === 'object' && body !== null ? body : {}) as { client_id?: unknown; client_secret?: unknown };
  const clientId = sent?.clientId ?? (typeof params.client_id === 'string' ? params.client_id : '');
  const method = sent?.method ?? (authorization !== undefined ? 'client_secret_basic' : params.client_secret !== undefined ? 'client_secret_post' : 'none');
  return { client_id: clientId.slice(0, LOGGED_CLIENT_ID_MAX), auth_method: method, outcome, address };
}

/**
 * The answer to a failed OAuth request (RFC 6749 §5.2), for the token endpoint and for revocation
 * and introspection alike: the error mapped (toOAuthError); a failure the throttle did not see
 * (malformed, wrong grant type, a scope not held) counted against the address, so that past its
 * limit the address gets 429 whatever it sends; and a server-side failure logged (without the
 * request's secrets; a shed request, bcrypt budget full, only on its request line).
 */
export async function failureFor(err: unknown, address: string, throttle: FailureThrottle, log: () => FastifyBaseLogger): Promise<OAuthError> {
  let error = toOAuthError(err);
  if (error.status >= 400 && error.status < 500 && !error.counted) {
    // Never throws: a store that fails answers "over the limit" (the throttle fails closed).
    const retryAfterSec = await throttle.failed(address);
    if (retryAfterSec !== undefined) error = new OAuthError('slow_down', 'Too many failed requests; retry later', 429, { retryAfterSec });
  }
  if (error.status >= 500 && error.outcome !== 'shed') {
    if (error.code === 'temporarily_unavailable') log().warn({ code: (err as { code?: unknown }).code }, 'database unavailable');
    else log().error({ err }, 'token request failed');
  }
  return error;
}

/** The headers an OAuth error answer carries besides its type: never cached, and what the client needs to retry. */
export function failureHeaders(error: OAuthError): Record<string, string> {
  const headers: Record<string, string> = { 'cache-control': 'no-store', pragma: 'no-cache' };
  if (error.code === 'invalid_client') headers['www-authenticate'] = `Basic realm="${BASIC_REALM}", charset="UTF-8"`;
  const retryAfter = error.retryAfterSec ?? (error.code === 'temporarily_unavailable' ? 5 : undefined);
  if (retryAfter !== undefined) headers['retry-after'] = String(retryAfter);
  // RFC 9110 §15.5.16: a 415 may say, in Accept, which media types would have been accepted.
  if (error.status === 415) headers.accept = TOKEN_MEDIA_TYPES.join(', ');
  return headers;
}

/** One token request as its server hands it over. */
export interface TokenExchange {
  /** The request id, answered in X-Request-Id. */
  id: string;
  /** The client's address (TRUST_PROXY applied), read while its connection was open. */
  ip: string;
  /** `performance.now()` when the request arrived. */
  startedAt: number;
  /** The request's logger, carrying its id; made when first needed. */
  log(): FastifyBaseLogger;
  /** Told the request's log and audit fields once its outcome is known. */
  onFields(fields: TokenRequestFields): void;
}

export interface TokenEndpointOptions {
  oauth: OAuthService;
  throttle: FailureThrottle;
  authEvents: AuthEventRecorder;
  /** Told every token request's outcome and duration (ms), for the metrics. */
  onOutcome?: ((outcome: string, elapsedMs: number) => void) | undefined;
  /** Whether the server is shutting down: answers then say `Connection: close`. */
  closing(): boolean;
}

export type TokenEndpoint = (request: IncomingMessage, response: ServerResponse, exchange: TokenExchange) => void;


/**
 * `POST /oauth/token` (RFC 6749 §4.4, the client_credentials grant) as a plain Node request
 * handler, the one implementation of the endpoint. The server hands it the token requests
 * straight from Node (app.ts, `serveFirst`): a repeat grant is the hot path of every fleet, and
 * Fastify's routing, request objects, hooks and body parsing cost as much as the grant itself
 * (docs/BENCHMARKS.md). Fastify's route for the same path (oauth.routes.ts) hands over what
 * reaches it (`inject`, a trailing slash) to this handler too, and documents the endpoint.
 *
 * It reads the body itself, with the limits and parsers Fastify's would apply (8 KiB, checked
 * against Content-Length before reading; the form encoding with fast-querystring; JSON with
 * secure-json-parse, prototype poisoning refused), validates it with the zod schema the docs
 * publish, and answers every failure in RFC 6749 §5.2's format with `Cache-Control: no-store`.
 * Every answer carries the headers every response of the server carries (X-Request-Id, nosniff).
 */
export function createTokenEndpoint(options: TokenEndpointOptions): TokenEndpoint {
  const { oauth, throttle, authEvents, onOutcome, closing } = options;
  const writes = coalescedWrites(closing);

  return function serveTokenRequest(request, response, exchange) {
    let sent: { clientId: string; method: ClientAuthMethod } | undefined;
    let body: unknown;

    function answer(status: number, headers: Record<string, string>, payload: string, closeAfter: boolean) {
      headers['content-type'] = 'application/json; charset=utf-8';
      headers['content-length'] = String(Buffer.byteLength(payload));
      headers['x-request-id'] = exchange.id;
      headers['x-content-type-options'] = 'nosniff';
      // A body left unread (refused before or while reading it) would be taken for the next request.
      if (closeAfter) headers.connection = 'close';
      writes.add(response, status, headers, payload);
    }

    function record(outcome: string) {
      const fields = tokenRequestFields(sent, body, request.headers.authorization, outcome, exchange.ip);
      exchange.onFields(fields);
      authEvents.record(fields.client_id, addressKey(exchange.ip), outcome);
      onOutcome?.(outcome, performance.now() - exchange.startedAt);
    }

    async function fail(err: unknown, closeAfter: boolean) {
      const error = await failureFor(err, exchange.ip, throttle, exchange.log);
      record(error.outcome);
      answer(error.status, failureHeaders(error), JSON.stringify({ error: error.code, error_description: error.description }), closeAfter);
    }

    async function grant(text: string | undefined, mediaType: string | undefined) {
      try {
        body = parseBody(text, mediaType);
      } catch (err) {
        return fail(err instanceof OAuthError ? err : MALFORMED(), true);
      }
      try {
        const parsed = tokenRequestSchema.safeParse(body);
        if (!parsed.success) throw new OAuthError('invalid_request', parsed.error.issues[0]?.message ?? 'The request is invalid');
        const params = parsed.data;
        if (params.grant_type !== 'client_credentials') throw new OAuthError('unsupported_grant_type', 'Only grant_type=client_credentials is supported');
        const credentials = readClientCredentials(request.headers.authorization, params);
        sent = { clientId: credentials.clientId, method: credentials.method };
        const result = await oauth.clientCredentialsGrant(credentials, { scope: params.scope, audience: params.audience }, exchange.ip);
        record('granted');
        answer(200, { 'cache-control': 'no-store', pragma: 'no-cache' }, JSON.stringify(result), false);
      } catch (err) {
        await fail(err, false);
      }
    }

    const contentType = request.headers['content-type'];
    const mediaType = contentType === undefined ? undefined : contentType.split(';', 1)[0]!.trim().toLowerCase();
    const hasBody = request.headers['transfer-encoding'] !== undefined || (request.headers['content-length'] !== undefined && request.headers['content-length'] !== '0');
    if (mediaType === undefined && !hasBody) return void grant(undefined, undefined).catch(unexpected);
    if (mediaType !== FORM && mediaType !== JSON_TYPE) {
      return void fail(UNSUPPORTED_TYPE(), true).catch(unexpected);
    }
    readBody(request, request.headers['content-length'], TOKEN_BODY_LIMIT, (err, text) => {
      // The client reset its connection mid-body: no one to answer, and nothing to count.
      if (err === 'gone') return;
      if (err) return void fail(TOO_LARGE(), true).catch(unexpected);
      grant(text, mediaType).catch(unexpected);
    });

    /** A fault of this handler itself: logged, and answered 500 if still possible. */
    function unexpected(err: unknown) {
      exchange.log().error({ err }, 'token request failed');
      answer(500, { 'cache-control': 'no-store' }, SERVER_ERROR_BODY, true);
    }
  };
}

/** The parameters of a body of `mediaType` (none when there is no body). Throws on a malformed one. */
function parseBody(text: string | undefined, mediaType: string | undefined): unknown {
  if (text === undefined) return undefined;
  if (mediaType === FORM) return parseForm(text);
  if (text === '') throw MALFORMED();
  // As Fastify's own JSON parser: `__proto__` and `constructor.prototype` keys are refused.
  return secureJson.parse(text, undefined, { protoAction: 'error', constructorAction: 'error' });
}

/**
 * The token endpoint's body reading and parsing as a Fastify content-type parser for `mediaType`,
 * for the endpoints that share them (revocation and introspection, oauth.routes.ts): the same
 * reader (lib/read-body.ts) and limit, the same parsers, the same errors.
 */
export function tokenBodyParser(mediaType: typeof FORM | typeof JSON_TYPE) {
  return (request: { headers: IncomingMessage['headers'] }, payload: Readable, done: (err: Error | null, body?: unknown) => void): void => {
    readBody(payload, request.headers['content-length'], TOKEN_BODY_LIMIT, (err, text) => {
      // Gone mid-body: the scope's error handler answers nothing when the connection is closed.
      if (err) return done(err === 'gone' ? MALFORMED() : TOO_LARGE());
      let body: unknown;
      try {
        body = parseBody(text, mediaType);
      } catch (parseErr) {
        return done(parseErr instanceof OAuthError ? parseErr : MALFORMED());
      }
      done(null, body);
    });
  };
}

/**
 * The answers ready in one turn of the event loop, written together at its end (`setImmediate`)
 * rather than one by one as each grant finishes: one write per response either way, but a peer
 * that sends many requests at once (a proxy such as nginx on the same host, a load generator) is
 * woken once for the batch instead of once per response. On the bench's 2-core machine that saves
 * about 30 µs of server CPU per grant under load and nearly doubles grants/s (docs/BENCHMARKS.md);
 * it delays an answer by at most the rest of the loop turn it was ready in.
 */
function coalescedWrites(closing: () => boolean) {
  let pending: { response: ServerResponse; status: number; headers: Record<string, string>; payload: string }[] = [];
  function flush() {
    const batch = pending;
    pending = [];
    // Decided when written: a shutdown that began after an answer was ready still closes its connection.
    const close = closing();
    for (const { response, status, headers, payload } of batch) {
      // Answered meanwhile (the shutdown deadline answers what is still waiting, and ends the
      // connection) or gone: nothing to write.
      if (response.headersSent || response.destroyed || response.socket?.writable === false) continue;
      if (close) headers.connection = 'close';
      try {
        response.writeHead(status, headers).end(payload);
      } catch {
        // Only a fault of ours could make writeHead throw: the connection is closed rather than
        // left waiting, and the other answers of the batch are still written.
        response.destroy();
      }
    }
  }
  return {
    add(response: ServerResponse, status: number, headers: Record<string, string>, payload: string) {
      if (pending.push({ response, status, headers, payload }) === 1) setImmediate(flush);
    },
  };
}
