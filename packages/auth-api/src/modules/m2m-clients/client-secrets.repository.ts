import { type Kysely, sql } from 'kysely';
import type { Database, NewM2MClientSecretRow } from '../../db/schema.js';

/** What the API shows of a secret: never the hash. */
const METADATA = ['id', 'client_id', 'hint', 'hash_alg', 'created_at', 'expires_at', 'last_used_at'] as const;

export function insertSecret(db: Kysely<Database>, row: NewM2MClientSecretRow) {
  return db.insertInto('m2m_client_secrets').values(row).returning(METADATA).executeTakeFirstOrThrow();
}

/** A credential's secrets (by m2m_clients.id), newest first, metadata only. */
export function listSecrets(db: Kysely<Database>, clientUuid: string) {
  return db.selectFrom('m2m_client_secrets').select(METADATA).where('client_id', '=', clientUuid).orderBy('created_at', 'desc').orderBy('id', 'desc').execute();
}

export type SecretMetadataRow = Awaited<ReturnType<typeof listSecrets>>[number];

export async function deleteSecrets(db: Kysely<Database>, clientUuid: string, ids: string[]): Promise<void> {
  if (ids.length === 0) return;
  await db.deleteFrom('m2m_client_secrets').where('client_id', '=', clientUuid).where('id', 'in', ids).execute();
}

/** Sets `expires_at` to `at` on these secrets, never later than an expiry already set. */
export async function expireSecretsBy(db: Kysely<Database>, ids: string[], at: Date): Promise<void> {
  if (ids.length === 0) return;
  await db
    .updateTable('m2m_client_secrets')
    .set({ expires_at: sql<Date>`least(coalesce(expires_at, ${at}), ${at})` })
    .where('id', 'in', ids)
    .execute();
}

/**
 * Records a successful grant with a secret: its last_used_at and the
 * credential's. A secret from before rotation ('' hint) gets its hint now
 * (the plaintext was just verified), unless another secret of the
 * credential has that hint already (hints pick one candidate).
 */
export async function touchSecretUsed(db: Kysely<Database>, ids: { client: string; secret: string }, at: Date, hint: string): Promise<void> {
  await db
    .with('secret', (q) =>
      q
        .updateTable('m2m_client_secrets as s')
        .set({
          last_used_at: at,
          hint: sql<string>`case when s.hint = '' and not exists (select 1 from m2m_client_secrets o where o.client_id = s.client_id and o.hint = ${hint}) then ${hint} else s.hint end`,
        })
        .where('s.id', '=', ids.secret),
    )
    .updateTable('m2m_clients')
    .set({ last_used_at: at })
    .where('id', '=', ids.client)
    .execute();
}
