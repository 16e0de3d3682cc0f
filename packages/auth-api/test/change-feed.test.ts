import { createServer, connect, type Server, type Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp } from '../src/app.js';
import { openPostgresChangeFeed } from '../src/db/change-feed.js';
import { connectDatabase, type DatabaseHandle } from '../src/db/connect.js';
import { migrateToLatest } from '../src/db/migrations.js';
import { createBcryptHasher } from '../src/lib/password.js';
import { createAdminUser } from '../src/modules/admin-auth/admin-auth.service.js';
import { bearer, login, TEST_DATABASE_URL, testConfig } from './helpers.js';
import { createEmptyPostgresDatabase } from './process-helpers.js';

/**
 * A TCP proxy to PostgreSQL that passes everything except, when `deaf`, the server's
 * NotificationResponse messages ('A'): what a connection looks like through a pooler in
 * transaction mode (PgBouncer lends the LISTEN session to others between statements and drops
 * what arrives while it is not lent to this client), or a connection that answers queries but
 * has lost its notifications. Queries are answered as usual.
 */
async function notificationDroppingProxy(target: URL) {
  const sockets = new Set<Socket>();
  let connections = 0;
  let dropped = 0;
  const server: Server = createServer((client) => {
    connections += 1;
    const upstream = connect(Number(target.port), target.hostname);
    sockets.add(client).add(upstream);
    client.pipe(upstream);
    let pending = Buffer.alloc(0);
    upstream.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      // Every server message after the startup is framed: a type byte, then a length that counts itself.
      while (pending.length >= 5) {
        const end = 1 + pending.readInt32BE(1);
        if (pending.length < end) break;
        if (pending[0] === 0x41) dropped += 1;
        else client.write(pending.subarray(0, end));
        pending = pending.subarray(end);
      }
    });
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('close', close).on('error', close);
    upstream.on('close', close).on('error', close);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  const url = new URL(target);
  url.host = `127.0.0.1:${port}`;
  return {
    url: url.toString(),
    stats: () => ({ connections, dropped }),
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe.skipIf(!TEST_DATABASE_URL)('change feed: live only while notifications really arrive', () => {
  let dropDatabase: () => Promise<void>;
  let url: string;
  let proxy: Awaited<ReturnType<typeof notificationDroppingProxy>>;
  let database: DatabaseHandle;
  let app: FastifyInstance;
  const ADMIN = { email: 'feed-admin@example.com', password: 'feed admin password 1' };

  beforeAll(async () => {
    const empty = await createEmptyPostgresDatabase(TEST_DATABASE_URL!);
    dropDatabase = empty.drop;
    url = empty.url;
    proxy = await notificationDroppingProxy(new URL(url));
    const direct = await connectDatabase({ databaseUrl: url, poolSize: 4 });
    await migrateToLatest(direct.db);
    // The database through the pool as usual; the feed's connections through the proxy that loses notifications.
    database = { ...direct, openChangeFeed: (channel, handlers) => openPostgresChangeFeed({ connectionString: proxy.url, channel, handlers, deafAfterMs: 1500 }) };
    const config = testConfig({ RATE_LIMIT_PER_MINUTE: '0' });
    const hasher = createBcryptHasher(config.bcryptCost);
    await createAdminUser(direct.db, hasher, ADMIN.email, ADMIN.password, { id: null, label: 'test', ip: null });
    app = await buildApp({ config, database, hasher, logger: false });
    await app.ready();
  });

  afterAll(async () => {
    await app?.close();
    await database?.close();
    await proxy?.close();
    await dropDatabase?.();
  });

  it('a listening connection that answers queries but receives no notifications never counts as live: the instance reads through', async () => {
    const token = await login(app, ADMIN);
    const created = await app.inject({ method: 'POST', url: '/api/v1/admin/m2m-clients', headers: bearer(token), payload: { client_id: 'deaf-svc', name: 'Deaf', scopes: ['a:b'] } });
    expect(created.statusCode).toBe(201);
    const { client, client_secret: secret } = created.json() as { client: { id: string }; client_secret: string };
    const grant = () =>
      app.inject({
        method: 'POST',
        url: '/api/v1/oauth/token',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: new URLSearchParams({ grant_type: 'client_credentials', client_id: 'deaf-svc', client_secret: secret }).toString(),
      });
    const liveSeen: boolean[] = [];
    for (let i = 0; i < 15; i++) {
      expect((await grant()).statusCode).toBe(200);
      liveSeen.push(app.credentialState.stats().live);
      await sleep(50);
    }
    expect(liveSeen.every((live) => !live)).toBe(true);
    expect(app.credentialState.stats().entries).toBe(0);

    // A change the instance is never told about is seen by the very next grant.
    await sql`update m2m_clients set status = 'disabled' where id = ${client.id}`.execute(database.db);
    expect((await grant()).statusCode).toBe(401);
    // Notifications were sent to the listener (that change, and the heartbeats) and lost on the way.
    expect(proxy.stats().dropped).toBeGreaterThan(0);
  });

  it('a deaf listening connection is dropped and opened again; through a sound connection the same feed goes live', async () => {
    const states: string[] = [];
    const deaf = openPostgresChangeFeed({
      connectionString: proxy.url,
      channel: 'feed_test',
      handlers: { onNotify: () => {}, onReset: () => {}, onStateChange: (state, err) => states.push(`${state}: ${(err as { code?: string } | undefined)?.code} ${(err as Error | undefined)?.message ?? ''}`) },
      deafAfterMs: 300,
      reconnect: { minMs: 50, maxMs: 50 },
    });
    const before = proxy.stats().connections;
    try {
      await expect.poll(() => states.length, { timeout: 3000 }).toBeGreaterThan(0);
      expect(states[0]).toMatch(/^down: CHANGE_FEED_DEAF no heartbeat came back over LISTEN/);
      // Reconnected (a listener and its heartbeat sender at first, then the listener again).
      await expect.poll(() => proxy.stats().connections - before, { timeout: 3000 }).toBeGreaterThanOrEqual(3);
      expect(deaf.live()).toBe(false);
    } finally {
      await deaf.close();
    }

    const told: string[] = [];
    const sound = openPostgresChangeFeed({ connectionString: url, channel: 'feed_test', handlers: { onNotify: (p) => told.push(p), onReset: () => {} } });
    try {
      await expect.poll(() => sound.live(), { timeout: 3000 }).toBe(true);
      await sql`select pg_notify('feed_test', 'hello')`.execute(database.db);
      await expect.poll(() => told, { timeout: 1000 }).toEqual(['hello']);
    } finally {
      await sound.close();
    }
  });
});
