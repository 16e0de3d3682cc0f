import { type Kysely, sql, type Transaction, type Updateable } from 'kysely';
import type { Database, SigningKeyRow, SigningKeysTable } from '../../db/schema.js';

/** Advisory-lock key serialising every change of key states, across processes sharing the database. */
const KEY_STATE_LOCK = 0x5349_474e; // "SIGN"

export async function listSigningKeys(db: Kysely<Database> | Transaction<Database>): Promise<SigningKeyRow[]> {
  return db.selectFrom('signing_keys').selectAll().orderBy('created_at', 'asc').orderBy('kid', 'asc').execute();
}

/**
 * Runs `fn` in a transaction holding the key-state lock
 * (`pg_advisory_xact_lock`): two instances (or a CLI and a server) changing
 * key states at the same moment run one after the other, and each sees what
 * the other committed.
 */
export async function withKeyStateLock<T>(db: Kysely<Database>, fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
  return db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(${sql.lit(KEY_STATE_LOCK)})`.execute(trx);
    return fn(trx);
  });
}

export async function insertSigningKey(
  trx: Transaction<Database>,
  row: Pick<SigningKeyRow, 'kid' | 'alg' | 'state' | 'private_key_enc' | 'activates_at' | 'activated_at'> & { public_jwk: Record<string, unknown>; created_at: Date },
): Promise<void> {
  await trx
    .insertInto('signing_keys')
    .values({ ...row, public_jwk: JSON.stringify(row.public_jwk) })
    .execute();
}

export async function updateSigningKey(trx: Transaction<Database>, kid: string, patch: Updateable<SigningKeysTable>): Promise<void> {
  await trx.updateTable('signing_keys').set(patch).where('kid', '=', kid).execute();
}
