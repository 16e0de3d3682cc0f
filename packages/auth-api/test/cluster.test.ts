import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from './process-helpers.js';

/**
 * The cluster `pnpm cluster` starts (scripts/cluster: PostgreSQL, three built
 * instances, nginx in front), under load through nginx. Ports: CLUSTER_TEST_PORT
 * (nginx; the instances take the next three) and CLUSTER_TEST_PG_PORT.
 */
const SCRIPT = resolve(REPO_ROOT, 'scripts/cluster');
const NGINX = ['/usr/sbin/nginx', '/usr/bin/nginx'].find((path) => existsSync(path));
const LB_PORT = Number(process.env.CLUSTER_TEST_PORT ?? 5450);
const PG_PORT = Number(process.env.CLUSTER_TEST_PG_PORT ?? 54428);
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const run = promisify(execFile);

if (!NGINX) console.warn('cluster.test.ts: skipped, nginx is not installed (apt-get install -y nginx; .ci/run installs it)');

describe.skipIf(!NGINX)('a cluster of three instances behind nginx', () => {
  let cluster: ChildProcess;
  let dir: string;
  let env: Record<string, string>;
  let grantBody: string;
  const agent = new Agent({ connections: 64, keepAliveTimeout: 10_000 });

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'authapi-cluster-'));
    cluster = spawn(SCRIPT, [], {
      env: { ...process.env, CLUSTER_DIR: dir, CLUSTER_PORT: String(LB_PORT), CLUSTER_API_PORT: String(LB_PORT + 1), CLUSTER_PG_PORT: String(PG_PORT), BCRYPT_COST: '4' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    cluster.stdout!.on('data', (d) => (output += d));
    cluster.stderr!.on('data', (d) => (output += d));
    await new Promise<void>((ready, fail) => {
      const check = setInterval(() => {
        if (output.includes('cluster: ready at')) {
          clearInterval(check);
          ready();
        }
      }, 100);
      cluster.once('exit', (code) => {
        clearInterval(check);
        fail(new Error(`scripts/cluster exited with ${code}:\n${output}`));
      });
    });
    env = Object.fromEntries(
      readFileSync(join(dir, 'cluster.env'), 'utf8')
        .trim()
        .split('\n')
        .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
    );
    const login = await call('POST', '/api/v1/auth/login', JSON.stringify({ email: env.ADMIN_EMAIL, password: env.ADMIN_PASSWORD }), { 'content-type': 'application/json' });
    expect(login.status).toBe(200);
    const created = await call('POST', '/api/v1/admin/m2m-clients', JSON.stringify({ client_id: 'cluster-svc', name: 'Cluster', scopes: ['c:read'] }), {
      'content-type': 'application/json',
      authorization: `Bearer ${login.body.tokens.access_token}`,
    });
    expect(created.status).toBe(201);
    grantBody = new URLSearchParams({ grant_type: 'client_credentials', client_id: 'cluster-svc', client_secret: created.body.client_secret }).toString();
  }, 240_000);

  afterAll(async () => {
    await agent.close();
    if (cluster && cluster.exitCode === null) {
      const exited = new Promise((r) => cluster.once('exit', r));
      cluster.kill('SIGTERM'); // its trap stops nginx, the instances and PostgreSQL
      await exited;
    }
    // Nothing it started is left running.
    for (const file of ['api-1.pid', 'api-2.pid', 'api-3.pid', 'nginx/nginx.pid']) {
      const path = join(dir, file);
      if (!existsSync(path)) continue;
      const pid = Number(readFileSync(path, 'utf8'));
      expect(() => process.kill(pid, 0), file).toThrow();
    }
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  async function call(method: 'GET' | 'POST', path: string, body?: string, headers: Record<string, string> = {}) {
    const res = await request(`${env.CLUSTER_URL}${path}`, { method, body, headers, dispatcher: agent });
    return { status: res.statusCode, body: (await res.body.json()) as any };
  }

  /** `workers` clients renewing through nginx until `during` settles; outcomes counted by status or error code. */
  async function underLoad(during: () => Promise<unknown>, workers = 16) {
    const outcomes: Record<string, number> = {};
    let done = false;
    const worker = async () => {
      while (!done) {
        let outcome: string;
        try {
          const res = await request(`${env.CLUSTER_URL}/api/v1/oauth/token`, { method: 'POST', headers: FORM, body: grantBody, dispatcher: agent });
          const body = (await res.body.json()) as { token_type?: string };
          outcome = res.statusCode === 200 && body.token_type === 'Bearer' ? 'granted' : String(res.statusCode);
        } catch (err) {
          outcome = (err as { code?: string }).code ?? 'error';
        }
        outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
      }
    };
    const running = Array.from({ length: workers }, worker);
    await new Promise((r) => setTimeout(r, 1_000));
    try {
      await during();
      await new Promise((r) => setTimeout(r, 1_000));
    } finally {
      done = true;
      await Promise.all(running);
    }
    return outcomes;
  }

  const pidOf = (n: number) => Number(readFileSync(join(dir, `api-${n}.pid`), 'utf8'));
  const restart = (n: number) => run(SCRIPT, ['restart', String(n)], { env: { ...process.env, CLUSTER_DIR: dir } });

  const instanceUrl = (n: number) => `http://127.0.0.1:${Number(env.CLUSTER_API_PORT) + n - 1}`;

  async function grantAt(base: string, body: string) {
    const res = await request(`${base}/api/v1/oauth/token`, { method: 'POST', headers: FORM, body, dispatcher: agent });
    return { status: res.statusCode, body: (await res.body.json()) as any };
  }

  async function adminToken() {
    const login = await call('POST', '/api/v1/auth/login', JSON.stringify({ email: env.ADMIN_EMAIL, password: env.ADMIN_PASSWORD }), { 'content-type': 'application/json' });
    return login.body.tokens.access_token as string;
  }

  it('a revoke made on instance 1 is refused by instance 2 within 1 s', async () => {
    const token = await adminToken();
    const created = await request(`${instanceUrl(1)}/api/v1/admin/m2m-clients`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ client_id: 'cluster-revoke', name: 'Revoke', scopes: ['c:read'] }),
      dispatcher: agent,
    });
    const { client, client_secret } = (await created.body.json()) as any;
    const body = new URLSearchParams({ grant_type: 'client_credentials', client_id: 'cluster-revoke', client_secret }).toString();
    // Instance 2 has the credential in memory: a grant, then a repeat grant from its cache.
    expect((await grantAt(instanceUrl(2), body)).status).toBe(200);
    expect((await grantAt(instanceUrl(2), body)).status).toBe(200);
    const revoked = await request(`${instanceUrl(1)}/api/v1/admin/m2m-clients/${client.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` }, dispatcher: agent });
    expect(revoked.statusCode).toBe(204);
    await revoked.body.dump();
    const at = performance.now();
    let refusedAfter: number | undefined;
    while (performance.now() - at < 3_000) {
      const res = await grantAt(instanceUrl(2), body);
      if (res.status === 401) {
        refusedAfter = performance.now() - at;
        break;
      }
      expect(res.status).toBe(200);
    }
    console.info(`revoke on instance 1 refused by instance 2 after ${refusedAfter?.toFixed(0)} ms`);
    expect(refusedAfter).toBeLessThanOrEqual(1_000);
  }, 60_000);

  it('the failure limit holds for the cluster: 10 failures across three instances, then 429 on each and through nginx', async () => {
    const bad = new URLSearchParams({ grant_type: 'client_credentials', client_id: 'cluster-limit', client_secret: 'not-the-secret' }).toString();
    const statuses: number[] = [];
    for (let i = 0; i < 10; i++) statuses.push((await grantAt(instanceUrl((i % 3) + 1), bad)).status);
    expect(statuses).toEqual(Array(10).fill(401));
    for (const n of [1, 2, 3]) expect((await grantAt(instanceUrl(n), bad)).status).toBe(429);
    expect((await grantAt(env.CLUSTER_URL!, bad)).status).toBe(429);
  }, 60_000);

  it('kill -9 of one instance under load: nginx resends what it sent there, no grant fails', async () => {
    const outcomes = await underLoad(async () => {
      process.kill(pidOf(2), 'SIGKILL');
      await new Promise((r) => setTimeout(r, 2_000));
    });
    console.info('kill -9 of instance 2 under load, outcomes through nginx:', outcomes);
    expect(outcomes.granted).toBeGreaterThan(100);
    expect(Object.keys(outcomes)).toEqual(['granted']);
    await restart(2);
    expect((await call('GET', '/readyz')).status).toBe(200);
  }, 120_000);

  it('a rolling restart of all three under load: zero failed grants', async () => {
    const before = [1, 2, 3].map(pidOf);
    const outcomes = await underLoad(async () => {
      for (const n of [1, 2, 3]) await restart(n);
    });
    console.info('rolling restart under load, outcomes through nginx:', outcomes);
    expect([1, 2, 3].map(pidOf).every((pid, i) => pid !== before[i])).toBe(true);
    expect(outcomes.granted).toBeGreaterThan(100);
    expect(Object.keys(outcomes)).toEqual(['granted']);
  }, 180_000);
});
