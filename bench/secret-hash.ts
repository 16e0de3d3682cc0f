/**
 * Cold grants by CLIENT_SECRET_HASH, on PostgreSQL (a throwaway server unless
 * DATABASE_URL): every grant is the first of its credential on a server with
 * an empty verified-secret cache, so each pays its secret check.
 *  - bcrypt (cost 10, the default), one secret per credential: the baseline;
 *  - bcrypt, two live secrets (mid-rotation), the old one presented: the hint
 *    picks one candidate, so it costs what one secret does (bar ≥ 0.7×; two compares would be ~0.5×);
 *  - hmac-sha256 (keyed by CLIENT_SECRET_PEPPER).
 * In-process servers on one database, measured in interleaved rounds (a fresh
 * app each round, so no grant is served from the cache).
 * Run: pnpm build && pnpm tsx bench/secret-hash.ts
 */
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { Agent, request } from 'undici';
import { perSecond, printTable, type Row, times } from './lib/report.js';
import { startPostgres } from './lib/processes.js';
import { grantBody, SECRET } from './lib/server.js';

const PER_VARIANT = Number(process.env.BENCH_COLD_GRANTS ?? 60);
const AT_ONCE = 20;
const ROUNDS = 3;
const PEPPER = 'bench-pepper-0123456789-abcdefghijklmnopqrstuvwxyz';
const FORM = { 'content-type': 'application/x-www-form-urlencoded' };
const step = (message: string) => process.stderr.write(`  ${message}\n`);

type Variant = { name: string; hash: 'bcrypt' | 'hmac-sha256'; rotated: boolean };
const VARIANTS: Variant[] = [
  { name: 'bcrypt, one secret', hash: 'bcrypt', rotated: false },
  { name: 'bcrypt, two live secrets (old one presented)', hash: 'bcrypt', rotated: true },
  { name: 'hmac-sha256', hash: 'hmac-sha256', rotated: false },
];

export async function run(): Promise<Row[]> {
  const { buildApp } = await import('@rw3iss/auth-api/dist/app.js');
  const { loadConfig } = await import('@rw3iss/auth-api/dist/config.js');
  const { connectDatabase } = await import('@rw3iss/auth-api/dist/db/connect.js');
  const { migrateToLatest } = await import('@rw3iss/auth-api/dist/db/migrations.js');
  const { createBcryptHasher } = await import('@rw3iss/auth-api/dist/lib/password.js');
  const { createClientSecretHasher } = await import('@rw3iss/auth-api/dist/lib/client-secret-hash.js');
  const { createClientSecretsService } = await import('@rw3iss/auth-api/dist/modules/m2m-clients/client-secrets.service.js');
  const { createM2MClientsService } = await import('@rw3iss/auth-api/dist/modules/m2m-clients/m2m-clients.service.js');

  const pg = await startPostgres();
  const database = await connectDatabase({ databaseUrl: pg.url });
  const agent = new Agent({ connections: 64 });
  try {
    await migrateToLatest(database.db);
    const bcrypt = createBcryptHasher(10);
    const pepper = Buffer.from(PEPPER);
    const actor = { id: null, label: 'bench', ip: null };
    const run = Date.now().toString(36);
    // Credentials made directly with the services (as the CLI does): the same rows the routes write.
    const credentials = new Map<string, { clientId: string; secret: string }[]>();
    for (const variant of VARIANTS) {
      step(`secret hash: ${PER_VARIANT} credentials, ${variant.name}`);
      const secrets = createClientSecretHasher({ alg: variant.hash, bcrypt, pepper });
      const clients = createM2MClientsService({ db: database.db, secrets, clock: Date.now, checkScopes: async () => {} });
      const rotation = createClientSecretsService({ db: database.db, hasher: secrets, clock: Date.now });
      const list = [];
      for (let i = 0; i < PER_VARIANT; i++) {
        const created = await clients.create({ client_id: `sh-${run}-${variant.hash}-${variant.rotated ? 'r' : 'o'}-${i}`, name: 'bench' }, actor);
        if (variant.rotated) await rotation.rotate(created.client.id, {}, actor);
        list.push({ clientId: created.client.client_id, secret: created.client_secret });
      }
      credentials.set(variant.name, list);
    }

    const rates = new Map<string, number[]>(VARIANTS.map((v) => [v.name, []]));
    for (let round = 0; round < ROUNDS; round++) {
      for (const variant of [...VARIANTS].sort(() => Math.random() - 0.5)) {
        const config = loadConfig({
          NODE_ENV: 'development',
          DATABASE_URL: pg.url,
          JWT_ACCESS_SECRET: SECRET,
          JWT_ISSUER: 'http://127.0.0.1',
          LOG_LEVEL: 'warn',
          RATE_LIMIT_PER_MINUTE: '0',
          BCRYPT_COST: '10',
          BCRYPT_MAX_WAIT_MS: '60000',
          CLIENT_SECRET_HASH: variant.hash,
          CLIENT_SECRET_PEPPER: PEPPER,
        });
        // A new app: an empty verified-secret cache, so every grant below is cold.
        const app = await buildApp({ config, database, hasher: bcrypt, logger: false });
        await app.listen({ port: 0, host: '127.0.0.1' });
        const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}/api/v1/oauth/token`;
        const grant = (c: { clientId: string; secret: string }) =>
          request(url, { method: 'POST', headers: FORM, body: grantBody(c.clientId, c.secret), dispatcher: agent }).then(async (r) => {
            await r.body.dump();
            if (r.statusCode !== 200) throw new Error(`${variant.name}: cold grant answered ${r.statusCode}`);
          });
        const list = credentials.get(variant.name)!;
        const t = performance.now();
        for (let i = 0; i < list.length; i += AT_ONCE) await Promise.all(list.slice(i, i + AT_ONCE).map(grant));
        rates.get(variant.name)!.push(list.length / ((performance.now() - t) / 1000));
        await app.close();
      }
    }
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const base = mean(rates.get(VARIANTS[0]!.name)!);
    const g = `8. cold grants by CLIENT_SECRET_HASH (PostgreSQL, ${PER_VARIANT} credentials, ${AT_ONCE} at a time, ${ROUNDS} interleaved rounds)`;
    return VARIANTS.map((variant, i): Row => {
      const rate = mean(rates.get(variant.name)!);
      const ratio = rate / base;
      if (i === 0) return { group: g, metric: `cold grants/s, ${variant.name}`, value: perSecond(rate), baseline: '(baseline)', ratio: '', bar: '—', pass: true };
      const bar = variant.rotated ? { bar: '≥ 0.7× (one compare; two would be ~0.5×)', pass: ratio >= 0.7 } : { bar: '> 1× (no bcrypt on success)', pass: ratio > 1 };
      return { group: g, metric: `cold grants/s, ${variant.name}`, value: perSecond(rate), baseline: `bcrypt ${perSecond(base)}`, ratio: times(ratio), ...bar };
    });
  } finally {
    await agent.close();
    await database.close();
    pg.stop();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]!).href) printTable(await run());
