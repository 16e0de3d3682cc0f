import { describe, expect, it } from 'vitest';
import { TokenCache } from '../src/lib/token-cache.js';

// Tokens that end alike share a map key (keyOf reads the last characters): the cache must still
// tell them apart by the whole token.
const sameTail = (head: string) => `${head}.payload.SIGNATUREabcdefgh`;
const NOW = 1_000_000;
const FOREVER = Number.MAX_SAFE_INTEGER;

describe('TokenCache', () => {
  it('serves a value only for the exact token it was stored under', () => {
    const cache = new TokenCache<string>(10);
    cache.set(sameTail('a'), 'A', FOREVER);
    expect(cache.get(sameTail('a'), NOW)).toBe('A');
    // Same key, other token: a miss, never A.
    expect(cache.get(sameTail('b'), NOW)).toBeUndefined();
    // A new string with the same content is the same token.
    expect(cache.get(['a', 'payload', 'SIGNATUREabcdefgh'].join('.'), NOW)).toBe('A');
  });

  it('keeps the later of two tokens that share a key, and evicting the earlier one spares it', () => {
    const cache = new TokenCache<string>(2);
    cache.set(sameTail('a'), 'A', FOREVER);
    cache.set(sameTail('b'), 'B', FOREVER);
    expect(cache.get(sameTail('a'), NOW)).toBeUndefined();
    expect(cache.get(sameTail('b'), NOW)).toBe('B');
    // The ring now holds [a (replaced), b]: inserting c evicts a's slot, which must not drop b.
    cache.set('c.payload.other-signature', 'C', FOREVER);
    expect(cache.get(sameTail('b'), NOW)).toBe('B');
    expect(cache.get('c.payload.other-signature', NOW)).toBe('C');
  });

  it('is bounded and evicts the oldest entry first', () => {
    const cache = new TokenCache<number>(3);
    const tokens = Array.from({ length: 5 }, (_, i) => `h.p.signature-xyz${i}w`);
    tokens.forEach((token, i) => cache.set(token, i, FOREVER));
    expect(cache.size).toBe(3);
    expect(tokens.map((token) => cache.get(token, NOW))).toEqual([undefined, undefined, 2, 3, 4]);
  });

  it('serves an entry until its validUntilMs only, then drops it; clears all', () => {
    const cache = new TokenCache<number>(3);
    cache.set('h.p.one-12345', 1, NOW + 1000);
    cache.set('h.p.two-54321', 2, FOREVER);
    expect(cache.get('h.p.one-12345', NOW + 999)).toBe(1);
    expect(cache.get('h.p.one-12345', NOW + 1000)).toBeUndefined();
    expect(cache.size).toBe(1);
    // Dropped: even a clock going back does not bring it back.
    expect(cache.get('h.p.one-12345', NOW)).toBeUndefined();
    expect(cache.get('h.p.two-54321', NOW)).toBe(2);
    cache.clear();
    expect(cache.size).toBe(0);
    expect(cache.get('h.p.two-54321', NOW)).toBeUndefined();
    // Usable after clear, with its full capacity.
    for (let i = 0; i < 4; i++) cache.set(`h.p.after-abcde${i}x`, i, FOREVER);
    expect(cache.size).toBe(3);
  });

  it('reuses an expired entry’s position in its turn without dropping what was stored since', () => {
    const cache = new TokenCache<number>(2);
    cache.set('h.p.aaaaa1x', 1, NOW + 10);
    cache.set('h.p.bbbbb2x', 2, FOREVER);
    expect(cache.get('h.p.aaaaa1x', NOW + 10)).toBeUndefined(); // expired: dropped
    cache.set('h.p.aaaaa1x', 3, FOREVER); // takes the oldest position, a's own
    expect(cache.get('h.p.aaaaa1x', NOW)).toBe(3);
    expect(cache.get('h.p.bbbbb2x', NOW)).toBe(2);
    cache.set('h.p.ccccc3x', 4, FOREVER); // evicts b, the oldest now
    expect([cache.get('h.p.aaaaa1x', NOW), cache.get('h.p.bbbbb2x', NOW), cache.get('h.p.ccccc3x', NOW)]).toEqual([3, undefined, 4]);
    expect(cache.size).toBe(2);
  });

  it('takes tokens shorter than its key', () => {
    const cache = new TokenCache<number>(2);
    cache.set('ab', 1, FOREVER);
    expect(cache.get('ab', NOW)).toBe(1);
    expect(cache.get('b', NOW)).toBeUndefined();
  });
});
