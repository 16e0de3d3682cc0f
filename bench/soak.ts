/**
 * Sustained load (default 60 s, bounded, loopback only): mixed repeat grants,
 * cold grants, wrong secrets, management calls and health checks against the
 * built server. Reports counts by status, latency percentiles and the
 * server's RSS over time; fails (exit 1) on any 5xx or transport error.
 *
 *   pnpm build && pnpm tsx bench/soak.ts            # PGlite
 *   DATABASE_URL=postgres://… pnpm tsx bench/soak.ts  # PostgreSQL
 *   SOAK_SECONDS=120 SOAK_CONCURRENCY=32 …
 */
import { Agent, request } from 'undici';
import { adminToken, createCredential, grantBody, pct, startServer } from './lib/server.js';

const seconds = Number(process.env.SOAK_SECONDS ?? 60);
const concurrency = Number(process.env.SOAK_CONCURRENCY ?? 16);

const server = await startServer({
  ...(process.env.DATABASE_URL ? { databaseUrl: process.env.DATABASE_URL } : {}),
  env: { AUTH_FAILURE_LIMIT: '1000000000', AUTH_FAILURE_LIMIT_PER_IP: '1000000000', BCRYPT_COST: '10' },
});
const token = await adminToken(server.base);
const run = Date.now().toString(36);
const warm = await Promise.all(Array.from({ length: 8 }, (_, i) => createCredential(server.base, token, `soak-${run}-${i}`)));
const agent = new Agent({ connections: concurrency * 2 });

const statuses = new Map<string, number>();
const latencies: Record<string, number[]> = {};
const rss: Array<[number, number]> = [[0, server.rssMiB()]];
let created = 0;

async function one(kind: string, method: 'GET' | 'POST' | 'DELETE', path: string, body?: string, headers: Record<string, string> = {}) {
  const t = performance.now();
  let key: string;
  try {
    const res = await request(`${server.base}${path}`, { method, body, headers, dispatcher: agent });
    await res.body.dump();
    key = `${kind} ${res.statusCode}`;
  } catch (err) {
    key = `${kind} ${(err as { code?: string }).code ?? 'error'}`;
  }
  (latencies[kind] ??= []).push(performance.now() - t);
  statuses.set(key, (statuses.get(key) ?? 0) + 1);
}

const form = { 'content-type': 'application/x-www-form-urlencoded' };
const auth = { authorization: `Bearer ${token}` };
async function worker(deadline: number) {
  while (Date.now() < deadline) {
    const r = Math.random();
    const c = warm[Math.floor(Math.random() * warm.length)]!;
    if (r < 0.7) await one('repeat grant', 'POST', '/api/v1/oauth/token', grantBody(c.clientId, c.secret), form);
    else if (r < 0.8) await one('wrong secret', 'POST', '/api/v1/oauth/token', grantBody(c.clientId, 'm2msk_wrong'), form);
    else if (r < 0.85) await one('unknown client', 'POST', '/api/v1/oauth/token', grantBody(`ghost-${Math.random()}`.slice(0, 20), 'x'), form);
    else if (r < 0.93) await one('list', 'GET', '/api/v1/admin/m2m-clients', undefined, auth);
    else if (r < 0.97) await one('healthz', 'GET', '/healthz');
    else if (r < 0.985) await one('bad body', 'POST', '/api/v1/oauth/token', '{"grant_type":', { 'content-type': 'application/json' });
    else {
      // Create and revoke: the registry churns while grants run.
      const id = `churn-${run}-${created++}`;
      const t = performance.now();
      try {
        const cred = await createCredential(server.base, token, id);
        await one('cold grant', 'POST', '/api/v1/oauth/token', grantBody(cred.clientId, cred.secret), form);
        await one('revoke', 'DELETE', `/api/v1/admin/m2m-clients/${cred.id}`, undefined, auth);
        (latencies.create ??= []).push(performance.now() - t);
        statuses.set('create 201', (statuses.get('create 201') ?? 0) + 1);
      } catch {
        statuses.set('create failed', (statuses.get('create failed') ?? 0) + 1);
      }
    }
  }
}

const started = Date.now();
const sampler = setInterval(() => rss.push([Math.round((Date.now() - started) / 1000), server.rssMiB()]), 5000);
await Promise.all(Array.from({ length: concurrency }, () => worker(started + seconds * 1000)));
clearInterval(sampler);
rss.push([Math.round((Date.now() - started) / 1000), server.rssMiB()]);
const exitCode = await server.stop();
await agent.close();

const elapsed = (Date.now() - started) / 1000;
const total = [...statuses.values()].reduce((a, b) => a + b, 0);
console.log(`soak: ${elapsed.toFixed(0)} s, ${concurrency} concurrent, ${total} requests (${(total / elapsed).toFixed(0)}/s), database ${process.env.DATABASE_URL ? 'PostgreSQL' : 'PGlite'}`);
console.table([...statuses.entries()].sort().map(([k, n]) => ({ 'kind status': k, count: n })));
console.table(Object.entries(latencies).map(([kind, xs]) => ({ kind, n: xs.length, 'p50 ms': pct(xs, 50).toFixed(2), 'p99 ms': pct(xs, 99).toFixed(2) })));
console.table(rss.map(([t, mib]) => ({ 's': t, 'server RSS MiB': mib.toFixed(1) })));
const bad = [...statuses.entries()].filter(([k]) => /\b5\d\d\b|error|ECONN|failed/.test(k));
console.log(`server exit code after SIGTERM: ${exitCode}`);
if (bad.length > 0 || exitCode !== 0) {
  console.error('FAIL:', bad);
  process.exit(1);
}
console.log('OK: zero 5xx, zero transport errors');
