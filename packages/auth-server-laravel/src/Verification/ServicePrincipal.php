<?php

declare(strict_types=1);

namespace Rw3iss\AuthServer\Verification;

use Illuminate\Http\Request;

/**
 * The verified caller of a service token. The middleware puts it on the request:
 * `$request->attributes->get(ServicePrincipal::class)`, or `ServicePrincipal::of($request)`.
 */
final class ServicePrincipal
{
    /**
     * @param list<string> $scopes the granted scopes
     * @param array<string, mixed> $claims every claim of the token (nested JSON objects as stdClass)
     */
    public function __construct(
        public readonly string $clientId,
        public readonly string $serviceName,
        public readonly array $scopes,
        public readonly array $claims,
    ) {
    }

    /** The principal `RequireServiceToken` put on the request, or null on a route without it. */
    public static function of(Request $request): ?self
    {
        $principal = $request->attributes->get(self::class);

        return $principal instanceof self ? $principal : null;
    }

    public function hasScope(string $scope): bool
    {
        return in_array($scope, $this->scopes, true);
    }
}
