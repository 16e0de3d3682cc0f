import fastifyFormbody from '@fastify/formbody';
import type { FastifyError } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { isDatabaseUnavailable } from '../../db/errors.js';
import { OAuthError } from '../../errors.js';
import { readClientCredentials } from './client-auth.js';
import { oauthErrorSchema, tokenRequestSchema, tokenResponseSchema } from './oauth.schemas.js';
import type { OAuthService } from './oauth.service.js';

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

/** `POST /oauth/token`: the client_credentials grant. */
export const oauthRoutes: FastifyPluginAsyncZod<{ oauth: OAuthService }> = async (app, { oauth }) => {
  await app.register(fastifyFormbody, { bodyLimit: TOKEN_BODY_LIMIT });

  app.setErrorHandler((err, request, reply) => {
    const oauthError = toOAuthError(err);
    if (oauthError.status >= 500) {
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
  });

  app.post(
    '/oauth/token',
    {
      bodyLimit: TOKEN_BODY_LIMIT,
      config: { rateLimit: false },
      schema: {
        tags: ['oauth'],
        summary: 'OAuth 2.0 client_credentials grant (RFC 6749 §4.4): a service token',
        consumes: ['application/x-www-form-urlencoded', 'application/json'],
        body: tokenRequestSchema,
        response: { 200: tokenResponseSchema, '4xx': oauthErrorSchema, '5xx': oauthErrorSchema },
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
      const result = await oauth.clientCredentialsGrant(credentials, { scope: body.scope, audience: body.audience }, request.ip);
      return reply.header('cache-control', 'no-store').header('pragma', 'no-cache').send(result);
    },
  );

  // Any other method on the token endpoint: 405 with Allow (RFC 9110 §15.5.6), in the OAuth error format.
  app.route({
    method: ['GET', 'PUT', 'PATCH', 'DELETE'],
    url: '/oauth/token',
    schema: { hide: true },
    config: { rateLimit: false },
    handler: async (_request, reply) =>
      reply
        .status(405)
        .header('allow', 'POST')
        .header('cache-control', 'no-store')
        .send({ error: 'invalid_request', error_description: 'The token endpoint accepts POST only (RFC 6749 §3.2)' }),
  });
};
