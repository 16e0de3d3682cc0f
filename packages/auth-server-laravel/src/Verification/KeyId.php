<?php

declare(strict_types=1);

namespace Rw3iss\AuthServer\Verification;

/**
 * The `kid` header value for an HS256 signing secret, derived the same way as
 * the platform (`keyIdForSecret` in the Node SDK): the first 16 characters of
 * base64url(HMAC-SHA256(secret, "auth-platform/kid/v1")). It names the key
 * without revealing anything about it.
 */
final class KeyId
{
    public static function forSecret(string $secret): string
    {
        return substr(Base64Url::encode(hash_hmac('sha256', 'auth-platform/kid/v1', $secret, true)), 0, 16);
    }
}
