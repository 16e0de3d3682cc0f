import { randomBytes } from 'node:crypto';
import bcrypt from 'bcryptjs';

/**
 * Hashes and checks secrets (admin passwords, client secrets) with bcrypt.
 * An interface so a native binding or worker pool can replace bcryptjs
 * without touching callers; every implementation reads and writes the same
 * `$2a$`/`$2b$` hashes.
 */
export interface PasswordHasher {
  hash(plain: string): Promise<string>;
  verify(plain: string, hash: string): Promise<boolean>;
  /**
   * Spends the same time as a failed {@link verify}, for the paths that have
   * no hash to compare against (unknown user or client), so response time
   * does not reveal which identifiers exist.
   */
  burn(plain: string): Promise<void>;
}

/** bcrypt's input limit: bytes past 72 are ignored by the algorithm. */
export const BCRYPT_MAX_BYTES = 72;

export function createBcryptHasher(cost: number): PasswordHasher {
  // A hash of a random value nobody knows, at the configured cost.
  const dummy = bcrypt.hash(randomBytes(32).toString('base64url'), cost);
  return {
    hash: (plain) => bcrypt.hash(plain, cost),
    verify: async (plain, hash) => {
      // Over-long input would be silently truncated by bcrypt: refuse it instead.
      if (Buffer.byteLength(plain, 'utf8') > BCRYPT_MAX_BYTES) {
        await bcrypt.compare('', await dummy);
        return false;
      }
      return bcrypt.compare(plain, hash);
    },
    burn: async (plain) => {
      await bcrypt.compare(plain.slice(0, BCRYPT_MAX_BYTES), await dummy);
    },
  };
}
