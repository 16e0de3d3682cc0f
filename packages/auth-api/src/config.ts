import { isIP } from 'node:net';
import { z } from 'zod';
import { KEK_BYTES } from './lib/key-crypto.js';
import { newPasswordSchema } from './modules/admin-auth/admin-auth.schemas.js';

/** Words of example values people paste; a secret containing one is refused. */
const PLACEHOLDER_SECRET = /change[-_ ]?me|replace[-_ ]?me|your[-_ ]?(jwt[-_ ]?)?secret|placeholder|^(secret|password|test|example|dev|development)$/i;

const MIN_SECRET_BYTES = 32;

const durationSeconds = z.coerce
  .number({ error: 'must be a whole number of seconds' })
  .int('must be a whole number of seconds')
  .min(30, 'must be at least 30 seconds')
  .max(24 * 3600, 'must be at most 86400 seconds (24 hours)');

/** A whole number in [min, max]. */
const count = (min: number, max: number) =>
  z.coerce
    .number({ error: 'must be a number' })
    .int('must be a whole number')
    .min(min, `must be between ${min} and ${max}`)
    .max(max, `must be between ${min} and ${max}`);

const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v));

const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test'], { error: 'must be development, production or test' }).default('development'),
  PORT: z.coerce.number({ error: 'must be a port number' }).int().min(0).max(65535, 'must be a port number (0-65535)').default(3000),
  HOST: z.string().min(1).default('127.0.0.1'),
  DATABASE_URL: optionalString.pipe(
    z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// or postgresql:// URL').optional(),
  ),
  DATA_DIR: z.string().min(1).default('./.data'),
  JWT_ACCESS_SECRET: optionalString,
  JWT_ACCESS_SECRET_PREVIOUS: optionalString,
  JWT_ISSUER: z
    .url({ protocol: /^https?$/, error: 'must be an http(s) URL' })
    .refine((v) => {
      const u = new URL(v);
      return !u.search && !u.hash && (u.pathname === '/' || u.pathname === '');
    }, 'must be an origin with no path, query or fragment (RFC 8414 serves metadata at its root)')
    .transform((v) => v.replace(/\/+$/, ''))
    .optional(),
  TRUST_PROXY: optionalString.pipe(
    z
      .string()
      .refine(
        (v) => v.split(',').every((part) => isIP(part.trim().split('/')[0] ?? '') !== 0),
        'must be a comma-separated list of proxy addresses or CIDRs, e.g. 10.0.0.0/8,127.0.0.1',
      )
      .optional(),
  ),
  JWT_AUDIENCE: z.string().min(1).default('auth-platform'),
  SERVICE_TOKEN_TTL: durationSeconds.default(900),
  USER_TOKEN_TTL: durationSeconds.default(900),
  BCRYPT_COST: z.coerce.number({ error: 'must be a number' }).int().min(4, 'must be between 4 and 15').max(15, 'must be between 4 and 15').default(10),
  ADMIN_EMAIL: optionalString.pipe(z.email('must be an email address').optional()),
  ADMIN_PASSWORD: optionalString.pipe(newPasswordSchema.optional()),
  AUTH_FAILURE_LIMIT: z.coerce.number({ error: 'must be a number' }).int().min(1, 'must be at least 1').default(10),
  AUTH_FAILURE_LIMIT_PER_IP: z.coerce.number({ error: 'must be a number' }).int().min(1, 'must be at least 1').default(100),
  AUTH_FAILURE_WINDOW: durationSeconds.default(300),
  RATE_LIMIT_PER_MINUTE: z.coerce.number({ error: 'must be a number' }).int().min(0, 'must be 0 (off) or more').default(600),
  SERVICE_TOKEN_ALG: z.enum(['HS256', 'ES256', 'EdDSA'], { error: 'must be HS256, ES256 or EdDSA' }).default('HS256'),
  KEY_ENCRYPTION_KEY: optionalString,
  CLIENT_SECRET_HASH: z.enum(['bcrypt', 'hmac-sha256'], { error: 'must be bcrypt or hmac-sha256' }).default('bcrypt'),
  CLIENT_SECRET_PEPPER: optionalString,
  JWKS_MAX_AGE: z.coerce.number({ error: 'must be a whole number of seconds' }).int('must be a whole number of seconds').min(0, 'must be 0 or more').max(86400, 'must be at most 86400 seconds (24 hours)').default(300),
  SIGNING_KEY_PUBLISH_DELAY: z.coerce.number({ error: 'must be a whole number of seconds' }).int('must be a whole number of seconds').min(0, 'must be 0 or more').max(7 * 86400, 'must be at most 604800 seconds (7 days)').optional(),
  AUTH_THROTTLE_MAX_KEYS: count(100, 10_000_000).default(100_000),
  AUTH_THROTTLE_STORE: z.enum(['auto', 'memory', 'database'], { error: 'must be auto, memory or database' }).default('auto'),
  BCRYPT_CONCURRENCY: count(1, 64).default(2),
  BCRYPT_MAX_WAIT_MS: count(50, 60_000).default(2000),
  AUTH_EVENTS_RETENTION_DAYS: count(1, 3650).default(30),
  AUTH_EVENTS_MAX_KEYS_PER_MINUTE: count(10, 1_000_000).default(5000),
  HTTP_HEADERS_TIMEOUT: count(1, 600).default(10),
  HTTP_REQUEST_TIMEOUT: count(1, 3600).default(30),
  HTTP_CONNECTIONS_CHECK_INTERVAL: count(1, 60).default(1),
  HTTP_MAX_CONNECTIONS: count(1, 1_000_000).default(4096),
  SHUTDOWN_TIMEOUT: count(1, 3600).default(25),
  METRICS_TOKEN: optionalString,
  METRICS_PORT: z.coerce.number({ error: 'must be a port number' }).int().min(1, 'must be a port number (1-65535)').max(65535, 'must be a port number (1-65535)').optional(),
  METRICS_HOST: z.string().min(1).default('127.0.0.1'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], { error: 'must be one of fatal, error, warn, info, debug, trace, silent' }).default('info'),
});

export type Env = z.infer<typeof envSchema>;

/**
 * The issuer when JWT_ISSUER is unset: where this server listens, as a client on
 * the same machine reaches it (a wildcard address becomes loopback). Undefined
 * for port 0, which is only chosen at start.
 */
export function defaultIssuer(host: string, port: number): string | undefined {
  if (port === 0) return undefined;
  const reachable = host === '0.0.0.0' ? '127.0.0.1' : host === '::' || host === '[::]' ? '::1' : host;
  const hostPart = isIP(reachable) === 6 ? `[${reachable}]` : reachable;
  return `http://${hostPart}:${port}`;
}

/** Validated server configuration. Built once, at start, from the environment. */
export interface Config {
  env: Env['NODE_ENV'];
  port: number;
  host: string;
  /**
   * Which proxies to believe about the client address (X-Forwarded-For):
   * addresses/CIDRs. Unset: none, the socket address is the client's.
   * Abuse control counts per address, so behind a proxy this must be set.
   */
  trustProxy: string[] | undefined;
  /** Unset: the embedded PGlite database under `dataDir`. */
  databaseUrl: string | undefined;
  dataDir: string;
  jwt: {
    /** Signs new tokens. */
    secret: string;
    /** Still accepted by verifiers during a key rotation. */
    previousSecret: string | undefined;
    issuer: string;
    audience: string;
  };
  /** True when `jwt.issuer` came from HOST/PORT because JWT_ISSUER is unset. */
  issuerDerived: boolean;
  serviceTokenTtlSec: number;
  /** How service tokens are signed, and the asymmetric keys' settings (docs/TRUST.md). */
  serviceTokens: {
    /** HS256: the shared JWT_ACCESS_SECRET. ES256 / EdDSA: a private key only auth-api holds, public keys at /.well-known/jwks.json. */
    alg: 'HS256' | 'ES256' | 'EdDSA';
    /** 32 bytes encrypting the private keys at rest; set whenever alg is asymmetric. */
    keyEncryptionKey: Buffer | undefined;
    /** Cache-Control max-age of the JWKS, in seconds. */
    jwksMaxAgeSec: number;
    /** How long a new key is published before it signs (at least jwksMaxAgeSec). */
    publishDelaySec: number;
  };
  userTokenTtlSec: number;
  bcryptCost: number;
  /** How new client secrets are stored; each secret records its own algorithm, so both coexist (docs/OPERATIONS.md). */
  clientSecrets: {
    hash: 'bcrypt' | 'hmac-sha256';
    /** The HMAC-SHA256 key (CLIENT_SECRET_PEPPER, its UTF-8 bytes); needed while any hmac-sha256 secret exists. */
    pepper: Buffer | undefined;
  };
  admin: { email: string | undefined; password: string | undefined };
  limits: {
    /** Failed authentications per (client_id or email, IP) in a window. */
    failuresPerIdentityAndIp: number;
    /** Failed authentications per IP in a window. */
    failuresPerIp: number;
    failureWindowSec: number;
    /** Requests per minute per IP on the login and management routes; 0 turns it off. */
    requestsPerMinute: number;
    /** Live counters each throttle may hold; when full of live windows, new attempts are refused. */
    throttleMaxKeys: number;
    /**
     * Where failure counters live: `database` (the `auth_attempts` table, shared by every instance on
     * the database), `memory` (this process), or `auto`: the database on PostgreSQL, memory on the
     * embedded PGlite (one process only).
     */
    throttleStore: 'auto' | 'memory' | 'database';
  };
  bcrypt: {
    /** bcrypt compares running at once, server-wide; below libuv's pool size (4) so other pool work finds a thread. */
    concurrency: number;
    /** Longest a compare waits for its turn before the request is shed with 503 and Retry-After. */
    maxWaitMs: number;
  };
  authEvents: { retentionDays: number; maxKeysPerMinute: number };
  http: {
    /** Seconds to receive the request headers (slow-header clients are cut). */
    headersTimeoutSec: number;
    /** Seconds to receive the whole request. */
    requestTimeoutSec: number;
    /** How often those two timeouts are checked, in seconds. */
    connectionsCheckIntervalSec: number;
    /** Open connections accepted at once; further ones are closed at once. */
    maxConnections: number;
    /**
     * Seconds a shutdown may take: then every request not yet answered is answered (408, or 503),
     * the drain completes (exit 0), or a second later the process exits 1. Keep it above the
     * drain's own windows (up to 10 s of accepting, 2 s idle sweep) and below a container
     * runtime's grace period (30 s by default) minus those 2 s.
     */
    shutdownTimeoutSec: number;
  };
  /**
   * Prometheus metrics are never public by default: `GET /metrics` on the API port answers only
   * with `Authorization: Bearer <token>`, and only when a token is set; a separate port serves them
   * to whoever reaches it (bind it to loopback or a private network).
   */
  metrics: { token: string | undefined; port: number | undefined; host: string };
  logLevel: Env['LOG_LEVEL'];
}

export class ConfigError extends Error {
  override name = 'ConfigError';
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/** Why a JWT secret is too weak to sign with, or undefined when it is strong enough. */
export function weakSecretReason(secret: string): string | undefined {
  if (Buffer.byteLength(secret, 'utf8') < MIN_SECRET_BYTES) return `must be at least ${MIN_SECRET_BYTES} bytes`;
  if (PLACEHOLDER_SECRET.test(secret) || new Set(secret).size < 8) return 'looks like a placeholder; generate one with `openssl rand -base64 48`';
  return undefined;
}

/**
 * The 32 bytes of a KEY_ENCRYPTION_KEY (64 hex digits, or base64 / base64url
 * of 32 bytes), or the reason it cannot be used. Low-entropy keys (a repeated
 * byte, a placeholder) are refused in every environment.
 */
export function parseKeyEncryptionKey(value: string): { key: Buffer } | { problem: string } {
  const text = value.trim();
  let key: Buffer | undefined;
  if (/^[0-9a-f]{64}$/i.test(text)) key = Buffer.from(text, 'hex');
  else if (/^[A-Za-z0-9+/_-]{43}=?$/.test(text)) {
    const bytes = Buffer.from(text.replace(/=$/, ''), 'base64url');
    if (bytes.length === KEK_BYTES && bytes.toString('base64url') === text.replace(/=$/, '').replace(/\+/g, '-').replace(/\//g, '_')) key = bytes;
  }
  if (!key) return { problem: 'must be 32 random bytes as 64 hex digits or base64 (generate one with `openssl rand -base64 32`)' };
  if (new Set(key).size < 16 || PLACEHOLDER_SECRET.test(text)) return { problem: 'looks like a placeholder, not 32 random bytes; generate one with `openssl rand -base64 32`' };
  return { key };
}

/**
 * Parses and checks the environment. Throws one {@link ConfigError} listing
 * every bad value (one line each). `JWT_ACCESS_SECRET` may be missing outside
 * production; the caller then supplies a generated one (see `dev-secret.ts`).
 */
export function loadConfig(
  env: Record<string, string | undefined>,
  fallbackSecret?: () => string,
  /** Development only: a KEY_ENCRYPTION_KEY kept in DATA_DIR (see dev-secret.ts), asked for when the alg is asymmetric. */
  fallbackKeyEncryptionKey?: () => string,
  /** Development only: a CLIENT_SECRET_PEPPER kept in DATA_DIR (see dev-secret.ts), asked for when CLIENT_SECRET_HASH=hmac-sha256. */
  fallbackPepper?: () => string,
): Config {
  // An empty setting (`PORT=`, as a blank line in an env file leaves it) means unset: its default.
  const set = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== undefined && value.trim() !== ''));
  const parsed = envSchema.safeParse(set);
  if (!parsed.success) {
    throw new ConfigError(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`));
  }
  const e = parsed.data;
  const problems: string[] = [];
  const production = e.NODE_ENV === 'production';

  if (production && !e.DATABASE_URL) problems.push('DATABASE_URL: is required when NODE_ENV=production (the embedded database is for development)');

  let secret = e.JWT_ACCESS_SECRET;
  if (!secret) {
    if (production || !fallbackSecret) problems.push('JWT_ACCESS_SECRET: is required (at least 32 bytes; generate one with `openssl rand -base64 48`)');
    else secret = fallbackSecret();
  }
  for (const [name, value] of [['JWT_ACCESS_SECRET', secret], ['JWT_ACCESS_SECRET_PREVIOUS', e.JWT_ACCESS_SECRET_PREVIOUS]] as const) {
    const reason = value === undefined ? undefined : weakSecretReason(value);
    if (reason && (production || name === 'JWT_ACCESS_SECRET')) problems.push(`${name}: ${reason}`);
  }
  if (e.JWT_ACCESS_SECRET_PREVIOUS && e.JWT_ACCESS_SECRET_PREVIOUS === secret) problems.push('JWT_ACCESS_SECRET_PREVIOUS: must differ from JWT_ACCESS_SECRET');
  if (e.ADMIN_PASSWORD && !e.ADMIN_EMAIL) problems.push('ADMIN_EMAIL: is required when ADMIN_PASSWORD is set');
  const issuer = e.JWT_ISSUER ?? defaultIssuer(e.HOST, e.PORT);
  if (production && !e.JWT_ISSUER?.startsWith('https://')) problems.push('JWT_ISSUER: must be the public https:// origin of this server when NODE_ENV=production');
  else if (!issuer) problems.push('JWT_ISSUER: is required with PORT=0 (the port is chosen at start, so no issuer can be derived from it)');
  const asymmetric = e.SERVICE_TOKEN_ALG !== 'HS256';
  let keyEncryptionKey: Buffer | undefined;
  let kekText = e.KEY_ENCRYPTION_KEY;
  if (!kekText && asymmetric) {
    if (production || !fallbackKeyEncryptionKey) {
      problems.push(`KEY_ENCRYPTION_KEY: is required when SERVICE_TOKEN_ALG=${e.SERVICE_TOKEN_ALG} (32 random bytes; generate them with \`openssl rand -base64 32\`)`);
    } else kekText = fallbackKeyEncryptionKey();
  }
  if (kekText) {
    const parsedKek = parseKeyEncryptionKey(kekText);
    if ('problem' in parsedKek) problems.push(`KEY_ENCRYPTION_KEY: ${parsedKek.problem}`);
    else keyEncryptionKey = parsedKek.key;
  }
  let pepper = e.CLIENT_SECRET_PEPPER;
  if (!pepper && e.CLIENT_SECRET_HASH === 'hmac-sha256') {
    if (production || !fallbackPepper) {
      problems.push('CLIENT_SECRET_PEPPER: is required when CLIENT_SECRET_HASH=hmac-sha256 (at least 32 bytes; generate one with `openssl rand -base64 48`)');
    } else pepper = fallbackPepper();
  }
  const pepperProblem = pepper === undefined ? undefined : weakSecretReason(pepper);
  if (pepperProblem) problems.push(`CLIENT_SECRET_PEPPER: ${pepperProblem}`);
  if (pepper !== undefined && (pepper === secret || pepper === e.JWT_ACCESS_SECRET_PREVIOUS)) problems.push('CLIENT_SECRET_PEPPER: must differ from JWT_ACCESS_SECRET (one key, one purpose)');
  const publishDelaySec = e.SIGNING_KEY_PUBLISH_DELAY ?? 2 * e.JWKS_MAX_AGE;
  if (publishDelaySec < e.JWKS_MAX_AGE) problems.push(`SIGNING_KEY_PUBLISH_DELAY: must be at least JWKS_MAX_AGE (${e.JWKS_MAX_AGE} s): verifiers may cache the key set that long`);
  if (production && e.BCRYPT_COST < 10) problems.push('BCRYPT_COST: must be at least 10 when NODE_ENV=production');
  const metricsTokenProblem = e.METRICS_TOKEN === undefined ? undefined : weakSecretReason(e.METRICS_TOKEN);
  if (metricsTokenProblem) problems.push(`METRICS_TOKEN: ${metricsTokenProblem}`);
  if (e.METRICS_PORT !== undefined && e.METRICS_PORT === e.PORT) problems.push('METRICS_PORT: must differ from PORT');
  if (e.HTTP_HEADERS_TIMEOUT > e.HTTP_REQUEST_TIMEOUT) problems.push('HTTP_HEADERS_TIMEOUT: must not exceed HTTP_REQUEST_TIMEOUT');
  if (problems.length > 0) throw new ConfigError(problems);

  return {
    env: e.NODE_ENV,
    port: e.PORT,
    host: e.HOST,
    trustProxy: e.TRUST_PROXY?.split(',').map((part) => part.trim()),
    databaseUrl: e.DATABASE_URL,
    dataDir: e.DATA_DIR,
    jwt: { secret: secret!, previousSecret: e.JWT_ACCESS_SECRET_PREVIOUS, issuer: issuer!, audience: e.JWT_AUDIENCE },
    issuerDerived: !e.JWT_ISSUER,
    serviceTokenTtlSec: e.SERVICE_TOKEN_TTL,
    serviceTokens: { alg: e.SERVICE_TOKEN_ALG, keyEncryptionKey, jwksMaxAgeSec: e.JWKS_MAX_AGE, publishDelaySec },
    userTokenTtlSec: e.USER_TOKEN_TTL,
    bcryptCost: e.BCRYPT_COST,
    clientSecrets: { hash: e.CLIENT_SECRET_HASH, pepper: pepper === undefined ? undefined : Buffer.from(pepper, 'utf8') },
    admin: { email: e.ADMIN_EMAIL?.toLowerCase(), password: e.ADMIN_PASSWORD },
    limits: {
      failuresPerIdentityAndIp: e.AUTH_FAILURE_LIMIT,
      failuresPerIp: e.AUTH_FAILURE_LIMIT_PER_IP,
      failureWindowSec: e.AUTH_FAILURE_WINDOW,
      requestsPerMinute: e.RATE_LIMIT_PER_MINUTE,
      throttleMaxKeys: e.AUTH_THROTTLE_MAX_KEYS,
      throttleStore: e.AUTH_THROTTLE_STORE,
    },
    bcrypt: { concurrency: e.BCRYPT_CONCURRENCY, maxWaitMs: e.BCRYPT_MAX_WAIT_MS },
    authEvents: { retentionDays: e.AUTH_EVENTS_RETENTION_DAYS, maxKeysPerMinute: e.AUTH_EVENTS_MAX_KEYS_PER_MINUTE },
    http: {
      headersTimeoutSec: e.HTTP_HEADERS_TIMEOUT,
      requestTimeoutSec: e.HTTP_REQUEST_TIMEOUT,
      connectionsCheckIntervalSec: e.HTTP_CONNECTIONS_CHECK_INTERVAL,
      maxConnections: e.HTTP_MAX_CONNECTIONS,
      shutdownTimeoutSec: e.SHUTDOWN_TIMEOUT,
    },
    metrics: { token: e.METRICS_TOKEN, port: e.METRICS_PORT, host: e.METRICS_HOST },
    logLevel: e.LOG_LEVEL,
  };
}

/**
 * Settings that start but are probably wrong, one sentence each; the server
 * logs them as warnings at start.
 */
export function startupWarnings(config: Config): string[] {
  const warnings: string[] = [];
  if (config.env === 'production' && config.jwt.issuer.startsWith('https://') && config.trustProxy === undefined) {
    warnings.push(
      'TRUST_PROXY is unset but JWT_ISSUER is https, so a TLS proxy is in front: every client then shares the proxy\'s address, and one attacker\'s failures throttle everyone. Set TRUST_PROXY to the proxy\'s address or CIDR.',
    );
  }
  return warnings;
}
