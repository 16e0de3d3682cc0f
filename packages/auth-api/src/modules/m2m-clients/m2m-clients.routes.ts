import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { UserGuards } from '../../plugins/admin-guard.js';
import type { Actor } from '../audit/audit.repository.js';
import {
  clientParamsSchema,
  clientRecordSchema,
  createClientBodySchema,
  createClientResponseSchema,
  listClientsResponseSchema,
  updateClientBodySchema,
} from './m2m-clients.schemas.js';
import type { M2MClientsService } from './m2m-clients.service.js';

export interface M2MClientsRoutesOptions {
  clients: M2MClientsService;
  guards: UserGuards;
}

/** `/admin/m2m-clients`: the service-credential registry, system_admin only. */
export const m2mClientsRoutes: FastifyPluginAsyncZod<M2MClientsRoutesOptions> = async (app, { clients, guards }) => {
  // onRequest: the caller is checked before the body is read or validated.
  app.addHook('onRequest', guards.requireSystemAdmin);
  const common = { tags: ['m2m-clients'], security: [{ bearerAuth: [] }] };
  const actorOf = (request: { user?: { id: string; email: string }; ip: string }): Actor => ({
    id: request.user!.id,
    label: request.user!.email,
    ip: request.ip,
  });

  app.post(
    '/admin/m2m-clients',
    { schema: { ...common, summary: 'Create a service credential (the secret is returned once)', body: createClientBodySchema, response: { 201: createClientResponseSchema } } },
    async (request, reply) => {
      const created = await clients.create(request.body, actorOf(request));
      reply.header('cache-control', 'no-store');
      return reply.status(201).send(created);
    },
  );

  app.get(
    '/admin/m2m-clients',
    { schema: { ...common, summary: 'Every credential that is not revoked, newest first', response: { 200: listClientsResponseSchema } } },
    async () => ({ clients: await clients.list() }),
  );

  app.get(
    '/admin/m2m-clients/:id',
    { schema: { ...common, summary: 'One credential (never its secret)', params: clientParamsSchema, response: { 200: clientRecordSchema } } },
    async (request) => clients.get(request.params.id),
  );

  app.patch(
    '/admin/m2m-clients/:id',
    {
      schema: {
        ...common,
        summary: 'Change name, description, scopes, allowed_audiences or status',
        params: clientParamsSchema,
        body: updateClientBodySchema,
        response: { 200: clientRecordSchema },
      },
    },
    async (request) => clients.update(request.params.id, request.body, actorOf(request)),
  );

  app.delete(
    '/admin/m2m-clients/:id',
    { schema: { ...common, summary: 'Revoke (soft, idempotent)', params: clientParamsSchema, response: { 204: z.null().describe('Revoked') } } },
    async (request, reply) => {
      await clients.revoke(request.params.id, actorOf(request));
      return reply.status(204).send(null);
    },
  );
};
