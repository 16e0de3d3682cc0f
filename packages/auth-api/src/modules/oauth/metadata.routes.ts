import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { metadataSchema } from './oauth.schemas.js';

/** RFC 8414 authorization server metadata, at the server root. */
export const metadataRoutes: FastifyPluginAsyncZod<{ issuer: string; apiPrefix: string }> = async (app, { issuer, apiPrefix }) => {
  const base = issuer.replace(/\/+$/, '');
  const metadata = {
    issuer,
    token_endpoint: `${base}${apiPrefix}/oauth/token`,
    grant_types_supported: ['client_credentials'],
    token_endpoint_auth_methods_supported: ['client_secret_basic', 'client_secret_post'],
    // No authorization endpoint: no response types, no PKCE.
    response_types_supported: [] as string[],
    code_challenge_methods_supported: [] as string[],
    service_documentation: `${base}/docs`,
  };
  app.get(
    '/.well-known/oauth-authorization-server',
    { schema: { tags: ['oauth'], summary: 'RFC 8414 authorization server metadata', response: { 200: metadataSchema } } },
    async (_request, reply) => reply.header('cache-control', 'public, max-age=3600').send(metadata),
  );
};
