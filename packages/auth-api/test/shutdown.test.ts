import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ADMIN, TEST_DATABASE_URL, TEST_SECRET } from './helpers.js';
import { createEmptyPostgresDatabase, freePort } from './process-helpers.js';

/**
 * SIGTERM while grants are in flight: the built server (what `pnpm start` and
 * the container run) finishes every accepted request, then exits 0. Needs the
 * build (`pnpm test` builds first).
 */
const cli = resolve(import.meta.dirname, '../dist/cli.js');

async function waitUntilUp(url: string, timeoutMs: number) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const status = await fetch(url).then((r) => r.status, () => 0);
    if (status === 200) return;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`server did not come up at ${url}`);
}

describe('graceful shutdown', () => {
  let child: ChildProcess;
  let dataDir: string;
  let base: string;
  let stderr = '';
  let database: { url: string; drop(): Promise<void> } | undefined;
  const agent = new Agent({ connections: 200, pipelining: 1 });

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'authapi-shutdown-'));
    const port = await freePort();
    if (TEST_DATABASE_URL) database = await createEmptyPostgresDatabase(TEST_DATABASE_URL);
    base = `http://127.0.0.1:${port}`;
    child = spawn(process.execPath, [cli, 'serve'], {
      env: {
        PATH: process.env.PATH,
        NODE_ENV: 'development',
        PORT: String(port),
        HOST: '127.0.0.1',
        DATA_DIR: dataDir,
        ...(database ? { DATABASE_URL: database.url } : {}),
        JWT_ACCESS_SECRET: TEST_SECRET,
        BCRYPT_COST: '10',
        // This test is about draining, not shedding: every cold grant waits its turn in the bcrypt budget.
        BCRYPT_MAX_WAIT_MS: '60000',
        ADMIN_EMAIL: 'shutdown-admin@example.com',
        ADMIN_PASSWORD: ADMIN.password,
        LOG_LEVEL: 'warn',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    child.stderr!.on('data', (d) => (stderr += d));
    await waitUntilUp(`${base}/healthz`, 60_000);
  });

  afterAll(async () => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    await agent.close();
    await database?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  async function call(method: 'GET' | 'POST', path: string, body?: string, headers: Record<string, string> = {}) {
    const res = await request(`${base}${path}`, { method, body, headers, dispatcher: agent });
    return { status: res.statusCode, body: (await res.body.json()) as any };
  }

  it('SIGTERM during a load of grants completes them all, then exits 0', async () => {
    const login = await call('POST', '/api/v1/auth/login', JSON.stringify({ email: 'shutdown-admin@example.com', password: ADMIN.password }), { 'content-type': 'application/json' });
    expect(login.status).toBe(200);
    const token = login.body.tokens.access_token;
    const suffix = Date.now().toString(36);
    const clients = await Promise.all(
      Array.from({ length: 60 }, async (_, i) => {
        const created = await call('POST', '/api/v1/admin/m2m-clients', JSON.stringify({ client_id: `drain-${suffix}-${i}`, name: 'Drain' }), {
          'content-type': 'application/json',
          authorization: `Bearer ${token}`,
        });
        expect(created.status).toBe(201);
        return { id: created.body.client.client_id as string, secret: created.body.client_secret as string };
      }),
    );

    // 60 cold grants: each pays a cost-10 bcrypt compare, together over a second of work.
    const grants = clients.map((c) =>
      call('POST', '/api/v1/oauth/token', new URLSearchParams({ grant_type: 'client_credentials', client_id: c.id, client_secret: c.secret }).toString(), {
        'content-type': 'application/x-www-form-urlencoded',
      }).catch((err: Error & { code?: string }) => ({ status: -1, body: err.code ?? err.message })),
    );
    await new Promise((r) => setTimeout(r, 300));
    const exited = once(child, 'exit');
    child.kill('SIGTERM');

    const results = await Promise.all(grants);
    expect(results.filter((r) => r.status !== 200)).toEqual([]);
    expect(results.every((r) => r.body.token_type === 'Bearer')).toBe(true);
    const [code, signal] = await exited;
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(stderr).not.toMatch(/ECONNRESET|unhandled|Error:/);
  });
});
