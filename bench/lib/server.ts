import type { ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { freePort, launchServer } from '../../packages/auth-api/test/process-helpers.js';

export { freePort };
export const SECRET = 'bench-secret-kR2v9Qm4Zx7Lp1Wn8Ty3Bc6Hd0Fg5Js2Ua9Ve4Xi7Ok';
export const ADMIN = { email: 'bench-admin@example.com', password: 'bench admin password 123' };

export interface RunningServer {
  base: string;
  pid: number;
  child: ChildProcess;
  /** Resident set size of the server process, in MiB. */
  rssMiB(): number;
  stop(): Promise<number | null>;
}

/**
 * Starts the built auth-api (what `pnpm start` runs; `pnpm build` first) on a free port:
 * PostgreSQL when `databaseUrl` is given, else PGlite in a temp folder.
 */
export async function startServer(options: { databaseUrl?: string; env?: Record<string, string>; nodeArgs?: string[]; port?: number } = {}): Promise<RunningServer> {
  const port = options.port ?? (await freePort());
  const { base, child, stop } = await launchServer({
    port,
    ...(options.nodeArgs ? { nodeArgs: options.nodeArgs } : {}),
    env: {
      ...(options.databaseUrl ? { DATABASE_URL: options.databaseUrl } : {}),
      JWT_ACCESS_SECRET: SECRET,
      JWT_ISSUER: `http://127.0.0.1:${port}`,
      ADMIN_EMAIL: ADMIN.email,
      ADMIN_PASSWORD: ADMIN.password,
      RATE_LIMIT_PER_MINUTE: '0',
      ...options.env,
    },
    stdout: process.env.BENCH_SERVER_STDOUT ? 'inherit' : 'ignore',
  });
  return {
    base,
    pid: child.pid!,
    child,
    rssMiB: () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))?.[1] ?? 0) / 1024,
    stop,
  };
}

export async function adminToken(base: string): Promise<string> {
  const res = await fetch(`${base}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(ADMIN) });
  if (res.status !== 200) throw new Error(`login failed: ${res.status}`);
  return ((await res.json()) as { tokens: { access_token: string } }).tokens.access_token;
}

export async function createCredential(base: string, token: string, clientId: string, scopes: string[] = ['bench:read']) {
  const res = await fetch(`${base}/api/v1/admin/m2m-clients`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ client_id: clientId, name: clientId, scopes }),
  });
  if (res.status !== 201) throw new Error(`create failed: ${res.status} ${await res.text()}`);
  const body = (await res.json()) as { client: { id: string }; client_secret: string };
  return { id: body.client.id, clientId, secret: body.client_secret };
}

export const grantBody = (clientId: string, secret: string) =>
  new URLSearchParams({ grant_type: 'client_credentials', client_id: clientId, client_secret: secret }).toString();

export const pct = (xs: number[], p: number) => {
  if (xs.length === 0) return 0;
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
};
