import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort } from './server.js';

const TSX = resolve(import.meta.dirname, '../../node_modules/.bin/tsx');
const PG_SCRIPT = resolve(import.meta.dirname, '../../scripts/pg-throwaway.sh');

/** Runs a bench/lib script (bare Fastify, oidc-provider) on a free port; resolves once it answers. */
export async function startScript(file: string, args: string[] = [], probe = '/'): Promise<{ base: string; child: ChildProcess; stop(): Promise<void> }> {
  const port = await freePort();
  const child = spawn(TSX, [resolve(import.meta.dirname, file), String(port), ...args], { stdio: ['ignore', 'ignore', 'ignore'] });
  const base = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  while ((await fetch(`${base}${probe}`).then((r) => r.status, () => 0)) === 0) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`${file} did not start`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    base,
    child,
    stop: () =>
      new Promise((done) => {
        child.once('exit', () => done());
        child.kill('SIGTERM');
      }),
  };
}

/** A throwaway PostgreSQL server (scripts/pg-throwaway.sh), or the one in DATABASE_URL. */
export async function startPostgres(): Promise<{ url: string; stop(): void }> {
  if (process.env.DATABASE_URL) return { url: process.env.DATABASE_URL, stop() {} };
  const dir = mkdtempSync(join(tmpdir(), 'bench-pg-'));
  const port = await freePort();
  const url = execFileSync('bash', [PG_SCRIPT, 'start', dir, String(port)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  return {
    url,
    stop() {
      execFileSync('bash', [PG_SCRIPT, 'stop', dir], { stdio: 'ignore' });
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
