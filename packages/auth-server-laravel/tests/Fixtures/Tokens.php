<?php

declare(strict_types=1);

namespace Rw3iss\AuthServer\Tests\Fixtures;

use Rw3iss\AuthServer\Verification\Base64Url;
use Rw3iss\AuthServer\Verification\KeyId;

/** Signs tokens the way auth-api does, for tests. */
final class Tokens
{
    public const SECRET = 'php-test-secret-current-0123456789abcdef-0123456789';
    public const PREVIOUS_SECRET = 'php-test-secret-previous-0123456789abcdef-01234567';
    public const OTHER_SECRET = 'php-test-secret-someone-else-0123456789abcdef-0123';
    public const ISSUER = 'https://auth.test';
    public const AUDIENCE = 'catalog-api';

    /**
     * @param array<string, mixed> $claims overrides
     * @param list<string> $omit claims to leave out
     */
    public static function sign(int $now, array $claims = [], string $secret = self::SECRET, array $omit = []): string
    {
        $payload = [
            'iss' => self::ISSUER,
            'sub' => 'billing-svc',
            'aud' => self::AUDIENCE,
            'iat' => $now,
            'nbf' => $now,
            'exp' => $now + 900,
            'jti' => 'jti-1',
            'token_type' => 'service',
            'client_id' => 'billing-svc',
            'service_name' => 'Billing backend',
            'scopes' => ['gsku:publish', 'gsku:read'],
            'scope' => 'gsku:publish gsku:read',
            ...$claims,
        ];
        foreach ($omit as $name) {
            unset($payload[$name]);
        }
        $input = Base64Url::encode(json_encode(['alg' => 'HS256', 'typ' => 'at+jwt', 'kid' => KeyId::forSecret($secret)]))
            . '.' . Base64Url::encode(json_encode($payload, JSON_UNESCAPED_SLASHES));

        return $input . '.' . Base64Url::encode(hash_hmac('sha256', $input, $secret, true));
    }

    /** @return array<string, mixed> the `verify` config for these tokens */
    public static function verifyConfig(): array
    {
        return [
            'secret' => self::SECRET,
            'previous_secrets' => [self::PREVIOUS_SECRET],
            'issuer' => self::ISSUER,
            'audience' => self::AUDIENCE,
        ];
    }
}
