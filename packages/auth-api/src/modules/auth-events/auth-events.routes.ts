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
        description:
          'Every token request is counted here by minute, client_id (as sent), client address (IPv4, or the IPv6 /64) and outcome: `granted`, the RFC 6749 error it got, `throttled` (429) or `shed` (503, bcrypt budget full). Counts not yet written are flushed first, so the answer is current. Rows older than AUTH_EVENTS_RETENTION_DAYS are deleted. Filters combine; unknown query parameters are refused.',
        querystring: authEventsQuerySchema,
        response: { 200: authEventsResponseSchema.describe('The matching counts, newest minute first, at most `limit`') },
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
