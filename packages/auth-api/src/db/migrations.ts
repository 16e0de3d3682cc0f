import { type Kysely, type Migration, type MigrationProvider, Migrator, sql } from 'kysely';

/**
 * The schema, as kysely migrations. Kept in code (not read from a folder at
 * run time) so the built server and the tests run exactly the same list, on
 * PostgreSQL and on PGlite alike. Append; never edit a released migration.
 */
const migrations: Record<string, Migration> = {
  '2026-11-25-001-initial': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('users')
        .addColumn('id', 'uuid', (c) => c.primaryKey())
        .addColumn('email', 'text', (c) => c.notNull().unique())
        .addColumn('password_hash', 'text', (c) => c.notNull())
        .addColumn('roles', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'::text[]`))
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .execute();

      await db.schema
        .createTable('m2m_clients')
        .addColumn('id', 'uuid', (c) => c.primaryKey())
        // Unique across revoked rows too: a client_id is never reused.
        .addColumn('client_id', 'text', (c) => c.notNull().unique())
        .addColumn('client_secret_hash', 'text', (c) => c.notNull())
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('description', 'text')
        .addColumn('scopes', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'::text[]`))
        .addColumn('allowed_audiences', sql`text[]`, (c) => c.notNull().defaultTo(sql`'{}'::text[]`))
        .addColumn('status', 'text', (c) => c.notNull().defaultTo('active').check(sql`status in ('active', 'disabled')`))
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('last_used_at', 'timestamptz')
        .addColumn('revoked_at', 'timestamptz')
        .addColumn('created_by', 'uuid', (c) => c.references('users.id').onDelete('set null'))
        .execute();
      await db.schema.createIndex('m2m_clients_listing').on('m2m_clients').columns(['created_at desc']).where(sql.ref('revoked_at'), 'is', null).execute();

      await db.schema
        .createTable('audit_log')
        .addColumn('id', 'bigserial', (c) => c.primaryKey())
        .addColumn('at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('actor_id', 'uuid')
        .addColumn('actor', 'text', (c) => c.notNull())
        .addColumn('action', 'text', (c) => c.notNull())
        .addColumn('target_type', 'text')
        .addColumn('target_id', 'text')
        .addColumn('ip', 'text')
        .addColumn('details', 'jsonb')
        .execute();
      await db.schema.createIndex('audit_log_at').on('audit_log').column('at').execute();
    },
    async down(db: Kysely<any>) {
      await db.schema.dropTable('audit_log').execute();
      await db.schema.dropTable('m2m_clients').execute();
      await db.schema.dropTable('users').execute();
    },
  },
  '2026-11-26-011-admin-sessions': {
    // Admin sign-ins become server-side sessions: the bearer token is opaque and only its
    // SHA-256 is stored, so no signing key (JWT_ACCESS_SECRET included) can produce one.
    async up(db: Kysely<any>) {
      await db.schema.alterTable('users').addColumn('disabled_at', 'timestamptz').execute();
      await db.schema.alterTable('users').addColumn('session_epoch', 'integer', (c) => c.notNull().defaultTo(0)).execute();
      await db.schema
        .createTable('admin_sessions')
        .addColumn('id', 'uuid', (c) => c.primaryKey())
        .addColumn('token_hash', 'text', (c) => c.notNull().unique())
        .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id').onDelete('cascade'))
        .addColumn('created_at', 'timestamptz', (c) => c.notNull())
        .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
        .addColumn('last_seen_at', 'timestamptz')
        .addColumn('revoked_at', 'timestamptz')
        .addColumn('ip', 'text')
        .addColumn('user_agent', 'text')
        .execute();
      await db.schema.createIndex('admin_sessions_user').on('admin_sessions').column('user_id').execute();
    },
    async down(db: Kysely<any>) {
      await db.schema.dropTable('admin_sessions').execute();
      await db.schema.alterTable('users').dropColumn('session_epoch').execute();
      await db.schema.alterTable('users').dropColumn('disabled_at').execute();
    },
  },
  '2026-11-26-012-signing-keys': {
    async up(db: Kysely<any>) {
      // Asymmetric service-token keys. The private key is stored encrypted (AES-256-GCM under
      // KEY_ENCRYPTION_KEY, the kid as associated data) and erased when the key is retired.
      await db.schema
        .createTable('signing_keys')
        .addColumn('kid', 'text', (c) => c.primaryKey())
        .addColumn('alg', 'text', (c) => c.notNull().check(sql`alg in ('ES256', 'EdDSA')`))
        .addColumn('state', 'text', (c) => c.notNull().check(sql`state in ('next', 'current', 'retiring', 'retired')`))
        .addColumn('public_jwk', 'jsonb', (c) => c.notNull())
        .addColumn('private_key_enc', 'text')
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        // next: may start signing from this time (published at least the JWKS cache lifetime before).
        .addColumn('activates_at', 'timestamptz', (c) => c.notNull())
        .addColumn('activated_at', 'timestamptz')
        // retiring: published until this time (every token it signed has expired by then).
        .addColumn('retire_at', 'timestamptz')
        .addColumn('retired_at', 'timestamptz')
        .execute();
      // At most one key signs and at most one waits to: the database holds the invariant, whatever the callers do.
      await sql`create unique index signing_keys_one_current on signing_keys (state) where state = 'current'`.execute(db);
      await sql`create unique index signing_keys_one_next on signing_keys (state) where state = 'next'`.execute(db);
    },
    async down(db: Kysely<any>) {
      await db.schema.dropTable('signing_keys').execute();
    },
  },
  '2026-11-26-013-auth-events': {
    // Client authentication at the token endpoint, aggregated per minute, client_id (as sent,
    // bounded), address and outcome: what an investigation needs, at bounded growth.
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('auth_events')
        .addColumn('minute', 'timestamptz', (c) => c.notNull())
        .addColumn('client_id', 'text', (c) => c.notNull())
        .addColumn('address', 'text', (c) => c.notNull())
        .addColumn('outcome', 'text', (c) => c.notNull())
        .addColumn('count', 'integer', (c) => c.notNull())
        .addPrimaryKeyConstraint('auth_events_pkey', ['minute', 'client_id', 'address', 'outcome'])
        .execute();
      await db.schema.createIndex('auth_events_client').on('auth_events').columns(['client_id', 'minute desc']).execute();
      await db.schema.createIndex('auth_events_address').on('auth_events').columns(['address', 'minute desc']).execute();
    },
    async down(db: Kysely<any>) {
      await db.schema.dropTable('auth_events').execute();
    },
  },
  '2026-11-26-014-permissions': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('permission_catalogs')
        .addColumn('service', 'text', (c) => c.primaryKey())
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('registered_by', 'text', (c) => c.notNull())
        .execute();
      await db.schema
        .createTable('permissions')
        // The primary key makes a code owned by one catalog, also when two registrations race.
        .addColumn('code', 'text', (c) => c.primaryKey())
        .addColumn('namespace', 'text', (c) => c.notNull().generatedAlwaysAs(sql`split_part(code, ':', 1)`).stored())
        .addColumn('service', 'text', (c) => c.notNull().references('permission_catalogs.service').onDelete('cascade'))
        .addColumn('name', 'text', (c) => c.notNull())
        .addColumn('description', 'text')
        .addColumn('resource', 'text')
        .addColumn('action', 'text')
        .addColumn('category', 'text')
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .execute();
      await db.schema.createIndex('permissions_service').on('permissions').column('service').execute();
      // The grant path asks "does any catalog define a code in this namespace?" per scope.
      await db.schema.createIndex('permissions_namespace').on('permissions').column('namespace').execute();
    },
    async down(db: Kysely<any>) {
      await db.schema.dropTable('permissions').execute();
      await db.schema.dropTable('permission_catalogs').execute();
    },
  },
  '2026-11-26-015-client-secrets': {
    // A credential holds up to two live secrets (rotation without a new client_id). The secrets move
    // here from m2m_clients.client_secret_hash, which is dropped: one source of truth.
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('m2m_client_secrets')
        .addColumn('id', 'uuid', (c) => c.primaryKey())
        .addColumn('client_id', 'uuid', (c) => c.notNull().references('m2m_clients.id').onDelete('cascade'))
        .addColumn('secret_hash', 'text', (c) => c.notNull())
        .addColumn('hash_alg', 'text', (c) => c.notNull().check(sql`hash_alg in ('bcrypt', 'hmac-sha256')`))
        // A short non-secret tag of the secret (lib/client-secret-hash.ts); '' when unknown (secrets
        // from before this migration: filled in at their first successful grant).
        .addColumn('hint', 'text', (c) => c.notNull())
        .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('expires_at', 'timestamptz')
        .addColumn('last_used_at', 'timestamptz')
        .execute();
      await db.schema.createIndex('m2m_client_secrets_client').on('m2m_client_secrets').column('client_id').execute();
      await sql`
        insert into m2m_client_secrets (id, client_id, secret_hash, hash_alg, hint, created_at, last_used_at)
        select gen_random_uuid(), id, client_secret_hash, 'bcrypt', '', created_at, last_used_at from m2m_clients
      `.execute(db);
      await db.schema.alterTable('m2m_clients').dropColumn('client_secret_hash').execute();
    },
    async down(db: Kysely<any>) {
      await db.schema.alterTable('m2m_clients').addColumn('client_secret_hash', 'text').execute();
      // The newest secret of each credential goes back (the only one the old schema can hold).
      await sql`
        update m2m_clients c set client_secret_hash = (
          select s.secret_hash from m2m_client_secrets s where s.client_id = c.id and s.hash_alg = 'bcrypt' order by s.created_at desc limit 1
        )
      `.execute(db);
      await sql`update m2m_clients set client_secret_hash = '!' where client_secret_hash is null`.execute(db);
      await db.schema.alterTable('m2m_clients').alterColumn('client_secret_hash', (c) => c.setNotNull()).execute();
      await db.schema.dropTable('m2m_client_secrets').execute();
    },
  },
  '2026-11-26-016-revocations': {
    async up(db: Kysely<any>) {
      // The revocation feed (GET /oauth/revocations): one entry per credential revoked or disabled (kind
      // 'client': every token of client_id is refused while not_before is null; once enabled again, tokens
      // issued before not_before) and single tokens revoked by jti (kind 'token', until expires_at). seq is
      // the feed's cursor; writers lock the table so seq order is commit order; a changed entry gets a new seq.
      await db.schema
        .createTable('revocations')
        .addColumn('seq', 'bigserial', (c) => c.primaryKey())
        .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('client', 'token')`))
        .addColumn('client_id', 'text', (c) => c.notNull())
        .addColumn('jti', 'text')
        .addColumn('expires_at', 'timestamptz')
        .addColumn('revoked_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
        .addColumn('not_before', 'timestamptz')
        .addCheckConstraint('revocations_token_shape', sql`kind = 'client' or (jti is not null and expires_at is not null)`)
        .execute();
      // One entry per revoked token; introspection and the feed's reader check look jtis up.
      await db.schema.createIndex('revocations_jti').on('revocations').column('jti').unique().where(sql.ref('kind'), '=', 'token').execute();
      // One entry per credential; introspection looks it up.
      await db.schema.createIndex('revocations_client').on('revocations').column('client_id').unique().where(sql.ref('kind'), '=', 'client').execute();
      // The per-credential cap on token entries counts them.
      await db.schema.createIndex('revocations_token_client').on('revocations').column('client_id').where(sql.ref('kind'), '=', 'token').execute();
    },
    async down(db: Kysely<any>) {
      await db.schema.dropTable('revocations').execute();
    },
  },
  '2026-11-26-017-cluster-state': {
    // State several instances on one PostgreSQL share (docs/OPERATIONS.md, "Running several instances").
    async up(db: Kysely<any>) {
      // Failed-authentication counters (lib/attempt-store-pg.ts). Unlogged: a crash empties it, which
      // resets open windows at worst, and nothing is written to the WAL on the grant path.
      await sql`create unlogged table auth_attempts (
        key text primary key,
        store text not null,
        grp text,
        count integer not null,
        window_ends timestamptz not null
      )`.execute(db);
      await sql`create index auth_attempts_window_ends on auth_attempts (store, window_ends)`.execute(db);
      await sql`create index auth_attempts_group on auth_attempts (store, grp)`.execute(db);
      // Every change to a credential, from any process, tells every listening instance which one
      // changed (db/change-feed.ts): payload {"id", "client_id"}. A last_used_at stamp alone is no change.
      await sql`create function auth_notify_credential_change() returns trigger language plpgsql as $$
        begin
          if tg_op = 'UPDATE' and (to_jsonb(new) - 'last_used_at') = (to_jsonb(old) - 'last_used_at') then
            return null;
          end if;
          if tg_op <> 'INSERT' then
            perform pg_notify('auth_credential_changes', json_build_object('id', old.id, 'client_id', old.client_id)::text);
          end if;
          if tg_op = 'INSERT' or (tg_op = 'UPDATE' and new.client_id is distinct from old.client_id) then
            perform pg_notify('auth_credential_changes', json_build_object('id', new.id, 'client_id', new.client_id)::text);
          end if;
          return null;
        end
      $$`.execute(db);
      await sql`create trigger m2m_clients_notify after insert or update or delete on m2m_clients
        for each row execute function auth_notify_credential_change()`.execute(db);
      // A catalog change can change the scopes any credential is granted: payload "*" (forget them all).
      await sql`create function auth_notify_catalog_change() returns trigger language plpgsql as $$
        begin
          perform pg_notify('auth_credential_changes', '*');
          return null;
        end
      $$`.execute(db);
      for (const table of ['permissions', 'permission_catalogs']) {
        await sql`create trigger ${sql.id(`${table}_notify`)} after insert or update or delete or truncate on ${sql.id(table)}
          for each statement execute function auth_notify_catalog_change()`.execute(db);
      }
    },
    async down(db: Kysely<any>) {
      await sql`drop trigger if exists permissions_notify on permissions`.execute(db);
      await sql`drop trigger if exists permission_catalogs_notify on permission_catalogs`.execute(db);
      await sql`drop trigger if exists m2m_clients_notify on m2m_clients`.execute(db);
      await sql`drop function if exists auth_notify_catalog_change()`.execute(db);
      await sql`drop function if exists auth_notify_credential_change()`.execute(db);
      await db.schema.dropTable('auth_attempts').execute();
    },
  },
  '2026-11-26-018-attack2': {
    async up(db: Kysely<any>) {
      // The audit trail by target, newest last: the limit on a service's changes to its own catalog counts
      // its recent registrations here (and the audit listing's `target` filter reads it).
      await db.schema.createIndex('audit_log_target').on('audit_log').columns(['target_id', 'at']).execute();
    },
    async down(db: Kysely<any>) {
      await db.schema.dropIndex('audit_log_target').execute();
    },
  },
  '2026-11-26-019-attack5': {
    // What 017's row trigger on m2m_clients misses: a secret changed straight in m2m_client_secrets
    // (an operator expiring, replacing or deleting a leaked secret by hand), and TRUNCATE (no row
    // triggers fire). Without these, every instance kept granting from its cached credential state
    // until that entry's maxAgeMs (60 s) instead of the 1 s bound.
    async up(db: Kysely<any>) {
      // Same payload as the m2m_clients trigger, so the server's own changes (which also write the
      // credential's row in the same transaction) send one notification, not two: PostgreSQL folds
      // identical notifications of one transaction. A last_used_at stamp alone is no change; a row
      // deleted with its credential is told by the credential's own trigger.
      await sql`create function auth_notify_secret_change() returns trigger language plpgsql as $$
        declare
          credential record;
        begin
          if tg_op = 'UPDATE' and (to_jsonb(new) - 'last_used_at') = (to_jsonb(old) - 'last_used_at') then
            return null;
          end if;
          for credential in select c.id, c.client_id from m2m_clients c
            where c.id = case when tg_op = 'INSERT' then new.client_id else old.client_id end
              or (tg_op = 'UPDATE' and c.id = new.client_id) loop
            perform pg_notify('auth_credential_changes', json_build_object('id', credential.id, 'client_id', credential.client_id)::text);
          end loop;
          return null;
        end
      $$`.execute(db);
      await sql`create trigger m2m_client_secrets_notify after insert or update or delete on m2m_client_secrets
        for each row execute function auth_notify_secret_change()`.execute(db);
      // TRUNCATE fires statement triggers only: forget every credential (017's catalog function sends "*").
      for (const table of ['m2m_clients', 'm2m_client_secrets']) {
        await sql`create trigger ${sql.id(`${table}_truncate_notify`)} after truncate on ${sql.id(table)}
          for each statement execute function auth_notify_catalog_change()`.execute(db);
      }
    },
    async down(db: Kysely<any>) {
      await sql`drop trigger if exists m2m_client_secrets_truncate_notify on m2m_client_secrets`.execute(db);
      await sql`drop trigger if exists m2m_clients_truncate_notify on m2m_clients`.execute(db);
      await sql`drop trigger if exists m2m_client_secrets_notify on m2m_client_secrets`.execute(db);
      await sql`drop function if exists auth_notify_secret_change()`.execute(db);
    },
  },
};

const provider: MigrationProvider = { getMigrations: async () => migrations };

/** Applies every pending migration; throws with the failing migration's name. */
export async function migrateToLatest(db: Kysely<any>): Promise<string[]> {
  const migrator = new Migrator({ db, provider });
  const { error, results = [] } = await migrator.migrateToLatest();
  if (error) {
    const failed = results.find((r) => r.status === 'Error')?.migrationName;
    // No failed migration: it broke before running one (reading or locking kysely's migration tables).
    throw new Error(failed ? `migration ${failed} failed` : 'could not read or lock the migration tables', { cause: error });
  }
  return results.filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

/** Applies the migrations up to and including `name` (tests of a migration's data step). */
export async function migrateTo(db: Kysely<any>, name: string): Promise<void> {
  const { error } = await new Migrator({ db, provider }).migrateTo(name);
  if (error) throw new Error(`migration to ${name} failed`, { cause: error });
}
