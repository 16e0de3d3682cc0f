import { type Expression, type Kysely, type RawBuilder, sql } from 'kysely';
import type { Database, PermissionRow } from '../../db/schema.js';
import { RESERVED_SERVICES, SERVER_NAMESPACE, SERVER_SCOPES } from './permissions.schemas.js';

/**
 * The one scope rule, in SQL, so that the token endpoint, credential records
 * and create/update checks can never disagree (docs/API.md, "Permission
 * catalogs"). A scope `ns:rest` is *defined* when:
 * - `ns` is `auth` (the server's namespace): it is `auth:catalog:<service>`
 *   for a service name that is not reserved, or one of {@link SERVER_SCOPES};
 * - otherwise: a catalog defines it as a code, or no catalog covers `ns`
 *   (no catalog is named `ns` and no code lives in `ns`): a namespace
 *   without a catalog keeps working exactly as before catalogs existed.
 * Each test is an index lookup; with no catalog at all they find nothing.
 */
export const CATALOG_SCOPE_PATTERN = '^auth:catalog:[a-z0-9][a-z0-9._-]{0,99}$';
const reservedCatalogScopes = RESERVED_SERVICES.map((s) => `auth:catalog:${s}`);

export function scopeIsDefined(scope: Expression<string> | RawBuilder<string>): RawBuilder<boolean> {
  const ns = sql`split_part(${scope}, ':', 1)`;
  return sql<boolean>`(case when ${ns} = ${sql.lit(SERVER_NAMESPACE)}
    then (${scope} ~ ${sql.lit(CATALOG_SCOPE_PATTERN)} and ${scope} not in (${sql.join(reservedCatalogScopes.map((s) => sql.lit(s)))}))
      or ${scope} in (${sql.join(Object.values(SERVER_SCOPES).map((s) => sql.lit(s)))})
    else exists (select 1 from permissions p where p.code = ${scope})
      or not (exists (select 1 from permissions p where p.namespace = ${ns})
        or exists (select 1 from permission_catalogs c where c.service = ${ns}))
    end)`;
}

const scopeVar = sql<string>`t.s`;

/** `scopes` (a text[] column or value) without the scopes the rule leaves undefined, in their order. */
export function usableScopes(scopes: Expression<string[]> | RawBuilder<string[]>): RawBuilder<string[]> {
  return sql<string[]>`array(select t.s from unnest(${scopes}) with ordinality as t(s, i) where ${scopeIsDefined(scopeVar)} order by t.i)`;
}

/** The scopes of `scopes` that no catalog defines any more: held, shown, never granted. */
export function orphanedScopes(scopes: Expression<string[]> | RawBuilder<string[]>): RawBuilder<string[]> {
  return sql<string[]>`array(select t.s from unnest(${scopes}) with ordinality as t(s, i) where not ${scopeIsDefined(scopeVar)} order by t.i)`;
}

/** Of `scopes`, those the rule does not define (for create and update). */
export async function findUndefinedScopes(db: Kysely<Database>, scopes: string[]): Promise<string[]> {
  if (scopes.length === 0) return [];
  const { rows } = await sql<{ s: string }>`select t.s from unnest(${scopes}::text[]) with ordinality as t(s, i) where not ${scopeIsDefined(scopeVar)} order by t.i`.execute(db);
  return rows.map((r) => r.s);
}

/** Advisory lock class of catalog registrations (the second key is the service's hash). */
const CATALOG_LOCK_CLASS = 14014;

/** Serialises registrations of one catalog until the transaction ends. */
export async function lockCatalog(trx: Kysely<Database>, service: string): Promise<void> {
  await sql`select pg_advisory_xact_lock(${sql.lit(CATALOG_LOCK_CLASS)}, hashtext(${service}))`.execute(trx);
}

/** The catalog's permissions, and any other catalog's permission with one of `codes`. */
export function findPermissionsOfOrWithCodes(db: Kysely<Database>, service: string, codes: string[]): Promise<PermissionRow[]> {
  return db
    .selectFrom('permissions')
    .selectAll()
    .where((eb) => eb.or([eb('service', '=', service), sql<boolean>`code = any(${codes}::text[])`]))
    .execute();
}

/** A permission row as written (its `namespace` is a generated column). */
export type PermissionWrite = Omit<PermissionRow, 'namespace'>;

/**
 * Inserts new permissions and updates changed ones, in one statement. A code
 * another catalog took meanwhile is neither inserted nor changed (the
 * primary key and the `where`): it is missing from the returned codes.
 */
export async function upsertPermissions(trx: Kysely<Database>, rows: PermissionWrite[]): Promise<string[]> {
  if (rows.length === 0) return [];
  const written = await trx
    .insertInto('permissions')
    .values(rows)
    .onConflict((oc) =>
      oc
        .column('code')
        .doUpdateSet((eb) => ({
          name: eb.ref('excluded.name'),
          description: eb.ref('excluded.description'),
          resource: eb.ref('excluded.resource'),
          action: eb.ref('excluded.action'),
          category: eb.ref('excluded.category'),
          updated_at: eb.ref('excluded.updated_at'),
        }))
        .where('permissions.service', '=', (eb) => eb.ref('excluded.service')),
    )
    .returning('code')
    .execute();
  return written.map((r) => r.code);
}

export async function deletePermissions(trx: Kysely<Database>, service: string, codes: string[]): Promise<void> {
  if (codes.length === 0) return;
  await trx.deleteFrom('permissions').where('service', '=', service).where(sql<boolean>`code = any(${codes}::text[])`).execute();
}

export async function upsertCatalog(trx: Kysely<Database>, service: string, at: Date, registeredBy: string): Promise<void> {
  await trx
    .insertInto('permission_catalogs')
    .values({ service, created_at: at, updated_at: at, registered_by: registeredBy })
    .onConflict((oc) => oc.column('service').doUpdateSet({ updated_at: at, registered_by: registeredBy }))
    .execute();
}

/** Credentials not revoked holding a scope in one of `namespaces`, with their orphaned scopes now. */
export function findOrphansInNamespaces(trx: Kysely<Database>, namespaces: string[]) {
  return trx
    .selectFrom('m2m_clients')
    .select(['id', 'client_id', orphanedScopes(sql.ref('scopes')).as('orphaned')])
    .where('revoked_at', 'is', null)
    .where(sql<boolean>`exists (select 1 from unnest(scopes) as u(s) where split_part(u.s, ':', 1) = any(${namespaces}::text[]))`)
    .orderBy('client_id')
    .execute();
}

/** What authorising a service's own registration needs, locked against a concurrent revoke or change. */
export function findClientForRegistration(trx: Kysely<Database>, clientId: string) {
  return trx
    .selectFrom('m2m_clients')
    .select((eb) => ['id', 'client_id', 'scopes', eb.and([eb('status', '=', 'active'), eb('revoked_at', 'is', null)]).$castTo<boolean>().as('usable')])
    .where('client_id', '=', clientId)
    .forShare()
    .executeTakeFirst();
}

export function listPermissions(db: Kysely<Database>, service?: string): Promise<PermissionRow[]> {
  let query = db.selectFrom('permissions').selectAll();
  if (service !== undefined) query = query.where('service', '=', service);
  return query.orderBy('service').orderBy('code').execute();
}

export function listCatalogs(db: Kysely<Database>) {
  return db
    .selectFrom('permission_catalogs as c')
    .select((eb) => [
      'c.service',
      'c.updated_at',
      'c.registered_by',
      eb.selectFrom('permissions as p').whereRef('p.service', '=', 'c.service').select((e) => e.fn.countAll<string>().as('n')).as('count'),
    ])
    .orderBy('c.service')
    .execute();
}

/**
 * Changes to `service`'s catalog made by the service itself within the last `windowSec` (database
 * time, as the audit trail's): how many, and when the oldest of them was made.
 */
export async function recentServiceRegistrations(db: Kysely<Database>, service: string, windowSec: number): Promise<{ count: number; oldest: Date | null }> {
  const row = await db
    .selectFrom('audit_log')
    .select([sql<string>`count(*)::text`.as('count'), sql<Date | null>`min(at)`.as('oldest')])
    .where('target_id', '=', service)
    .where('at', '>', sql<Date>`now() - make_interval(secs => ${windowSec})`)
    .where('target_type', '=', 'permission_catalog')
    .where('action', '=', 'permission_catalog.register')
    .where('actor', 'like', 'client:%')
    .executeTakeFirstOrThrow();
  return { count: Number(row.count), oldest: row.oldest === null ? null : new Date(row.oldest) };
}
