import { randomBytes } from 'node:crypto';

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
