<?php

declare(strict_types=1);

namespace Rw3iss\AuthServer\Facades;

use Illuminate\Support\Facades\Facade;
use Rw3iss\AuthServer\Client\ServiceTokenManager;

/**
 * Service tokens for calls to other services, cached and renewed automatically.
 *
 * ```php
 * $token = VenService::token();
 * Http::withToken($token)->post('https://other-svc/api/…', $payload);
 * ```
 *
 * @method static string token(array $scopes = [], ?string $audience = null)
 * @method static string authorizationHeader(array $scopes = [], ?string $audience = null)
 * @method static bool invalidate(string $token, array $scopes = [], ?string $audience = null)
 *
 * @see ServiceTokenManager
 */
final class VenService extends Facade
{
    protected static function getFacadeAccessor(): string
    {
        return ServiceTokenManager::class;
    }
}
