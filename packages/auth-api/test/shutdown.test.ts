import { once } from 'node:events';
import { request as httpRequest } from 'node:http';
import { connect } from 'node:net';
import { Agent, request } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { ADMIN, TEST_DATABASE_URL, TEST_SECRET } from './helpers.js';
import { createEmptyPostgresDatabase, freePort, launchServer } from './process-helpers.js';

/**
 * SIGTERM while grants are in flight: the built server (what `pnpm start` and
 * the container run) finishes every accepted request, then exits 0. Needs the
 * build (`pnpm test` builds first).
 */

/** The built server on its own database (PGlite in a temp folder, or a new PostgreSQL database). */
async function startServer(extraEnv: Record<string, string> = {}, stdout: 'ignore' | 'capture' = 'ignore') {
  const database = TEST_DATABASE_URL ? await createEmptyPostgresDatabase(TEST_DATABASE_URL) : undefined;
  const server = await launchServer({
    env: {
      ...(database ? { DATABASE_URL: database.url } : {}),
      JWT_ACCESS_SECRET: TEST_SECRET,
      BCRYPT_COST: '10',
      ADMIN_EMAIL: 'shutdown-admin@example.com',
      ADMIN_PASSWORD: ADMIN.password,
      ...extraEnv,
    },
    stdout,
    stderr: 'capture',
    stopSignal: 'SIGKILL',
  }).catch(async (err: unknown) => {
    await database?.drop();
    throw err;
  });
  const stop = async () => {
    await server.stop();
    await database?.drop();
  };
  return { ...server, stop };
}

type Server = Awaited<ReturnType<typeof startServer>>;

describe('graceful shutdown', () => {
  const agent = new Agent({ connections: 200, pipelining: 1 });
  const servers: Server[] = [];

  afterAll(async () => {
    for (const server of servers) await server.stop();
    await agent.close();
  });

  async function call(base: string, method: 'GET' | 'POST', path: string, body?: string, headers: Record<string, string> = {}) {
    const res = await request(`${base}${path}`, { method, body, headers, dispatcher: agent });
    return { status: res.statusCode, body: (await res.body.json()) as any };
  }

  async function createClients(base: string, count: number) {
    const login = await call(base, 'POST', '/api/v1/auth/login', JSON.stringify({ email: 'shutdown-admin@example.com', password: ADMIN.password }), { 'content-type': 'application/json' });
    expect(login.status).toBe(200);
    const token = login.body.tokens.access_token;
    const suffix = Date.now().toString(36);
    return Promise.all(
      Array.from({ length: count }, async (_, i) => {
        const created = await call(base, 'POST', '/api/v1/admin/m2m-clients', JSON.stringify({ client_id: `drain-${suffix}-${i}`, name: 'Drain' }), {
          'content-type': 'application/json',
          authorization: `Bearer ${token}`,
        });
        expect(created.status).toBe(201);
        return { id: created.body.client.client_id as string, secret: created.body.client_secret as string };
      }),
    );
  }

  const grantBody = (c: { id: string; secret: string }) => new URLSearchParams({ grant_type: 'client_credentials', client_id: c.id, client_secret: c.secret }).toString();

  // Each test starts its own server (PGlite: seconds to boot, more on a busy machine).
  it('SIGTERM during a load of grants completes them all, then exits 0', { timeout: 180_000 }, async () => {
    // This test is about draining, not shedding: every cold grant waits its turn in the bcrypt budget.
    const metricsPort = await freePort();
    const server = await startServer({ BCRYPT_MAX_WAIT_MS: '60000', METRICS_PORT: String(metricsPort) });
    servers.push(server);
    const clients = await createClients(server.base, 60);
    // METRICS_PORT: the metrics on a port of their own; not on the API port (no METRICS_TOKEN).
    const metrics = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
    expect(metrics.status).toBe(200);
    expect(await metrics.text()).toMatch(/^authapi_build_info\{version="[^"]+",node="v[^"]+",database="(pglite|postgres)"\} 1$/m);
    expect((await fetch(`http://127.0.0.1:${metricsPort}/`)).status).toBe(404);
    expect((await fetch(`${server.base}/metrics`)).status).toBe(404);

    // 60 cold grants: each pays a cost-10 bcrypt compare, together over a second of work.
    const grants = clients.map((c) =>
      call(server.base, 'POST', '/api/v1/oauth/token', grantBody(c), { 'content-type': 'application/x-www-form-urlencoded' }).catch((err: Error & { code?: string }) => ({
        status: -1,
        body: err.code ?? err.message,
      })),
    );
    await new Promise((r) => setTimeout(r, 300));
    const exited = once(server.child, 'exit');
    server.child.kill('SIGTERM');

    const results = await Promise.all(grants);
    expect(results.filter((r) => r.status !== 200)).toEqual([]);
    expect(results.every((r) => r.body.token_type === 'Bearer')).toBe(true);
    const [code, signal] = await exited;
    expect({ code, signal, stderr: server.output() }).toEqual({ code: 0, signal: null, stderr: expect.not.stringMatching(/ECONNRESET|unhandled|Error:|longer than/) });
  });

  it('SIGTERM during a burst of 100 new connections, each from its own address: every accepted connection is answered, none reset', { timeout: 180_000 }, async () => {
    const server = await startServer({ RATE_LIMIT_PER_MINUTE: '0' });
    servers.push(server);
    const [client] = await createClients(server.base, 1);
    const body = grantBody(client!);
    // The first grant pays bcrypt; the burst is of repeat grants, served from the verified-secret cache.
    expect((await call(server.base, 'POST', '/api/v1/oauth/token', body, { 'content-type': 'application/x-www-form-urlencoded' })).status).toBe(200);

    // 100 new connections (no keep-alive agent), from 127.0.0.2 … 127.0.0.101: each client is its own address.
    const burst = Array.from(
      { length: 100 },
      (_, i) =>
        new Promise<{ status: number | string; at: 'connected' | 'refused' }>((resolve) => {
          let wasConnected = false;
          const req = httpRequest(
            {
              host: '127.0.0.1',
              port: server.port,
              localAddress: `127.0.0.${2 + i}`,
              method: 'POST',
              path: '/api/v1/oauth/token',
              agent: false,
              headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) },
            },
            (res) => {
              res.resume();
              res.on('end', () => resolve({ status: res.statusCode!, at: 'connected' }));
            },
          );
          req.on('socket', (socket) =>
            socket.once('connect', () => {
              wasConnected = true;
            }),
          );
          req.on('error', (err: Error & { code?: string }) => resolve({ status: err.code ?? err.message, at: wasConnected ? 'connected' : 'refused' }));
          req.end(body);
        }),
    );
    // SIGTERM early in the burst: connections are still being made, some wait in the server's
    // accept queue, some are accepted but not yet read.
    await new Promise((r) => setTimeout(r, 5));
    const exited = once(server.child, 'exit');
    server.child.kill('SIGTERM');

    const results = await Promise.all(burst);
    // A connection refused after the listener closed was never accepted; every accepted one is answered.
    const failed = results.filter((r) => r.status !== 200 && r.at === 'connected');
    expect(failed).toEqual([]);
    expect(results.filter((r) => r.status === 200).length).toBeGreaterThan(0);
    const [code, signal] = await exited;
    expect({ code, signal }).toEqual({ code: 0, signal: null });
  });

  it('clients still sending their request at SHUTDOWN_TIMEOUT get 408 and a clean close, not a reset', { timeout: 120_000 }, async () => {
    // Node stops its own request timeout (HTTP_REQUEST_TIMEOUT, 30 s here) once the server closes:
    // without an answer of our own these connections would be cut unanswered when the process exits.
    const server = await startServer({ SHUTDOWN_TIMEOUT: '3', HTTP_HEADERS_TIMEOUT: '20' }, 'capture');
    servers.push(server);
    /** A raw connection that sends `head`, then one more byte of `trickle` every 200 ms until the server ends it. */
    const trickler = (head: string, trickle: string) =>
      new Promise<{ received: string; error?: string }>((resolve) => {
        let received = '';
        const socket = connect(server.port, '127.0.0.1', () => socket.write(head));
        const timer = setInterval(() => socket.writable && socket.write(trickle), 200);
        socket.on('data', (chunk) => (received += chunk.toString('latin1')));
        socket.on('end', () => {
          clearInterval(timer);
          socket.end();
          resolve({ received });
        });
        socket.on('error', (err: Error & { code?: string }) => {
          clearInterval(timer);
          resolve({ received, error: err.code ?? err.message });
        });
      });
    const body = trickler('POST /api/v1/oauth/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 500\r\n\r\ngrant_type=', 'a');
    const headers = trickler('GET /healthz HTTP/1.1\r\nHost: x\r\n', 'X-Slow: 1\r\n');
    // One more that resets its connection as soon as it is answered: the shutdown must not trip on it.
    const resetter = connect(server.port, '127.0.0.1', () => resetter.write('POST /api/v1/oauth/token HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n'));
    const resetterTimer = setInterval(() => resetter.writable && resetter.write('a'), 200);
    resetter.once('data', () => {
      clearInterval(resetterTimer);
      resetter.resetAndDestroy();
    });
    resetter.on('error', () => clearInterval(resetterTimer));
    await new Promise((r) => setTimeout(r, 500));
    const signalledAt = Date.now();
    const exited = once(server.child, 'exit');
    server.child.kill('SIGTERM');

    for (const result of [await body, await headers]) {
      expect(result.error).toBeUndefined();
      const [head, json] = result.received.split('\r\n\r\n');
      expect(head).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
      expect(head).toMatch(/\r\nConnection: close(\r\n|$)/);
      expect(head).toMatch(/\r\nX-Request-Id: [0-9a-f-]{36}(\r\n|$)/);
      expect(JSON.parse(json!)).toEqual({ error: 'request_timeout', message: expect.any(String) });
    }
    expect(Date.now() - signalledAt).toBeGreaterThanOrEqual(2900);
    const [code, signal] = await exited;
    // Answered, those connections ended, so the drain finished: exit 0.
    expect({ code, signal, log: server.output() }).toEqual({ code: 0, signal: null, log: expect.stringMatching(/shutdown took longer than 3 s: answering the requests still unfinished/) });
    expect(server.output()).not.toMatch(/still not finished|ECONNRESET|Unhandled|Error:/);
  });

  it('requests received but still waiting at SHUTDOWN_TIMEOUT get 503 and a clean close', { timeout: 120_000 }, async () => {
    // One bcrypt compare at a time, each about a second (cost 13): a queue of cold grants outlasts the deadline.
    const server = await startServer({ SHUTDOWN_TIMEOUT: '2', BCRYPT_COST: '13', BCRYPT_CONCURRENCY: '1', BCRYPT_MAX_WAIT_MS: '60000', AUTH_FAILURE_LIMIT: '100', AUTH_FAILURE_LIMIT_PER_IP: '100', RATE_LIMIT_PER_MINUTE: '0' });
    servers.push(server);
    const [client] = await createClients(server.base, 1);
    const grants = Array.from({ length: 8 }, (_, i) =>
      request(`${server.base}/api/v1/oauth/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: grantBody({ id: client!.id, secret: `wrong-secret-${i}` }),
      }).then(
        async (res) => ({ status: res.statusCode, body: (await res.body.json()) as { error: string }, connection: res.headers.connection }),
        (err: Error & { code?: string }) => ({ status: -1, body: { error: err.code ?? err.message }, connection: undefined }),
      ),
    );
    await new Promise((r) => setTimeout(r, 300));
    const exited = once(server.child, 'exit');
    server.child.kill('SIGTERM');
    const results = await Promise.all(grants);
    // Those checked before the deadline: 401; the rest: 503 at the deadline. None reset.
    expect(results.filter((r) => !((r.status === 401 && r.body.error === 'invalid_client') || (r.status === 503 && r.body.error === 'service_unavailable' && r.connection === 'close')))).toEqual([]);
    expect(results.filter((r) => r.status === 503).length).toBeGreaterThan(0);
    const [code, signal] = await exited;
    expect({ code, signal }).toEqual({ code: 0, signal: null });
  });
});
