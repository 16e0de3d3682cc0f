import { type Kysely, sql } from 'kysely';
import type { ClientSecretAlg, Database, M2MClientRow, M2MClientUpdate, NewM2MClientRow } from '../../db/schema.js';
import { orphanedScopes, usableScopes } from '../permissions/permissions.repository.js';

/** A credential row with the scopes it holds that no catalog defines (never granted). */
export type M2MClientRowWithOrphans = M2MClientRow & { orphaned_scopes: string[] };

const orphans = () => orphanedScopes(sql.ref('scopes')).as('orphaned_scopes');

export function insertClient(db: Kysely<Database>, row: NewM2MClientRow): Promise<M2MClientRowWithOrphans> {
  return db.insertInto('m2m_clients').values(row).returningAll().returning(orphans()).executeTakeFirstOrThrow();
}

export interface ClientListQuery {
  status?: 'active' | 'disabled' | undefined;
  /** Only credentials holding this scope. */
  scope?: string | undefined;
  clientIdPrefix?: string | undefined;
  includeRevoked: boolean;
  /** Rows strictly after this record in the listing order (a page's last row). */
  afterId?: string | undefined;
  limit?: number | undefined;
}

/**
 * Credentials newest first, (created_at, id) descending: a total order, so
 * pages never skip or repeat a row. The cursor row is compared in SQL, at the
 * database's own timestamp precision.
 */
export function listClients(db: Kysely<Database>, query: ClientListQuery): Promise<M2MClientRowWithOrphans[]> {
  let q = db.selectFrom('m2m_clients').selectAll().select(orphans());
  if (!query.includeRevoked) q = q.where('revoked_at', 'is', null);
  if (query.status) q = q.where('status', '=', query.status);
  if (query.scope !== undefined) q = q.where(sql<boolean>`scopes @> array[${query.scope}]::text[]`);
  if (query.clientIdPrefix !== undefined) q = q.where(sql<boolean>`starts_with(client_id, ${query.clientIdPrefix})`);
  if (query.afterId !== undefined) {
    q = q.where(sql<boolean>`(created_at, id) < (select c.created_at, c.id from m2m_clients c where c.id = ${query.afterId})`);
  }
  q = q.orderBy('created_at', 'desc').orderBy('id', 'desc');
  if (query.limit !== undefined) q = q.limit(query.limit);
  return q.execute();
}

export function findClientById(db: Kysely<Database>, id: string): Promise<M2MClientRowWithOrphans | undefined> {
  return db.selectFrom('m2m_clients').selectAll().select(orphans()).where('id', '=', id).executeTakeFirst();
}

/** The row, locked until the transaction ends (call inside one). */
export function findClientByIdForUpdate(db: Kysely<Database>, id: string): Promise<M2MClientRow | undefined> {
  return db.selectFrom('m2m_clients').selectAll().where('id', '=', id).forUpdate().executeTakeFirst();
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

/** A secret as the grant sees it: `expires_at` in epoch milliseconds (liveness is judged with the server's clock). */
export interface GrantSecret {
  id: string;
  hash: string;
  alg: ClientSecretAlg;
  hint: string;
  expires_at: number | null;
  /** Epoch milliseconds, or null: never used. */
  last_used_at: number | null;
}

/**
 * What a grant needs, by client_id, in one indexed read. The database decides
 * `usable` (active, not revoked) and `scopes`: only the scopes the permission
 * catalogs define (orphaned ones are left out, as if not held), so no second
 * query runs on the hot path. `secrets` are the credential's secrets, newest
 * first, expired ones included, times in epoch milliseconds: the caller judges
 * expiry and whether last_used_at is due with its own clock.
 */
export function findClientForGrant(db: Kysely<Database>, clientId: string) {
  return db
    .selectFrom('m2m_clients')
    .select((eb) => [
      'id',
      'client_id',
      'name',
      usableScopes(eb.ref('scopes')).as('scopes'),
      'allowed_audiences',
      eb.and([eb('status', '=', 'active'), eb('revoked_at', 'is', null)]).$castTo<boolean>().as('usable'),
      sql<GrantSecret[]>`coalesce((
        select json_agg(json_build_object(
          'id', s.id, 'hash', s.secret_hash, 'alg', s.hash_alg, 'hint', s.hint,
          'expires_at', floor(extract(epoch from s.expires_at) * 1000)::bigint,
          'last_used_at', floor(extract(epoch from s.last_used_at) * 1000)::bigint
        ) order by s.created_at desc, s.id desc)
        from m2m_client_secrets s where s.client_id = m2m_clients.id
      ), '[]'::json)`.as('secrets'),
    ])
    .where('client_id', '=', clientId)
    .executeTakeFirst();
}

/** What a grant reads about a credential. */
export type GrantClientRow = NonNullable<Awaited<ReturnType<typeof findClientForGrant>>>;

/** Marks the credential changed (`updated_at`), in the caller's transaction: caches of other instances key on it. */
export async function touchClientUpdated(db: Kysely<Database>, id: string, at: Date): Promise<void> {
  await db.updateTable('m2m_clients').set({ updated_at: at }).where('id', '=', id).execute();
}
