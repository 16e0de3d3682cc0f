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
 * never matches and goes through bcrypt. Callers still check the credential's
 * state on every grant, and drop its entry when it changes.
 */
export function createVerifiedSecretCache({ clock, ttlMs = 10 * 60_000, maxEntries = 10_000 }: VerifiedSecretCacheOptions) {
  const key = randomBytes(32);
  const entries = new Map<string, { mac: Buffer; expiresAt: number }>();
  // Verifications under way, by MAC: a burst of identical grants (a fleet restarting) pays bcrypt once.
  const inFlight = new Map<string, Promise<boolean>>();
  const macOf = (credentialId: string, secret: string, hash: string) => createHmac('sha256', key).update(credentialId).update('\0').update(hash).update('\0').update(secret).digest();

  function hit(credentialId: string, mac: Buffer): boolean {
    const entry = entries.get(credentialId);
    if (!entry) return false;
    if (entry.expiresAt <= clock()) {
      entries.delete(credentialId);
      return false;
    }
    return timingSafeEqual(entry.mac, mac);
  }

  function remember(credentialId: string, mac: Buffer): void {
    entries.delete(credentialId);
    if (entries.size >= maxEntries) entries.delete(entries.keys().next().value!);
    entries.set(credentialId, { mac, expiresAt: clock() + ttlMs });
  }

  return {
    /**
     * Whether `secret` matches the credential's `hash`: from the cache when it
     * is the secret last verified, else by `verifySlow` (bcrypt), remembering
     * a success. Concurrent identical checks share one `verifySlow`.
     */
    async verify(credentialId: string, secret: string, hash: string, verifySlow: () => Promise<boolean>): Promise<boolean> {
      const mac = macOf(credentialId, secret, hash);
      if (hit(credentialId, mac)) return true;
      const flightKey = mac.toString('base64');
      let pending = inFlight.get(flightKey);
      if (!pending) {
        pending = verifySlow().finally(() => inFlight.delete(flightKey));
        inFlight.set(flightKey, pending);
      }
      const ok = await pending;
      if (ok) remember(credentialId, mac);
      return ok;
    },
    delete(credentialId: string): void {
      entries.delete(credentialId);
    },
    clear(): void {
      entries.clear();
    },
    get size(): number {
      return entries.size;
    },
  };
}

export type VerifiedSecretCache = ReturnType<typeof createVerifiedSecretCache>;
