import { createHmac, randomBytes, randomInt } from 'node:crypto';
import { jwtVerify } from 'jose';
import { describe, expect, it } from 'vitest';
import { createTokenIssuer, hmacSha256 } from '../src/lib/tokens.js';

const hex = (s: string) => Buffer.from(s, 'hex');

describe('hmacSha256', () => {
  // RFC 4231 §4: HMAC-SHA-256 test cases 1–4, 6 and 7 (5 is a truncated output).
  const vectors: [string, Buffer, Buffer | string, string][] = [
    ['1', Buffer.alloc(20, 0x0b), 'Hi There', 'b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7'],
    ['2', Buffer.from('Jefe'), 'what do ya want for nothing?', '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843'],
    ['3', Buffer.alloc(20, 0xaa), Buffer.alloc(50, 0xdd), '773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe'],
    ['4', hex('0102030405060708090a0b0c0d0e0f10111213141516171819'), Buffer.alloc(50, 0xcd), '82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b'],
    ['6', Buffer.alloc(131, 0xaa), 'Test Using Larger Than Block-Size Key - Hash Key First', '60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54'],
    [
      '7',
      Buffer.alloc(131, 0xaa),
      'This is a test using a larger than block-size key and a larger than block-size data. The key needs to be hashed before being used by the HMAC algorithm.',
      '9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2',
    ],
  ];
  it.each(vectors)('gives RFC 4231 test case %s', (_case, key, data, expected) => {
    expect(hmacSha256(key)(data).toString('hex')).toBe(expected);
  });

  it('equals createHmac for keys shorter than, equal to and longer than the block, and any message', () => {
    for (const keyLength of [0, 1, 31, 32, 63, 64, 65, 100, 200]) {
      for (let i = 0; i < 20; i++) {
        const key = randomBytes(keyLength);
        const mac = hmacSha256(key);
        // UTF-8 text with multi-byte characters, and raw bytes.
        const text = `${randomBytes(randomInt(0, 300)).toString('base64')}é€😀`;
        const bytes = randomBytes(randomInt(0, 300));
        expect(mac(text).equals(createHmac('sha256', key).update(text, 'utf8').digest())).toBe(true);
        expect(mac(bytes).equals(createHmac('sha256', key).update(bytes).digest())).toBe(true);
      }
    }
  });

  it('does not keep a reference to the caller’s key buffer', () => {
    const key = randomBytes(32);
    const mac = hmacSha256(key);
    const before = mac('message').toString('hex');
    key.fill(0);
    expect(mac('message').toString('hex')).toBe(before);
  });
});

describe('createTokenIssuer (HS256)', () => {
  it('signs a token jose verifies with the shared secret, and one signed with another secret fails', async () => {
    const keys = { secret: 'a-shared-secret-of-at-least-32-characters!', issuer: 'https://auth.example', audience: 'auth-api' };
    const issuer = createTokenIssuer(keys, () => Date.now());
    const { token, claims } = await issuer.serviceToken({ sub: 'svc', client_id: 'svc', service_name: 'Svc', scopes: ['a:b'] }, 900);
    const { payload, protectedHeader } = await jwtVerify(token, new TextEncoder().encode(keys.secret), { issuer: keys.issuer, audience: keys.audience, algorithms: ['HS256'] });
    expect(protectedHeader).toMatchObject({ alg: 'HS256', typ: 'at+jwt' });
    expect(payload).toEqual(claims);
    await expect(jwtVerify(token, new TextEncoder().encode(`${keys.secret}x`), { algorithms: ['HS256'] })).rejects.toThrow();
  });
});
