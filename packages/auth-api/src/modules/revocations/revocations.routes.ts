import { createHash } from 'node:crypto';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { errorResponses, OWN_ERROR_DOCS } from '../../lib/openapi.js';
import { bearerToken, unauthorized } from '../../plugins/admin-guard.js';
import { ApiError, OAuthError } from '../../errors.js';
import { readClientCredentials } from '../oauth/client-auth.js';
import { oauthErrorFor } from '../oauth/oauth.schemas.js';
import type { OAuthService } from '../oauth/oauth.service.js';
import { SERVER_SCOPES } from '../permissions/permissions.schemas.js';
import { feedQuerySchema, feedResponseSchema, introspectionResponseSchema, tokenParamsSchema } from './revocations.schemas.js';
import type { RevocationsService } from './revocations.service.js';

/** `GET /oauth/revocations`: the feed receiving services poll (docs/TRUST.md, "Revocation"). */
export const revocationFeedRoutes: FastifyPluginAsyncZod<{ revocations: RevocationsService }> = async (app, { revocations }) => {
  app.get(
    '/oauth/revocations',
    {
      // Receiving services poll every few seconds, many behind one address: the per-address request
      // ceiling does not apply (app.ts). A request costs one token verification, and two indexed reads once verified.
      schema: {
        tags: ['oauth'],
        summary: 'Revocation feed: revoked and disabled credentials and revoked tokens, for local verifiers',
        description:
          'What a receiving service needs to refuse revoked tokens without asking per request (the SDK verifier\'s `revocation` option polls it). ' +
          'Without `since`: every live entry (a snapshot); with `since` (the previous answer\'s `cursor`): the entries added after it. ' +
          'At most `limit` entries per answer; `has_more` says to ask again at once. ' +
          `Callers: a service token for this server's audience carrying \`${SERVER_SCOPES.revocationsRead}\`, whose credential is active and still holds that scope. ` +
          'Answers carry `Cache-Control: private, no-cache` and an `ETag`; `If-None-Match` with it answers 304 when nothing changed.',
        security: [{ serviceBearer: [] }],
        querystring: feedQuerySchema,
        response: {
          200: feedResponseSchema.describe('One page of the feed'),
          304: z.null().describe('Not modified: `If-None-Match` named the ETag this answer would carry (no body)'),
          ...errorResponses(
            'validation_failed',
            ['unauthorized', 'No bearer token, or not a live service token of this server for its audience (`WWW-Authenticate: Bearer`)'],
            ['forbidden', `The token or its credential does not hold \`${SERVER_SCOPES.revocationsRead}\``],
            'service_unavailable',
            'internal_error',
          ),
        },
      },
      // Built here from database rows: plain JSON (the ETag is computed over these bytes).
      serializerCompiler: () => (data) => (typeof data === 'string' ? data : JSON.stringify(data)),
    },
    async (request, reply) => {
      const outcome = await revocations.authorizeFeedReader(bearerToken(request.headers.authorization));
      if (outcome === 'missing') throw unauthorized(reply, 'A service token is required', false);
      if (outcome === 'invalid') throw unauthorized(reply, 'The token is invalid, expired or revoked', true);
      if (outcome === 'forbidden') throw new ApiError('forbidden', `This token may not read the revocation feed: it needs the scope ${SERVER_SCOPES.revocationsRead}`);
      const body = JSON.stringify(await revocations.feed(request.query));
      const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
      reply.header('cache-control', 'private, no-cache').header('vary', 'authorization').header('etag', etag);
      const match = request.headers['if-none-match'];
      if (match !== undefined && match.split(',').some((m) => m.trim().replace(/^W\//, '') === etag)) return reply.status(304).send(null);
      return reply.type('application/json; charset=utf-8').send(body as never);
    },
  );
};

/**
 * RFC 7009 revocation and RFC 7662 introspection. Registered inside the token
 * endpoint's plugin: same body parsing, same client authentication, same RFC 6749
 * error answers, and failed requests count against the address as there.
 */
export const tokenLifecycleRoutes: FastifyPluginAsyncZod<{ oauth: OAuthService; revocations: RevocationsService; bodyLimit: number }> = async (
  app,
  { oauth, revocations, bodyLimit },
) => {
  const common = {
    tags: ['oauth'],
    consumes: ['application/x-www-form-urlencoded', 'application/json'],
    // Basic, or (the empty requirement) the credentials in the body.
    security: [{ clientBasic: [] }, {}] as Record<string, string[]>[],
    body: tokenParamsSchema,
  };
  const clientErrors = {
    400: oauthErrorFor(['invalid_request'], 'a malformed or repeated parameter, no `token`, or both client authentication methods at once'),
    401: oauthErrorFor(['invalid_client'], 'unknown client, wrong secret, disabled or revoked credential, or no client authentication (`WWW-Authenticate: Basic`)'),
    413: oauthErrorFor(['invalid_request'], 'the body is over 8 KiB'),
    415: oauthErrorFor(['invalid_request'], 'the body is neither form-encoded nor JSON'),
    429: oauthErrorFor(['slow_down'], 'too many failed requests from this address or for this client_id; `Retry-After` says when to retry'),
    500: oauthErrorFor(['server_error'], 'a server fault'),
    503: oauthErrorFor(['temporarily_unavailable'], 'the database is unreachable, or the server is busy checking other secrets; `Retry-After` says when to retry'),
  };
  const noStore = { 'cache-control': 'no-store', pragma: 'no-cache' };

  app.post(
    '/oauth/revoke',
    {
      bodyLimit,
      config: OWN_ERROR_DOCS,
      schema: {
        ...common,
        summary: 'OAuth 2.0 token revocation (RFC 7009): a client revokes one of its own service tokens',
        description:
          'Client authentication as at the token endpoint (Basic or body). `token`: the service token to revoke; `token_type_hint`: `access_token` or `refresh_token` (no refresh tokens are issued: both search the access tokens), any other value is `unsupported_token_type`. ' +
          'Answers 200 with an empty body for every token, also unknown, malformed, expired or another client\'s (which stay untouched): nothing is revealed about a token the client does not hold. ' +
          'A revoked token is refused by introspection at once and by receiving services within their revocation feed\'s bound (the SDK: 5 s).',
        response: {
          200: z.object({}).describe('Revoked, or nothing to revoke (RFC 7009 §2.2): an empty JSON object'),
          ...clientErrors,
          400: oauthErrorFor(['invalid_request', 'unsupported_token_type'], 'a malformed or repeated parameter, no `token`, both client authentication methods at once, or a `token_type_hint` that is neither `access_token` nor `refresh_token`'),
        },
      },
    },
    async (request, reply) => {
      const credentials = readClientCredentials(request.headers.authorization, request.body);
      const client = await oauth.authenticateClient(credentials, request.ip);
      const hint = request.body.token_type_hint;
      if (hint !== undefined && hint !== 'access_token' && hint !== 'refresh_token') {
        throw new OAuthError('unsupported_token_type', 'token_type_hint must be access_token or refresh_token');
      }
      await revocations.revokeToken(client.client_id, request.body.token);
      return reply.headers(noStore).send({});
    },
  );

  app.post(
    '/oauth/introspect',
    {
      bodyLimit,
      config: OWN_ERROR_DOCS,
      schema: {
        ...common,
        summary: 'OAuth 2.0 token introspection (RFC 7662): is this service token live, and what does it carry',
        description:
          `For resource servers that prefer asking to verifying locally. The caller authenticates as a credential holding \`${SERVER_SCOPES.introspect}\` (Basic or body, as at the token endpoint). ` +
          'A live service token of this server (valid signature, not expired, not revoked by jti, its credential active and not revoked or disabled since it was issued) answers `{active: true, scope, client_id, token_type: "Bearer", exp, iat, nbf, sub, aud, iss, jti}`; any other token (expired, revoked, foreign, malformed, an admin session token) answers `{active: false}` only. `token_type_hint` is ignored. Answers carry `Cache-Control: no-store`.',
        response: {
          200: introspectionResponseSchema,
          ...clientErrors,
          403: oauthErrorFor(['unauthorized_client'], `the credential does not hold \`${SERVER_SCOPES.introspect}\``),
        },
      },
    },
    async (request, reply) => {
      const credentials = readClientCredentials(request.headers.authorization, request.body);
      const client = await oauth.authenticateClient(credentials, request.ip);
      if (!client.scopes.includes(SERVER_SCOPES.introspect)) {
        throw new OAuthError('unauthorized_client', `This credential may not introspect tokens: it needs the scope ${SERVER_SCOPES.introspect}`, 403);
      }
      return reply.headers(noStore).send(await revocations.introspect(request.body.token));
    },
  );
};
