import type { Kysely } from 'kysely';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Database } from '../../db/schema.js';
import type { UserGuards } from '../../plugins/admin-guard.js';
import type { AuthEventRecorder } from './auth-events.recorder.js';
import { findAuthEvents } from './auth-events.repository.js';
import { authEventsQuerySchema, authEventsResponseSchema } from './auth-events.schemas.js';

export interface AuthEventsRoutesOptions {
  db: Kysely<Database>;
  recorder: AuthEventRecorder;
  guards: UserGuards;
}

/** `GET /admin/auth-events`: token-endpoint outcomes per minute, client_id, address and outcome; system_admin only. */
export const authEventsRoutes: FastifyPluginAsyncZod<AuthEventsRoutesOptions> = async (app, { db, recorder, guards }) => {
  app.addHook('onRequest', guards.requireSystemAdmin);
  app.get(
    '/admin/auth-events',
    {
      schema: {
        tags: ['auth-events'],
        security: [{ bearerAuth: [] }],
        summary: 'Client authentication at the token endpoint, counted per minute, client_id, address and outcome (newest first)',
        querystring: authEventsQuerySchema,
        response: { 200: authEventsResponseSchema },
      },
    },
    async (request) => {
      const q = request.query;
      // What is still counted in memory is written first, so the answer includes it.
      await recorder.flush();
      const rows = await findAuthEvents(db, { clientId: q.client_id, address: q.address, outcome: q.outcome, since: q.since, until: q.until, limit: q.limit });
      return { events: rows.map((r) => ({ minute: r.minute.toISOString(), client_id: r.client_id, address: r.address, outcome: r.outcome, count: r.count })) };
    },
  );
};
