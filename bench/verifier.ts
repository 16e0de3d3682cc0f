/**
 * Service-token verification (HS256, ~490-byte tokens shaped like auth-api's):
 *  1. a stream of distinct fresh tokens, each verified once: the SDK verifier
 *     (cache off / on) against raw jose with a pre-imported key and the same
 *     checks, plus fast-jwt (no cache / cache) and the floor, a bare HMAC;
 *  2. a realistic stream: 100,000 verifications drawn from 300 tokens: the SDK
 *     verifier (cache on) against fast-jwt with its cache, and raw jose;
 *  2b. the same stream through the SDK verifier with the revocation feed on
 *     (a local feed of 200 entries, polled every 2 s) against the same verifier
 *     with it off: the feed's check must cost under 10%;
 *  3. ES256 and EdDSA tokens (SERVICE_TOKEN_ALG): fresh tokens through the SDK
 *     verifier (publicKeys, cache off) against raw jose.jwtVerify with a local
 *     key set (createLocalJWKSet) and the same checks; repeated tokens (the
 *     stream of 2.) with the cache on.
 * Each is measured one at a time (awaited) and with 64 in flight. Every
 * contender is warmed up; then, in each of PASSES passes, every contender gets
 * a new instance (caches start empty) and the contenders take turns over
 * CHUNKS slices of their token lists, so load from other processes on this
 * shared machine falls on all of them alike. Fresh tokens: value = median
 * chunk rate, ratio = median of the chunk-by-chunk ratios to raw jose.
 * Repeated tokens: all tokens over all the time (the first chunk holds the
 * caches' misses).
 * Run: pnpm build && node_modules/.bin/tsx bench/verifier.ts  (BENCH_VERBOSE=1 prints each contender's spread;
 * BENCH_VERIFIER_ONLY=asymmetric runs group 3 alone, =revocation group 2b alone)
 */
import { createHmac, createSecretKey, timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { createServiceTokenVerifier } from '@rw3iss/auth-server-ts';
import { createVerifier } from 'fast-jwt';
import { createLocalJWKSet, jwtVerify } from 'jose';
import { perSecond, printTable, type Row, times } from './lib/report.js';
import { median } from './lib/rounds.js';
import { type AsymmetricBenchKey, asymmetricKey, asymmetricTokens, serviceTokens, TOKEN_AUDIENCE, TOKEN_ISSUER, TOKEN_SECRET } from './lib/service-tokens.js';

/** Passes over the token lists (each with new instances) and slices per pass. */
const PASSES = Number(process.env.BENCH_PASSES ?? 3);
const CHUNKS = 20;
const IN_FLIGHT = 64;
/** Distinct fresh tokens; the slow (WebCrypto) contenders verify the first FRESH_SLOW of them per pass, the others all. */
const FRESH = 20_000;
const FRESH_SLOW = Number(process.env.BENCH_FRESH_SLOW ?? 8_000);
const DISTINCT = 300;
const STREAM = 100_000;
/** Raw jose has no cache, so its rate does not depend on the stream's length: it verifies a prefix. */
const STREAM_SLOW = 10_000;
const WARM = 2_000;
/** Fresh ES256 / EdDSA tokens per pass, and the repeated stream's length, for group 3. */
const FRESH_ASYMMETRIC = Number(process.env.BENCH_FRESH_ASYMMETRIC ?? 6_000);
const STREAM_ASYMMETRIC = 50_000;

type VerifyFn = (token: string) => unknown;

interface Contender {
  name: string;
  /** Contenders built on WebCrypto (~10× slower): measured on fewer tokens. */
  slow: boolean;
  create(): Promise<VerifyFn>;
}

const secretBytes = new TextEncoder().encode(TOKEN_SECRET);
const REQUIRED = { scopes: ['gsku:publish'] };

function sdk(cache: boolean): Contender {
  return {
    name: cache ? 'SDK verifier, cache on' : 'SDK verifier, cache off',
    slow: false, // platform-shaped HS256 tokens take the node:crypto path, not WebCrypto
    async create() {
      const verifier = createServiceTokenVerifier({
        secret: TOKEN_SECRET,
        issuer: TOKEN_ISSUER,
        audience: TOKEN_AUDIENCE,
        ...(cache ? {} : { cache: false as const }),
      });
      // What a guard does: verify and require a scope.
      return (token) => verifier.verify(token, REQUIRED);
    },
  };
}

/**
 * The SDK verifier (cache on) with the revocation option, reading `feedUrl`
 * (loaded before measuring, then polled every 2 s, the default).
 */
function sdkWithFeed(feedUrl: string): Contender {
  return {
    name: 'SDK verifier, cache on, revocation feed on',
    slow: false,
    async create() {
      const verifier = createServiceTokenVerifier({
        secret: TOKEN_SECRET,
        issuer: TOKEN_ISSUER,
        audience: TOKEN_AUDIENCE,
        revocation: { url: feedUrl, token: () => 'bench-token' },
      });
      await verifier.syncRevocations();
      return (token) => verifier.verify(token, REQUIRED);
    },
  };
}

/** A local revocation feed: 100 revoked credentials and 100 revoked jtis (none of the bench's tokens). */
async function startFeed(): Promise<{ url: string; close(): void }> {
  const exp = Math.floor(Date.now() / 1000) + 3600;
  const body = JSON.stringify({
    cursor: 'c1',
    has_more: false,
    clients: Array.from({ length: 100 }, (_, i) => ({ client_id: `revoked-svc-${i}`, revoked_at: new Date().toISOString(), not_before: exp - 3000 })),
    tokens: Array.from({ length: 100 }, (_, i) => ({ jti: `revoked-jti-${i}`, client_id: 'x', exp })),
  });
  const server = createServer((req, res) => {
    if (req.headers['if-none-match'] === '"v1"') res.writeHead(304, { etag: '"v1"' }).end();
    else res.writeHead(200, { 'content-type': 'application/json', etag: '"v1"' }).end(body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  server.unref();
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1/oauth/revocations`,
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

/** 2b. Repeated tokens with the revocation feed on against off: the feed's check on the hot path must stay under 10%. */
async function revocationFeed(modes: readonly (readonly [number, string])[], stream: readonly string[], warmTokens: readonly string[]): Promise<Row[]> {
  const feed = await startFeed();
  try {
    const off = sdk(true);
    const on = sdkWithFeed(feed.url);
    await checkContenders([off, on], warmTokens[0]!);
    await warmUp([off, on], warmTokens);
    const rows: Row[] = [];
    const g = `2b. repeated tokens, revocation feed on vs off (${STREAM.toLocaleString('en-US')} verifications of ${DISTINCT} tokens)`;
    for (const [inFlight, mode] of modes) {
      const results = await interleaved('revocation feed', [on, off].map((contender) => ({ contender, tokens: stream })), inFlight, warmTokens);
      // Chunk by chunk (the first holds the cache misses of both): robust to load from other processes.
      const ratio = pairedRatio(results.get(on)!, results.get(off)!);
      rows.push({
        group: g,
        metric: `${on.name}, ${mode}`,
        value: perSecond(results.get(on)!.pooled),
        baseline: `feed off ${perSecond(results.get(off)!.pooled)}`,
        ratio: times(ratio),
        bar: '≥ 0.9×',
        pass: ratio >= 0.9,
      });
    }
    return rows;
  } finally {
    feed.close();
  }
}

const rawJose: Contender = {
  name: 'raw jose.jwtVerify',
  slow: true,
  async create() {
    const key = await crypto.subtle.importKey('raw', secretBytes, { name: 'HMAC', hash: 'SHA-256' }, false, ['verify']);
    const options = {
      issuer: TOKEN_ISSUER,
      audience: TOKEN_AUDIENCE,
      typ: 'at+jwt',
      algorithms: ['HS256'],
      requiredClaims: ['exp'],
      clockTolerance: 5,
    };
    return (token) => jwtVerify(token, key, options);
  },
};

function fastJwt(cache: boolean): Contender {
  return {
    name: cache ? 'fast-jwt, cache on' : 'fast-jwt, no cache',
    slow: false,
    async create() {
      return createVerifier({
        key: Buffer.from(secretBytes),
        algorithms: ['HS256'],
        allowedIss: TOKEN_ISSUER,
        allowedAud: TOKEN_AUDIENCE,
        checkTyp: 'at+jwt',
        requiredClaims: ['exp'],
        clockTolerance: 5_000,
        cache, // true = 1,000 entries, like the SDK's default
      });
    },
  };
}

const floor: Contender = {
  name: 'floor: createHmac + compare',
  slow: false,
  async create() {
    const key = createSecretKey(secretBytes);
    return (token) => {
      const dot = token.lastIndexOf('.');
      const mac = createHmac('sha256', key).update(token.slice(0, dot)).digest();
      const signature = Buffer.from(token.slice(dot + 1), 'base64url');
      if (signature.length !== mac.length || !timingSafeEqual(mac, signature)) throw new Error('bad signature');
      return true;
    };
  },
};

/** Seconds to verify `tokens`, one at a time or `inFlight` at once. */
async function timeChunk(verify: VerifyFn, tokens: readonly string[], inFlight: number): Promise<number> {
  const started = performance.now();
  if (inFlight === 1) {
    for (const token of tokens) await verify(token);
  } else {
    let next = 0;
    const worker = async () => {
      while (next < tokens.length) await verify(tokens[next++]!);
    };
    await Promise.all(Array.from({ length: Math.min(inFlight, tokens.length) }, worker));
  }
  return (performance.now() - started) / 1000;
}

/** Deterministic PRNG (mulberry32), so every run draws the same stream. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Result {
  /** Rate of each chunk, in the order they ran (aligned across contenders: chunk i of each ran back to back). */
  rates: number[];
  /** Median of the chunk rates: robust to bursts of load from other processes. */
  median: number;
  /** All tokens over all the time: includes one-off costs such as a cache's first misses. */
  pooled: number;
}

const orderRandom = prng(7);
/** 0…n−1 in a random order (Fisher–Yates). */
function shuffled(n: number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(orderRandom() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

/** Median over chunks of a's rate / b's rate, chunk i of each having run back to back: what the bars use. */
const pairedRatio = (a: Result, b: Result) => median(a.rates.map((rate, i) => rate / b.rates[i]!));

/** Warm-up: JIT, once per contender and mode, on tokens that are never measured. */
async function warmUp(contenders: readonly Contender[], warmTokens: readonly string[]): Promise<void> {
  for (const contender of contenders) {
    const verify = await contender.create();
    const tokens = warmTokens.slice(0, contender.slow ? WARM / 2 : WARM);
    await timeChunk(verify, tokens, 1);
    await timeChunk(verify, tokens, IN_FLIGHT);
  }
}

/**
 * Each pass gives every contender a new instance (empty cache) and its whole
 * token list, cut into CHUNKS slices; the contenders take turns slice by
 * slice, in a new random order each time, so load from other processes falls on
 * all of them alike.
 */
async function interleaved(
  label: string,
  entrants: readonly { contender: Contender; tokens: readonly string[] }[],
  inFlight: number,
  warmTokens: readonly string[],
): Promise<Map<Contender, Result>> {
  const rates = new Map<Contender, number[]>(entrants.map((e) => [e.contender, []]));
  const totals = new Map<Contender, { tokens: number; seconds: number }>(entrants.map((e) => [e.contender, { tokens: 0, seconds: 0 }]));
  for (let pass = 0; pass < PASSES; pass++) {
    const verifiers: VerifyFn[] = [];
    for (const { contender } of entrants) {
      const verify = await contender.create();
      await timeChunk(verify, warmTokens.slice(0, 20), 1); // the key import, on tokens not measured
      verifiers.push(verify);
    }
    for (let chunk = 0; chunk < CHUNKS; chunk++) {
      // A new random order each time: a contender that leaves garbage behind
      // must not always bill the same successor for its collection.
      for (const i of shuffled(entrants.length)) {
        const { contender, tokens } = entrants[i]!;
        const size = tokens.length / CHUNKS;
        const slice = tokens.slice(Math.round(chunk * size), Math.round((chunk + 1) * size));
        const seconds = await timeChunk(verifiers[i]!, slice, inFlight);
        rates.get(contender)!.push(slice.length / seconds);
        const total = totals.get(contender)!;
        total.tokens += slice.length;
        total.seconds += seconds;
      }
    }
  }
  const results = new Map<Contender, Result>();
  for (const { contender } of entrants) {
    const chunkRates = rates.get(contender)!;
    const total = totals.get(contender)!;
    const result = { rates: chunkRates, median: median(chunkRates), pooled: total.tokens / total.seconds };
    results.set(contender, result);
    if (process.env.BENCH_VERBOSE) {
      const r = (n: number) => Math.round(n).toLocaleString('en-US');
      console.error(
        `${label}, ${inFlight} in flight, ${contender.name}: median ${r(result.median)}/s, pooled ${r(result.pooled)}/s, chunks ${r(Math.min(...chunkRates))}–${r(Math.max(...chunkRates))}/s`,
      );
    }
  }
  return results;
}

function sdkAsymmetric(key: AsymmetricBenchKey, cache: boolean): Contender {
  return {
    name: `SDK verifier ${key.alg}, cache ${cache ? 'on' : 'off'}`,
    slow: false,
    async create() {
      const verifier = createServiceTokenVerifier({ publicKeys: [key.publicJwk], issuer: TOKEN_ISSUER, audience: TOKEN_AUDIENCE, ...(cache ? {} : { cache: false as const }) });
      return (token) => verifier.verify(token, REQUIRED);
    },
  };
}

function joseLocalSet(key: AsymmetricBenchKey): Contender {
  return {
    name: `raw jose.jwtVerify ${key.alg}, local key set`,
    slow: false,
    async create() {
      const keySet = createLocalJWKSet({ keys: [key.publicJwk] });
      const options = { issuer: TOKEN_ISSUER, audience: TOKEN_AUDIENCE, typ: 'at+jwt', algorithms: [key.alg], requiredClaims: ['exp'], clockTolerance: 5 };
      return (token) => jwtVerify(token, keySet, options);
    },
  };
}

/** 3. ES256 / EdDSA: fresh tokens (cache off) and the repeated stream (cache on), each against raw jose with a local key set. */
async function asymmetric(modes: readonly (readonly [number, string])[]): Promise<Row[]> {
  const rows: Row[] = [];
  for (const alg of ['ES256', 'EdDSA'] as const) {
    const key = await asymmetricKey(alg);
    const warm = asymmetricTokens(key, WARM, 1_000_000);
    const fresh = asymmetricTokens(key, FRESH_ASYMMETRIC);
    const distinct = asymmetricTokens(key, DISTINCT, 2_000_000);
    const random = prng(43);
    const stream = Array.from({ length: STREAM_ASYMMETRIC }, () => distinct[Math.floor(random() * DISTINCT)]!);
    const off = sdkAsymmetric(key, false);
    const on = sdkAsymmetric(key, true);
    const jose = joseLocalSet(key);
    await checkContenders([off, on, jose], fresh[0]!);
    await warmUp([off, jose], warm);
    const g = `3. ${alg} tokens (${Buffer.byteLength(fresh[0]!)} B)`;
    for (const [inFlight, mode] of modes) {
      const results = await interleaved(`fresh ${alg}`, [off, jose].map((contender) => ({ contender, tokens: fresh })), inFlight, warm);
      const ratio = pairedRatio(results.get(off)!, results.get(jose)!);
      rows.push({
        group: g,
        metric: `fresh: ${off.name}, ${mode}`,
        value: perSecond(results.get(off)!.median),
        baseline: `raw jose, local key set ${perSecond(results.get(jose)!.median)}`,
        ratio: times(ratio),
        bar: '≥ 1.0×',
        pass: ratio >= 1,
      });
      const repeated = await interleaved(`repeated ${alg}`, [{ contender: on, tokens: stream }, { contender: jose, tokens: stream.slice(0, STREAM_SLOW) }], inFlight, warm);
      const ours = repeated.get(on)!.pooled;
      const theirs = repeated.get(jose)!.pooled;
      rows.push({
        group: g,
        metric: `repeated (${DISTINCT} tokens): ${on.name}, ${mode}`,
        value: perSecond(ours),
        baseline: `raw jose, local key set ${perSecond(theirs)}`,
        ratio: times(ours / theirs),
        bar: '≥ 1.0×',
        pass: ours >= theirs,
      });
    }
  }
  return rows;
}

/** Each contender must refuse a token whose signature was altered, or its figure means nothing. */
async function checkContenders(contenders: Contender[], good: string): Promise<void> {
  const i = good.length - 10;
  const bad = good.slice(0, i) + (good[i] === 'A' ? 'B' : 'A') + good.slice(i + 1);
  for (const contender of contenders) {
    const verify = await contender.create();
    await verify(good);
    const refused = await Promise.resolve()
      .then(() => verify(bad))
      .then(
        () => false,
        () => true,
      );
    if (!refused) throw new Error(`${contender.name} accepted a token with a bad signature`);
  }
}

export async function run(): Promise<Row[]> {
  const modes = [
    [1, 'one at a time'],
    [IN_FLIGHT, `${IN_FLIGHT} in flight`],
  ] as const;
  // BENCH_VERIFIER_ONLY=asymmetric: group 3 alone (a quicker check while working on that path).
  if (process.env.BENCH_VERIFIER_ONLY === 'asymmetric') return asymmetric(modes);
  const warmTokens = serviceTokens(WARM, 1_000_000);
  const fresh = serviceTokens(FRESH);
  const distinct = serviceTokens(DISTINCT, 2_000_000);
  const random = prng(42);
  const stream = Array.from({ length: STREAM }, () => distinct[Math.floor(random() * DISTINCT)]!);
  const tokenBytes = Buffer.byteLength(fresh[0]!);
  if (process.env.BENCH_VERIFIER_ONLY === 'revocation') return revocationFeed(modes, stream, warmTokens);

  const sdkOff = sdk(false);
  const sdkOn = sdk(true);
  const fastNoCache = fastJwt(false);
  const fastCache = fastJwt(true);
  const everyone = [sdkOff, sdkOn, rawJose, fastNoCache, fastCache, floor];
  await checkContenders(everyone, fresh[0]!);
  await warmUp(everyone, warmTokens);

  const rows: Row[] = [];

  // 1. Fresh tokens: every chunk is alike (all misses), so the figure is the median chunk rate and
  // the ratio the median of the chunk-by-chunk ratios (adjacent chunks share the machine's load).
  const g1 = `1. fresh tokens (${FRESH.toLocaleString('en-US')} distinct, ${tokenBytes} B, each verified once)`;
  for (const [inFlight, mode] of modes) {
    const results = await interleaved(
      'fresh',
      everyone.map((contender) => ({ contender, tokens: contender.slow ? fresh.slice(0, FRESH_SLOW) : fresh })),
      inFlight,
      warmTokens,
    );
    const jose = results.get(rawJose)!;
    const row = (c: Contender, bar: number | undefined): Row => {
      const ratio = pairedRatio(results.get(c)!, jose);
      return {
        group: g1,
        metric: `${c.name}, ${mode}`,
        value: perSecond(results.get(c)!.median),
        baseline: `raw jose ${perSecond(jose.median)}`,
        ratio: times(ratio),
        bar: bar === undefined ? '—' : `≥ ${bar.toFixed(1)}×`,
        pass: bar === undefined || ratio >= bar,
      };
    };
    rows.push(row(sdkOff, 0.9), row(sdkOn, 0.9), row(fastNoCache, undefined), row(fastCache, undefined), row(floor, undefined));
    // The bar that matters on fresh tokens: every check jose makes, at least at fast-jwt's uncached speed.
    for (const c of [sdkOff, sdkOn]) {
      const ratio = pairedRatio(results.get(c)!, results.get(fastNoCache)!);
      rows.push({
        group: g1,
        metric: `${c.name}, ${mode}`,
        value: perSecond(results.get(c)!.median),
        baseline: `fast-jwt, no cache ${perSecond(results.get(fastNoCache)!.median)}`,
        ratio: times(ratio),
        bar: '≥ 1.0×',
        pass: ratio >= 1,
      });
    }
  }

  // 2. Repeated tokens: the first chunk holds the caches' misses, so the figure is all tokens over all the time.
  const g2 = `2. repeated tokens (${STREAM.toLocaleString('en-US')} verifications of ${DISTINCT} tokens)`;
  for (const [inFlight, mode] of modes) {
    const results = await interleaved(
      'repeated',
      [
        { contender: sdkOn, tokens: stream },
        { contender: fastCache, tokens: stream },
        { contender: rawJose, tokens: stream.slice(0, STREAM_SLOW) },
      ],
      inFlight,
      warmTokens,
    );
    const ours = results.get(sdkOn)!.pooled;
    const fast = results.get(fastCache)!.pooled;
    const jose = results.get(rawJose)!.pooled;
    rows.push(
      { group: g2, metric: `${sdkOn.name}, ${mode}`, value: perSecond(ours), baseline: `fast-jwt, cache on ${perSecond(fast)}`, ratio: times(ours / fast), bar: '≥ 1.0×', pass: ours >= fast },
      { group: g2, metric: `${sdkOn.name}, ${mode}`, value: perSecond(ours), baseline: `raw jose ${perSecond(jose)}`, ratio: times(ours / jose), bar: '—', pass: true },
    );
  }
  rows.push(...(await revocationFeed(modes, stream, warmTokens)));
  rows.push(...(await asymmetric(modes)));
  return rows;
}

if (import.meta.url === pathToFileURL(process.argv[1]!).href) printTable(await run());
