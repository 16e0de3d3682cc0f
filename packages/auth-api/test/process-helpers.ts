import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';

/** Helpers for tests that run the built server as a process, like an operator or a container would. */

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const CLI = 'packages/auth-api/dist/cli.js';
/** Strong enough for production's checks. */
export const PRODUCTION_SECRET = 'kR2v9Qm4Zx7Lp1Wn8Ty3Bc6Hd0Fg5Js2Ua9Ve4Xi7Ok';

/** Only what the process needs: the developer's own environment (a JWT secret, DATABASE_URL) must not leak in. */
export function processEnv(vars: Record<string, string>): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH, HOME: process.env.HOME, ...vars };
}

export interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node dist/cli.js <args>` from the repo root, with `input` on stdin. */
export function runCli(args: string[], env: NodeJS.ProcessEnv, input = ''): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: REPO_ROOT, env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}

/**
 * A new, empty database (no migrations) on the PostgreSQL server of `serverUrl`,
 * so a test can watch the server migrate it; `drop()` removes it.
 */
export async function createEmptyPostgresDatabase(serverUrl: string): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `test_${randomBytes(6).toString('hex')}`;
  const admin = async (statement: string) => {
    const client = new pg.Client({ connectionString: serverUrl });
    await client.connect();
    try {
      await client.query(statement);
    } finally {
      await client.end();
    }
  };
  await admin(`create database ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => admin(`drop database if exists ${name} with (force)`) };
}

/** A TCP port free on 127.0.0.1 right now. */
export async function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => done(port));
    });
    server.on('error', fail);
  });
}

export interface ServerProcess {
  child: ChildProcess;
  port: number;
  /** `http://127.0.0.1:<port>` */
  base: string;
  /** What the server wrote so far on the streams started as 'capture' (empty when none is). */
  output(): string;
  /** Sends `stopSignal` if it still runs (SIGKILL 10 s later), waits for it to exit, removes its data folder; its exit code. */
  stop(): Promise<number | null>;
}

/**
 * The built server (`dist/cli.js serve`) on 127.0.0.1 as `pnpm start` runs it, its embedded
 * database in a fresh folder unless `env` sets DATABASE_URL. Resolves once /readyz answers 200;
 * fails (and cleans up) if it exits first or is not ready within 150 s (PGlite boots in seconds,
 * a minute or more on a saturated machine). Used by tests, the console's browser tests and bench/.
 */
export async function launchServer(options: {
  env: Record<string, string>;
  port?: number;
  nodeArgs?: string[];
  stdout?: 'ignore' | 'inherit' | 'capture';
  stderr?: 'inherit' | 'capture';
  stopSignal?: NodeJS.Signals;
}): Promise<ServerProcess> {
  const port = options.port ?? (await freePort());
  const dataDir = mkdtempSync(join(tmpdir(), 'authapi-server-'));
  const stdio = (mode: 'ignore' | 'inherit' | 'capture') => (mode === 'capture' ? 'pipe' : mode);
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), CLI, 'serve'], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH, NODE_ENV: 'development', PORT: String(port), HOST: '127.0.0.1', DATA_DIR: dataDir, LOG_LEVEL: 'warn', ...options.env },
    stdio: ['ignore', stdio(options.stdout ?? 'ignore'), stdio(options.stderr ?? 'inherit')],
  });
  let output = '';
  child.stdout?.on('data', (d) => (output += d));
  child.stderr?.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill(options.stopSignal ?? 'SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    const code = await exited;
    rmSync(dataDir, { recursive: true, force: true });
    return code;
  };
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 150_000;
  for (;;) {
    let problem: string | undefined;
    if (child.exitCode !== null || child.signalCode !== null) problem = `the server exited (${child.exitCode ?? child.signalCode})`;
    else if ((await fetch(`${base}/readyz`).then((r) => r.status, () => 0)) === 200) break;
    else if (Date.now() > deadline) problem = `the server did not become ready at ${base}`;
    if (problem) {
      await stop();
      throw new Error(output ? `${problem}:\n${output}` : problem);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { child, port, base, output: () => output, stop };
}
