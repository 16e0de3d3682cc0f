<?php

declare(strict_types=1);

namespace Rw3iss\AuthServer\Http\Middleware;

use Closure;
use Illuminate\Http\JsonResponse;
use Illuminate\Http\Request;
use Rw3iss\AuthServer\Exceptions\TokenVerificationException;
use Rw3iss\AuthServer\Support\Scopes;
use Rw3iss\AuthServer\Verification\ServicePrincipal;
use Rw3iss\AuthServer\Verification\ServiceTokenVerifier;
use Symfony\Component\HttpFoundation\Response;

/**
 * Lets through only a request with a valid service token holding every listed
 * scope (registered as `service.token`; {@see RequireAnyServiceToken},
 * `service.token.any`, needs one of them). Verifies locally, puts the
 * {@see ServicePrincipal} on the request, or answers as the Node SDK's guards
 * do (RFC 6750 §3): 401 with `WWW-Authenticate: Bearer` for a missing token,
 * 401 `Bearer error="invalid_token", …` for a refused one, 403
 * `Bearer error="insufficient_scope", …, scope="…"` for a missing scope, with
 * the JSON body `{"error": "<code>", "error_description": "…", "scope"?: "…"}`.
 *
 * ```php
 * Route::post('/publish', PublishController::class)->middleware('service.token:gsku:publish');
 * Route::post('/sync', SyncController::class)->middleware('service.token:gsku:read,gsku:write');    // both
 * Route::get('/items', ItemsController::class)->middleware('service.token.any:gsku:read,gsku:admin'); // either
 * ```
 */
class RequireServiceToken
{
    /** 'all': every listed scope is required; 'any': one is enough. */
    protected const MODE = 'all';

    private const BEARER = '/^Bearer(?: +(.*))?$/i';

    /** @var array<string, list<string>> route parameters => checked scopes, checked once per process */
    private static array $requirements = [];

    public function __construct(private readonly ServiceTokenVerifier $verifier)
    {
    }

    public function handle(Request $request, Closure $next, string ...$scopes): mixed
    {
        $required = self::$requirements[implode(',', $scopes)] ??= Scopes::normalize($scopes, static::class . ' scopes');
        try {
            $principal = $this->verifier->verify(self::bearerToken($request->headers->get('Authorization')), $required, static::MODE);
        } catch (TokenVerificationException $e) {
            return self::refusal($e);
        }
        $request->attributes->set(ServicePrincipal::class, $principal);

        return $next($request);
    }

    /**
     * The token of an `Authorization: Bearer <token>` header (RFC 6750 §2.1): null (a missing
     * token) without the Bearer scheme or with nothing after it; anything else goes to the verifier.
     */
    public static function bearerToken(?string $authorization): ?string
    {
        if ($authorization === null || preg_match(self::BEARER, $authorization, $m) !== 1) {
            return null;
        }
        $token = trim($m[1] ?? '');

        return $token === '' ? null : $token;
    }

    /** The RFC 6750 answer to a refused token: the same status, challenge and body as the Node guards. */
    public static function refusal(TokenVerificationException $e): Response
    {
        $body = ['error' => $e->errorCode, 'error_description' => $e->description()];
        if ($e->errorCode === 'insufficient_scope') {
            $body['scope'] = implode(' ', $e->requiredScopes);
        }

        return new JsonResponse($body, $e->httpStatus(), [
            'Content-Type' => 'application/json; charset=utf-8',
            'Cache-Control' => 'no-store',
            'WWW-Authenticate' => $e->wwwAuthenticate(),
        ], JSON_UNESCAPED_SLASHES);
    }
}
