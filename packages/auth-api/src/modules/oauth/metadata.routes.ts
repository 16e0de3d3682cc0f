import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { metadataSchema } from './oauth.schemas.js';

/** RFC 8414 authorization server metadata, at the server root. */
export const metadataRoutes: FastifyPluginAsyncZod<{ issuer: string; apiPrefix: string }> = async (app, { issuer, apiPrefix }) => {
  const metadata = {
    issuer,
    token_endpoint: `${issuer}${apiPrefix}/oauth/token`,
    // Always named, in HS256 mode too (the set is then empty or holds keys prepared for a switch):
    // receivers configured for both trust models discover it before the server changes algorithm.
    jwks_uri: `${issuer}/.well-known/jwks.json`,
    grant_types_supported: ['client_credentials'],
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
    // RFC 7009 and RFC 7662, with the token endpoint's client authentication (RFC 8414 §2).
    revocation_endpoint: `${issuer}${apiPrefix}/oauth/revoke`,
    revocation_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
    introspection_endpoint: `${issuer}${apiPrefix}/oauth/introspect`,
    introspection_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
    // Required by RFC 8414; empty: there is no authorization endpoint.
    response_types_supported: [] as string[],
    service_documentation: `${issuer}/docs`,
  };
  app.get(
    '/.well-known/oauth-authorization-server',
    {
      schema: {
        tags: ['oauth'],
        summary: 'RFC 8414 authorization server metadata',
        description: 'The issuer, the token, revocation (RFC 7009) and introspection (RFC 7662) endpoints and the supported grant and client authentication methods. SDKs read the token endpoint from here (`serverUrl`).',
        response: { 200: metadataSchema.describe('The metadata (cacheable for an hour)') },
      },
    },
    async (_request, reply) => reply.header('cache-control', 'public, max-age=3600').send(metadata),
  );
};
