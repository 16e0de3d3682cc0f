/**
 * ServiceTokenManager against a tiny local token endpoint (node:http on 127.0.0.1):
 *  1. cached getToken() calls/s, awaited one at a time, next to the cost of a
 *     bare `await Promise.resolve(token)` loop measured in the same run;
 *  2. request coalescing: 10,000 concurrent getToken() calls on an empty
 *     cache, just past expiry and inside the renewal window must each cause
 *     exactly one request to the token endpoint.
 * For 2 the manager runs on a fake clock whose timers never fire: time jumps
 * as if the process had been idle or suspended, so no renewal timer got a
 * chance to run before the callers arrive.
 * Run: pnpm build && node_modules/.bin/tsx bench/token-manager.ts
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { type Clock, ServiceTokenManager, type ServiceTokenManagerOptions } from '@rw3iss/auth-server-ts';
import { Agent } from 'undici';
import { ms, perSecond, printTable, type Row, times } from './lib/report.js';
import { serviceToken } from './lib/service-tokens.js';

const CALLS = Number(process.env.BENCH_CALLS ?? 2_000_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONCURRENT = 10_000;
const EXPIRES_IN_SEC = 900;

interface TokenEndpoint {
  url: string;
  /** POSTs answered since the start or the last reset(). */
  requests(): number;
  reset(): void;
  close(): Promise<void>;
}

/** Answers every POST /token with a fresh signed service token (RFC 6749 §5.1). */
async function startTokenEndpoint(): Promise<TokenEndpoint> {
  let count = 0;
  let issued = 0;
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/token') {
        res.writeHead(404).end();
        return;
      }
      count++;
      const body = JSON.stringify({ access_token: serviceToken(issued++), token_type: 'Bearer', expires_in: EXPIRES_IN_SEC, scope: 'gsku:publish' });
      res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(body);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/token`,
    requests: () => count,
    reset: () => {
      count = 0;
    },
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}

/** A clock that moves only when told to; its timers never fire. */
function fakeClock(): Clock & { advance(ms: number): void } {
  let now = Date.now();
  return {
    now: () => now,
    setTimeout: () => ({}),
    clearTimeout: () => {},
    advance: (ms) => {
      now += ms;
    },
  };
}

async function cachedCalls(options: ServiceTokenManagerOptions): Promise<Row[]> {
  const manager = new ServiceTokenManager(options);
  const token = await manager.getToken(); // fills the cache
  const cached = async () => {
    let last = '';
    const started = performance.now();
    for (let i = 0; i < CALLS; i++) last = await manager.getToken();
    const rate = CALLS / ((performance.now() - started) / 1000);
    if (last !== token) throw new Error('getToken() did not answer from the cache');
    return rate;
  };
  const bare = async () => {
    let last = '';
    const started = performance.now();
    for (let i = 0; i < CALLS; i++) last = await Promise.resolve(token);
    const rate = CALLS / ((performance.now() - started) / 1000);
    if (last !== token) throw new Error('unreachable');
    return rate;
  };
  // Warm-up, then interleaved rounds; the best of each counts.
  await cached();
  await bare();
  let ours = 0;
  let baseline = 0;
  for (let round = 0; round < ROUNDS; round++) {
    ours = Math.max(ours, await cached());
    baseline = Math.max(baseline, await bare());
  }
  await manager.close();
  const g = `1. cached getToken() (${CALLS.toLocaleString('en-US')} awaited calls)`;
  return [
    { group: g, metric: 'getToken() from the cache', value: perSecond(ours), baseline: `await Promise.resolve(token) ${perSecond(baseline)}`, ratio: times(ours / baseline), bar: '≥ 5,000,000/s', pass: ours >= 5_000_000 },
  ];
}

/** Fires CONCURRENT getToken() at once; returns the requests the endpoint saw, the distinct tokens handed out and the time. */
async function stampede(manager: ServiceTokenManager, endpoint: TokenEndpoint) {
  endpoint.reset();
  const started = performance.now();
  const tokens = await Promise.all(Array.from({ length: CONCURRENT }, () => manager.getToken()));
  return { requests: endpoint.requests(), distinct: new Set(tokens).size, elapsed: performance.now() - started, tokens };
}

async function coalescing(options: ServiceTokenManagerOptions, endpoint: TokenEndpoint): Promise<Row[]> {
  const g = `2. ${CONCURRENT.toLocaleString('en-US')} concurrent getToken() → token endpoint requests`;
  const n = CONCURRENT.toLocaleString('en-US');
  const row = (metric: string, requests: number, extraOk: boolean): Row => ({
    group: g,
    metric,
    value: `${requests} request${requests === 1 ? '' : 's'}`,
    baseline: '',
    ratio: '',
    bar: 'exactly 1',
    pass: requests === 1 && extraOk,
  });
  const rows: Row[] = [];

  // Empty cache: a manager that never fetched.
  {
    const clock = fakeClock();
    const manager = new ServiceTokenManager({ ...options, clock });
    const r = await stampede(manager, endpoint);
    rows.push(row(`empty cache: all ${n} got one token (${ms(r.elapsed)})`, r.requests, r.distinct === 1));
    await manager.close();
  }

  // Just past expiry: every caller must wait for the one new token.
  {
    const clock = fakeClock();
    const manager = new ServiceTokenManager({ ...options, clock });
    const old = await manager.getToken();
    clock.advance(EXPIRES_IN_SEC * 1000 + 1);
    const r = await stampede(manager, endpoint);
    const fresh = r.distinct === 1 && r.tokens[0] !== old;
    rows.push(row(`past expiry: all ${n} got the new token (${ms(r.elapsed)})`, r.requests, fresh));
    await manager.close();
  }

  // Inside the renewal window (past renewAt ≤ 80% of the lifetime, before expiry): callers get
  // the current token at once and one background request renews it.
  {
    const clock = fakeClock();
    const manager = new ServiceTokenManager({ ...options, clock });
    const old = await manager.getToken();
    clock.advance(EXPIRES_IN_SEC * 1000 * 0.9);
    const r = await stampede(manager, endpoint);
    const deadline = Date.now() + 5_000;
    let renewed = '';
    while ((renewed = await manager.getToken()) === old && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
    const ok = r.distinct === 1 && r.tokens[0] === old && renewed !== old;
    rows.push(row(`renewal window: all ${n} served the cached token, renewed in background (${ms(r.elapsed)})`, endpoint.requests(), ok));
    await manager.close();
  }
  return rows;
}

export async function run(): Promise<Row[]> {
  const endpoint = await startTokenEndpoint();
  const dispatcher = new Agent();
  try {
    const options: ServiceTokenManagerOptions = {
      tokenEndpoint: endpoint.url,
      clientId: 'billing-svc',
      clientSecret: 'm2msk_bench-client-secret-0123456789abcdef',
      scopes: ['gsku:publish'],
      dispatcher,
      retry: { maxAttempts: 1 }, // a failure should fail the benchmark, not wait on the fake clock
    };
    return [...(await cachedCalls(options)), ...(await coalescing(options, endpoint))];
  } finally {
    await dispatcher.close();
    await endpoint.close();
  }
}

if (import.meta.url === pathToFileURL(process.argv[1]!).href) printTable(await run());
