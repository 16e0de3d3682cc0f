import type { KyselyPlugin, QueryId } from 'kysely';
import { sql } from 'kysely';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';
import { systemClock } from '../src/lib/clock.js';
import { insertClientRevocation } from '../src/modules/revocations/revocations.repository.js';
import { bearer, createClient, createTestContext, type TestContext } from './helpers.js';

/**
 * The feed's cursor never passes an entry a reader was not sent: not when an entry is committed
 * while a snapshot is read, not when the database was restored from a backup after the cursor was issued.
 */
let ctx: TestContext;
let reader: string;
/** Run once, right after the next feed page query has been answered (before the request goes on). */
let betweenQueries: (() => Promise<unknown>) | undefined;
let pending: Promise<unknown> | undefined;
let raced: FastifyInstance;

/** Runs `betweenQueries` when the feed's page query (the only ordered, limited select of revocations) has its rows. */
function raceAfterPage(kind: 'postgres' | 'pglite'): KyselyPlugin {
  const pages = new Set<QueryId>();
  return {
    transformQuery({ node, queryId }) {
      if (node.kind === 'SelectQueryNode' && node.orderBy && node.limit && JSON.stringify(node.from).includes('"revocations"')) pages.add(queryId);
      return node;
    },
    async transformResult({ result, queryId }) {
      if (pages.delete(queryId) && betweenQueries) {
        const run = betweenQueries;
        betweenQueries = undefined;
        // PGlite is one connection, held by this query until it returns: the write waits its turn,
        // which comes before the request's next query. A PostgreSQL pool writes on another connection now.
        pending = run();
        if (kind === 'postgres') await pending;
      }
      return result;
    },
  };
}

const feed = (app: FastifyInstance, query = '') => app.inject({ method: 'GET', url: `/api/v1/oauth/revocations${query}`, headers: bearer(reader) });
const revokeClientNow = (clientId: string) => ctx.database.db.transaction().execute((trx) => insertClientRevocation(trx, clientId, systemClock));

beforeAll(async () => {
  ctx = await createTestContext();
  const created = await createClient(ctx, { client_id: 'reader-svc', name: 'reader', scopes: ['auth:revocations:read'] });
  const res = await ctx.app.inject({
    method: 'POST',
    url: '/api/v1/oauth/token',
    payload: { grant_type: 'client_credentials', client_id: 'reader-svc', client_secret: created.client_secret },
  });
  reader = res.json().access_token;
  const { database } = ctx;
  raced = await buildApp({ logger: false, config: ctx.config, hasher: ctx.hasher, database: { ...database, db: database.db.withPlugin(raceAfterPage(database.kind)) } });
  await raced.ready();
});
afterAll(async () => {
  await raced?.close();
  await ctx?.close();
});

describe('the revocation feed cursor', () => {
  it('an entry committed while an empty snapshot is read is in the next delta', async () => {
    betweenQueries = () => revokeClientNow('raced-svc');
    const snapshot = await feed(raced);
    await pending;
    expect(snapshot.statusCode, snapshot.body).toBe(200);
    expect(betweenQueries).toBeUndefined(); // the write did run between the queries
    expect(snapshot.json().clients).toEqual([]);
    const delta = await feed(ctx.app, `?since=${snapshot.json().cursor}`);
    expect(delta.json().clients.map((c: { client_id: string }) => c.client_id)).toEqual(['raced-svc']);
  });

  it('a cursor issued before the database was restored from a backup gets a snapshot, not a silent gap', async () => {
    await revokeClientNow('before-backup-svc');
    const issued = (await feed(ctx.app)).json().cursor;
    // The restore: the feed's table and its sequence as they were before those entries.
    await sql`delete from revocations`.execute(ctx.database.db);
    await sql`alter sequence revocations_seq_seq restart with 1`.execute(ctx.database.db);
    await revokeClientNow('after-restore-svc');
    const delta = await feed(ctx.app, `?since=${issued}`);
    expect(delta.statusCode, delta.body).toBe(200);
    expect(delta.json().clients.map((c: { client_id: string }) => c.client_id)).toEqual(['after-restore-svc']);
    // And from its cursor on, deltas as usual.
    await revokeClientNow('later-svc');
    const next = await feed(ctx.app, `?since=${delta.json().cursor}`);
    expect(next.json().clients.map((c: { client_id: string }) => c.client_id)).toEqual(['later-svc']);
  });
});
