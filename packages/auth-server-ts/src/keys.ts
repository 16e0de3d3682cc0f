import { createHmac } from 'node:crypto';

/**
 * The `kid` header value for an HS256 signing secret.
 *
 * Issuer and verifiers derive it the same way from the secret itself, so a
 * verifier that holds the current and the previous secret (during a key
 * rotation) picks the right key without trying both, and no key id has to be
 * configured anywhere. It is an HMAC of a fixed label under the secret, so it
 * reveals nothing about the secret.
 *
 * @example keyIdForSecret(process.env.JWT_ACCESS_SECRET!) // 'Yx3…' (16 chars)
 */
export function keyIdForSecret(secret: string | Uint8Array): string {
  return createHmac('sha256', secret).update('auth-platform/kid/v1').digest('base64url').slice(0, 16);
}
