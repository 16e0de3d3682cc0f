import type { Kysely } from 'kysely';
import type { Database } from '../../db/schema.js';

export interface AuthEventCount {
  minute: Date;
  client_id: string;
  address: string;
  outcome: string;
  count: number;
}

/** Adds counts to their (minute, client_id, address, outcome) rows, creating the missing ones. */
export async function addAuthEventCounts(db: Kysely<Database>, rows: AuthEventCount[]): Promise<void> {
  if (rows.length === 0) return;
  await db
    .insertInto('auth_events')
    .values(rows)
    .onConflict((oc) => oc.columns(['minute', 'client_id', 'address', 'outcome']).doUpdateSet((eb) => ({ count: eb('auth_events.count', '+', eb.ref('excluded.count')) })))
    .execute();
}

/** Deletes the rows of minutes before `before`; returns how many. */
export async function pruneAuthEvents(db: Kysely<Database>, before: Date): Promise<number> {
  const result = await db.deleteFrom('auth_events').where('minute', '<', before).executeTakeFirst();
  return Number(result.numDeletedRows);
}

export interface AuthEventFilter {
  clientId?: string | undefined;
  address?: string | undefined;
  outcome?: string | undefined;
  since?: Date | undefined;
  until?: Date | undefined;
  limit: number;
}

/** Newest minute first; within a minute, the largest counts first. */
export function findAuthEvents(db: Kysely<Database>, filter: AuthEventFilter) {
  let query = db.selectFrom('auth_events').selectAll();
  if (filter.clientId !== undefined) query = query.where('client_id', '=', filter.clientId);
  if (filter.address !== undefined) query = query.where('address', '=', filter.address);
  if (filter.outcome !== undefined) query = query.where('outcome', '=', filter.outcome);
  if (filter.since !== undefined) query = query.where('minute', '>=', filter.since);
  if (filter.until !== undefined) query = query.where('minute', '<', filter.until);
  return query.orderBy('minute', 'desc').orderBy('count', 'desc').orderBy('client_id').orderBy('address').orderBy('outcome').limit(filter.limit).execute();
}
