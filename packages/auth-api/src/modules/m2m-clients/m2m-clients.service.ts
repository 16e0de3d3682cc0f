import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import { isUniqueViolation } from '../../db/errors.js';
import type { Database, M2MClientRow, M2MClientUpdate } from '../../db/schema.js';
import { ApiError } from '../../errors.js';
import { type Clock, iso } from '../../lib/clock.js';
import type { ClientSecretHasher } from '../../lib/client-secret-hash.js';
import { type Actor, insertAuditEntry } from '../audit/audit.repository.js';
import { insertSecret } from './client-secrets.repository.js';
import { newClientSecret } from './client-secrets.service.js';
import { insertClientReenabled, insertClientRevocation } from '../revocations/revocations.repository.js';
import type { CreateClientBody, ListClientsQuery, M2MClientRecord, UpdateClientBody } from './m2m-clients.schemas.js';
import {
  findClientByClientId,
  findClientById,
  findClientByIdForUpdate,
  insertClient,
  listClients,
  type M2MClientRowWithOrphans,
  revokeClient,
  updateClient,
} from './m2m-clients.repository.js';

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
  /** Stores the first secret with CLIENT_SECRET_HASH. */
  secrets: ClientSecretHasher;
  clock: Clock;
  /**
   * Refuses scopes the permission catalogs do not define (`unknown_scope`);
   * checked on every create and on every update that sets scopes.
   */
  checkScopes: (scopes: string[]) => Promise<void>;
  /** Called after a credential changes (update, revoke) so caches drop it. */
  onChange?: (client: { id: string; client_id: string }) => void;
}

type Changeable = 'name' | 'description' | 'scopes' | 'allowed_audiences' | 'status';
const LIST_FIELDS = new Set<Changeable>(['scopes', 'allowed_audiences']);

/**
 * The update's audit details: each field sent, with its value before and
 * after, and for lists what was added and removed. `changed` names the
 * fields whose value actually changed.
 */
function updateDetails(before: M2MClientRow, after: M2MClientRow, body: UpdateClientBody) {
  const fields: Record<string, unknown> = {};
  const changed: string[] = [];
  for (const field of Object.keys(body) as Changeable[]) {
    const was = before[field];
    const now = after[field];
    if (LIST_FIELDS.has(field)) {
      const a = was as string[];
      const b = now as string[];
      const added = b.filter((v) => !a.includes(v));
      const removed = a.filter((v) => !b.includes(v));
      fields[field] = { before: a, after: b, added, removed };
      if (added.length > 0 || removed.length > 0 || a.length !== b.length) changed.push(field);
    } else {
      fields[field] = { before: was, after: now };
      if (was !== now) changed.push(field);
    }
  }
  return { client_id: after.client_id, changed, fields };
}

/** A page of the listing: `next_cursor` is null on the last page (and always without a limit). */
export interface ClientPage {
  clients: M2MClientRecord[];
  next_cursor: string | null;
}

const CURSOR_VERSION = 1;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Opaque to callers: base64url JSON naming the page's last record, so the format can change. */
const encodeCursor = (id: string) => Buffer.from(JSON.stringify({ v: CURSOR_VERSION, id })).toString('base64url');

function decodeCursor(cursor: string): string | undefined {
  try {
    const parsed: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
    if (typeof parsed !== 'object' || parsed === null) return undefined;
    const { v, id } = parsed as { v?: unknown; id?: unknown };
    return v === CURSOR_VERSION && typeof id === 'string' && UUID.test(id) ? id : undefined;
  } catch {
    return undefined;
  }
}

const badCursor = () =>
  new ApiError('validation_failed', 'The request is invalid', [{ path: 'querystring.cursor', message: 'is not a cursor this server issued' }]);

const duplicate = () => new ApiError('conflict', 'A credential with that client_id exists (client_ids are never reused, even after revocation)');
const notFound = () => new ApiError('not_found', 'No credential with that id');

/** The service-credential registry: create, read, change and revoke, each audited. */
export function createM2MClientsService({ db, secrets, clock, checkScopes, onChange }: M2MClientsDeps) {
  return {
    /** Creates a credential; returns its record and the secret, which is shown only this once. */
    async create(body: CreateClientBody, actor: Actor): Promise<{ client: M2MClientRecord; client_secret: string }> {
      // Cheap early answer for the common duplicate; the unique index settles races.
      if (await findClientByClientId(db, body.client_id)) throw duplicate();
      await checkScopes(body.scopes ?? []);
      const id = randomUUID();
      const now = new Date(clock());
      const secret = await newClientSecret(secrets, id, [], now);
      try {
        const row = await db.transaction().execute(async (trx) => {
          const inserted = await insertClient(trx, {
            id,
            client_id: body.client_id,
            name: body.name,
            description: body.description ?? null,
            scopes: body.scopes ?? [],
            allowed_audiences: body.allowed_audiences ?? [],
            status: 'active',
            created_at: now,
            updated_at: now,
            created_by: actor.id,
          });
          await insertSecret(trx, secret.row);
          await insertAuditEntry(trx, actor, {
            action: 'm2m_client.create',
            targetType: 'm2m_client',
            targetId: inserted.id,
            details: { client_id: inserted.client_id, scopes: inserted.scopes },
          });
          return inserted;
        });
        return { client: toRecord(row), client_secret: secret.plain };
      } catch (err) {
        if (isUniqueViolation(err)) throw duplicate();
        throw err;
      }
    },

    /**
     * Newest first; by default every credential not revoked. Filters combine
     * (AND). With `limit`, one page and a cursor to the next.
     */
    async list(query: ListClientsQuery = {}): Promise<ClientPage> {
      let afterId: string | undefined;
      if (query.cursor !== undefined) {
        afterId = decodeCursor(query.cursor);
        // Records are never deleted, so a cursor this server issued always names a row.
        if (afterId === undefined || !(await findClientById(db, afterId))) throw badCursor();
      }
      const rows = await listClients(db, {
        status: query.status,
        scope: query.scope,
        clientIdPrefix: query.client_id_prefix,
        includeRevoked: query.include_revoked ?? false,
        afterId,
        // One row more than asked tells whether another page exists.
        limit: query.limit === undefined ? undefined : query.limit + 1,
      });
      const more = query.limit !== undefined && rows.length > query.limit;
      const page = more ? rows.slice(0, query.limit) : rows;
      return { clients: page.map(toRecord), next_cursor: more ? encodeCursor(page.at(-1)!.id) : null };
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
        // The row as it was, locked until the change commits, so the audit entry's "before" is exact.
        const before = await findClientByIdForUpdate(trx, id);
        if (!before || before.revoked_at !== null) return undefined;
        const updated = await updateClient(trx, id, changes);
        if (!updated) return undefined;
        // Disabling reaches receiving services through the revocation feed: every token is refused while
        // disabled; enabling again accepts tokens issued from then on (the feed entry's not_before).
        if (before.status === 'active' && updated.status === 'disabled') await insertClientRevocation(trx, updated.client_id, clock);
        if (before.status === 'disabled' && updated.status === 'active') await insertClientReenabled(trx, updated.client_id, clock);
        await insertAuditEntry(trx, actor, { action: 'm2m_client.update', targetType: 'm2m_client', targetId: id, details: updateDetails(before, updated, body) });
        return updated;
      });
      if (!row) {
        const existing = await findClientById(db, id);
        throw existing ? new ApiError('conflict', 'The credential is revoked and can no longer be changed') : notFound();
      }
      onChange?.(row);
      return toRecord(row);
    },

    /** Soft-revokes; revoking a revoked credential succeeds and changes nothing. */
    async revoke(id: string, actor: Actor): Promise<void> {
      const revoked = await db.transaction().execute(async (trx) => {
        const row = await revokeClient(trx, id, new Date(clock()));
        if (row) await insertClientRevocation(trx, row.client_id, clock);
        if (row) await insertAuditEntry(trx, actor, { action: 'm2m_client.revoke', targetType: 'm2m_client', targetId: id, details: { client_id: row.client_id } });
        return row;
      });
      const client = revoked ?? (await findClientById(db, id));
      if (!client) throw notFound();
      onChange?.(client);
    },
  };
}

export type M2MClientsService = ReturnType<typeof createM2MClientsService>;
