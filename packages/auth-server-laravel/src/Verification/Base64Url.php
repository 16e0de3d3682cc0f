<?php

declare(strict_types=1);

namespace Rw3iss\AuthServer\Verification;

/** @internal base64url without padding (RFC 7515 §2). */
final class Base64Url
{
    public static function encode(string $bytes): string
    {
        return rtrim(strtr(base64_encode($bytes), '+/', '-_'), '=');
    }

    /** The decoded bytes, or null when `$text` is not unpadded base64url. */
    public static function decode(string $text): ?string
    {
        if (preg_match('/^[A-Za-z0-9_-]*$/D', $text) !== 1 || strlen($text) % 4 === 1) {
            return null;
        }
        $decoded = base64_decode(strtr($text, '-_', '+/'), true);

        return $decoded === false ? null : $decoded;
    }
}
