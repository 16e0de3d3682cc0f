/**
 * 6. The cost of permission catalogs on the token endpoint. The built server
 * on PostgreSQL; two credentials renewing in turns, each with six scopes:
 * one in namespaces no catalog covers, one in namespaces five catalogs of 200
 * codes each cover (one of its scopes pruned, so orphaned). The usable scopes
 * are computed in the credential's read (no extra query), so the catalogued
 * credential must keep ≥ 0.85× the other's rate.
 * Run: pnpm build && pnpm tsx bench/catalog-grants.ts
 */
import { pathToFileURL } from 'node:url';
import autocannon from 'autocannon';
import { startPostgres } from './lib/processes.js';
import { perSecond, printTable, type Row, times } from './lib/report.js';
import { adminToken, createCredential, grantBody, startServer } from './lib/server.js';

const DURATION = Number(process.env.BENCH_SECONDS ?? 8);
const ROUNDS = 2;
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

async function load(url: string, body: string, duration: number) {
  const r = await autocannon({ url, method: 'POST', headers: FORM, body, connections: 32, duration });
  if (r.non2xx > 0 || r.errors > 0) throw new Error(`${url}: ${r.non2xx} non-2xx, ${r.errors} errors`);
  return r.requests.average;
}

async function register(base: string, token: string, service: string, codes: string[]) {
  const res = await fetch(`${base}/api/v1/admin/permissions/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ service, permissions: codes.map((code) => ({ code, name: code, description: `The ${code} permission` })) }),
  });
  if (res.status !== 200) throw new Error(`register failed: ${res.status} ${await res.text()}`);
}

export async function run(): Promise<Row[]> {
  const pg = await startPostgres();
  const server = await startServer({ databaseUrl: pg.url });
  try {
    const token = await adminToken(server.base);
    const services = ['cat0', 'cat1', 'cat2', 'cat3', 'cat4'];
    const codes = (s: string) => Array.from({ length: 200 }, (_, i) => `${s}:perm${i}`);
    for (const s of services) await register(server.base, token, s, codes(s));
    const run = Date.now().toString(36);
    const plain = await createCredential(server.base, token, `plain-${run}`, ['free0:read', 'free1:read', 'free2:read', 'free3:read', 'free4:read', 'free5:read']);
    const catalogued = await createCredential(server.base, token, `catalogued-${run}`, ['cat0:perm1', 'cat1:perm50', 'cat2:perm100', 'cat3:perm150', 'cat4:perm199', 'cat0:perm199']);
    // Prune cat0:perm199: the catalogued credential now holds one orphaned scope, left out of its tokens.
    await register(server.base, token, 'cat0', codes('cat0').slice(0, 199));

    const url = `${server.base}/api/v1/oauth/token`;
    await load(url, grantBody(plain.clientId, plain.secret), 2);
    await load(url, grantBody(catalogued.clientId, catalogued.secret), 2);
    let plainSum = 0;
    let cataloguedSum = 0;
    for (let i = 0; i < ROUNDS; i++) {
      plainSum += await load(url, grantBody(plain.clientId, plain.secret), DURATION / ROUNDS);
      cataloguedSum += await load(url, grantBody(catalogued.clientId, catalogued.secret), DURATION / ROUNDS);
    }
    const ratio = cataloguedSum / plainSum;
    return [
      {
        group: '6. grants with catalogs (PostgreSQL)',
        metric: 'grants/s, 5 scopes in catalogued namespaces + 1 orphaned',
        value: perSecond(cataloguedSum / ROUNDS),
        baseline: `6 scopes, no catalog ${perSecond(plainSum / ROUNDS)}`,
        ratio: times(ratio),
        bar: '≥ 0.85×',
        pass: ratio >= 0.85,
      },
    ];
  } finally {
    await server.stop();
    pg.stop();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]!).href) printTable(await run());
