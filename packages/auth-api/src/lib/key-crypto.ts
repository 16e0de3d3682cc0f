import { createCipheriv, createDecipheriv, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject, randomBytes, sign } from 'node:crypto';
import { calculateJwkThumbprint, type JWK } from 'jose';

/** Asymmetric service-token algorithms (RFC 7518 §3.4, RFC 8037 §3.1). */
export type AsymmetricAlgorithm = 'ES256' | 'EdDSA';
export const ASYMMETRIC_ALGORITHMS: readonly AsymmetricAlgorithm[] = ['ES256', 'EdDSA'];

/** A key-encryption key: 32 bytes for AES-256-GCM. */
export const KEK_BYTES = 32;
const IV_BYTES = 12;
const FORMAT = 'v1';

export interface GeneratedKey {
  kid: string;
  alg: AsymmetricAlgorithm;
  /** The public half as a JWK (RFC 7517) with kid, alg and use. */
  publicJwk: JWK;
  /** PKCS#8 DER of the private key: encrypt before storing, never log. */
  privateDer: Buffer;
}

/** A new key pair; `kid` is the RFC 7638 thumbprint of the public key. */
export async function generateSigningKey(alg: AsymmetricAlgorithm): Promise<GeneratedKey> {
  const { privateKey, publicKey } = alg === 'ES256' ? generateKeyPairSync('ec', { namedCurve: 'P-256' }) : generateKeyPairSync('ed25519');
  const jwk = publicKey.export({ format: 'jwk' }) as JWK;
  const kid = await calculateJwkThumbprint(jwk, 'sha256');
  return {
    kid,
    alg,
    publicJwk: { ...jwk, kid, alg, use: 'sig' },
    privateDer: privateKey.export({ format: 'der', type: 'pkcs8' }),
  };
}

/**
 * Encrypts a private key under the KEK (AES-256-GCM, random 96-bit IV). The
 * kid is the additional authenticated data: a ciphertext moved to another
 * row does not decrypt. Output: `v1.<iv>.<ciphertext>.<tag>` (base64url).
 */
export function encryptPrivateKey(kek: Buffer, kid: string, privateDer: Buffer): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', kek, iv);
  cipher.setAAD(Buffer.from(kid, 'utf8'));
  const ciphertext = Buffer.concat([cipher.update(privateDer), cipher.final()]);
  return [FORMAT, iv, ciphertext, cipher.getAuthTag()].map((part) => (typeof part === 'string' ? part : part.toString('base64url'))).join('.');
}

/** Thrown when a stored private key cannot be decrypted (wrong KEK, tampered row). The message names the kid only. */
export class KeyDecryptionError extends Error {
  override name = 'KeyDecryptionError';
  constructor(readonly kid: string) {
    super(`signing key ${kid} cannot be decrypted with KEY_ENCRYPTION_KEY (wrong key, or the stored key was altered)`);
  }
}

/** The private KeyObject of a stored, encrypted key. */
export function decryptPrivateKey(kek: Buffer, kid: string, stored: string): KeyObject {
  try {
    const [format, iv, ciphertext, tag, extra] = stored.split('.');
    if (format !== FORMAT || !iv || !ciphertext || !tag || extra !== undefined) throw new Error('format');
    const decipher = createDecipheriv('aes-256-gcm', kek, Buffer.from(iv, 'base64url'));
    decipher.setAAD(Buffer.from(kid, 'utf8'));
    decipher.setAuthTag(Buffer.from(tag, 'base64url'));
    const der = Buffer.concat([decipher.update(Buffer.from(ciphertext, 'base64url')), decipher.final()]);
    return createPrivateKey({ key: der, format: 'der', type: 'pkcs8' });
  } catch {
    throw new KeyDecryptionError(kid);
  }
}

/** The public KeyObject of a JWK (for tests and the verifier side). */
export function publicKeyFromJwk(jwk: JWK): KeyObject {
  return createPublicKey({ key: jwk as never, format: 'jwk' });
}

/**
 * A JWS signer for one key: node:crypto signs directly (no per-token key
 * import), on the libuv thread pool, so signatures run beside the event loop
 * instead of on it (the grant path's other work continues meanwhile). ES256
 * signatures are the fixed-size R||S form JWS requires (RFC 7518 §3.4), not DER.
 */
export function createJwsSigner(alg: AsymmetricAlgorithm, privateKey: KeyObject) {
  const key = alg === 'ES256' ? { key: privateKey, dsaEncoding: 'ieee-p1363' as const } : privateKey;
  const digest = alg === 'ES256' ? 'sha256' : null;
  return (signingInput: string): Promise<string> =>
    new Promise((resolve, reject) => sign(digest, Buffer.from(signingInput), key, (err, signature) => (err ? reject(err) : resolve(signature.toString('base64url')))));
}
