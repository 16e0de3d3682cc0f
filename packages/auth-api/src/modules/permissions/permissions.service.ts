import { type Kysely, sql } from 'kysely';
import type { Database, PermissionRow } from '../../db/schema.js';
import { ApiError, type ErrorDetail } from '../../errors.js';
import { type Clock, iso } from '../../lib/clock.js';
import { type Actor, insertAuditEntry } from '../audit/audit.repository.js';
import {
  deletePermissions,
  findClientForRegistration,
  findOrphansInNamespaces,
  findPermissionsOfOrWithCodes,
  findUndefinedScopes,
  listCatalogs,
  listPermissions,
  lockCatalog,
  recentServiceRegistrations,
  type PermissionWrite,
  upsertCatalog,
  upsertPermissions,
} from './permissions.repository.js';
import { type CatalogSummary, type PermissionInput, type PermissionRecord, type RegisterBody, type RegisterResult, SERVER_NAMESPACE, SERVER_SCOPES } from './permissions.schemas.js';

/** The scope that lets a credential register the catalog `service` with its own service token. */
export const catalogScope = (service: string) => `${SERVER_NAMESPACE}:catalog:${service}`;

/**
 * Who registers a catalog. An admin (HTTP or CLI) may register any catalog
 * that is not reserved. A service registers with its own service token: the
 * token must carry `auth:catalog:<service>`, and its credential must still
 * be active and hold that scope when the registration runs.
 */
export type CatalogWriter =
  | { kind: 'admin'; actor: Actor }
  | { kind: 'service'; clientId: string; tokenScopes: readonly string[]; ip: string | null };

export interface PermissionsDeps {
  db: Kysely<Database>;
  clock: Clock;
  /**
   * Told after a committed registration that changed the catalog (not an idempotent one): it can
   * change any credential's granted scopes, those it orphaned included, so caches drop them all.
   */
  onCatalogChange?: () => void;
}

const namespaceOf = (scope: string) => scope.slice(0, scope.indexOf(':'));

function toRecord(row: PermissionRow): PermissionRecord {
  return {
    code: row.code,
    service: row.service,
    name: row.name,
    description: row.description,
    resource: row.resource,
    action: row.action,
    category: row.category,
    created_at: iso(row.created_at),
    updated_at: iso(row.updated_at),
  };
}

const fieldsOf = (p: PermissionInput) => ({
  name: p.name,
  description: p.description ?? null,
  resource: p.resource ?? null,
  action: p.action ?? null,
  category: p.category ?? null,
});

const differs = (row: PermissionRow, p: ReturnType<typeof fieldsOf>) =>
  row.name !== p.name || row.description !== p.description || row.resource !== p.resource || row.action !== p.action || row.category !== p.category;

function ownedElsewhere(owners: { code: string; service: string }[], body: RegisterBody): ApiError {
  const index = new Map(body.permissions.map((p, i) => [p.code, i]));
  const details: ErrorDetail[] = owners.map((o) => ({ path: `body.permissions.${index.get(o.code)}.code`, message: `"${o.code}" is owned by the catalog "${o.service}"` }));
  const list = owners.map((o) => `${o.code} (owned by ${o.service})`).join(', ');
  return new ApiError('conflict', `A permission code belongs to one catalog: ${list}`, details);
}

/**
 * Changes a service may make to its own catalog per hour (a deploy makes one; an admin is not
 * limited). Each rewrites up to 2000 rows and audits every code it touched (up to ~400 KB): without
 * a bound, one credential alternating two manifests grows the database by hundreds of MB a minute.
 */
export const SERVICE_CATALOG_CHANGES_PER_HOUR = 20;
const CHANGE_WINDOW_SEC = 3600;

/** Under the catalog lock, so racing registrations of one catalog are counted one after the other. */
async function assertServiceMayChange(trx: Kysely<Database>, service: string): Promise<void> {
  const { count, oldest } = await recentServiceRegistrations(trx, service, CHANGE_WINDOW_SEC);
  if (count < SERVICE_CATALOG_CHANGES_PER_HOUR) return;
  const { now } = await trx.selectNoFrom(sql<Date>`now()`.as('now')).executeTakeFirstOrThrow();
  const retryAfterSec = Math.max(1, Math.ceil((new Date(oldest!).getTime() + CHANGE_WINDOW_SEC * 1000 - new Date(now).getTime()) / 1000));
  throw new ApiError('rate_limited', `The catalog "${service}" was changed ${count} times by its service within the last hour (at most ${SERVICE_CATALOG_CHANGES_PER_HOUR}); retry later`, undefined, { retryAfterSec });
}

/** Serialisation failures and deadlocks between racing registrations: the client may retry. */
const isRetryableConflict = (err: unknown) => ['40001', '40P01'].includes((err as { code?: string } | null)?.code ?? '');

/** Permission catalogs: registration (a reconcile), listings, and the scope check of credentials. */
export function createPermissionsService({ db, clock, onCatalogChange }: PermissionsDeps) {
  /** The service's right to write its own catalog, checked against the database inside the registration. */
  async function authorizeService(trx: Kysely<Database>, writer: Extract<CatalogWriter, { kind: 'service' }>, service: string): Promise<Actor> {
    const row = await findClientForRegistration(trx, writer.clientId);
    if (!row?.usable) throw new ApiError('unauthorized', 'The token is invalid or expired');
    if (!row.scopes.includes(catalogScope(service))) {
      throw new ApiError('forbidden', `The credential no longer holds ${catalogScope(service)}`);
    }
    return { id: null, label: `client:${row.client_id}`, ip: writer.ip };
  }

  /** Checks what needs no database: which catalog a service token may write, and in which namespace. */
  function checkServiceWriter(writer: CatalogWriter, body: RegisterBody): void {
    if (writer.kind !== 'service') return;
    if (!writer.tokenScopes.includes(catalogScope(body.service))) {
      throw new ApiError('forbidden', `This token may not register the catalog "${body.service}": it needs the scope ${catalogScope(body.service)}`);
    }
    const foreign = body.permissions.map((p, i) => ({ p, i })).filter(({ p }) => namespaceOf(p.code) !== body.service);
    if (foreign.length > 0) {
      throw new ApiError(
        'forbidden',
        `A service registering its own catalog declares codes in its own namespace only ("${body.service}:…")`,
        foreign.map(({ p, i }) => ({ path: `body.permissions.${i}.code`, message: `"${p.code}" is outside the namespace "${body.service}"` })),
      );
    }
  }

  async function reconcile(body: RegisterBody, writer: CatalogWriter): Promise<RegisterResult> {
    const { service } = body;
    const now = new Date(clock());
    return db.transaction().execute(async (trx) => {
      // One registration of a catalog at a time: a racing one waits and then sees this one's result.
      await lockCatalog(trx, service);
      const actor = writer.kind === 'admin' ? writer.actor : await authorizeService(trx, writer, service);

      const codes = body.permissions.map((p) => p.code);
      const existing = await findPermissionsOfOrWithCodes(trx, service, codes);
      const foreign = existing.filter((r) => r.service !== service);
      if (foreign.length > 0) throw ownedElsewhere(foreign, body);

      const own = new Map(existing.map((r) => [r.code, r]));
      const writes: PermissionWrite[] = [];
      for (const p of body.permissions) {
        const fields = fieldsOf(p);
        const row = own.get(p.code);
        if (!row || differs(row, fields)) writes.push({ code: p.code, service, ...fields, created_at: row?.created_at ?? now, updated_at: now });
      }
      const declared = new Set(codes);
      const pruned = [...own.keys()].filter((c) => !declared.has(c)).sort();
      // Idempotent: the same manifest again writes nothing, not even the audit trail.
      if (writes.length === 0 && pruned.length === 0) return { service, upserted_count: 0, pruned_codes: [] };
      if (writer.kind === 'service') await assertServiceMayChange(trx, service);

      // Only scopes in these namespaces can change from defined to orphaned (or back).
      const namespaces = [...new Set([service, ...writes.map((w) => namespaceOf(w.code)), ...pruned.map(namespaceOf)])];
      const before = new Map((await findOrphansInNamespaces(trx, namespaces)).map((r) => [r.id, new Set(r.orphaned)]));

      await upsertCatalog(trx, service, now, actor.label);
      // Sorted: two registrations inserting overlapping codes take row locks in the same order (no deadlock).
      writes.sort((a, b) => (a.code < b.code ? -1 : 1));
      const written = new Set(await upsertPermissions(trx, writes));
      if (written.size !== writes.length) {
        // Another catalog claimed a new code after our read: it owns it now.
        const missing = writes.filter((w) => !written.has(w.code)).map((w) => w.code);
        throw ownedElsewhere((await findPermissionsOfOrWithCodes(trx, service, missing)).filter((r) => r.service !== service), body);
      }
      await deletePermissions(trx, service, pruned);

      const affected = (await findOrphansInNamespaces(trx, namespaces))
        .map((r) => ({ id: r.id, client_id: r.client_id, orphaned_scopes: r.orphaned.filter((s) => !before.get(r.id)?.has(s)) }))
        .filter((r) => r.orphaned_scopes.length > 0);
      await insertAuditEntry(trx, actor, {
        action: 'permission_catalog.register',
        targetType: 'permission_catalog',
        targetId: service,
        details: { service, upserted: writes.map((w) => w.code), pruned_codes: pruned, affected_credentials: affected },
      });
      for (const credential of affected) {
        await insertAuditEntry(trx, actor, {
          action: 'm2m_client.scopes_orphaned',
          targetType: 'm2m_client',
          targetId: credential.id,
          details: { client_id: credential.client_id, service, orphaned_scopes: credential.orphaned_scopes },
        });
      }
      return { service, upserted_count: writes.length, pruned_codes: pruned };
    });
  }

  return {
    /**
     * Reconciles a catalog with a manifest: inserts and updates what is
     * declared, prunes what is not, in one transaction under a per-catalog
     * lock. Idempotent. Credentials whose scopes the change orphaned are
     * audited, and stop being granted those scopes at once.
     */
    async register(body: RegisterBody, writer: CatalogWriter): Promise<RegisterResult> {
      checkServiceWriter(writer, body);
      try {
        const result = await reconcile(body, writer);
        // The same manifest again (every service at each boot) wrote nothing: caches stay.
        if (result.upserted_count > 0 || result.pruned_codes.length > 0) onCatalogChange?.();
        return result;
      } catch (err) {
        if (isRetryableConflict(err)) throw new ApiError('conflict', 'A concurrent registration claimed the same codes; retry', undefined, { cause: err });
        throw err;
      }
    },

    async list(service?: string): Promise<PermissionRecord[]> {
      return (await listPermissions(db, service)).map(toRecord);
    },

    async services(): Promise<CatalogSummary[]> {
      return (await listCatalogs(db)).map((c) => ({ service: c.service, count: Number(c.count ?? 0), updated_at: iso(c.updated_at), registered_by: c.registered_by }));
    },

    /**
     * Refuses scopes the catalogs do not define (400 `unknown_scope`, one
     * detail per scope). A namespace without a catalog accepts any scope.
     */
    async assertScopesDefined(scopes: string[]): Promise<void> {
      const unknown = await findUndefinedScopes(db, scopes);
      if (unknown.length === 0) return;
      throw new ApiError(
        'unknown_scope',
        `No permission catalog defines: ${unknown.join(' ')}`,
        unknown.map((s) => ({
          path: `body.scopes.${scopes.indexOf(s)}`,
          message:
            namespaceOf(s) === SERVER_NAMESPACE
              ? `"${s}" is not a server scope: the "${SERVER_NAMESPACE}:" namespace holds only ${SERVER_NAMESPACE}:catalog:<service>, ${Object.values(SERVER_SCOPES).join(', ')}`
              : `"${s}" is not in the catalogs: the namespace "${namespaceOf(s)}" has a catalog, which does not define it`,
        })),
      );
    },
  };
}

export type PermissionsService = ReturnType<typeof createPermissionsService>;
