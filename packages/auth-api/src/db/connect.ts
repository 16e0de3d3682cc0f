import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { Kysely, PostgresDialect, type PostgresPool } from 'kysely';
import pg from 'pg';
import { type ChangeFeed, type ChangeFeedHandlers, openPgliteChangeFeed, openPostgresChangeFeed } from './change-feed.js';
import { lockDataDir } from './data-dir-lock.js';
import { DatabaseOpenError } from './errors.js';
import type { Database } from './schema.js';

export interface DatabaseHandle {
  db: Kysely<Database>;
  /** `postgres` (DATABASE_URL) or `pglite` (embedded, on disk or in memory). */
  kind: 'postgres' | 'pglite';
  /**
   * Subscribes to a NOTIFY channel (cross-instance invalidation): on PostgreSQL a
   * dedicated connection with reconnects and a heartbeat lease, on PGlite its own
   * `listen`. Close the feed before the database.
   */
  openChangeFeed?(channel: string, handlers: ChangeFeedHandlers): ChangeFeed;
  close(): Promise<void>;
}

export interface ConnectOptions {
  /** postgres:// URL; when unset, the embedded PGlite database is used. */
  databaseUrl?: string | undefined;
  /** PGlite data folder; `memory://` for a throwaway in-memory database. */
  dataDir?: string;
  /** pg pool size. */
  poolSize?: number;
}

/**
 * Opens the database: PostgreSQL through pg when a URL is given, otherwise
 * PGlite (PostgreSQL compiled to WASM) so a fresh machine needs nothing else.
 * Both run the same migrations and queries.
 */
export async function connectDatabase(options: ConnectOptions): Promise<DatabaseHandle> {
  if (options.databaseUrl) {
    const pool = new pg.Pool({
      connectionString: options.databaseUrl,
      max: options.poolSize ?? 10,
      connectionTimeoutMillis: 5_000,
      // Fail a request fast instead of hanging when the database is gone.
      query_timeout: 10_000,
    });
    // An idle client losing its connection (database restart) must not crash the process.
    pool.on('error', () => {});
    // One connection now, so an unreachable database is reported as that, and where, before anything else runs.
    try {
      (await pool.connect()).release();
    } catch (err) {
      await pool.end().catch(() => {});
      throw new DatabaseOpenError(
        'unreachable',
        `Could not reach the database at ${describeDatabaseUrl(options.databaseUrl)}: ${connectFailure(err)}. Is PostgreSQL running there, and is DATABASE_URL right?`,
        { cause: err },
      );
    }
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool: withPreparedStatements(pool) }) });
    const connectionString = options.databaseUrl;
    return {
      db,
      kind: 'postgres',
      openChangeFeed: (channel, handlers) => openPostgresChangeFeed({ connectionString, channel, handlers }),
      close: () => db.destroy(),
    };
  }

  const [{ PGlite }, { PGliteDialect }] = await Promise.all([import('@electric-sql/pglite'), import('kysely-pglite-dialect')]);
  const dataDir = options.dataDir ?? './.data';
  if (dataDir.startsWith('memory://')) {
    const pglite = await PGlite.create(dataDir);
    const db = new Kysely<Database>({ dialect: new PGliteDialect(pglite) });
    return { db, kind: 'pglite', openChangeFeed: (channel, handlers) => openPgliteChangeFeed(pglite, channel, handlers), close: () => db.destroy() };
  }
  const location = resolve(dataDir, 'pglite');
  mkdirSync(location, { recursive: true, mode: 0o700 });
  // Before PGlite touches its files: a second process is refused here, before any migration.
  const unlock = lockDataDir(dataDir);
  try {
    const pglite = await PGlite.create(location);
    const db = new Kysely<Database>({ dialect: new PGliteDialect(pglite) });
    return {
      db,
      kind: 'pglite',
      openChangeFeed: (channel, handlers) => openPgliteChangeFeed(pglite, channel, handlers),
      close: async () => {
        try {
          await db.destroy();
        } finally {
          unlock();
        }
      },
    };
  } catch (err) {
    unlock();
    throw err;
  }
}

/** `postgres://user@host:port/db`: the URL without its password or query (which may hold one). */
export function describeDatabaseUrl(databaseUrl: string): string {
  try {
    const url = new URL(databaseUrl);
    const user = url.username ? `${url.username}@` : '';
    return `${url.protocol}//${user}${url.host}${url.pathname}`;
  } catch {
    return 'DATABASE_URL (not a parsable URL)';
  }
}

/** Why a connection failed, in a few words: a Node error code, or PostgreSQL's own message (never a password). */
function connectFailure(err: unknown): string {
  const errors = err instanceof AggregateError && err.errors.length > 0 ? err.errors : [err];
  const first = errors[0] as { code?: unknown; message?: unknown } | undefined;
  const code = typeof first?.code === 'string' ? first.code : undefined;
  const message = typeof first?.message === 'string' ? first.message : '';
  if (code && /^E[A-Z]+$/.test(code)) return code === 'ECONNREFUSED' ? 'connection refused (ECONNREFUSED)' : code;
  if (/timeout/i.test(message)) return 'no answer in time (connection timeout)';
  return message || 'connection failed';
}

/**
 * Every parameterised query kysely sends runs as a named prepared statement
 * (named by a hash of its SQL): each pooled connection parses and plans a
 * query shape once, then only binds and executes it. About twice the
 * throughput of unnamed statements for the token endpoint's lookup (measured
 * with 32 concurrent queries on this hardware). Query shapes are few and
 * fixed, so the per-connection statement cache stays small.
 */
function withPreparedStatements(pool: pg.Pool): PostgresPool {
  const names = new Map<string, string>();
  const nameOf = (sql: string) => {
    let name = names.get(sql);
    if (!name) {
      name = `k_${createHash('sha256').update(sql).digest('base64url').slice(0, 20)}`;
      names.set(sql, name);
    }
    return name;
  };
  return {
    async connect() {
      const client = await pool.connect();
      // A connection lost while checked out (database restart) fails its query, and pg also emits
      // 'error' on the client, which pg-pool listens for only while the client is idle: unheard,
      // that event would crash the process. The failed query carries the error to the caller.
      const ignore = () => {};
      client.on('error', ignore);
      return {
        query: ((sqlOrCursor: unknown, parameters?: readonly unknown[]) =>
          typeof sqlOrCursor === 'string' && parameters && parameters.length > 0
            ? client.query({ name: nameOf(sqlOrCursor), text: sqlOrCursor, values: [...parameters] })
            : client.query(sqlOrCursor as string, parameters as unknown[])) as never,
        release: (destroy?: boolean) => {
          client.removeListener('error', ignore);
          client.release(destroy);
        },
      };
    },
    end: () => pool.end(),
  };
}
