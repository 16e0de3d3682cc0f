import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { performance } from 'node:perf_hooks';
import { OWN_ERROR_DOCS } from '../../lib/openapi.js';
import { addressKey, type FailureThrottle } from '../../lib/throttle.js';
import type { AuthEventRecorder } from '../auth-events/auth-events.recorder.js';
import { tokenErrorResponses, tokenRequestSchema, tokenResponseSchema } from './oauth.schemas.js';
import type { OAuthService } from './oauth.service.js';
import type { RevocationsService } from '../revocations/revocations.service.js';
import { tokenLifecycleRoutes } from '../revocations/revocations.routes.js';
import {
  failureFor,
  failureHeaders,
  TOKEN_BODY_LIMIT,
  tokenBodyParser,
  type TokenEndpoint,
  type TokenRequestFields,
  tokenRequestFields,
} from './token-endpoint.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Set on token requests, logged with the request line. */
    tokenRequest: TokenRequestFields | null;
  }
}

export interface OAuthRoutesOptions {
  /** `POST /oauth/token` itself (token-endpoint.ts): the route here hands its requests over. */
  tokenEndpoint: TokenEndpoint;
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

/** The OAuth endpoints a client calls with its secret: token (RFC 6749 §4.4), revocation, introspection. */
export const oauthRoutes: FastifyPluginAsyncZod<OAuthRoutesOptions> = async (app, { tokenEndpoint, oauth, throttle, authEvents, revocations, onOutcome, onLifecycleOutcome }) => {
  /** The scope's error handler, telling `count` the failure's outcome (the token endpoint's metrics, or none). */
  const answerError = (count: OAuthRoutesOptions['onOutcome']) => async (err: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    const ip = request.ip;
    // The client closed its connection before its request was read (a reset mid-body): no one to
    // answer, and no address to count or record.
    if (ip === undefined) return reply.hijack();
    const oauthError = await failureFor(err, ip, throttle, () => request.log);
    const fields = tokenRequestFields(undefined, request.body, request.headers.authorization, oauthError.outcome, ip);
    request.tokenRequest = fields;
    authEvents.record(fields.client_id, addressKey(ip), fields.outcome);
    count?.(oauthError.outcome, reply.elapsedTime);
    return reply.status(oauthError.status).headers(failureHeaders(oauthError)).send({ error: oauthError.code, error_description: oauthError.description });
  };
  app.setErrorHandler(answerError(onOutcome));

  // The token endpoint's requests normally never reach Fastify: the server hands them to the
  // endpoint first (app.ts). What does reach this route (`inject`, a trailing slash) is handed to
  // the same endpoint, with its body unread: the route's schema documents it and validates nothing.
  await app.register(async (token) => {
    token.removeAllContentTypeParsers();
    token.addContentTypeParser('*', (_request, _payload, done) => done(null, undefined));
    token.post(
      '/oauth/token',
      {
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
        // The endpoint reads and validates the body itself.
        validatorCompiler: () => (value) => ({ value }),
      },
      (request, reply) => {
        reply.hijack();
        const ip = request.ip;
        // The client reset its connection before its request reached this route (Fastify runs it
        // later than Node's request event): no one to answer, and no address to count or record.
        if (ip === undefined) return;
        tokenEndpoint(request.raw, reply.raw, {
          id: request.id,
          ip,
          startedAt: performance.now() - reply.elapsedTime,
          log: () => request.log,
          // The request line is written by the server's onResponse hook, which runs for this route too.
          onFields: (fields) => {
            request.tokenRequest = fields;
          },
        });
      },
    );

    // Any other method on the token endpoint: 405 with Allow (RFC 9110 §15.5.6), in the OAuth error format.
    token.route({
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
  });

  // Revocation and introspection share the parsing, client authentication, throttle and error format, but
  // not the grant metrics (token requests only): a scope of their own, with their own counter.
  await app.register(async (lifecycle) => {
    lifecycle.setErrorHandler(answerError(undefined));
    // The token endpoint's own body reader and parsers (token-endpoint.ts), not Fastify's.
    lifecycle.removeAllContentTypeParsers();
    lifecycle.addContentTypeParser('application/x-www-form-urlencoded', tokenBodyParser('application/x-www-form-urlencoded'));
    lifecycle.addContentTypeParser('application/json', tokenBodyParser('application/json'));
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
};
