import { type Kysely, sql } from 'kysely';
import type { Database, M2MClientRow, M2MClientUpdate, NewM2MClientRow } from '../../db/schema.js';
import { orphanedScopes, usableScopes } from '../permissions/permissions.repository.js';

/** A credential row with the scopes it holds that no catalog defines (never granted). */
export type M2MClientRowWithOrphans = M2MClientRow & { orphaned_scopes: string[] };

const orphans = () => orphanedScopes(sql.ref('scopes')).as('orphaned_scopes');

export function insertClient(db: Kysely<Database>, row: NewM2MClientRow): Promise<M2MClientRowWithOrphans> {
  return db.insertInto('m2m_clients').values(row).returningAll().returning(orphans()).executeTakeFirstOrThrow();
}

/** Every credential not revoked, newest first. */
export function listActiveClients(db: Kysely<Database>): Promise<M2MClientRowWithOrphans[]> {
  return db.selectFrom('m2m_clients').selectAll().select(orphans()).where('revoked_at', 'is', null).orderBy('created_at', 'desc').orderBy('id', 'desc').execute();
}

export function findClientById(db: Kysely<Database>, id: string): Promise<M2MClientRowWithOrphans | undefined> {
  return db.selectFrom('m2m_clients').selectAll().select(orphans()).where('id', '=', id).executeTakeFirst();
}

export function findClientByClientId(db: Kysely<Database>, clientId: string): Promise<M2MClientRowWithOrphans | undefined> {
  return db.selectFrom('m2m_clients').selectAll().select(orphans()).where('client_id', '=', clientId).executeTakeFirst();
}

/** Updates a credential that is not revoked; undefined when there is none. */
export function updateClient(db: Kysely<Database>, id: string, changes: M2MClientUpdate): Promise<M2MClientRowWithOrphans | undefined> {
  return db.updateTable('m2m_clients').set(changes).where('id', '=', id).where('revoked_at', 'is', null).returningAll().returning(orphans()).executeTakeFirst();
}

/** Marks a credential revoked; undefined when it is unknown or already revoked. */
export function revokeClient(db: Kysely<Database>, id: string, at: Date): Promise<M2MClientRow | undefined> {
  return db
    .updateTable('m2m_clients')
    .set({ revoked_at: at, updated_at: at })
    .where('id', '=', id)
    .where('revoked_at', 'is', null)
    .returningAll()
    .executeTakeFirst();
}

export async function touchLastUsed(db: Kysely<Database>, id: string, at: Date): Promise<void> {
  await db.updateTable('m2m_clients').set({ last_used_at: at }).where('id', '=', id).execute();
}

/**
 * What a grant needs, by client_id, in one indexed read. The database decides
 * `usable` (active, not revoked), `stamp_due` (last_used_at older than a
 * minute) and `scopes`: only the scopes the permission catalogs define
 * (orphaned ones are left out, as if not held), so no timestamps are parsed
 * and no second query runs on the hot path.
 */
export function findClientForGrant(db: Kysely<Database>, clientId: string) {
  return db
    .selectFrom('m2m_clients')
    .select((eb) => [
      'id',
      'client_id',
      'client_secret_hash',
      'name',
      usableScopes(eb.ref('scopes')).as('scopes'),
      'allowed_audiences',
      eb.and([eb('status', '=', 'active'), eb('revoked_at', 'is', null)]).$castTo<boolean>().as('usable'),
      sql<boolean>`(last_used_at is null or last_used_at < now() - interval '1 minute')`.as('stamp_due'),
    ])
    .where('client_id', '=', clientId)
    .executeTakeFirst();
}
