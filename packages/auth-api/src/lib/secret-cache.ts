import { hash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Clock } from './clock.js';

export interface VerifiedSecretCacheOptions {
  clock: Clock;
  /** How long a verified secret is trusted without bcrypt. */
  ttlMs?: number;
  /** Bound on credentials remembered; the oldest is dropped first. */
  maxEntries?: number;
}

/** Which stored secret a presented secret was verified against. */
export interface VerifiedSecret {
  secretId: string;
  /**
   * The stored hash it passed against, compared again at every use. Nothing in this server rewrites
   * a secret's hash under its id (a rotation adds a secret with a new id), but an operator's UPDATE
   * of `secret_hash` (a leaked secret replaced by hand) or a restore can: with the id alone, the old
   * plaintext would keep passing from memory on every instance until the TTL.
   */
  hash: string;
}

/** Secrets remembered per credential: its live secrets (at most two), so a fleet mid-rotation pays no bcrypt. */
const PER_CLIENT = 2;

/**
 * Remembers, per client_id, keyed hashes of the secrets that last passed
 * bcrypt (one per stored secret, so both halves of a fleet mid-rotation are
 * remembered) and which stored secret each passed against, so a backend
 * renewing its token pays neither bcrypt nor the failure throttle. Looked up
 * before any database read, by (client_id, secret) alone: a request that does
 * not hold a secret never matches. Never holds a plaintext secret: entries
 * are keyed SHA-256 fingerprints under a key that lives only in this process (so a restart empties
 * it). A different secret never matches and goes through bcrypt; identical
 * wrong guesses are never shared or shortened, so a wrong secret always costs
 * the same. Callers still read the credential's state on every grant, check
 * that the remembered secret is still live with the same hash, and forget it
 * when it is not (deleted, expired, replaced).
 */
export function createVerifiedSecretCache({ clock, ttlMs = 10 * 60_000, maxEntries = 10_000 }: VerifiedSecretCacheOptions) {
  // 256 random bits, as hex: the prefix of every fingerprint's input.
  const key = randomBytes(32).toString('hex');
  const entries = new Map<string, { mac: Buffer; verified: VerifiedSecret; expiresAt: number }[]>();
  // SHA-256 over the fixed-length key, then the value: the fingerprints are only compared (in
  // constant time) and never leave the process, so length extension gives nothing. Not HMAC:
  // on Node 20 (OpenSSL 3) createHmac looks its digest up on every call, the one-shot hash does
  // not, and the lookup is a third of a repeat grant's crypto (docs/BENCHMARKS.md).
  const macOf = (clientId: string, secret: string) => hash('sha256', `${key}${clientId}\0${secret}`, 'buffer');

  return {
    /** The stored secret `secret` was last verified against for this client_id, within the TTL; else undefined. */
    verified(clientId: string, secret: string): VerifiedSecret | undefined {
      const list = entries.get(clientId);
      if (!list) return undefined;
      const now = clock();
      const mac = macOf(clientId, secret);
      let found: VerifiedSecret | undefined;
      let expired = 0;
      // Every entry is compared, in constant time, whichever matches.
      for (const entry of list) {
        if (entry.expiresAt <= now) expired += 1;
        else if (timingSafeEqual(entry.mac, mac)) found = entry.verified;
      }
      if (expired === list.length) entries.delete(clientId);
      else if (expired > 0) entries.set(clientId, list.filter((entry) => entry.expiresAt > now));
      return found;
    },
    add(clientId: string, secret: string, verified: VerifiedSecret): void {
      const kept = (entries.get(clientId) ?? []).filter((entry) => entry.verified.secretId !== verified.secretId).slice(-(PER_CLIENT - 1));
      entries.delete(clientId);
      if (entries.size >= maxEntries) entries.delete(entries.keys().next().value!);
      entries.set(clientId, [...kept, { mac: macOf(clientId, secret), verified, expiresAt: clock() + ttlMs }]);
    },
    /** Forgets one stored secret of the credential (deleted, expired or replaced). */
    forget(clientId: string, secretId: string): void {
      const list = entries.get(clientId);
      if (!list) return;
      const kept = list.filter((entry) => entry.verified.secretId !== secretId);
      if (kept.length === 0) entries.delete(clientId);
      else entries.set(clientId, kept);
    },
  };
}

export type VerifiedSecretCache = ReturnType<typeof createVerifiedSecretCache>;
