import type { FastifyInstance } from 'fastify';
import { buildApp, type BuildAppOptions } from '../src/app.js';
import { type Config, loadConfig } from '../src/config.js';
import { connectDatabase, type DatabaseHandle } from '../src/db/connect.js';
import { migrateToLatest } from '../src/db/migrations.js';
import type { Clock } from '../src/lib/clock.js';
import { createBcryptHasher, type PasswordHasher } from '../src/lib/password.js';
import { createAdminUser } from '../src/modules/admin-auth/admin-auth.service.js';
import { insertUser } from '../src/modules/admin-auth/users.repository.js';
import { createEmptyPostgresDatabase } from './process-helpers.js';

/** Set by CI to run the suite against PostgreSQL; unset means PGlite in memory. */
export const TEST_DATABASE_URL = process.env.TEST_DATABASE_URL || undefined;

export const TEST_SECRET = 'test-secret-0123456789-abcdefghijklmnopqrstuvwxyz';
export const TEST_PREVIOUS_SECRET = 'previous-secret-9876543210-zyxwvutsrqponmlkjihgfedcba';
export const ISSUER = 'http://auth.test';
export const AUDIENCE = 'auth-platform';
export const ADMIN = { email: 'admin@example.com', password: 'correct horse battery staple' };
export const PLAIN_USER = { email: 'viewer@example.com', password: 'just a regular user pw' };

export function testConfig(overrides: Record<string, string> = {}): Config {
  return loadConfig({
    NODE_ENV: 'test',
    JWT_ACCESS_SECRET: TEST_SECRET,
    JWT_ISSUER: ISSUER,
    JWT_AUDIENCE: AUDIENCE,
    BCRYPT_COST: '4',
    LOG_LEVEL: 'silent',
    ...overrides,
  });
}

/**
 * A fresh, migrated database for one test file: a new database on the
 * PostgreSQL server in TEST_DATABASE_URL, or an in-memory PGlite.
 */
export async function createTestDatabase(): Promise<DatabaseHandle> {
  if (!TEST_DATABASE_URL) {
    const database = await connectDatabase({ dataDir: 'memory://' });
    await migrateToLatest(database.db);
    return database;
  }
  const empty = await createEmptyPostgresDatabase(TEST_DATABASE_URL);
  const database = await connectDatabase({ databaseUrl: empty.url });
  await migrateToLatest(database.db);
  return {
    ...database,
    async close() {
      await database.close();
      await empty.drop();
    },
  };
}

export interface TestContext {
  app: FastifyInstance;
  database: DatabaseHandle;
  config: Config;
  hasher: PasswordHasher;
  adminToken: string;
  userToken: string;
  close(): Promise<void>;
}

export interface TestContextOptions extends Partial<Omit<BuildAppOptions, 'database' | 'config'>> {
  env?: Record<string, string>;
  clock?: Clock;
}

/** A database with an admin and a plain user, an app on it, and a token for each. */
export async function createTestContext(options: TestContextOptions = {}): Promise<TestContext> {
  const database = await createTestDatabase();
  const config = testConfig(options.env);
  const hasher = options.hasher ?? createBcryptHasher(config.bcryptCost);
  await createAdminUser(database.db, hasher, ADMIN.email, ADMIN.password, { id: null, label: 'test', ip: null });
  await insertUser(database.db, {
    id: crypto.randomUUID(),
    email: PLAIN_USER.email,
    password_hash: await hasher.hash(PLAIN_USER.password),
    roles: ['viewer'],
  });
  const app = await buildApp({ logger: false, ...options, config, database, hasher });
  await app.ready();
  const adminToken = await login(app, ADMIN);
  const userToken = await login(app, PLAIN_USER);
  return {
    app,
    database,
    config,
    hasher,
    adminToken,
    userToken,
    async close() {
      await app.close();
      await database.close();
    },
  };
}

export async function login(app: FastifyInstance, who: { email: string; password: string }): Promise<string> {
  const res = await app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: who });
  if (res.statusCode !== 200) throw new Error(`login failed: ${res.statusCode} ${res.body}`);
  return res.json().tokens.access_token as string;
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** Creates a credential as the admin and returns the response body. */
export async function createClient(ctx: TestContext, body: Record<string, unknown>) {
  const res = await ctx.app.inject({ method: 'POST', url: '/api/v1/admin/m2m-clients', headers: bearer(ctx.adminToken), payload: body });
  if (res.statusCode !== 201) throw new Error(`create failed: ${res.statusCode} ${res.body}`);
  return res.json() as { client: Record<string, any> & { id: string; client_id: string }; client_secret: string };
}
