import type { Kysely } from 'kysely';
import type { Database, NewAuditEntry } from '../../db/schema.js';

export type AuditAction =
  | 'login.success'
  | 'login.failure'
  | 'logout'
  | 'm2m_client.create'
  | 'm2m_client.update'
  | 'm2m_client.revoke'
  | 'm2m_client.secret_add'
  | 'm2m_client.secret_delete'
  | 'user.create'
  | 'signing_key.rotate'
  | 'signing_key.activate'
  | 'signing_key.retire'
  | 'user.disable'
  | 'user.enable'
  | 'user.password_change'
  | 'user.password_change_failure'
  | 'user.password_reset'
  | 'user.sessions_revoke'
  | 'permission_catalog.register'
  | 'm2m_client.scopes_orphaned';

/** Who did something and from where: the audit trail's subject. */
export interface Actor {
  id: string | null;
  /** Readable: the admin's email, or `cli`. */
  label: string;
  ip: string | null;
}

export interface AuditEvent {
  action: AuditAction;
  targetType?: 'm2m_client' | 'user' | 'signing_key' | 'permission_catalog';
  targetId?: string;
  details?: Record<string, unknown>;
}

export async function insertAuditEntry(db: Kysely<Database>, actor: Actor, event: AuditEvent): Promise<void> {
  const row: NewAuditEntry = {
    actor_id: actor.id,
    actor: actor.label,
    ip: actor.ip,
    action: event.action,
    target_type: event.targetType ?? null,
    target_id: event.targetId ?? null,
    details: event.details ? JSON.stringify(event.details) : null,
  };
  await db.insertInto('audit_log').values(row).execute();
}

export interface AuditFilter {
  /** The actor's label (an admin's email, `cli`, `server`), exact. */
  actor?: string | undefined;
  action?: string | undefined;
  targetType?: string | undefined;
  targetId?: string | undefined;
  since?: Date | undefined;
  until?: Date | undefined;
  /** Only entries older than this one (the id of the previous page's last entry). */
  beforeId?: string | undefined;
  limit: number;
}

/**
 * Audit entries matching `filter`, newest first. Ordered by `id` (a bigserial,
 * so insertion order): a page boundary is one id and pages never repeat or
 * skip an entry, even between entries of the same instant.
 */
export function findAuditEntries(db: Kysely<Database>, filter: AuditFilter) {
  let query = db.selectFrom('audit_log').selectAll();
  if (filter.actor !== undefined) query = query.where('actor', '=', filter.actor);
  if (filter.action !== undefined) query = query.where('action', '=', filter.action);
  if (filter.targetType !== undefined) query = query.where('target_type', '=', filter.targetType);
  if (filter.targetId !== undefined) query = query.where('target_id', '=', filter.targetId);
  if (filter.since !== undefined) query = query.where('at', '>=', filter.since);
  if (filter.until !== undefined) query = query.where('at', '<', filter.until);
  if (filter.beforeId !== undefined) query = query.where('id', '<', filter.beforeId);
  return query.orderBy('id', 'desc').limit(filter.limit).execute();
}
