/**
 * 7. Responsiveness under a bcrypt flood: the built server on PostgreSQL, 8
 *    source addresses (127.0.0.2–9) each sending junk grants (unknown
 *    client_ids, so every one that is let through pays a cost-10 compare) with
 *    16 in flight, until each is at its per-address failure limit and beyond.
 *    Meanwhile /healthz (every 5 ms), a cached grant (every 5 ms) and an admin
 *    request (every 50 ms) are timed. Baseline: the same probes with no flood,
 *    in the same run. Bars (issue #12): /healthz and cached-grant p99 < 25 ms,
 *    admin request p99 < 100 ms.
 * Run: pnpm build && pnpm tsx bench/flood.ts   (BENCH_FLOOD_SECONDS, default 10)
 */
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { Agent, request } from 'undici';
import { ms, printTable, type Row } from './lib/report.js';
import { startPostgres } from './lib/processes.js';
import { adminToken, createCredential, grantBody, pct, startServer } from './lib/server.js';

const SECONDS = Number(process.env.BENCH_FLOOD_SECONDS ?? 10);
const ADDRESSES = 8;
const IN_FLIGHT_PER_ADDRESS = 16;
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const step = (message: string) => process.stderr.write(`  ${message}\n`);

interface Probes {
  healthz: number[];
  cached: number[];
  admin: number[];
}

async function probe(base: string, cred: { clientId: string; secret: string }, token: string, untilMs: number): Promise<Probes> {
  const agent = new Agent({ connections: 8 });
  const out: Probes = { healthz: [], cached: [], admin: [] };
  const timed = async (into: number[], send: () => Promise<{ statusCode: number; body: { dump(): Promise<void> } }>, expected: number) => {
    const started = performance.now();
    const res = await send();
    await res.body.dump();
    if (res.statusCode !== expected) throw new Error(`probe answered ${res.statusCode}`);
    into.push(performance.now() - started);
  };
  const loop = async (everyMs: number, run: () => Promise<void>) => {
    while (performance.now() < untilMs) {
      await run();
      await new Promise((r) => setTimeout(r, everyMs));
    }
  };
  await Promise.all([
    loop(5, () => timed(out.healthz, () => request(`${base}/healthz`, { dispatcher: agent }), 200)),
    loop(5, () => timed(out.cached, () => request(`${base}/api/v1/oauth/token`, { method: 'POST', headers: FORM, body: grantBody(cred.clientId, cred.secret), dispatcher: agent }), 200)),
    loop(50, () => timed(out.admin, () => request(`${base}/api/v1/admin/m2m-clients`, { headers: { authorization: `Bearer ${token}` }, dispatcher: agent }), 200)),
  ]);
  await agent.close();
  return out;
}

/** Junk grants from one source address, `IN_FLIGHT_PER_ADDRESS` at a time, until `untilMs`. */
async function flood(base: string, address: string, untilMs: number, statuses: Map<number, number>) {
  // undici takes the source address as an Agent option: as a `connect` option it is overridden, and
  // every flooder came from 127.0.0.1 (the flood then also locked 127.0.0.1 out of cold grants).
  const agent = new Agent({ connections: IN_FLIGHT_PER_ADDRESS, localAddress: address });
  let n = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT_PER_ADDRESS }, async () => {
      while (performance.now() < untilMs) {
        const res = await request(`${base}/api/v1/oauth/token`, { method: 'POST', headers: FORM, body: grantBody(`junk-${address}-${n++}`, 'm2msk_junk'), dispatcher: agent });
        await res.body.dump();
        statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
        // A flooder ignores Retry-After on a shed (503): its attempt was not counted, so it keeps the
        // budget full. Over its limit (429) it polls for room every 100 ms (the bench client shares
        // the server's cores: a hot loop here would measure the client, not the server).
        if (res.statusCode === 429) await new Promise((r) => setTimeout(r, 100));
      }
    }),
  );
  await agent.close();
}

export async function run(): Promise<Row[]> {
  const pg = await startPostgres();
  const port = process.env.BENCH_PORT ? Number(process.env.BENCH_PORT) : undefined;
  const server = await startServer({ databaseUrl: pg.url, env: { BCRYPT_COST: '10' }, ...(port ? { port } : {}) });
  try {
    const token = await adminToken(server.base);
    const cred = await createCredential(server.base, token, `flood-${Date.now().toString(36)}`);
    // Warm: the cached grant below skips bcrypt, as a renewing service does.
    await fetch(`${server.base}/api/v1/oauth/token`, { method: 'POST', headers: FORM, body: grantBody(cred.clientId, cred.secret) }).then((r) => r.text());

    step('flood: baseline probes, no flood (3 s)');
    const idle = await probe(server.base, cred, token, performance.now() + 3000);

    step(`flood: ${ADDRESSES} addresses × ${IN_FLIGHT_PER_ADDRESS} in flight, ${SECONDS} s`);
    const until = performance.now() + SECONDS * 1000;
    const statuses = new Map<number, number>();
    const flooding = Promise.all(Array.from({ length: ADDRESSES }, (_, i) => flood(server.base, `127.0.0.${2 + i}`, until, statuses)));
    // Probes start once the flood has filled the budget.
    await new Promise((r) => setTimeout(r, 500));
    const busy = await probe(server.base, cred, token, until);
    await flooding;

    const g = `7. bcrypt flood (cost 10, ${ADDRESSES} addresses)`;
    const counts = [...statuses].sort(([a], [b]) => a - b).map(([s, c]) => `${c.toLocaleString('en-US')}×${s}`).join(', ');
    const row = (metric: string, during: number[], before: number[], bar: number): Row => ({
      group: g,
      metric: `${metric} p99 (n=${during.length}; max ${ms(Math.max(...during))})`,
      value: ms(pct(during, 99)),
      baseline: `no flood ${ms(pct(before, 99))}`,
      ratio: '',
      bar: `< ${bar} ms`,
      pass: during.length > 0 && pct(during, 99) < bar,
    });
    return [
      { group: g, metric: 'flood answers (401 compared, 503 shed, 429 over the limit)', value: counts, baseline: '', ratio: '', bar: '—', pass: true },
      row('/healthz', busy.healthz, idle.healthz, 25),
      row('cached grant', busy.cached, idle.cached, 25),
      row('admin request (GET /admin/m2m-clients)', busy.admin, idle.admin, 100),
    ];
  } finally {
    await server.stop();
    pg.stop();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]!).href) printTable(await run());
