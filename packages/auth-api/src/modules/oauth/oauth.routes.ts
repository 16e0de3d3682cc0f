import fastifyFormbody from '@fastify/formbody';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { isDatabaseUnavailable } from '../../db/errors.js';
import { OAuthError } from '../../errors.js';
import { OWN_ERROR_DOCS } from '../../lib/openapi.js';
import { BudgetExceededError } from '../../lib/work-budget.js';
import { addressKey, type FailureThrottle } from '../../lib/throttle.js';
import type { AuthEventRecorder } from '../auth-events/auth-events.recorder.js';
import { type ClientAuthMethod, readClientCredentials } from './client-auth.js';
import { tokenErrorResponses, tokenRequestSchema, tokenResponseSchema } from './oauth.schemas.js';
import type { OAuthService } from './oauth.service.js';
import type { RevocationsService } from '../revocations/revocations.service.js';
import { tokenLifecycleRoutes } from '../revocations/revocations.routes.js';

/** Token requests are small; anything bigger is refused before parsing. */
export const TOKEN_BODY_LIMIT = 8 * 1024;
export const BASIC_REALM = 'auth-api';
/** What the token endpoint reads: the RFC's form encoding, and JSON. */
const TOKEN_MEDIA_TYPES = ['application/x-www-form-urlencoded', 'application/json'];

/** Any error on the token endpoint → RFC 6749 §5.2 `{error, error_description}`. */
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
      return new OAuthError('invalid_request', 'The request body is too large', 413);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new OAuthError('invalid_request', `Unsupported Content-Type: send the parameters as ${TOKEN_MEDIA_TYPES.join(' or ')}`, 415);
  }
  if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
    return new OAuthError('invalid_request', 'The request is malformed');
  }
  return new OAuthError('server_error', 'The authorization server encountered an error', 500);
}

/** What the request log line and the audit trail carry for a token request: never the secret. */
export interface TokenRequestFields {
  client_id: string;
  auth_method: ClientAuthMethod | 'none';
  outcome: string;
  address: string;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set on token requests, logged with the request line. */
    tokenRequest: TokenRequestFields | null;
  }
}

/** client_ids are logged as sent, cut to this length. */
const LOGGED_CLIENT_ID_MAX = 100;

export interface OAuthRoutesOptions {
  oauth: OAuthService;
  /** The grant throttle: failed requests that never reached it still count against their address. */
  throttle: FailureThrottle;
  authEvents: AuthEventRecorder;
  /** RFC 7009 revocation and RFC 7662 introspection, served in this scope (same parsing, client auth, errors and throttle). */
  revocations: RevocationsService;
  /** Told every token request's outcome and duration (ms), for the metrics. */
  onOutcome?: (outcome: string, elapsedMs: number) => void;
  /** Told every revocation and introspection request's outcome (`ok` or as logged), for the metrics. */
  onLifecycleOutcome?: (endpoint: 'revoke' | 'introspect', outcome: string) => void;
}

/** `POST /oauth/token`: the client_credentials grant. */
export const oauthRoutes: FastifyPluginAsyncZod<OAuthRoutesOptions> = async (app, { oauth, throttle, authEvents, revocations, onOutcome, onLifecycleOutcome }) => {
  await app.register(fastifyFormbody, { bodyLimit: TOKEN_BODY_LIMIT });

  const client = new WeakMap<object, { clientId: string; method: ClientAuthMethod }>();
  /** `address`: the client's, read while its connection was open (request.ip is undefined once it closed). */
  function audit(request: FastifyRequest, outcome: string, address: string) {
    const known = client.get(request);
    const body = request.body as { client_id?: unknown; client_secret?: unknown } | undefined;
    const sentId = known?.clientId ?? (typeof body?.client_id === 'string' ? body.client_id : '');
    const method = known?.method ?? (request.headers.authorization !== undefined ? 'client_secret_basic' : body?.client_secret !== undefined ? 'client_secret_post' : 'none');
    const fields: TokenRequestFields = { client_id: sentId.slice(0, LOGGED_CLIENT_ID_MAX), auth_method: method, outcome, address };
    request.tokenRequest = fields;
    authEvents.record(fields.client_id, addressKey(address), outcome);
  }

  /** The scope's error handler, telling `count` the failure's outcome (the token endpoint's metrics, or none). */
  const answerError = (count: OAuthRoutesOptions['onOutcome']) => async (err: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const ip = request.ip;
    // The client closed its connection before its request was read (a reset mid-body): no one to
    // answer, and no address to count or record.
    if (ip === undefined) return reply.hijack();
    let oauthError = toOAuthError(err);
    // Failures the throttle did not see (malformed, wrong grant type, a scope not held) count
    // against the address too: past its limit the address gets 429, whatever it sends.
    if (oauthError.status >= 400 && oauthError.status < 500 && !oauthError.counted) {
      const retryAfterSec = await throttle.failed(ip);
      if (retryAfterSec !== undefined) oauthError = new OAuthError('slow_down', 'Too many failed requests; retry later', 429, { retryAfterSec });
    }
    audit(request, oauthError.outcome, ip);
    count?.(oauthError.outcome, reply.elapsedTime);
    // A shed request (bcrypt budget full) shows on its request line only: no warning per request during a flood.
    if (oauthError.status >= 500 && oauthError.outcome !== 'shed') {
      if (oauthError.code === 'temporarily_unavailable') request.log.warn({ code: (err as FastifyError).code }, 'database unavailable');
      else request.log.error({ err }, 'token request failed');
    }
    if (oauthError.code === 'invalid_client') reply.header('www-authenticate', `Basic realm="${BASIC_REALM}", charset="UTF-8"`);
    const retryAfter = oauthError.retryAfterSec ?? (oauthError.code === 'temporarily_unavailable' ? 5 : undefined);
    if (retryAfter !== undefined) reply.header('retry-after', String(retryAfter));
    // RFC 9110 §15.5.16: a 415 may say, in Accept, which media types would have been accepted.
    if (oauthError.status === 415) reply.header('accept', TOKEN_MEDIA_TYPES.join(', '));
    return reply
      .status(oauthError.status)
      .header('cache-control', 'no-store')
      .header('pragma', 'no-cache')
      .send({ error: oauthError.code, error_description: oauthError.description });
  };
  app.setErrorHandler(answerError(onOutcome));

  app.post(
    '/oauth/token',
    {
      bodyLimit: TOKEN_BODY_LIMIT,
      config: OWN_ERROR_DOCS,
      schema: {
        tags: ['oauth'],
        summary: 'OAuth 2.0 client_credentials grant (RFC 6749 §4.4): a service token',
        description:
          'Trades a credential\'s client_id and client_secret for a service token (a JWT, `token_type: "service"`). Client authentication: HTTP Basic (`client_secret_basic`) or `client_id` + `client_secret` in the body (`client_secret_post`), not both. `scope` (space-delimited) omitted: every scope the credential holds. `audience` omitted: the server\'s default (`JWT_AUDIENCE`); otherwise one of the credential\'s `allowed_audiences`. Answers carry `Cache-Control: no-store`.',
        consumes: ['application/x-www-form-urlencoded', 'application/json'],
        // Basic, or (the empty requirement) the credentials in the body.
        security: [{ clientBasic: [] }, {}],
        body: tokenRequestSchema,
        response: { 200: tokenResponseSchema.describe('A service token (RFC 6749 §5.1)'), ...tokenErrorResponses },
      },
      // The response is built here, not from user input: plain JSON, no per-response schema pass.
      serializerCompiler: () => (data) => JSON.stringify(data),
    },
    async (request, reply) => {
      const body = request.body;
      if (body.grant_type !== 'client_credentials') {
        throw new OAuthError('unsupported_grant_type', 'Only grant_type=client_credentials is supported');
      }
      const credentials = readClientCredentials(request.headers.authorization, body);
      client.set(request, { clientId: credentials.clientId, method: credentials.method });
      const ip = request.ip;
      const result = await oauth.clientCredentialsGrant(credentials, { scope: body.scope, audience: body.audience }, ip);
      audit(request, 'granted', ip);
      onOutcome?.('granted', reply.elapsedTime);
      return reply.header('cache-control', 'no-store').header('pragma', 'no-cache').send(result);
    },
  );

  // Revocation and introspection share the parsing, client authentication, throttle and error format, but
  // not the grant metrics (token requests only): a scope of their own, with their own counter.
  await app.register(async (lifecycle) => {
    lifecycle.setErrorHandler(answerError(undefined));
    if (onLifecycleOutcome) {
      lifecycle.addHook('onResponse', (request, reply, done) => {
        const endpoint = request.routeOptions.url?.endsWith('/oauth/revoke') ? 'revoke' : 'introspect';
        // Every failure passes the error handler, which sets the outcome; without one, the handler itself failed.
        onLifecycleOutcome(endpoint, reply.statusCode < 400 ? 'ok' : (request.tokenRequest?.outcome ?? 'server_error'));
        done();
      });
    }
    await lifecycle.register(tokenLifecycleRoutes, { oauth, revocations, bodyLimit: TOKEN_BODY_LIMIT });
  });

  // Any other method on the token endpoint: 405 with Allow (RFC 9110 §15.5.6), in the OAuth error format.
  app.route({
    method: ['GET', 'PUT', 'PATCH', 'DELETE'],
    url: '/oauth/token',
    schema: { hide: true },
    handler: async (_request, reply) =>
      reply
        .status(405)
        .header('allow', 'POST')
        .header('cache-control', 'no-store')
        .send({ error: 'invalid_request', error_description: 'The token endpoint accepts POST only (RFC 6749 §3.2)' }),
  });
};
