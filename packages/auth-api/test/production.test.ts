import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_DATABASE_URL } from './helpers.js';
import { createEmptyPostgresDatabase, PRODUCTION_SECRET, processEnv, REPO_ROOT, runCli } from './process-helpers.js';

describe('production mode refuses to start on a bad configuration', () => {
  const base = { NODE_ENV: 'production', DATABASE_URL: 'postgres://127.0.0.1:1/unused', JWT_ACCESS_SECRET: PRODUCTION_SECRET, JWT_ISSUER: 'https://auth.example.com' };
  const cases: [string, Record<string, string>, RegExp][] = [
    ['no DATABASE_URL', { DATABASE_URL: '' }, /^DATABASE_URL: is required when NODE_ENV=production/],
    ['no JWT_ACCESS_SECRET', { JWT_ACCESS_SECRET: '' }, /^JWT_ACCESS_SECRET: is required/],
    ['a short JWT_ACCESS_SECRET', { JWT_ACCESS_SECRET: 'short-secret' }, /^JWT_ACCESS_SECRET: must be at least 32 bytes/],
    ['a placeholder JWT_ACCESS_SECRET', { JWT_ACCESS_SECRET: 'your-secret-here-your-secret-here-123' }, /^JWT_ACCESS_SECRET: looks like a placeholder/],
    ['BCRYPT_COST out of range', { BCRYPT_COST: '40' }, /^BCRYPT_COST: must be between 4 and 15/],
    ['BCRYPT_COST too low for production', { BCRYPT_COST: '8' }, /^BCRYPT_COST: must be at least 10 when NODE_ENV=production/],
  ];

  it.each(cases)('%s: exit 1 and one line on stderr, no stack trace', async (_name, vars, problem) => {
    const result = await runCli(['serve'], processEnv({ ...base, ...vars }));
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    const lines = result.stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]!.replace(/^auth-api: invalid configuration: /, '')).toMatch(problem);
  });
});

interface LogLine {
  level: number;
  msg: string;
  reqId?: string;
  [key: string]: unknown;
}

/**
 * The container, without Docker: `docker/start.sh` (the image's CMD) with
 * NODE_ENV=production against a fresh, empty PostgreSQL database. Needs
 * PostgreSQL because production refuses the embedded database; CI runs the
 * suite a second time with TEST_DATABASE_URL set, which runs this.
 */
describe.skipIf(!TEST_DATABASE_URL)('the container start command, in production, against PostgreSQL', () => {
  let database: { url: string; drop(): Promise<void> };
  let server: ChildProcessWithoutNullStreams;
  let exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  let baseUrl: string;
  const logs: LogLine[] = [];
  let stderr = '';
  const env = () => processEnv({ NODE_ENV: 'production', DATABASE_URL: database.url, JWT_ACCESS_SECRET: PRODUCTION_SECRET, JWT_ISSUER: 'https://auth.example.com', HOST: '127.0.0.1', PORT: '0' });

  beforeAll(async () => {
    database = await createEmptyPostgresDatabase(TEST_DATABASE_URL!);
    server = spawn('sh', ['docker/start.sh'], { cwd: REPO_ROOT, env: env() });
    exited = new Promise((resolve) => server.on('close', (code, signal) => resolve({ code, signal })));
    server.stderr.on('data', (d) => (stderr += d));
    let pending = '';
    const ready = new Promise<string>((resolve, reject) => {
      server.stdout.on('data', (chunk) => {
        pending += chunk;
        const lines = pending.split('\n');
        pending = lines.pop()!;
        for (const line of lines) {
          const entry = JSON.parse(line) as LogLine; // every line is JSON
          logs.push(entry);
          if (entry.msg === 'auth-api ready') resolve(entry.address as string);
        }
      });
      void exited.then(({ code }) => reject(new Error(`the server exited (${code}) before it was ready: ${stderr}`)));
    });
    baseUrl = await ready;
  }, 60_000);

  afterAll(async () => {
    if (server?.exitCode === null) server.kill('SIGKILL');
    await database?.drop();
  });

  it('migrated the empty database and answers /healthz and /readyz', async () => {
    expect(logs.find((l) => l.msg === 'auth-api ready')).toMatchObject({ database: 'postgres' });
    expect(await (await fetch(`${baseUrl}/healthz`)).json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${baseUrl}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ok', database: 'postgres' });
  });

  it('serves the built admin console at /admin with its CSP, and no warning that it is missing', async () => {
    const page = await fetch(`${baseUrl}/admin`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    const script = /\/admin\/assets\/app-[A-Z0-9]+\.js/.exec(await page.text());
    expect(script).not.toBeNull();
    expect((await fetch(`${baseUrl}${script![0]}`)).status).toBe(200);
    expect(logs.some((l) => l.msg.startsWith('the admin console is not built'))).toBe(false);
  });

  it('warns at start that TRUST_PROXY is unset behind an https issuer', () => {
    expect(logs.find((l) => l.msg.startsWith('TRUST_PROXY is unset'))).toMatchObject({ level: 40, msg: expect.stringContaining('Set TRUST_PROXY') });
  });

  it('never generates an admin password: it says how to create an admin instead', () => {
    expect(logs.find((l) => l.msg.startsWith('No admin user exists'))).toMatchObject({ level: 40, msg: expect.stringContaining('auth-api admin create') });
    expect(stderr).toBe('');
  });

  it('an admin from the CLI (same database), a credential, and a client_credentials grant', async () => {
    const password = 'production admin passphrase';
    const created = await runCli(['admin', 'create', '--email', 'ops@example.com', '--password-stdin'], env(), password);
    expect(created).toMatchObject({ code: 0, stderr: '' });

    const login = await fetch(`${baseUrl}/api/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'ops@example.com', password }),
    });
    expect(login.status).toBe(200);
    const { tokens } = (await login.json()) as { tokens: { access_token: string } };

    const create = await fetch(`${baseUrl}/api/v1/admin/m2m-clients`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${tokens.access_token}` },
      body: JSON.stringify({ client_id: 'billing-svc', name: 'Billing', scopes: ['gsku:publish'] }),
    });
    expect(create.status).toBe(201);
    const { client_secret } = (await create.json()) as { client_secret: string };

    const grant = await fetch(`${baseUrl}/api/v1/oauth/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Basic ${Buffer.from(`billing-svc:${client_secret}`).toString('base64')}` },
      body: 'grant_type=client_credentials',
    });
    expect(grant.status).toBe(200);
    expect(await grant.json()).toMatchObject({ token_type: 'Bearer', scope: 'gsku:publish', expires_in: 900, access_token: expect.any(String) });

    // The request's log line is written after its response: wait for it to come through the pipe.
    await expect.poll(() => logs.some((l) => l.path === '/api/v1/oauth/token')).toBe(true);
    const requestLines = logs.filter((l) => l.msg === 'request completed');
    expect(requestLines.map((l) => `${l.method} ${l.path} ${l.status}`)).toEqual(
      expect.arrayContaining(['POST /api/v1/auth/login 200', 'POST /api/v1/admin/m2m-clients 201', 'POST /api/v1/oauth/token 200']),
    );
    expect(requestLines.every((l) => typeof l.reqId === 'string')).toBe(true);
    expect(JSON.stringify(logs)).not.toContain(client_secret);
    expect(JSON.stringify(logs)).not.toContain(password);
  });

  it('SIGTERM: stops cleanly with exit code 0', async () => {
    server.kill('SIGTERM');
    expect(await exited).toEqual({ code: 0, signal: null });
    expect(logs.find((l) => l.msg.startsWith('shutting down'))).toMatchObject({ signal: 'SIGTERM' });
    expect(stderr).toBe('');
  });
});
