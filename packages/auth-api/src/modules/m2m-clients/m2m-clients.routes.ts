import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { errorResponses } from '../../lib/openapi.js';
import type { UserGuards } from '../../plugins/admin-guard.js';
import type { Actor } from '../audit/audit.repository.js';
import {
  clientIdParamsSchema,
  clientParamsSchema,
  clientRecordSchema,
  createClientBodySchema,
  createClientResponseSchema,
  listClientsQuerySchema,
  listClientsResponseSchema,
  noQuerySchema,
  updateClientBodySchema,
} from './m2m-clients.schemas.js';
import type { M2MClientsService } from './m2m-clients.service.js';
import { listSecretsResponseSchema, rotateSecretBodySchema, rotateSecretResponseSchema, secretParamsSchema } from './client-secrets.schemas.js';
import type { ClientSecretsService } from './client-secrets.service.js';

export interface M2MClientsRoutesOptions {
  clients: M2MClientsService;
  secrets: ClientSecretsService;
  guards: UserGuards;
}

/** `/admin/m2m-clients`: the service-credential registry, system_admin only. */
export const m2mClientsRoutes: FastifyPluginAsyncZod<M2MClientsRoutesOptions> = async (app, { clients, secrets, guards }) => {
  // onRequest: the caller is checked before the body is read or validated.
  app.addHook('onRequest', guards.requireSystemAdmin);
  const common = { tags: ['m2m-clients'], security: [{ bearerAuth: [] }], querystring: noQuerySchema };
  const actorOf = (request: { user?: { id: string; email: string }; ip: string }): Actor => ({
    id: request.user!.id,
    label: request.user!.email,
    ip: request.ip,
  });

  app.post(
    '/admin/m2m-clients',
    {
      schema: {
        ...common,
        summary: 'Create a service credential (the secret is returned once)',
        description:
          'Creates a credential and returns its `client_secret`, shown only in this answer (`Cache-Control: no-store`): the server keeps a bcrypt hash. A `client_id` is never reused, even after revocation (409).',
        body: createClientBodySchema,
        response: {
          201: createClientResponseSchema.describe('Created: the record and its secret, shown this once'),
          ...errorResponses('validation_failed', ['unknown_scope', 'A scope no permission catalog defines; `details` names each'], ['conflict', 'The client_id is taken: client_ids are never reused, even after revocation']) },
      },
    },
    async (request, reply) => {
      const created = await clients.create(request.body, actorOf(request));
      reply.header('cache-control', 'no-store');
      return reply.status(201).send(created);
    },
  );

  app.get(
    '/admin/m2m-clients',
    {
      schema: {
        ...common,
        summary: 'List credentials, newest first (filters, paging)',
        description:
          'By default every credential that is not revoked, newest first. Filters combine. With `limit`, one page and a `next_cursor` to pass as `cursor` for the next (stable order: creation time, then id). Unknown query parameters are refused.',
        querystring: listClientsQuerySchema,
        response: { 200: listClientsResponseSchema.describe('The matching credentials, newest first') },
      },
    },
    async (request) => clients.list(request.query),
  );

  app.get(
    '/admin/m2m-clients/by-client-id/:client_id',
    {
      schema: {
        ...common,
        summary: 'One credential by its client_id (never its secret)',
        description: 'The same record as `GET /admin/m2m-clients/{id}`, looked up by the operator-chosen `client_id`; revoked ones too (with `revoked_at`).',
        params: clientIdParamsSchema,
        response: { 200: clientRecordSchema.describe('The credential'), ...errorResponses(['not_found', 'No credential with that client_id']) },
      },
    },
    async (request) => clients.getByClientId(request.params.client_id),
  );

  app.get(
    '/admin/m2m-clients/:id',
    {
      schema: {
        ...common,
        summary: 'One credential by id (never its secret)',
        description: 'Revoked credentials too, with `revoked_at` set.',
        params: clientParamsSchema,
        response: { 200: clientRecordSchema.describe('The credential') },
      },
    },
    async (request) => clients.get(request.params.id),
  );

  app.patch(
    '/admin/m2m-clients/:id',
    {
      schema: {
        ...common,
        summary: 'Change name, description, scopes, allowed_audiences or status',
        description: '`status: "disabled"` stops the credential obtaining tokens until it is set `active` again. A revoked credential cannot be changed (409).',
        params: clientParamsSchema,
        body: updateClientBodySchema,
        response: {
          200: clientRecordSchema.describe('The changed credential'),
          ...errorResponses('validation_failed', ['unknown_scope', 'A scope no permission catalog defines; `details` names each'], ['conflict', 'The credential is revoked: revocation is final']) },
      },
    },
    async (request) => clients.update(request.params.id, request.body, actorOf(request)),
  );

  app.delete(
    '/admin/m2m-clients/:id',
    {
      schema: {
        ...common,
        summary: 'Revoke (soft, idempotent)',
        description: 'The credential obtains no more tokens from the next grant on; tokens already issued stay valid until they expire. Revoking again answers 204 and changes nothing.',
        params: clientParamsSchema,
        response: { 204: z.null().describe('Revoked (or it already was)') },
      },
    },
    async (request, reply) => {
      await clients.revoke(request.params.id, actorOf(request));
      return reply.status(204).send(null);
    },
  );

  const revokedConflict = ['conflict', 'The credential is revoked: its secrets can no longer change'] as const;

  app.post(
    '/admin/m2m-clients/:id/secrets',
    {
      schema: {
        ...common,
        summary: 'Add a secret (rotation; the secret is returned once)',
        description:
          "Adds a secret to the credential and returns it as `client_secret`, shown only in this answer (`Cache-Control: no-store`). The credential's other secret keeps working: deploy the new one, watch the old one's `last_used_at`, then delete it, or pass `expire_previous_in` (seconds; 0: at once) to schedule its expiry now. At most two live secrets: a third is refused with `secret_limit` until one is deleted or has expired. Expired secrets are removed. New secrets are stored with CLIENT_SECRET_HASH. The body may be omitted. Audited.",
        params: clientParamsSchema,
        body: rotateSecretBodySchema,
        response: {
          201: rotateSecretResponseSchema.describe('Added: its metadata and the secret, shown this once'),
          ...errorResponses('validation_failed', ['not_found', 'No credential with that id'], [...revokedConflict], 'secret_limit'),
        },
      },
    },
    async (request, reply) => {
      const created = await secrets.rotate(request.params.id, request.body, actorOf(request));
      reply.header('cache-control', 'no-store');
      return reply.status(201).send(created);
    },
  );

  app.get(
    '/admin/m2m-clients/:id/secrets',
    {
      schema: {
        ...common,
        summary: "A credential's secrets: metadata only",
        description:
          'Every secret of the credential, newest first: id, created_at, last_used_at (per secret, one-minute resolution), expires_at, hint (a short non-secret tag) and hash_alg. Never a secret or its hash. Revoked credentials too.',
        params: clientParamsSchema,
        response: { 200: listSecretsResponseSchema.describe('The secrets, newest first'), ...errorResponses(['not_found', 'No credential with that id']) },
      },
    },
    async (request) => ({ secrets: await secrets.list(request.params.id) }),
  );

  app.delete(
    '/admin/m2m-clients/:id/secrets/:secretId',
    {
      schema: {
        ...common,
        summary: 'Delete a secret (never the last live one)',
        description:
          "The secret authenticates no more from the next grant on; tokens already issued stay valid until they expire. The credential's only live secret cannot be deleted (`last_secret`): add another first, or revoke the credential. Audited.",
        params: secretParamsSchema,
        response: {
          204: z.null().describe('Deleted'),
          ...errorResponses('validation_failed', ['not_found', 'No credential with that id, or it has no secret with that id'], [...revokedConflict], 'last_secret'),
        },
      },
    },
    async (request, reply) => {
      await secrets.delete(request.params.id, request.params.secretId, actorOf(request));
      return reply.status(204).send(null);
    },
  );
};
