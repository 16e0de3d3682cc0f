import { type Kysely, sql, type Transaction } from 'kysely';
import type { Database } from '../../db/schema.js';
import { type Clock, systemClock } from '../../lib/clock.js';

/**
 * How long a credential's entry stays in the feed after it was written: the longest lifetime any
 * verifier accepts (`exp − iat` ≤ 24 h), plus clock tolerance. A revoked or disabled credential
 * cannot mint, so after that no token it issued is live anywhere; an entry written when it was
 * enabled again refuses only tokens issued before, which are all expired by then.
 */
export const CLIENT_ENTRY_RETENTION_SEC = 86_400 + 60;
/**
 * Live `token` entries one credential may have in the feed. Revoking one more collapses them into a
 * `client` entry refusing every token of that credential issued up to now (docs/API.md), so a
 * credential revoking its own tokens in a loop cannot grow what every receiving service downloads.
 */
export const TOKEN_ENTRIES_PER_CLIENT = 100;

type Db = Kysely<Database> | Transaction<Database>;

/**
 * Serialises writers of the feed (reads are not blocked): `seq` values are
 * taken under the lock, so they become visible in increasing order and a
 * reader's cursor never skips an entry committed late. Call inside the
 * writing transaction, first (taking it after a row lock on the table could deadlock).
 */
async function lockFeed(trx: Transaction<Database>): Promise<void> {
  await sql`lock table revocations in exclusive mode`.execute(trx);
}

/**
 * The time an entry is stamped with, read after the lock: the database's clock (one clock for every
 * instance, and no wait for the lock in between); a test's injected clock stands in for it.
 */
async function stampNow(trx: Transaction<Database>, clock: Clock): Promise<Date> {
  if (clock !== systemClock) return new Date(clock());
  const { now } = await sql<{ now: Date }>`select clock_timestamp() as now`.execute(trx).then((r) => r.rows[0]!);
  return new Date(now);
}

/** Drops entries nothing can need any more: expired tokens, credentials' entries past the retention. */
async function prune(db: Db, at: Date): Promise<void> {
  await db
    .deleteFrom('revocations')
    .where((eb) =>
      eb.or([
        eb.and([eb('kind', '=', 'token'), eb('expires_at', '<', at)]),
        eb.and([eb('kind', '=', 'client'), eb(sql`coalesce(not_before, revoked_at)`, '<', new Date(at.getTime() - CLIENT_ENTRY_RETENTION_SEC * 1000))]),
      ]),
    )
    .execute();
}

/** Replaces the credential's entry (a new seq, so feed readers see the change). */
async function putClientEntry(trx: Transaction<Database>, clientId: string, revokedAt: Date, notBefore: Date | null): Promise<void> {
  await trx.deleteFrom('revocations').where('kind', '=', 'client').where('client_id', '=', clientId).execute();
  await trx.insertInto('revocations').values({ kind: 'client', client_id: clientId, revoked_at: revokedAt, not_before: notBefore }).execute();
}

/**
 * Publishes that `clientId` was revoked or disabled (in the caller's transaction): every token of it is
 * refused, whatever its iat, so none minted while this commits outlives it. Returns the stamp.
 */
export async function insertClientRevocation(trx: Transaction<Database>, clientId: string, clock: Clock): Promise<Date> {
  await lockFeed(trx);
  const at = await stampNow(trx, clock);
  await prune(trx, at);
  await putClientEntry(trx, clientId, at, null);
  return at;
}

/**
 * Publishes that a disabled `clientId` was enabled again (in the caller's transaction): tokens issued
 * from the next whole second on are accepted, older ones stay refused until the entry prunes.
 */
export async function insertClientReenabled(trx: Transaction<Database>, clientId: string, clock: Clock): Promise<void> {
  await lockFeed(trx);
  const at = await stampNow(trx, clock);
  await prune(trx, at);
  // revoked_at stays the disabling's (pruning counts from the later not_before).
  const current = await trx.selectFrom('revocations').select('revoked_at').where('kind', '=', 'client').where('client_id', '=', clientId).executeTakeFirst();
  await putClientEntry(trx, clientId, current?.revoked_at ?? at, new Date(at.getTime() + 1000));
}

/**
 * Records a revoked token (idempotent: a jti is listed once). The exclusive lock covers a count and
 * one insert only: an already listed jti returns before it, and pruning runs before it. Past
 * TOKEN_ENTRIES_PER_CLIENT live entries for the credential, they collapse into its `client` entry.
 */
export async function insertTokenRevocation(db: Kysely<Database>, entry: { clientId: string; jti: string; expiresAt: Date }, clock: Clock): Promise<'listed' | 'collapsed'> {
  const known = await db.selectFrom('revocations').select('seq').where('kind', '=', 'token').where('jti', '=', entry.jti).executeTakeFirst();
  if (known) return 'listed';
  await prune(db, new Date(clock()));
  return db.transaction().execute(async (trx) => {
    await lockFeed(trx);
    const at = await stampNow(trx, clock);
    const { live } = await trx
      .selectFrom('revocations')
      .select(sql<string>`count(*)::text`.as('live'))
      .where('kind', '=', 'token')
      .where('client_id', '=', entry.clientId)
      .where('expires_at', '>', at)
      .executeTakeFirstOrThrow();
    if (Number(live) < TOKEN_ENTRIES_PER_CLIENT) {
      await trx
        .insertInto('revocations')
        .values({ kind: 'token', client_id: entry.clientId, jti: entry.jti, expires_at: entry.expiresAt, revoked_at: at })
        // The partial index's predicate as a literal: PostgreSQL cannot match it to a bound parameter.
        .onConflict((oc) => oc.column('jti').where(sql<boolean>`kind = 'token'`).doNothing())
        .execute();
      return 'listed';
    }
    // Collapse: refuse every token of the credential issued up to now (unless its entry already refuses all).
    const current = await trx.selectFrom('revocations').select('not_before').where('kind', '=', 'client').where('client_id', '=', entry.clientId).executeTakeFirst();
    if (!current || current.not_before !== null) await putClientEntry(trx, entry.clientId, at, new Date(at.getTime() + 1000));
    await trx.deleteFrom('revocations').where('kind', '=', 'token').where('client_id', '=', entry.clientId).execute();
    return 'collapsed';
  });
}

export interface FeedRow {
  seq: string;
  kind: 'client' | 'token';
  client_id: string;
  jti: string | null;
  expires_at: Date | null;
  revoked_at: Date;
  not_before: Date | null;
}

/**
 * Live entries after `afterSeq`, in seq order, at most `limit`: credentials
 * revoked within the retention and tokens not yet expired.
 */
export function listFeed(db: Db, afterSeq: string, limit: number, at: Date): Promise<FeedRow[]> {
  return db
    .selectFrom('revocations')
    .select([sql<string>`revocations.seq::text`.as('seq'), 'kind', 'client_id', 'jti', 'expires_at', 'revoked_at', 'not_before'])
    .where(sql<boolean>`revocations.seq > ${afterSeq}::bigint`)
    .where((eb) =>
      eb.or([
        eb.and([eb('kind', '=', 'token'), eb('expires_at', '>', at)]),
        eb.and([eb('kind', '=', 'client'), eb(sql`coalesce(not_before, revoked_at)`, '>=', new Date(at.getTime() - CLIENT_ENTRY_RETENTION_SEC * 1000))]),
      ]),
    )
    // The column, not the text alias of the same name: numeric order.
    .orderBy(sql`revocations.seq`)
    .limit(limit)
    .execute();
}

/**
 * Where the feed ends. `stored`: the highest seq of a committed entry still stored, or '0' (writers
 * number their entry under the feed lock, so every entry committed after this read has a higher seq).
 * `issued`: the highest seq the sequence ever handed out (deletions do not lower it; a database
 * restored from a backup does), or '0'.
 */
export async function feedEnd(db: Db): Promise<{ stored: string; issued: string }> {
  const { rows } = await sql<{ stored: string; issued: string }>`
    select coalesce((select max(seq) from revocations), 0)::text as stored,
           (select case when is_called then last_value else 0 end from revocations_seq_seq)::text as issued`.execute(db);
  return rows[0]!;
}

/**
 * Whether a service token is revoked: its jti is listed, or its credential's entry refuses it
 * (not_before null: every token; else an iat below not_before in whole seconds).
 */
export async function isTokenRevoked(db: Db, token: { clientId: string; jti: string | undefined; iat: number }): Promise<boolean> {
  const byClient = db
    .selectFrom('revocations')
    .select(sql<number>`1`.as('hit'))
    .where('kind', '=', 'client')
    .where('client_id', '=', token.clientId)
    // iat < floor(not_before) ⇔ iat + 1 ≤ not_before (iat is whole seconds).
    .where((eb) => eb.or([eb('not_before', 'is', null), eb('not_before', '>=', new Date((token.iat + 1) * 1000))]));
  const query =
    token.jti === undefined
      ? byClient
      : byClient.unionAll(db.selectFrom('revocations').select(sql<number>`1`.as('hit')).where('kind', '=', 'token').where('jti', '=', token.jti));
  const row = await query.limit(1).executeTakeFirst();
  return row !== undefined;
}
