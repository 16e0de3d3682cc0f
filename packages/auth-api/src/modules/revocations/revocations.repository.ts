import { type Kysely, sql, type Transaction } from 'kysely';
import type { Database } from '../../db/schema.js';

/**
 * How long a credential's revocation stays in the feed: the longest lifetime
 * any verifier accepts (`exp − iat` ≤ 24 h), plus clock tolerance. After that
 * every token issued before it has expired everywhere.
 */
export const CLIENT_ENTRY_RETENTION_SEC = 86_400 + 60;
/**
 * A credential revoked or disabled at T refuses tokens with `iat` up to T + this: a grant that
 * read the credential just before the change committed signs within it (iat is in whole seconds).
 */
export const REVOCATION_GRACE_SEC = 1;

type Db = Kysely<Database> | Transaction<Database>;

/**
 * Serialises writers of the feed (reads are not blocked): `seq` values are
 * taken under the lock, so they become visible in increasing order and a
 * reader's cursor never skips an entry committed late. Call inside the
 * writing transaction.
 */
async function lockFeed(trx: Transaction<Database>): Promise<void> {
  await sql`lock table revocations in exclusive mode`.execute(trx);
}

/** Drops entries nothing can need any more (cheap: revocations are rare, so this runs rarely). */
async function prune(trx: Transaction<Database>, at: Date): Promise<void> {
  await trx
    .deleteFrom('revocations')
    .where((eb) =>
      eb.or([
        eb.and([eb('kind', '=', 'token'), eb('expires_at', '<', at)]),
        eb.and([eb('kind', '=', 'client'), eb('revoked_at', '<', new Date(at.getTime() - CLIENT_ENTRY_RETENTION_SEC * 1000))]),
      ]),
    )
    .execute();
}

/** Records that `clientId` was revoked or disabled at `at` (in the caller's transaction). */
export async function insertClientRevocation(trx: Transaction<Database>, clientId: string, at: Date): Promise<void> {
  await lockFeed(trx);
  await prune(trx, at);
  await trx.insertInto('revocations').values({ kind: 'client', client_id: clientId, revoked_at: at }).execute();
}

/** Records a revoked token (idempotent: a jti is listed once). */
export async function insertTokenRevocation(db: Kysely<Database>, entry: { clientId: string; jti: string; expiresAt: Date }, at: Date): Promise<void> {
  await db.transaction().execute(async (trx) => {
    await lockFeed(trx);
    await prune(trx, at);
    await trx
      .insertInto('revocations')
      .values({ kind: 'token', client_id: entry.clientId, jti: entry.jti, expires_at: entry.expiresAt, revoked_at: at })
      // The partial index's predicate as a literal: PostgreSQL cannot match it to a bound parameter.
      .onConflict((oc) => oc.column('jti').where(sql<boolean>`kind = 'token'`).doNothing())
      .execute();
  });
}

export interface FeedRow {
  seq: string;
  kind: 'client' | 'token';
  client_id: string;
  jti: string | null;
  expires_at: Date | null;
  revoked_at: Date;
}

/**
 * Live entries after `afterSeq`, in seq order, at most `limit`: credentials
 * revoked within the retention and tokens not yet expired.
 */
export function listFeed(db: Db, afterSeq: string, limit: number, at: Date): Promise<FeedRow[]> {
  return db
    .selectFrom('revocations')
    .select([sql<string>`revocations.seq::text`.as('seq'), 'kind', 'client_id', 'jti', 'expires_at', 'revoked_at'])
    .where(sql<boolean>`revocations.seq > ${afterSeq}::bigint`)
    .where((eb) =>
      eb.or([
        eb.and([eb('kind', '=', 'token'), eb('expires_at', '>', at)]),
        eb.and([eb('kind', '=', 'client'), eb('revoked_at', '>=', new Date(at.getTime() - CLIENT_ENTRY_RETENTION_SEC * 1000))]),
      ]),
    )
    // The column, not the text alias of the same name: numeric order.
    .orderBy(sql`revocations.seq`)
    .limit(limit)
    .execute();
}

/** The highest seq ever handed out that is still stored, or '0'. */
export async function lastSeq(db: Db): Promise<string> {
  const row = await db.selectFrom('revocations').select(sql<string>`coalesce(max(seq), 0)::text`.as('seq')).executeTakeFirstOrThrow();
  return row.seq;
}

/**
 * Whether a service token is revoked: its jti is listed, or its credential
 * was revoked or disabled at or after its `iat` (− the grace).
 */
export async function isTokenRevoked(db: Db, token: { clientId: string; jti: string | undefined; iat: number }): Promise<boolean> {
  const byClient = db
    .selectFrom('revocations')
    .select(sql<number>`1`.as('hit'))
    .where('kind', '=', 'client')
    .where('client_id', '=', token.clientId)
    .where('revoked_at', '>=', new Date((token.iat - REVOCATION_GRACE_SEC) * 1000));
  const query =
    token.jti === undefined
      ? byClient
      : byClient.unionAll(db.selectFrom('revocations').select(sql<number>`1`.as('hit')).where('kind', '=', 'token').where('jti', '=', token.jti));
  const row = await query.limit(1).executeTakeFirst();
  return row !== undefined;
}
