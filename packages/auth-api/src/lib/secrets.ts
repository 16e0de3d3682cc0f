import { createHash, randomBytes } from 'node:crypto';

/**
 * Prefix of every client secret, so secret scanners (and people) can tell a
 * leaked one on sight.
 */
export const CLIENT_SECRET_PREFIX = 'm2msk_';

/** A new client secret: 256 random bits, base64url, prefixed; 49 bytes, under bcrypt's 72. */
export function generateClientSecret(): string {
  return CLIENT_SECRET_PREFIX + randomBytes(32).toString('base64url');
}

/** A generated admin password for development start-ups: 128 random bits. */
export function generatePassword(): string {
  return randomBytes(16).toString('base64url');
}

/**
 * Prefix of every admin session token (the bearer token `POST /auth/login`
 * returns), so scanners can find leaked ones and nobody mistakes one for a JWT.
 */
export const ADMIN_SESSION_PREFIX = 'm2mas_';

const ADMIN_SESSION_TOKEN = /^m2mas_[A-Za-z0-9_-]{43}$/;

/** A new admin session token: 256 random bits, base64url, prefixed. Opaque: it signs nothing and decodes to nothing. */
export function generateSessionToken(): string {
  return ADMIN_SESSION_PREFIX + randomBytes(32).toString('base64url');
}

/** Whether a bearer token has the shape of a session token; anything else (a JWT) is refused before any query. */
export function isSessionTokenShape(token: string): boolean {
  return ADMIN_SESSION_TOKEN.test(token);
}

/**
 * What the database keeps of a session token: its SHA-256, base64url. A
 * plain, fast hash is right here (unlike passwords): the token has 256 bits
 * of entropy, so there is nothing to brute-force, and hashing runs
 * synchronously, in microseconds, on every admin request (no libuv pool).
 */
export function hashSessionToken(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}
