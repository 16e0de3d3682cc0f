/**
 * Server benchmarks, on PostgreSQL (a throwaway server unless DATABASE_URL):
 *  1. repeat grants (one credential renewing) vs a bare Fastify route and vs
 *     node-oidc-provider's client_credentials grant, with autocannon;
 *  1b. the same grants with SERVICE_TOKEN_ALG=ES256 and EdDSA against HS256
 *     (three servers, interleaved rounds);
 *  2. cold grants (each pays bcrypt): grants/s, event-loop delay and /healthz
 *     latency while 50 run at once;
 *  5. server RSS over 1,000,000 grants (BENCH_MEMORY_GRANTS to change).
 * Run: pnpm build && pnpm tsx bench/grants.ts
 */
import { performance, monitorEventLoopDelay } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import autocannon from 'autocannon';
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { Agent, request } from 'undici';
import { ms, perSecond, printTable, type Row, times } from './lib/report.js';
import { startPostgres, startScript } from './lib/processes.js';
import { watchMachine } from './lib/machine.js';
import { interleavedRounds, median, ratios, ratioText } from './lib/rounds.js';
import { adminToken, createCredential, grantBody, pct, SECRET, startServer } from './lib/server.js';

const DURATION = Number(process.env.BENCH_SECONDS ?? 8);
const CONNECTIONS = 32;
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };

const step = (message: string) => process.stderr.write(`  ${message}\n`);

/** One autocannon turn of `seconds` (32 connections); fails on any non-2xx or error. */
async function load(url: string, body: string, seconds: number) {
  step(`load ${url}`);
  const r = await autocannon({ url, method: 'POST', headers: FORM, body, connections: CONNECTIONS, duration: seconds });
  if (r.non2xx > 0 || r.errors > 0) throw new Error(`${url}: ${r.non2xx} non-2xx, ${r.errors} errors`);
  return { rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, total: r.requests.total };
}

/** Commits on the database of `databaseUrl` so far (pg_stat_database, flushed before each read). */
async function transactionCounter(databaseUrl: string) {
  const { connectDatabase } = await import('@rw3iss/auth-api/dist/db/connect.js');
  const database = await connectDatabase({ databaseUrl, poolSize: 1 });
  return {
    async read() {
      // Statistics reach pg_stat_database when a backend goes idle: wait that out, then take a fresh snapshot.
      await new Promise((r) => setTimeout(r, 1100));
      await sql`select pg_stat_clear_snapshot()`.execute(database.db);
      const { rows } = await sql<{ n: string }>`select xact_commit::text as n from pg_stat_database where datname = current_database()`.execute(database.db);
      return Number(rows[0]!.n);
    },
    close: () => database.close(),
  };
}

/** One per run, so every server on a database can open the keys another stored. */
const BENCH_KEK = randomBytes(32).toString('base64');
const ROUNDS = 4;

/** A fresh database on the same PostgreSQL server: each asymmetric alg gets its own first key. */
async function freshDatabase(databaseUrl: string, name: string): Promise<string> {
  const { connectDatabase } = await import('@rw3iss/auth-api/dist/db/connect.js');
  const database = await connectDatabase({ databaseUrl });
  try {
    await sql`drop database if exists ${sql.id(name)}`.execute(database.db);
    await sql`create database ${sql.id(name)}`.execute(database.db);
  } finally {
    await database.close();
  }
  const url = new URL(databaseUrl);
  url.pathname = `/${name}`;
  return url.toString();
}

/**
 * Repeat grants with SERVICE_TOKEN_ALG = HS256, ES256 and EdDSA: three servers
 * side by side, measured in ROUNDS short turns in a shuffled order, so load from
 * other processes falls on all three alike; ratio = mean rate / HS256's mean rate.
 */
async function signingAlgorithms(databaseUrl: string): Promise<Row[]> {
  const algs = ['HS256', 'ES256', 'EdDSA'] as const;
  const servers = [];
  try {
    for (const alg of algs) {
      const url = await freshDatabase(databaseUrl, `bench_grants_${alg.toLowerCase()}`);
      const server = await startServer({ databaseUrl: url, env: { SERVICE_TOKEN_ALG: alg, KEY_ENCRYPTION_KEY: BENCH_KEK } });
      servers.push(server);
      const credential = await createCredential(server.base, await adminToken(server.base), `alg-${alg.toLowerCase()}`);
      const tokenUrl = `${server.base}/api/v1/oauth/token`;
      const body = grantBody(credential.clientId, credential.secret);
      // The figure means nothing unless the tokens really are signed with `alg`.
      const sample = (await (await fetch(tokenUrl, { method: 'POST', headers: FORM, body })).json()) as { access_token: string };
      const header = JSON.parse(Buffer.from(sample.access_token.split('.')[0]!, 'base64url').toString());
      if (header.alg !== alg) throw new Error(`expected ${alg} tokens, got ${header.alg}`);
      step(`${alg}: warm-up`);
      await autocannon({ url: tokenUrl, method: 'POST', headers: FORM, body, connections: CONNECTIONS, duration: 2 });
      (server as { bench?: { url: string; body: string } }).bench = { url: tokenUrl, body };
    }
    const rates = new Map<string, number[]>(algs.map((a) => [a, []]));
    for (let round = 0; round < ROUNDS; round++) {
      for (const i of [0, 1, 2].sort(() => Math.random() - 0.5)) {
        const { url, body } = (servers[i] as { bench?: { url: string; body: string } }).bench!;
        const r = await autocannon({ url, method: 'POST', headers: FORM, body, connections: CONNECTIONS, duration: Math.max(1, Math.round(DURATION / 2)) });
        if (r.non2xx > 0 || r.errors > 0) throw new Error(`${algs[i]}: ${r.non2xx} non-2xx, ${r.errors} errors`);
        rates.get(algs[i]!)!.push(r.requests.average);
      }
    }
    const hs = rates.get('HS256')!;
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const g = `1b. repeat grants by SERVICE_TOKEN_ALG (PostgreSQL, ${ROUNDS} interleaved rounds)`;
    return (['ES256', 'EdDSA'] as const).map((alg): Row => {
      // Pooled over the rounds: a round that a burst of outside load hit counts for what it measured.
      const ratio = mean(rates.get(alg)!) / mean(hs);
      return { group: g, metric: `auth-api grants/s, ${alg}`, value: perSecond(mean(rates.get(alg)!)), baseline: `HS256 ${perSecond(mean(hs))}`, ratio: times(ratio), bar: '≥ 0.7×', pass: ratio >= 0.7 };
    });
  } finally {
    for (const server of servers) await server.stop();
  }
}

const REPEAT_ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);

/**
 * Repeat grants against the bare route and oidc-provider: the three servers run side by side and
 * take REPEAT_ROUNDS interleaved turns (bench/lib/rounds.ts); the bars hold on the median of the
 * per-round ratios, and the range is printed with it.
 */
async function repeatGrants(databaseUrl: string): Promise<Row[]> {
  const server = await startServer({ databaseUrl });
  const bare = await startScript('bare-server.ts', [], '/healthz');
  const oidc = await startScript('oidc-server.ts', [SECRET], '/.well-known/openid-configuration');
  try {
    const token = await adminToken(server.base);
    const cred = await createCredential(server.base, token, `repeat-${Date.now().toString(36)}`);
    const turn = DURATION / 2;
    const sides = {
      ours: () => load(`${server.base}/api/v1/oauth/token`, grantBody(cred.clientId, cred.secret), turn),
      bare: () => load(`${bare.base}/token`, grantBody(cred.clientId, cred.secret), turn),
      oidc: () => load(`${oidc.base}/token`, `${grantBody('bench-svc', SECRET)}&scope=bench%3Aread`, turn),
    };
    for (const measure of Object.values(sides)) await measure(); // warm-up turn, not counted
    // Transactions the database commits during the rounds (the change feed's heartbeats and the
    // counter's own reads included: an upper bound): repeat grants take the credential's state from
    // memory (docs/OPERATIONS.md, "Running several instances"). The other two sides use no database.
    const commits = await transactionCounter(databaseUrl);
    const before = await commits.read();
    let oursTotal = 0;
    const latency: Record<string, { p50: number[]; p99: number[] }> = { ours: { p50: [], p99: [] }, oidc: { p50: [], p99: [] } };
    const rates = await interleavedRounds(
      Object.fromEntries(
        Object.entries(sides).map(([name, measure]) => [
          name,
          async () => {
            const r = await measure();
            if (name === 'ours') oursTotal += r.total;
            latency[name]?.p50.push(r.p50);
            latency[name]?.p99.push(r.p99);
            return r.rps;
          },
        ]),
      ) as Record<keyof typeof sides, () => Promise<number>>,
      REPEAT_ROUNDS,
    );
    const committed = (await commits.read()) - before;
    await commits.close();
    const vsOidc = ratios(rates.ours, rates.oidc);
    const vsBare = ratios(rates.ours, rates.bare);
    const g = `1. repeat grants (PostgreSQL, median of ${REPEAT_ROUNDS} interleaved rounds)`;
    return [
      { group: g, metric: 'auth-api grants/s', value: perSecond(median(rates.ours)), baseline: `oidc-provider ${perSecond(median(rates.oidc))}`, ratio: ratioText(vsOidc), bar: '≥ 3×', pass: vsOidc.median >= 3 },
      { group: g, metric: 'auth-api grants/s', value: perSecond(median(rates.ours)), baseline: `bare Fastify route ${perSecond(median(rates.bare))}`, ratio: ratioText(vsBare), bar: '≥ 0.60×', pass: vsBare.median >= 0.6 },
      {
        group: g,
        metric: 'database transactions per repeat grant',
        value: (committed / oursTotal).toFixed(4),
        baseline: `${committed} in ${oursTotal} grants`,
        ratio: '',
        bar: '< 0.01 (state from memory)',
        pass: committed / oursTotal < 0.01,
      },
      { group: g, metric: 'auth-api latency p50 / p99', value: `${ms(median(latency.ours!.p50))} / ${ms(median(latency.ours!.p99))}`, baseline: `oidc-provider ${ms(median(latency.oidc!.p50))} / ${ms(median(latency.oidc!.p99))}`, ratio: '', bar: '—', pass: true },
    ];
  } finally {
    await server.stop();
    await bare.stop();
    await oidc.stop();
  }
}

/** In-process server so its event loop can be watched; 50 distinct credentials granted at once, /healthz pinged throughout. */
async function coldGrants(databaseUrl: string): Promise<Row[]> {
  const { buildApp } = await import('@rw3iss/auth-api/dist/app.js');
  const { loadConfig } = await import('@rw3iss/auth-api/dist/config.js');
  const { connectDatabase } = await import('@rw3iss/auth-api/dist/db/connect.js');
  const { migrateToLatest } = await import('@rw3iss/auth-api/dist/db/migrations.js');
  const { createAdminUser } = await import('@rw3iss/auth-api/dist/modules/admin-auth/admin-auth.service.js');
  const { createBcryptHasher } = await import('@rw3iss/auth-api/dist/lib/password.js');

  const config = loadConfig({ NODE_ENV: 'development', DATABASE_URL: databaseUrl, JWT_ACCESS_SECRET: SECRET, LOG_LEVEL: 'warn', RATE_LIMIT_PER_MINUTE: '0', BCRYPT_COST: '10' });
  const database = await connectDatabase({ databaseUrl });
  await migrateToLatest(database.db);
  const hasher = createBcryptHasher(10);
  const email = `cold-${Date.now().toString(36)}@example.com`;
  await createAdminUser(database.db, hasher, email, 'cold bench password', { id: null, label: 'bench', ip: null });
  const app = await buildApp({ config, database, hasher, logger: false });
  await app.listen({ port: 0, host: '127.0.0.1' });
  const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  const login = await fetch(`${base}/api/v1/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password: 'cold bench password' }) });
  const token = ((await login.json()) as { tokens: { access_token: string } }).tokens.access_token;
  const run = Date.now().toString(36);
  const creds = [];
  step('cold grants: creating 150 credentials');
  for (let i = 0; i < 150; i++) creds.push(await createCredential(base, token, `cold-${run}-${i}`));
  const agent = new Agent({ connections: 128 });

  const grant = (c: { clientId: string; secret: string }) =>
    request(`${base}/api/v1/oauth/token`, { method: 'POST', headers: FORM, body: grantBody(c.clientId, c.secret), dispatcher: agent }).then(async (r) => {
      await r.body.dump();
      if (r.statusCode !== 200) throw new Error(`cold grant: ${r.statusCode}`);
    });

  // Throughput: 100 distinct credentials, 50 at a time.
  let t = performance.now();
  for (let i = 0; i < 100; i += 50) await Promise.all(creds.slice(i, i + 50).map(grant));
  const coldRps = 100 / ((performance.now() - t) / 1000);

  // Responsiveness: 50 more at once, while /healthz is called every 5 ms.
  const loop = monitorEventLoopDelay({ resolution: 1 });
  const health: number[] = [];
  let done = false;
  const pinger = (async () => {
    while (!done) {
      const s = performance.now();
      const r = await request(`${base}/healthz`, { dispatcher: agent });
      await r.body.dump();
      health.push(performance.now() - s);
      await new Promise((r) => setTimeout(r, 5));
    }
  })();
  loop.enable();
  t = performance.now();
  await Promise.all(creds.slice(100, 150).map(grant));
  const burstMs = performance.now() - t;
  done = true;
  await pinger;
  loop.disable();
  await agent.close();
  await app.close();
  await database.close();

  const g = '2. cold grants (bcrypt cost 10)';
  const loopP99 = loop.percentile(99) / 1e6;
  return [
    { group: g, metric: 'cold grants/s (50 at a time)', value: perSecond(coldRps), baseline: '', ratio: '', bar: '—', pass: true },
    { group: g, metric: '50 at once: all done in', value: ms(burstMs), baseline: '', ratio: '', bar: '—', pass: true },
    { group: g, metric: 'event-loop delay p99 during the 50', value: ms(loopP99), baseline: '', ratio: '', bar: '—', pass: true },
    { group: g, metric: `/healthz p99 during the 50 (n=${health.length})`, value: ms(pct(health, 99)), baseline: `p50 ${ms(pct(health, 50))}`, ratio: '', bar: '< 25 ms', pass: pct(health, 99) < 25 },
  ];
}

async function memory(databaseUrl: string): Promise<Row[]> {
  const total = Number(process.env.BENCH_MEMORY_GRANTS ?? 1_000_000);
  const server = await startServer({ databaseUrl });
  const token = await adminToken(server.base);
  const creds = await Promise.all(Array.from({ length: 4 }, (_, i) => createCredential(server.base, token, `mem-${Date.now().toString(36)}-${i}`)));
  const samples: number[] = [server.rssMiB()];
  step(`memory: ${total} grants`);
  const quarter = Math.ceil(total / 4);
  for (let q = 0; q < 4; q++) {
    const c = creds[q]!;
    const r = await autocannon({ url: `${server.base}/api/v1/oauth/token`, method: 'POST', headers: FORM, body: grantBody(c.clientId, c.secret), connections: CONNECTIONS, amount: quarter });
    if (r.non2xx > 0 || r.errors > 0) throw new Error(`memory run: ${r.non2xx} non-2xx, ${r.errors} errors`);
    samples.push(server.rssMiB());
  }
  await server.stop();
  const g = `5. memory (${total.toLocaleString('en-US')} grants)`;
  const [start, , half, , end] = samples as [number, number, number, number, number];
  return [
    { group: g, metric: 'server RSS: start → ¼ → ½ → ¾ → end', value: samples.map((m) => m.toFixed(0)).join(' → ') + ' MiB', baseline: '', ratio: '', bar: '—', pass: true },
    { group: g, metric: 'RSS growth over the second half', value: `${(end - half).toFixed(1)} MiB`, baseline: `first half ${(half - start).toFixed(1)} MiB`, ratio: '', bar: '< 32 MiB (levels off)', pass: end - half < 32 },
  ];
}

const parts = { repeat: repeatGrants, algs: signingAlgorithms, cold: coldGrants, memory } as const;

/** Every part (or only those named), on one PostgreSQL. */
export async function run(only: (keyof typeof parts)[] = Object.keys(parts) as (keyof typeof parts)[]): Promise<Row[]> {
  const pg = await startPostgres();
  try {
    const rows: Row[] = [];
    for (const name of only) rows.push(...(await parts[name](pg.url)));
    return rows;
  } finally {
    pg.stop();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]!).href) {
  const machine = watchMachine();
  // BENCH_ONLY=repeat,algs (any of repeat, algs, cold, memory): only those groups.
  const only = process.env.BENCH_ONLY?.split(',').map((name) => name.trim());
  const unknown = only?.filter((name) => !(name in parts));
  if (unknown?.length) throw new Error(`BENCH_ONLY: unknown group ${unknown.join(', ')} (known: ${Object.keys(parts).join(', ')})`);
  printTable(await run(only as (keyof typeof parts)[] | undefined));
  console.log(machine.finish().summary);
}
