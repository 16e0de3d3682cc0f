import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { DatabaseHandle } from '../../db/connect.js';
import type { VerifiedSecretCache } from '../../lib/secret-cache.js';
import type { FailureThrottle } from '../../lib/throttle.js';

export interface MetricsSources {
  database: DatabaseHandle;
  /** bcrypt jobs running and waiting (lib/work-budget.ts). */
  bcryptLoad: () => { running: number; queued: number };
  version: string;
}

/**
 * The server's Prometheus metrics, on a registry of its own (several apps in
 * one process, as in tests, do not share counters). Hot-path counters are
 * bound to their labels once, so a grant pays a few additions, no lookup.
 * Everything else (bcrypt load, pool use) is read when scraped.
 */
export function createMetrics({ database, bcryptLoad, version }: MetricsSources) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });

  const grants = new Counter({ name: 'authapi_grants_total', help: 'Token requests (POST /oauth/token) by outcome: granted, an OAuth error code, throttled or shed', labelNames: ['outcome'], registers: [registry] });
  const grantDuration = new Histogram({
    name: 'authapi_grant_duration_seconds',
    help: 'Time from request received to response ready on the token endpoint, by result (granted or refused)',
    labelNames: ['result'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const granted = grants.labels('granted');
  const grantedDuration = grantDuration.labels('granted');
  const refusedDuration = grantDuration.labels('refused');

  const lifecycle = new Counter({
    name: 'authapi_token_lifecycle_requests_total',
    help: 'Token revocation and introspection requests (POST /oauth/revoke, /oauth/introspect) by endpoint and outcome: ok, an OAuth error code, throttled or shed',
    labelNames: ['endpoint', 'outcome'],
    registers: [registry],
  });

  const throttleRejections = new Counter({ name: 'authapi_throttle_rejections_total', help: 'Authentication attempts refused by the failure throttle (429), by throttle (grant, login)', labelNames: ['throttle'], registers: [registry] });
  const secretCache = new Counter({ name: 'authapi_secret_cache_lookups_total', help: 'Verified-secret cache lookups on grants: hit (no bcrypt) or miss', labelNames: ['result'], registers: [registry] });
  const cacheHit = secretCache.labels('hit');
  const cacheMiss = secretCache.labels('miss');

  new Gauge({
    name: 'authapi_bcrypt_jobs',
    help: 'bcrypt compares and hashes in the work budget: running, or queued for a turn',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      const { running, queued } = bcryptLoad();
      this.set({ state: 'running' }, running);
      this.set({ state: 'queued' }, queued);
    },
  });
  const pool = database.poolStats;
  if (pool) {
    new Gauge({
      name: 'authapi_db_pool_connections',
      help: 'PostgreSQL pool connections: total open, idle, and requests waiting for one; max is the pool size',
      labelNames: ['state'],
      registers: [registry],
      collect() {
        const stats = pool();
        for (const state of ['total', 'idle', 'waiting', 'max'] as const) this.set({ state }, stats[state]);
      },
    });
  }
  const listenerUp = new Gauge({
    name: 'authapi_listener_up',
    help: '1 while the cross-instance invalidation listener (PostgreSQL LISTEN) is connected, 0 while it is down or not in use',
    registers: [registry],
  });
  new Gauge({ name: 'authapi_build_info', help: 'Always 1; labels: version, Node.js version, database kind', labelNames: ['version', 'node', 'database'], registers: [registry] })
    .labels(version, process.version, database.kind)
    .set(1);

  return {
    registry,
    /** A finished token request: its outcome (as logged) and how long it took, in ms. */
    grant(outcome: string, elapsedMs: number) {
      if (outcome === 'granted') {
        granted.inc();
        grantedDuration.observe(elapsedMs / 1000);
      } else {
        grants.labels(outcome).inc();
        refusedDuration.observe(elapsedMs / 1000);
      }
    },
    /** A finished revocation or introspection request: `ok`, or its failure's outcome (as logged). */
    tokenLifecycle(endpoint: 'revoke' | 'introspect', outcome: string) {
      lifecycle.labels(endpoint, outcome).inc();
    },
    throttled(throttle: 'grant' | 'login') {
      throttleRejections.labels(throttle).inc();
    },
    secretCacheLookup(hit: boolean) {
      (hit ? cacheHit : cacheMiss).inc();
    },
    /** For the invalidation listener: `listenerUp.set(1)` when connected, `set(0)` when down. */
    listenerUp,
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/** The throttle, counting every attempt it refuses. */
export function countRejections(name: 'grant' | 'login', metrics: Metrics, throttle: FailureThrottle): FailureThrottle {
  return {
    ...throttle,
    async begin(identity, ip) {
      const attempt = await throttle.begin(identity, ip);
      if (attempt.retryAfterSec !== undefined) metrics.throttled(name);
      return attempt;
    },
    async failed(ip) {
      const retryAfterSec = await throttle.failed(ip);
      if (retryAfterSec !== undefined) metrics.throttled(name);
      return retryAfterSec;
    },
  };
}

/** The verified-secret cache, counting hits and misses. */
export function countLookups(cache: VerifiedSecretCache, metrics: Metrics): VerifiedSecretCache {
  return {
    ...cache,
    verified(clientId, secret) {
      const found = cache.verified(clientId, secret);
      metrics.secretCacheLookup(found !== undefined);
      return found;
    },
  };
}
