import { isIP } from 'node:net';
import { z } from 'zod';
import { newPasswordSchema } from './modules/admin-auth/admin-auth.schemas.js';

/** Words of example values people paste; a secret containing one is refused. */
const PLACEHOLDER_SECRET = /change[-_ ]?me|replace[-_ ]?me|your[-_ ]?(jwt[-_ ]?)?secret|placeholder|^(secret|password|test|example|dev|development)$/i;

const MIN_SECRET_BYTES = 32;

const durationSeconds = z.coerce
  .number({ error: 'must be a whole number of seconds' })
  .int('must be a whole number of seconds')
  .min(30, 'must be at least 30 seconds')
  .max(24 * 3600, 'must be at most 86400 seconds (24 hours)');

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
  userTokenTtlSec: number;
  bcryptCost: number;
  admin: { email: string | undefined; password: string | undefined };
  limits: {
    /** Failed authentications per (client_id or email, IP) in a window. */
    failuresPerIdentityAndIp: number;
    /** Failed authentications per IP in a window. */
    failuresPerIp: number;
    failureWindowSec: number;
    /** Requests per minute per IP on the login and management routes; 0 turns it off. */
    requestsPerMinute: number;
  };
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
 * Parses and checks the environment. Throws one {@link ConfigError} listing
 * every bad value (one line each). `JWT_ACCESS_SECRET` may be missing outside
 * production; the caller then supplies a generated one (see `dev-secret.ts`).
 */
export function loadConfig(env: Record<string, string | undefined>, fallbackSecret?: () => string): Config {
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
  if (production && e.BCRYPT_COST < 10) problems.push('BCRYPT_COST: must be at least 10 when NODE_ENV=production');
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
    userTokenTtlSec: e.USER_TOKEN_TTL,
    bcryptCost: e.BCRYPT_COST,
    admin: { email: e.ADMIN_EMAIL?.toLowerCase(), password: e.ADMIN_PASSWORD },
    limits: {
      failuresPerIdentityAndIp: e.AUTH_FAILURE_LIMIT,
      failuresPerIp: e.AUTH_FAILURE_LIMIT_PER_IP,
      failureWindowSec: e.AUTH_FAILURE_WINDOW,
      requestsPerMinute: e.RATE_LIMIT_PER_MINUTE,
    },
    logLevel: e.LOG_LEVEL,
  };
}
