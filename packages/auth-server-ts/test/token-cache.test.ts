import { describe, expect, it } from 'vitest';
import { TokenCache } from '../src/lib/token-cache.js';

// Tokens that end alike share a map key (keyOf reads the last characters): the cache must still
// tell them apart by the whole token.
const sameTail = (head: string) => `${head}.payload.SIGNATUREabcdefgh`;

describe('TokenCache', () => {
  it('serves a value only for the exact token it was stored under', () => {
    const cache = new TokenCache<string>(10);
    cache.set(sameTail('a'), 'A');
    expect(cache.get(sameTail('a'))).toBe('A');
    // Same key, other token: a miss, never A.
    expect(cache.get(sameTail('b'))).toBeUndefined();
    // A new string with the same content is the same token.
    expect(cache.get(['a', 'payload', 'SIGNATUREabcdefgh'].join('.'))).toBe('A');
  });

  it('keeps the later of two tokens that share a key, and evicting the earlier one spares it', () => {
    const cache = new TokenCache<string>(2);
    cache.set(sameTail('a'), 'A');
    cache.set(sameTail('b'), 'B');
    expect(cache.get(sameTail('a'))).toBeUndefined();
    expect(cache.get(sameTail('b'))).toBe('B');
    // The ring now holds [a (replaced), b]: inserting c evicts a's slot, which must not drop b.
    cache.set('c.payload.other-signature', 'C');
    expect(cache.get(sameTail('b'))).toBe('B');
    expect(cache.get('c.payload.other-signature')).toBe('C');
  });

  it('is bounded and evicts the oldest entry first', () => {
    const cache = new TokenCache<number>(3);
    const tokens = Array.from({ length: 5 }, (_, i) => `h.p.signature-xyz${i}w`);
    tokens.forEach((token, i) => cache.set(token, i));
    expect(cache.size).toBe(3);
    expect(tokens.map((token) => cache.get(token))).toEqual([undefined, undefined, 2, 3, 4]);
  });

  it('deletes one token and clears all', () => {
    const cache = new TokenCache<number>(3);
    cache.set('h.p.one-12345', 1);
    cache.set('h.p.two-54321', 2);
    cache.delete(sameTail('x')); // not stored: no effect
    cache.delete('h.p.one-12345');
    expect(cache.get('h.p.one-12345')).toBeUndefined();
    expect(cache.get('h.p.two-54321')).toBe(2);
    cache.clear();
    expect(cache.size).toBe(0);
    expect(cache.get('h.p.two-54321')).toBeUndefined();
    // Usable after clear, with its full capacity.
    for (let i = 0; i < 4; i++) cache.set(`h.p.after-abcde${i}x`, i);
    expect(cache.size).toBe(3);
  });

  it('takes tokens shorter than its key', () => {
    const cache = new TokenCache<number>(2);
    cache.set('ab', 1);
    expect(cache.get('ab')).toBe(1);
    expect(cache.get('b')).toBeUndefined();
  });
});
