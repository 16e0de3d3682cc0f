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
 * insertion order; an entry is its token, its value and its expiry, nothing else.
 */
export class TokenCache<V> {
  /** Map key → the entry's position in the ring. */
  readonly #positions = new Map<number, number>();
  // The ring, as parallel arrays (no object per entry), grown up to maxEntries; once full,
  // `#next` is the oldest position, overwritten by the next insert.
  #keys: number[] = [];
  #tokens: (string | undefined)[] = [];
  #values: (V | undefined)[] = [];
  #validUntilMs: number[] = [];
  #next = 0;
  readonly #maxEntries: number;

  constructor(maxEntries: number) {
    this.#maxEntries = maxEntries;
  }

  /** The value stored for exactly this token, if any and still valid at `now` (an expired one is dropped). */
  get(token: string, now: number): V | undefined {
    const key = keyOf(token);
    const at = this.#positions.get(key);
    if (at === undefined || this.#tokens[at] !== token) return undefined;
    if (now < this.#validUntilMs[at]!) return this.#values[at];
    // Expired: dropped now; its position is reused in its turn.
    this.#positions.delete(key);
    this.#tokens[at] = undefined;
    this.#values[at] = undefined;
    return undefined;
  }

  /** Stores `value` for `token` until `validUntilMs`, evicting the oldest entry when full. */
  set(token: string, value: V, validUntilMs: number): void {
    const key = keyOf(token);
    let at = this.#tokens.length;
    if (at === this.#maxEntries) {
      at = this.#next;
      this.#next = at + 1 === this.#maxEntries ? 0 : at + 1;
      // The oldest entry may already be gone (expired, or replaced by a later token with the same key).
      const oldKey = this.#keys[at]!;
      if (this.#positions.get(oldKey) === at) this.#positions.delete(oldKey);
    }
    this.#keys[at] = key;
    this.#tokens[at] = token;
    this.#values[at] = value;
    this.#validUntilMs[at] = validUntilMs;
    this.#positions.set(key, at);
  }

  clear(): void {
    this.#positions.clear();
    this.#keys = [];
    this.#tokens = [];
    this.#values = [];
    this.#validUntilMs = [];
    this.#next = 0;
  }

  /** Entries held (for tests). */
  get size(): number {
    return this.#positions.size;
  }
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
