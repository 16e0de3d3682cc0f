import type { Kysely } from 'kysely';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Database } from '../../db/schema.js';
import type { UserGuards } from '../../plugins/admin-guard.js';
import { findAuditEntries } from './audit.repository.js';
import { auditEventsQuerySchema, auditEventsResponseSchema } from './audit.schemas.js';

export interface AuditRoutesOptions {
  db: Kysely<Database>;
  guards: UserGuards;
}

/** `GET /admin/audit-events`: the audit trail of admin actions, newest first, system_admin only. */
export const auditRoutes: FastifyPluginAsyncZod<AuditRoutesOptions> = async (app, { db, guards }) => {
  app.addHook('onRequest', guards.requireSystemAdmin);
  app.get(
    '/admin/audit-events',
    {
      schema: {
        tags: ['audit'],
        security: [{ bearerAuth: [] }],
        summary: 'The audit trail of admin actions, newest first (filters, cursor paging)',
        description:
          'Every recorded admin action (sign-ins and their failures, credential create/update/revoke, catalog registrations, signing-key changes, user changes), newest first. Filters combine and match exactly; `target` with a credential id gives that credential\'s trail. One page of at most `limit` entries and a `next_cursor` to pass as `cursor` for the next, older page (stable order: pages never repeat or skip an entry). Unknown query parameters are refused. Client authentication at the token endpoint is counted separately: `GET /admin/auth-events`.',
        querystring: auditEventsQuerySchema,
        response: { 200: auditEventsResponseSchema.describe('The matching entries, newest first, at most `limit`') },
      },
    },
    async (request) => {
      const q = request.query;
      // One more than asked: whether a next page exists, without a count query.
      const rows = await findAuditEntries(db, {
        actor: q.actor,
        action: q.action,
        targetType: q.target_type,
        targetId: q.target,
        since: q.since,
        until: q.until,
        beforeId: q.cursor,
        limit: q.limit + 1,
      });
      const page = rows.slice(0, q.limit);
      return {
        events: page.map((r) => ({
          id: String(r.id),
          at: r.at.toISOString(),
          actor: r.actor,
          actor_id: r.actor_id,
          action: r.action,
          target_type: r.target_type,
          target_id: r.target_id,
          ip: r.ip,
          details: r.details,
        })),
        next_cursor: rows.length > q.limit ? String(page[page.length - 1]!.id) : null,
      };
    },
  );
};
