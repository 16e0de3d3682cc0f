/**
 * A bounded cache keyed by a whole token string, first in first out.
 *
 * Why not a plain `Map<token, value>`: V8 hashes a string key over every
 * character (about 0.7 µs for a 500-byte JWT, on every request, since each
 * request's token is a new string), and evicting the oldest entry with
 * `map.keys().next()` walks over the holes that earlier deletions left at the
 * front of the table. On a stream of fresh tokens that bookkeeping was a sixth
 * of a verification (bench/verifier.ts).
 *
 * Here the map key is a small integer taken from the token's last characters
 * (for a JWS, its signature: uniformly spread for tokens we signed), and
 * every hit is confirmed by comparing the whole token, so two tokens that
 * share a key can never be served one for the other: the later one replaces
 * the earlier, which costs a re-verification, never a wrong answer. Only
 * verified tokens are stored, so a caller who crafts keys can collide with an
 * entry at most, not fill the cache. Eviction walks a ring of the slots in
 * insertion order. Each slot holds its value and its expiry, nothing else.
 */
export class TokenCache<V> {
  readonly #slots = new Map<number, Slot<V>>();
  /** Slots in insertion order, grown up to maxEntries; once full, `#next` is the oldest, overwritten by the next insert. */
  #ring: Slot<V>[] = [];
  #next = 0;
  readonly #maxEntries: number;

  constructor(maxEntries: number) {
    this.#maxEntries = maxEntries;
  }

  /** The value stored for exactly this token, if any and still valid at `now` (an expired one is dropped). */
  get(token: string, now: number): V | undefined {
    const key = keyOf(token);
    const slot = this.#slots.get(key);
    if (slot === undefined || slot.token !== token) return undefined;
    if (now < slot.validUntilMs) return slot.value;
    this.#slots.delete(key); // its ring slot is reused in its turn
    return undefined;
  }

  /** Stores `value` for `token` until `validUntilMs`, evicting the oldest entry when full. */
  set(token: string, value: V, validUntilMs: number): void {
    const slot: Slot<V> = { key: keyOf(token), token, value, validUntilMs };
    if (this.#ring.length < this.#maxEntries) {
      this.#ring.push(slot);
    } else {
      const oldest = this.#ring[this.#next]!;
      // The oldest slot may already be gone (deleted, or replaced by a token with the same key).
      if (this.#slots.get(oldest.key) === oldest) this.#slots.delete(oldest.key);
      this.#ring[this.#next] = slot;
      this.#next = this.#next + 1 === this.#maxEntries ? 0 : this.#next + 1;
    }
    this.#slots.set(slot.key, slot);
  }

  clear(): void {
    this.#slots.clear();
    this.#ring = [];
    this.#next = 0;
  }

  /** Entries held (for tests). */
  get size(): number {
    return this.#slots.size;
  }
}

interface Slot<V> {
  readonly key: number;
  readonly token: string;
  readonly value: V;
  readonly validUntilMs: number;
}

/**
 * 30 bits from the 2nd to 6th last characters: in a JWS, signature characters
 * (the last one of an HS256 signature carries only 4 bits). A small integer,
 * so the map hashes it in constant time. Characters past the start read as 0.
 */
function keyOf(token: string): number {
  const n = token.length;
  return (
    ((token.charCodeAt(n - 2) << 24) ^ (token.charCodeAt(n - 3) << 18) ^ (token.charCodeAt(n - 4) << 12) ^ (token.charCodeAt(n - 5) << 6) ^ token.charCodeAt(n - 6)) &
    0x3fffffff
  );
}
