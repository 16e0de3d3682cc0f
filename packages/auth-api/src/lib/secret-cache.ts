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
 * Remembers, per client_id, a keyed hash of the last secret that passed
 * bcrypt and the stored hash it passed against, so a backend renewing its
 * token pays neither bcrypt nor the failure throttle. Looked up before any
 * database read, by (client_id, secret) alone: a request that does not hold
 * the secret never matches. Never holds a plaintext secret: entries are HMACs
 * under a key that lives only in this process (so a restart empties it). A
 * different secret never matches and goes through bcrypt; identical wrong
 * guesses are never shared or shortened, so a wrong secret always costs the
 * same. Callers still read the credential's state on every grant, check that
 * its hash is the one remembered, and drop the entry when it changes.
 */
export function createVerifiedSecretCache({ clock, ttlMs = 10 * 60_000, maxEntries = 10_000 }: VerifiedSecretCacheOptions) {
  const key = randomBytes(32);
  const entries = new Map<string, { mac: Buffer; hash: string; expiresAt: number }>();
  const macOf = (clientId: string, secret: string) => createHmac('sha256', key).update(clientId).update('\0').update(secret).digest();

  return {
    /** The stored hash `secret` was last verified against for this client_id, within the TTL; else undefined. */
    verifiedHash(clientId: string, secret: string): string | undefined {
      const entry = entries.get(clientId);
      if (!entry) return undefined;
      if (entry.expiresAt <= clock()) {
        entries.delete(clientId);
        return undefined;
      }
      return timingSafeEqual(entry.mac, macOf(clientId, secret)) ? entry.hash : undefined;
    },
    add(clientId: string, secret: string, hash: string): void {
      entries.delete(clientId);
      if (entries.size >= maxEntries) entries.delete(entries.keys().next().value!);
      entries.set(clientId, { mac: macOf(clientId, secret), hash, expiresAt: clock() + ttlMs });
    },
    delete(clientId: string): void {
      entries.delete(clientId);
    },
  };
}

export type VerifiedSecretCache = ReturnType<typeof createVerifiedSecretCache>;
