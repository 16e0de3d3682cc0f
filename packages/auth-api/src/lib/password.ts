import { randomBytes } from 'node:crypto';
import { hash as bcryptHash, verify as bcryptVerify } from '@node-rs/bcrypt';

/**
 * Hashes and checks secrets (admin passwords, client secrets) with bcrypt.
 * An interface so another implementation can replace it without touching
 * callers; every implementation reads and writes the same `$2a$`/`$2b$` hashes.
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

/**
 * bcrypt on @node-rs/bcrypt: the work runs on libuv's thread pool, so the
 * event loop keeps answering while many compares run. Measured against
 * bcryptjs (`pnpm bench:bcrypt`): with 50 compares at once, a 1 ms timer was
 * ~4 ms late with the native binding and ~4 s late with bcryptjs, whose
 * chunks run on the main thread.
 */
export function createBcryptHasher(cost: number): PasswordHasher {
  // A hash of a random value nobody knows, at the configured cost.
  const dummy = bcryptHash(randomBytes(32).toString('base64url'), { cost });
  const burn = async (plain: string) => {
    await bcryptVerify(plain.slice(0, BCRYPT_MAX_BYTES), await dummy);
  };
  return {
    hash: (plain) => bcryptHash(plain, { cost }),
    verify: async (plain, hash) => {
      // bcrypt would silently ignore bytes past 72: refuse such input instead, after the same work.
      if (Buffer.byteLength(plain, 'utf8') > BCRYPT_MAX_BYTES) {
        await burn(plain);
        return false;
      }
      return bcryptVerify(plain, hash);
    },
    burn,
  };
}
