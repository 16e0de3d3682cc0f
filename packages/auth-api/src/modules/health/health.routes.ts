import { sql } from 'kysely';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { DatabaseHandle } from '../../db/connect.js';

export const healthRoutes: FastifyPluginAsyncZod<{ database: DatabaseHandle }> = async (app, { database }) => {
  app.get('/healthz', { schema: { tags: ['health'], summary: 'Liveness: the process answers',
        description: 'Always 200 while the process serves requests; no dependency is checked.', response: { 200: z.object({ status: z.literal('ok') }).describe('The process is up') } } }, async () => ({
    status: 'ok' as const,
  }));

  app.get(
    '/readyz',
    {
      schema: {
        tags: ['health'],
        summary: 'Readiness: the database answers',
        description: '200 when the database answers a query, else 503 `service_unavailable`: take the instance out of rotation.',
        response: { 200: z.object({ status: z.literal('ok'), database: z.string() }).describe('Ready: the database answers'), 503: z.object({ error: z.literal('service_unavailable'), message: z.string() }).describe('`service_unavailable`: the database is not answering') },
      },
    },
    async (_request, reply) => {
      try {
        await sql`select 1`.execute(database.db);
        return { status: 'ok' as const, database: database.kind };
      } catch (err) {
        reply.log.warn({ code: (err as { code?: string }).code }, 'readiness check failed');
        return reply.status(503).send({ error: 'service_unavailable', message: 'The database is not answering' });
      }
    },
  );
};
