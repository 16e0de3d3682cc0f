import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { errorResponses } from '../../lib/openapi.js';
import { noQuerySchema } from '../m2m-clients/m2m-clients.schemas.js';
import { ApiError } from '../../errors.js';
import type { ServiceTokenVerifier } from '../../lib/tokens.js';
import { bearerToken, type UserGuards } from '../../plugins/admin-guard.js';
import {
  listCatalogsResponseSchema,
  listPermissionsQuerySchema,
  listPermissionsResponseSchema,
  REGISTER_BODY_LIMIT,
  registerBodySchema,
  registerResponseSchema,
} from './permissions.schemas.js';
import { type CatalogWriter, catalogScope, type PermissionsService, SERVICE_CATALOG_CHANGES_PER_HOUR } from './permissions.service.js';

export interface PermissionsRoutesOptions {
  permissions: PermissionsService;
  guards: UserGuards;
  verifyServiceToken: ServiceTokenVerifier;
}

declare module 'fastify' {
  interface FastifyRequest {
    /** Set on the registration route when the caller is a service with its own token. */
    serviceCaller?: { clientId: string; scopes: string[] };
  }
}

const CATALOG_SCOPE_PREFIX = catalogScope('');
const invalidToken = (reply: FastifyReply) => reply.header('www-authenticate', 'Bearer realm="auth-api", error="invalid_token"');

/**
 * `/admin/permissions`: permission catalogs. Listings are system_admin only;
 * a catalog is registered by a system_admin or by the service itself with
 * its own service token (see CatalogWriter).
 */
export const permissionsRoutes: FastifyPluginAsyncZod<PermissionsRoutesOptions> = async (app, { permissions, guards, verifyServiceToken }) => {
  const common = { tags: ['permissions'], security: [{ bearerAuth: [] }] };

  /** onRequest: a service token is verified by the server's own service-token verification; anything else must be a system_admin. */
  async function requireCatalogWriter(request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const token = bearerToken(request.headers.authorization);
    const claims = token === undefined ? undefined : await verifyServiceToken(token);
    if (claims) {
      // Refused before its body is read when it may register no catalog at all; which one is checked against the body.
      if (!claims.scopes.some((s) => s.startsWith(CATALOG_SCOPE_PREFIX))) throw new ApiError('forbidden', 'This token may not register a catalog: it needs the scope auth:catalog:<service>');
      request.serviceCaller = { clientId: claims.client_id, scopes: claims.scopes };
      return;
    }
    await guards.requireSystemAdmin(request, reply);
  }

  const writerOf = (request: FastifyRequest): CatalogWriter =>
    request.serviceCaller
      ? { kind: 'service', clientId: request.serviceCaller.clientId, tokenScopes: request.serviceCaller.scopes, ip: request.ip }
      : { kind: 'admin', actor: { id: request.user!.id, label: request.user!.email, ip: request.ip } };

  app.post(
    '/admin/permissions/register',
    {
      onRequest: requireCatalogWriter,
      bodyLimit: REGISTER_BODY_LIMIT,
      schema: {
        ...common,
        summary: "Reconcile a service's permission catalog: upsert what is declared, prune what is not",
        description:
          'Callers: a system_admin, or the service itself with a service token carrying `auth:catalog:<service>` whose credential still holds that scope. ' +
          'Idempotent: the same manifest again changes nothing (upserted_count 0, no audit entry). ' +
          'Errors: 400 validation_failed (reserved service, duplicate or malformed codes, empty or over 1000 permissions), 409 conflict (a code owned by another catalog), 413 (body over 1 MiB), ' +
          `429 rate_limited (the service itself changed its catalog ${SERVICE_CATALOG_CHANGES_PER_HOUR} times within the last hour; an admin is not limited).`,
        body: registerBodySchema,
        response: {
          200: registerResponseSchema.describe('Reconciled: what was upserted and what was pruned'),
          ...errorResponses(
            ['conflict', 'A code is owned by another catalog'],
            ['payload_too_large', 'The manifest is over 1 MiB'],
            ['rate_limited', `The service changed its own catalog ${SERVICE_CATALOG_CHANGES_PER_HOUR} times within the last hour (\`Retry-After\`); also the per-address request ceiling`],
          ),
        },
      },
    },
    async (request, reply) => {
      try {
        return await permissions.register(request.body, writerOf(request));
      } catch (err) {
        // The token verified, but its credential is gone, disabled or revoked (RFC 6750 §3.1).
        if (err instanceof ApiError && err.code === 'unauthorized') invalidToken(reply);
        throw err;
      }
    },
  );

  app.get(
    '/admin/permissions',
    {
      onRequest: guards.requireSystemAdmin,
      schema: {
        ...common,
        summary: 'Every registered permission, by service then code',
        description: 'All catalogs, or one (`?service=`; an unknown service gives an empty list). Other query parameters are refused.',
        querystring: listPermissionsQuerySchema,
        response: { 200: listPermissionsResponseSchema.describe('The permissions') },
      },
    },
    async (request) => ({ permissions: await permissions.list(request.query.service) }),
  );

  app.get(
    '/admin/permissions/services',
    {
      onRequest: guards.requireSystemAdmin,
      schema: {
        ...common,
        summary: 'Each registered catalog: service, count, updated_at, registered_by',
        description: 'One entry per catalog, by service: how many permissions it defines, when it last changed and who changed it.',
        querystring: noQuerySchema,
        response: { 200: listCatalogsResponseSchema.describe('The catalogs') },
      },
    },
    async () => ({ services: await permissions.services() }),
  );
};
