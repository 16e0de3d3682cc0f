import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { ClientSecretAlg } from '../db/schema.js';
import type { PasswordHasher } from './password.js';

export const CLIENT_SECRET_ALGS = ['bcrypt', 'hmac-sha256'] as const satisfies readonly ClientSecretAlg[];

/** Characters of a secret's hint: 24 bits. */
export const HINT_LENGTH = 4;

/**
 * A secret's hint: the first 4 characters (24 bits) of base64url(SHA-256(secret)).
 * Non-secret, shown in listings: it picks which of a credential's secrets a
 * presented secret is compared with (one compare however many it holds), and
 * lets an operator tell the secrets apart. It is a one-way tag, not a piece of
 * the secret: it reveals at most 24 of the secret's 256 random bits (232 remain),
 * which shortens no attack on a server-generated secret.
 */
export function secretHint(secret: string): string {
  return createHash('sha256').update(secret).digest('base64url').slice(0, HINT_LENGTH);
}

/** A stored secret as the database keeps it. */
export interface StoredClientSecret {
  secret_hash: string;
  hash_alg: ClientSecretAlg;
}

/**
 * Hashes new client secrets with the configured algorithm and verifies
 * stored ones with the algorithm each was stored with, so bcrypt and
 * HMAC-SHA256 secrets coexist and a rotation moves a credential to the
 * configured one.
 */
export interface ClientSecretHasher {
  /** The algorithm new secrets are stored with (CLIENT_SECRET_HASH). */
  readonly alg: ClientSecretAlg;
  hash(plain: string): Promise<StoredClientSecret>;
  verify(plain: string, stored: StoredClientSecret): Promise<boolean>;
  /** The work of one failed bcrypt compare: every failed client authentication pays it, whatever was compared. */
  burn(plain: string): Promise<void>;
}

export interface ClientSecretHasherOptions {
  alg: ClientSecretAlg;
  bcrypt: PasswordHasher;
  /** The HMAC key (CLIENT_SECRET_PEPPER). Required to store hmac-sha256 secrets, and to verify them. */
  pepper: Buffer | undefined;
}

export function createClientSecretHasher({ alg, bcrypt, pepper }: ClientSecretHasherOptions): ClientSecretHasher {
  if (alg === 'hmac-sha256' && !pepper) throw new Error('CLIENT_SECRET_HASH=hmac-sha256 needs a pepper (CLIENT_SECRET_PEPPER)');
  const mac = (plain: string) => createHmac('sha256', pepper!).update(plain, 'utf8').digest();
  return {
    alg,
    async hash(plain) {
      if (alg === 'bcrypt') return { secret_hash: await bcrypt.hash(plain), hash_alg: 'bcrypt' };
      return { secret_hash: mac(plain).toString('base64url'), hash_alg: 'hmac-sha256' };
    },
    async verify(plain, stored) {
      if (stored.hash_alg === 'bcrypt') return bcrypt.verify(plain, stored.secret_hash);
      // Without the pepper an HMAC secret cannot be checked: it fails closed.
      if (stored.hash_alg !== 'hmac-sha256' || !pepper) return false;
      const expected = Buffer.from(stored.secret_hash, 'base64url');
      const actual = mac(plain);
      return expected.length === actual.length && timingSafeEqual(expected, actual);
    },
    burn: (plain) => bcrypt.burn(plain),
  };
}

/** Whether a stored secret authenticates at `now` (epoch ms): no expiry, or one still ahead. */
export const isLiveSecret = (secret: { expires_at: Date | number | null }, now: number): boolean => secret.expires_at === null || Number(secret.expires_at) > now;
