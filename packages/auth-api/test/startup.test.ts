// What an operator meets at start, as processes: the embedded data folder takes one
// process at a time, the default issuer follows HOST/PORT (and is logged), and an
// unreachable database is reported as that, with where (never the password).
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LOCK_FILE, lockDataDir } from '../src/db/data-dir-lock.js';
import { TEST_SECRET } from './helpers.js';
import { CLI, freePort, processEnv, REPO_ROOT, runCli } from './process-helpers.js';

const work = mkdtempSync(join(tmpdir(), 'auth-api-startup-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

/** A process that runs until killed: the live holder of a lock. */
function sleeper(): ChildProcessWithoutNullStreams {
  return spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)']);
}

/** The PID of a process that has already exited. */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((resolve) => child.on('close', resolve));
  return child.pid!;
}

describe('the data-folder lock', () => {
  it('refuses a second holder while the first lives, naming its PID and what to do', async () => {
    const dir = join(work, 'held');
    mkdirSync(dir);
    const holder = sleeper();
    try {
      writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: holder.pid, command: 'serve', startedAt: '2026-01-01T00:00:00.000Z' }));
      expect(() => lockDataDir(dir)).toThrowError(
        expect.objectContaining({ code: 'locked', message: expect.stringMatching(new RegExp(`in use by another process \\(PID ${holder.pid}, \`auth-api serve\`.*stop that process first`)) }),
      );
    } finally {
      holder.kill('SIGKILL');
    }
  });

  it('takes over a lock whose process is gone (a crash), and releases only its own', async () => {
    const dir = join(work, 'stale');
    mkdirSync(dir);
    const file = join(dir, LOCK_FILE);
    writeFileSync(file, JSON.stringify({ pid: await deadPid(), command: 'serve', startedAt: '2026-01-01T00:00:00.000Z' }));
    const release = lockDataDir(dir, 'clients list');
    expect(JSON.parse(readFileSync(file, 'utf8'))).toMatchObject({ pid: process.pid, command: 'clients list' });
    release();
    expect(existsSync(file)).toBe(false);
    release(); // idempotent
  });

  it('does not take a reused PID for the owner (Linux: the process start time differs)', async () => {
    const dir = join(work, 'reused');
    mkdirSync(dir);
    const other = sleeper();
    try {
      // Same PID as a running process, but recorded with another start time: the owner is gone.
      writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: other.pid, pidStart: '1', command: 'serve', startedAt: '2026-01-01T00:00:00.000Z' }));
      if (!existsSync('/proc/self/stat')) return;
      lockDataDir(dir)();
    } finally {
      other.kill('SIGKILL');
    }
  });

  it('refuses a CLI command at once, before any migration touches the folder', async () => {
    const dir = join(work, 'fresh');
    mkdirSync(dir);
    const holder = sleeper();
    try {
      writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ pid: holder.pid, command: 'serve', startedAt: '2026-01-01T00:00:00.000Z' }));
      const env = processEnv({ NODE_ENV: 'test', DATA_DIR: dir, JWT_ACCESS_SECRET: TEST_SECRET, BCRYPT_COST: '4' });
      for (const args of [['migrate'], ['clients', 'list'], ['serve']]) {
        const result = await runCli(args, env);
        expect(result, args.join(' ')).toMatchObject({ code: 1, stdout: '' });
        expect(result.stderr).toMatch(new RegExp(`^auth-api: ${args.join(' ')}: The embedded database in .* is in use by another process \\(PID ${holder.pid},`));
        expect(result.stderr).not.toMatch(/^\s+at /m);
      }
      // PGlite never opened: its folder is empty.
      expect(readdirSync(join(dir, 'pglite'))).toEqual([]);
    } finally {
      holder.kill('SIGKILL');
    }
  });
});

interface LogLine {
  msg: string;
  [key: string]: unknown;
}

/** `auth-api serve` as `pnpm start` runs it, JSON log lines collected; resolves once it is ready. */
function startServer(env: NodeJS.ProcessEnv) {
  const child = spawn(process.execPath, [CLI, 'serve'], { cwd: REPO_ROOT, env });
  const logs: LogLine[] = [];
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  let pending = '';
  const ready = new Promise<LogLine>((resolve, reject) => {
    child.stdout.on('data', (chunk) => {
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const line of lines) {
        const entry = JSON.parse(line) as LogLine;
        logs.push(entry);
        if (entry.msg === 'auth-api ready') resolve(entry);
      }
    });
    void exited.then((code) => reject(new Error(`the server exited (${code}) before it was ready: ${stderr}`)));
  });
  return { child, logs, ready, exited, stderr: () => stderr };
}

describe('a running server on the embedded database', () => {
  const dataDir = join(work, 'served');
  let port: number;
  let server: ReturnType<typeof startServer>;
  const env = () => processEnv({ NODE_ENV: 'development', DATA_DIR: dataDir, PORT: String(port), JWT_ACCESS_SECRET: TEST_SECRET, BCRYPT_COST: '4', ADMIN_EMAIL: 'ops@example.com', ADMIN_PASSWORD: 'a long admin passphrase' });

  beforeAll(async () => {
    port = await freePort();
    server = startServer(env());
    await server.ready;
  }, 90_000);
  afterAll(() => {
    server?.child.kill('SIGKILL');
  });

  it('derives the issuer from PORT when JWT_ISSUER is unset, and says so at start', async () => {
    const issuer = `http://127.0.0.1:${port}`;
    expect(await server.ready).toMatchObject({ issuer, address: issuer });
    expect(server.logs).toContainEqual(expect.objectContaining({ issuer, msg: expect.stringMatching(/^JWT_ISSUER is not set: the issuer is derived from HOST and PORT/) }));
    const metadata = (await (await fetch(`${issuer}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
    expect(metadata).toMatchObject({ issuer, token_endpoint: `${issuer}/api/v1/oauth/token` });
  });

  it('refuses a second serve and CLI writes on the same folder, naming the server\'s PID', async () => {
    const secondPort = await freePort();
    for (const args of [['serve'], ['clients', 'create', '--client-id', 'lost-write', '--name', 'Lost'], ['clients', 'revoke', 'anything']]) {
      const result = await runCli(args, { ...env(), PORT: String(secondPort) });
      expect(result, args.join(' ')).toMatchObject({ code: 1, stdout: '' });
      expect(result.stderr).toMatch(new RegExp(`in use by another process \\(PID ${server.child.pid}, \`auth-api serve\``));
      expect(result.stderr).toContain('stop that process first');
    }
    // The server still answers (the next test shows the refused create wrote nothing).
    expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);
  });

  it('after a crash (SIGKILL), the lock it left does not block the next command', async () => {
    server.child.kill('SIGKILL');
    await server.exited;
    expect(existsSync(join(dataDir, LOCK_FILE))).toBe(true);
    const list = await runCli(['clients', 'list'], env());
    expect(list).toMatchObject({ code: 0, stdout: 'no service credentials\n' });
    // A command that finished released its lock.
    expect(existsSync(join(dataDir, LOCK_FILE))).toBe(false);
  });
});

describe('a database that cannot be reached at start', () => {
  it('says so, and where, without the password', async () => {
    const port = await freePort();
    const url = `postgres://auth:hunter2-not-logged@127.0.0.1:${port}/authdb?password=also-hidden`;
    for (const args of [['serve'], ['migrate'], ['clients', 'list']]) {
      const result = await runCli(args, processEnv({ NODE_ENV: 'test', DATABASE_URL: url, JWT_ACCESS_SECRET: TEST_SECRET, JWT_ISSUER: 'http://127.0.0.1:1', LOG_LEVEL: 'silent' }));
      expect(result, args.join(' ')).toMatchObject({ code: 1, stdout: '' });
      expect(result.stderr).toBe(
        `auth-api: ${args.join(' ')}: Could not reach the database at postgres://auth@127.0.0.1:${port}/authdb: connection refused (ECONNREFUSED). Is PostgreSQL running there, and is DATABASE_URL right?\n`,
      );
    }
  });
});
