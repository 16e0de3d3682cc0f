import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { Database, NewM2MClientSecretRow } from '../../db/schema.js';
import { ApiError } from '../../errors.js';
import { type ClientSecretHasher, isLiveSecret, secretHint } from '../../lib/client-secret-hash.js';
import { type Clock, iso } from '../../lib/clock.js';
import { generateClientSecret } from '../../lib/secrets.js';
import { type Actor, insertAuditEntry } from '../audit/audit.repository.js';
import { deleteSecrets, expireSecretsBy, insertSecret, listSecrets, type SecretMetadataRow } from './client-secrets.repository.js';
import { type ClientSecretRecord, MAX_LIVE_SECRETS, type RotateSecretBody } from './client-secrets.schemas.js';
import { findClientById, findClientByIdForUpdate, touchClientUpdated } from './m2m-clients.repository.js';

export function toSecretRecord(row: SecretMetadataRow): ClientSecretRecord {
  return {
    id: row.id,
    created_at: row.created_at.toISOString(),
    last_used_at: iso(row.last_used_at),
    expires_at: iso(row.expires_at),
    hint: row.hint,
    hash_alg: row.hash_alg,
  };
}

/**
 * A new secret and the row that stores it, its hint distinct from `takenHints`
 * (the credential's other secrets), so a hint always names one secret.
 */
export async function newClientSecret(
  hasher: ClientSecretHasher,
  clientUuid: string,
  takenHints: string[],
  now: Date,
): Promise<{ plain: string; row: NewM2MClientSecretRow }> {
  let plain = generateClientSecret();
  // A 24-bit hint collides with another one of the credential's about once in 16 million rotations.
  while (takenHints.includes(secretHint(plain))) plain = generateClientSecret();
  const stored = await hasher.hash(plain);
  return { plain, row: { id: randomUUID(), client_id: clientUuid, ...stored, hint: secretHint(plain), created_at: now } };
}

const notFound = () => new ApiError('not_found', 'No credential with that id');
const revoked = () => new ApiError('conflict', 'The credential is revoked: its secrets can no longer change');

export interface ClientSecretsDeps {
  db: Kysely<Database>;
  /** Stores new secrets with CLIENT_SECRET_HASH. */
  hasher: ClientSecretHasher;
  clock: Clock;
  /** Told after a committed change, so this instance's caches drop the credential at once (others learn it through NOTIFY). */
  onChange?: (credential: { client_id: string }) => void;
}

/**
 * A credential's secrets: rotation without a new client_id. At most two are
 * live at once; a third is refused (`secret_limit`) until one is deleted or
 * expires. Every change bumps the credential's `updated_at` in the same
 * transaction and is audited (never the secret or its hash). Grants judge a
 * secret's liveness on every request, so no cache has to be told.
 */
export function createClientSecretsService({ db, hasher, clock, onChange }: ClientSecretsDeps) {
  return {
    /** Metadata of every secret, newest first; revoked credentials too. */
    async list(clientUuid: string): Promise<ClientSecretRecord[]> {
      if (!(await findClientById(db, clientUuid))) throw notFound();
      return (await listSecrets(db, clientUuid)).map(toSecretRecord);
    },

    /**
     * Adds a secret (shown once, in the answer); with `expire_previous_in`, the
     * other live secret expires that many seconds from now (never later than
     * an expiry it already has). Expired secrets are removed.
     */
    async rotate(clientUuid: string, body: RotateSecretBody, actor: Actor): Promise<{ secret: ClientSecretRecord; client_secret: string }> {
      // Cheap refusals first: no hash is made for an unknown or revoked credential.
      const found = await findClientById(db, clientUuid);
      if (!found) throw notFound();
      if (found.revoked_at !== null) throw revoked();
      // The slow hash is made before the transaction, so the row lock is held for milliseconds.
      const hints = (await listSecrets(db, clientUuid)).map((s) => s.hint);
      const now = new Date(clock());
      const secret = await newClientSecret(hasher, clientUuid, hints, now);
      const created = await db.transaction().execute(async (trx) => {
        // Locked: concurrent rotations of one credential take turns, so the limit holds.
        const client = await findClientByIdForUpdate(trx, clientUuid);
        if (!client) throw notFound();
        if (client.revoked_at !== null) throw revoked();
        const existing = await listSecrets(trx, clientUuid);
        const live = existing.filter((s) => isLiveSecret(s, now.getTime()));
        const expired = existing.filter((s) => !isLiveSecret(s, now.getTime()));
        if (live.length >= MAX_LIVE_SECRETS) {
          throw new ApiError(
            'secret_limit',
            `The credential has ${MAX_LIVE_SECRETS} live secrets already: delete one (or let it expire) before adding another`,
          );
        }
        // A concurrent rotation took this hint meanwhile (about one in 16 million): ask for a retry.
        if (existing.some((s) => s.hint === secret.row.hint)) throw new ApiError('conflict', 'A concurrent change; retry');
        await deleteSecrets(trx, clientUuid, expired.map((s) => s.id));
        const inserted = await insertSecret(trx, secret.row);
        const expireAt = body?.expire_previous_in === undefined ? undefined : new Date(now.getTime() + body.expire_previous_in * 1000);
        if (expireAt) await expireSecretsBy(trx, live.map((s) => s.id), expireAt);
        await touchClientUpdated(trx, clientUuid, now);
        await insertAuditEntry(trx, actor, {
          action: 'm2m_client.secret_add',
          targetType: 'm2m_client',
          targetId: clientUuid,
          details: {
            client_id: client.client_id,
            secret_id: inserted.id,
            hint: inserted.hint,
            hash_alg: inserted.hash_alg,
            previous: live.map((s) => ({ id: s.id, expires_at: expireAt && (!s.expires_at || s.expires_at > expireAt) ? expireAt.toISOString() : iso(s.expires_at) })),
            removed_expired: expired.map((s) => s.id),
          },
        });
        return { inserted, clientId: client.client_id };
      });
      onChange?.({ client_id: created.clientId });
      return { secret: toSecretRecord(created.inserted), client_secret: secret.plain };
    },

    /** Removes a secret at once; never the credential's last live one (`last_secret`). */
    async delete(clientUuid: string, secretId: string, actor: Actor): Promise<void> {
      const clientId = await db.transaction().execute(async (trx) => {
        const client = await findClientByIdForUpdate(trx, clientUuid);
        if (!client) throw notFound();
        if (client.revoked_at !== null) throw revoked();
        const existing = await listSecrets(trx, clientUuid);
        const target = existing.find((s) => s.id === secretId);
        if (!target) throw new ApiError('not_found', 'The credential has no secret with that id');
        const now = clock();
        const others = existing.filter((s) => s.id !== secretId && isLiveSecret(s, now));
        if (isLiveSecret(target, now) && others.length === 0) {
          throw new ApiError('last_secret', "This is the credential's only live secret: add a new one first (POST …/secrets), or revoke the credential");
        }
        // Nor the only one without an expiry: the others would run out and leave the credential with none.
        if (isLiveSecret(target, now) && target.expires_at === null && others.every((s) => s.expires_at !== null)) {
          const until = others.map((s) => iso(s.expires_at)).sort()[0];
          throw new ApiError('last_secret', `This is the credential's only secret without an expiry; the other expires at ${until}: add a new one first (POST …/secrets), or revoke the credential`);
        }
        await deleteSecrets(trx, clientUuid, [secretId]);
        await touchClientUpdated(trx, clientUuid, new Date(now));
        await insertAuditEntry(trx, actor, {
          action: 'm2m_client.secret_delete',
          targetType: 'm2m_client',
          targetId: clientUuid,
          details: { client_id: client.client_id, secret_id: secretId, hint: target.hint, last_used_at: iso(target.last_used_at) },
        });
        return client.client_id;
      });
      onChange?.({ client_id: clientId });
    },
  };
}

export type ClientSecretsService = ReturnType<typeof createClientSecretsService>;
