import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { isUniqueViolation } from '../../db/errors.js';
import type { Database, M2MClientUpdate } from '../../db/schema.js';
import { ApiError } from '../../errors.js';
import type { Clock } from '../../lib/clock.js';
import type { PasswordHasher } from '../../lib/password.js';
import { generateClientSecret } from '../../lib/secrets.js';
import { type Actor, insertAuditEntry } from '../audit/audit.repository.js';
import type { CreateClientBody, M2MClientRecord, UpdateClientBody } from './m2m-clients.schemas.js';
import {
  findClientByClientId,
  findClientById,
  insertClient,
  listActiveClients,
  type M2MClientRowWithOrphans,
  revokeClient,
  updateClient,
} from './m2m-clients.repository.js';

const iso = (d: Date | null) => (d === null ? null : d.toISOString());

/** Row → API record. The secret hash never leaves this module. */
export function toRecord(row: M2MClientRowWithOrphans): M2MClientRecord {
  return {
    id: row.id,
    client_id: row.client_id,
    name: row.name,
    description: row.description,
    scopes: row.scopes,
    allowed_audiences: row.allowed_audiences,
    status: row.status,
    created_at: row.created_at.toISOString(),
    updated_at: row.updated_at.toISOString(),
    last_used_at: iso(row.last_used_at),
    revoked_at: iso(row.revoked_at),
    created_by: row.created_by,
    orphaned_scopes: row.orphaned_scopes,
  };
}

export interface M2MClientsDeps {
  db: Kysely<Database>;
  hasher: PasswordHasher;
  clock: Clock;
  /**
   * Refuses scopes the permission catalogs do not define (`unknown_scope`);
   * checked on every create and on every update that sets scopes.
   */
  checkScopes: (scopes: string[]) => Promise<void>;
  /** Called after a credential changes (update, revoke) so caches drop it. */
  onChange?: (id: string) => void;
}

const duplicate = () => new ApiError('conflict', 'A credential with that client_id exists (client_ids are never reused, even after revocation)');
const notFound = () => new ApiError('not_found', 'No credential with that id');

/** The service-credential registry: create, read, change and revoke, each audited. */
export function createM2MClientsService({ db, hasher, clock, checkScopes, onChange }: M2MClientsDeps) {
  return {
    /** Creates a credential; returns its record and the secret, which is shown only this once. */
    async create(body: CreateClientBody, actor: Actor): Promise<{ client: M2MClientRecord; client_secret: string }> {
      // Cheap early answer for the common duplicate; the unique index settles races.
      if (await findClientByClientId(db, body.client_id)) throw duplicate();
      await checkScopes(body.scopes ?? []);
      const clientSecret = generateClientSecret();
      const hash = await hasher.hash(clientSecret);
      const now = new Date(clock());
      try {
        const row = await db.transaction().execute(async (trx) => {
          const inserted = await insertClient(trx, {
            id: randomUUID(),
            client_id: body.client_id,
            client_secret_hash: hash,
            name: body.name,
            description: body.description ?? null,
            scopes: body.scopes ?? [],
            allowed_audiences: body.allowed_audiences ?? [],
            status: 'active',
            created_at: now,
            updated_at: now,
            created_by: actor.id,
          });
          await insertAuditEntry(trx, actor, {
            action: 'm2m_client.create',
            targetType: 'm2m_client',
            targetId: inserted.id,
            details: { client_id: inserted.client_id, scopes: inserted.scopes },
          });
          return inserted;
        });
        return { client: toRecord(row), client_secret: clientSecret };
      } catch (err) {
        if (isUniqueViolation(err)) throw duplicate();
        throw err;
      }
    },

    async list(): Promise<M2MClientRecord[]> {
      return (await listActiveClients(db)).map(toRecord);
    },

    async get(id: string): Promise<M2MClientRecord> {
      const row = await findClientById(db, id);
      if (!row) throw notFound();
      return toRecord(row);
    },

    /** By the operator-chosen client_id (the CLI accepts either); revoked credentials included. */
    async getByClientId(clientId: string): Promise<M2MClientRecord> {
      const row = await findClientByClientId(db, clientId);
      if (!row) throw new ApiError('not_found', 'No credential with that client_id');
      return toRecord(row);
    },

    async update(id: string, body: UpdateClientBody, actor: Actor): Promise<M2MClientRecord> {
      const changes: M2MClientUpdate = { updated_at: new Date(clock()) };
      if (body.name !== undefined) changes.name = body.name;
      if (body.description !== undefined) changes.description = body.description;
      if (body.scopes !== undefined) changes.scopes = body.scopes;
      if (body.allowed_audiences !== undefined) changes.allowed_audiences = body.allowed_audiences;
      if (body.status !== undefined) changes.status = body.status;
      if (body.scopes !== undefined) await checkScopes(body.scopes);

      const row = await db.transaction().execute(async (trx) => {
        const updated = await updateClient(trx, id, changes);
        if (!updated) return undefined;
        await insertAuditEntry(trx, actor, { action: 'm2m_client.update', targetType: 'm2m_client', targetId: id, details: { changed: Object.keys(body) } });
        return updated;
      });
      if (!row) {
        const existing = await findClientById(db, id);
        throw existing ? new ApiError('conflict', 'The credential is revoked and can no longer be changed') : notFound();
      }
      onChange?.(id);
      return toRecord(row);
    },

    /** Soft-revokes; revoking a revoked credential succeeds and changes nothing. */
    async revoke(id: string, actor: Actor): Promise<void> {
      const revoked = await db.transaction().execute(async (trx) => {
        const row = await revokeClient(trx, id, new Date(clock()));
        if (row) await insertAuditEntry(trx, actor, { action: 'm2m_client.revoke', targetType: 'm2m_client', targetId: id, details: { client_id: row.client_id } });
        return row;
      });
      if (!revoked && !(await findClientById(db, id))) throw notFound();
      onChange?.(id);
    },
  };
}

export type M2MClientsService = ReturnType<typeof createM2MClientsService>;
