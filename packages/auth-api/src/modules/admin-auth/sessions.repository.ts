import { type Kysely, sql } from 'kysely';
import type { Database, NewAdminSessionRow, UserRow } from '../../db/schema.js';

/**
 * Inserts a session only if its user is, right now, as the sign-in checked it:
 * same password hash, same session epoch, not disabled. The user row is read
 * FOR SHARE, so a concurrent password change, disable, reset or revoke-all
 * (which bump the epoch with the row locked, see revokeUserSessions) either
 * commits first, and no session is created, or waits for this one and then
 * revokes it. Returns whether the session was created.
 */
export async function insertSessionIfUserUnchanged(
  db: Kysely<Database>,
  row: NewAdminSessionRow & { created_at: Date; expires_at: Date },
  checked: Pick<UserRow, 'password_hash' | 'session_epoch'>,
): Promise<boolean> {
  const result = await sql`
    insert into admin_sessions (id, token_hash, user_id, created_at, expires_at, last_seen_at, ip, user_agent)
    select ${row.id}::uuid, ${row.token_hash}, u.id, ${row.created_at}::timestamptz, ${row.expires_at}::timestamptz,
           ${row.last_seen_at ?? null}::timestamptz, ${row.ip ?? null}, ${row.user_agent ?? null}
    from (
      select id from users
      where id = ${row.user_id}::uuid and password_hash = ${checked.password_hash}
        and session_epoch = ${checked.session_epoch} and disabled_at is null
      for share
    ) as u`.execute(db);
  return Number(result.numAffectedRows ?? 0) === 1;
}

/** A live session: not revoked, not expired at `now`, of a user that exists and is not disabled. */
export interface LiveSession {
  sessionId: string;
  lastSeenAt: Date | null;
  user: UserRow;
}

/** The live session whose token hashes to `tokenHash`, with its user, in one query. */
export async function findLiveSession(db: Kysely<Database>, tokenHash: string, now: Date): Promise<LiveSession | undefined> {
  const row = await db
    .selectFrom('admin_sessions as s')
    .innerJoin('users as u', 'u.id', 's.user_id')
    .selectAll('u')
    .select(['s.id as session_id', 's.last_seen_at as session_last_seen_at'])
    .where('s.token_hash', '=', tokenHash)
    .where('s.revoked_at', 'is', null)
    .where('s.expires_at', '>', now)
    .where('u.disabled_at', 'is', null)
    .executeTakeFirst();
  if (!row) return undefined;
  const { session_id, session_last_seen_at, ...user } = row;
  return { sessionId: session_id, lastSeenAt: session_last_seen_at, user };
}

export async function touchSession(db: Kysely<Database>, id: string, at: Date): Promise<void> {
  await db.updateTable('admin_sessions').set({ last_seen_at: at }).where('id', '=', id).execute();
}

/** Ends the live session of this token hash; returns its user id, or undefined when there was none. */
export async function revokeSessionByHash(db: Kysely<Database>, tokenHash: string, at: Date): Promise<string | undefined> {
  const row = await db
    .updateTable('admin_sessions')
    .set({ revoked_at: at })
    .where('token_hash', '=', tokenHash)
    .where('revoked_at', 'is', null)
    .where('expires_at', '>', at)
    .returning('user_id')
    .executeTakeFirst();
  return row?.user_id;
}

/** Ends every live session of a user (but `exceptId`); returns how many were live. */
export async function revokeUserSessions(db: Kysely<Database>, userId: string, at: Date, exceptId?: string): Promise<number> {
  // Locks the user row and invalidates sign-ins in flight (insertSessionIfUserUnchanged): call inside the
  // transaction that changes the user, so no session created by a racing sign-in survives it.
  await db.updateTable('users').set((eb) => ({ session_epoch: eb('session_epoch', '+', 1) })).where('id', '=', userId).execute();
  let query = db.updateTable('admin_sessions').set({ revoked_at: at }).where('user_id', '=', userId).where('revoked_at', 'is', null).where('expires_at', '>', at);
  if (exceptId !== undefined) query = query.where('id', '!=', exceptId);
  const result = await query.executeTakeFirst();
  return Number(result.numUpdatedRows);
}

/** Drops a user's sessions that have expired: they can never be used again, and rows would pile up. */
export async function deleteExpiredSessions(db: Kysely<Database>, userId: string, now: Date): Promise<void> {
  await db.deleteFrom('admin_sessions').where('user_id', '=', userId).where('expires_at', '<=', now).execute();
}

/** Per user: live sessions and the latest request seen on any session. */
export async function sessionStatsByUser(db: Kysely<Database>, now: Date): Promise<Map<string, { live: number; lastSeenAt: Date | null }>> {
  const rows = await db
    .selectFrom('admin_sessions')
    .select((eb) => [
      'user_id',
      eb.fn.count<string>('id').filterWhere((w) => w.and([w('revoked_at', 'is', null), w('expires_at', '>', now)])).as('live'),
      eb.fn.max('last_seen_at').as('last_seen_at'),
    ])
    .groupBy('user_id')
    .execute();
  return new Map(rows.map((r) => [r.user_id, { live: Number(r.live), lastSeenAt: r.last_seen_at as Date | null }]));
}
