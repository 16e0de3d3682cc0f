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
