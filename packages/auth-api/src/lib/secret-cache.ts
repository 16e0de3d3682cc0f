import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Clock } from './clock.js';

export interface VerifiedSecretCacheOptions {
  clock: Clock;
  /** How long a verified secret is trusted without bcrypt. */
  ttlMs?: number;
  /** Bound on credentials remembered; the oldest is dropped first. */
  maxEntries?: number;
}

/**
 * Remembers, per credential, a keyed hash of the last secret that passed
 * bcrypt, so a backend renewing its token does not pay a bcrypt compare each
 * time. Never holds a plaintext secret: entries are HMACs under a key that
 * lives only in this process (so a restart empties it). A different secret
 * never matches and goes through bcrypt; identical wrong guesses are never
 * shared or shortened, so a wrong secret always costs the same. Callers still
 * check the credential's state on every grant, and drop its entry when it changes.
 */
export function createVerifiedSecretCache({ clock, ttlMs = 10 * 60_000, maxEntries = 10_000 }: VerifiedSecretCacheOptions) {
  const key = randomBytes(32);
  const entries = new Map<string, { mac: Buffer; expiresAt: number }>();
  const macOf = (credentialId: string, secret: string, hash: string) =>
    createHmac('sha256', key).update(credentialId).update('\0').update(hash).update('\0').update(secret).digest();

  return {
    /** True when `secret` is the one last verified for this credential and stored hash, within the TTL. */
    has(credentialId: string, secret: string, hash: string): boolean {
      const entry = entries.get(credentialId);
      if (!entry) return false;
      if (entry.expiresAt <= clock()) {
        entries.delete(credentialId);
        return false;
      }
      return timingSafeEqual(entry.mac, macOf(credentialId, secret, hash));
    },
    add(credentialId: string, secret: string, hash: string): void {
      entries.delete(credentialId);
      if (entries.size >= maxEntries) entries.delete(entries.keys().next().value!);
      entries.set(credentialId, { mac: macOf(credentialId, secret, hash), expiresAt: clock() + ttlMs });
    },
    delete(credentialId: string): void {
      entries.delete(credentialId);
    },
  };
}

export type VerifiedSecretCache = ReturnType<typeof createVerifiedSecretCache>;
