<?php

// rw3iss/auth-server-laravel. Publish with:
//   php artisan vendor:publish --tag=auth-server-config

$list = static fn (?string $value): array => array_values(array_filter(explode(' ', (string) $value), static fn ($s) => $s !== ''));

return [

    /*
    | Calling other services: VenService::token() (OAuth 2.0 client_credentials).
    | Give the token endpoint, or the auth server's origin (its endpoint is then read
    | once from /.well-known/oauth-authorization-server, RFC 8414), not both.
    */
    'token_endpoint' => env('AUTH_SERVER_TOKEN_ENDPOINT'),   // https://auth.example.com/api/v1/oauth/token
    'server_url' => env('AUTH_SERVER_URL'),                   // https://auth.example.com
    'client_id' => env('AUTH_SERVER_CLIENT_ID'),
    'client_secret' => env('AUTH_SERVER_CLIENT_SECRET'),     // never logged, never in an exception
    'auth_method' => env('AUTH_SERVER_AUTH_METHOD', 'client_secret_basic'), // or client_secret_post
    'scopes' => $list(env('AUTH_SERVER_SCOPES')),            // space-separated; empty: every scope the credential holds
    'audience' => env('AUTH_SERVER_AUDIENCE'),                // sent as the `audience` form parameter when set
    'timeout' => 10,                                          // seconds per attempt (connect + answer)
    'allow_insecure_http' => false,                           // plain http only to localhost / 127.0.0.0/8 / ::1
    'retry' => [
        'max_attempts' => 4,          // network errors, timeouts, 429 and 5xx; never invalid_client / invalid_scope
        'base_delay_ms' => 200,
        'max_delay_ms' => 10_000,
        'max_retry_after_ms' => 60_000,
    ],
    'refresh' => [
        'skew' => 60,                 // renew at least this many seconds before expiry…
        'lifetime_fraction' => 0.8,   // …and no later than this fraction of the lifetime
        'jitter_fraction' => 0.05,    // up to this fraction earlier, at random, so workers do not renew in step
    ],
    'cache' => [
        'store' => env('AUTH_SERVER_CACHE_STORE'),  // a Laravel cache store; null: the default one
        'prefix' => 'auth-server:token:',
        'lock_seconds' => 30,         // a fetch holds the lock at most this long
        'lock_wait' => 15,            // a worker waits this long for another's fetch, then fetches itself
    ],

    /*
    | Receiving calls: the RequireServiceToken middleware (`service.token:<scope>,…`).
    | Tokens are verified locally with the platform's JWT_ACCESS_SECRET (and the previous
    | one during a rotation). Issuer and audience are required: set them to false to skip
    | a check on purpose.
    */
    'verify' => [
        'secret' => env('JWT_ACCESS_SECRET'),
        'previous_secrets' => $list(env('JWT_ACCESS_SECRET_PREVIOUS')),
        'issuer' => env('JWT_ISSUER'),                // the auth server's origin, e.g. https://auth.example.com
        'audience' => env('JWT_AUDIENCE'),            // e.g. auth-platform (the server's JWT_AUDIENCE)
        'algorithms' => null,                          // null: HS256 with a secret, ES256 + EdDSA with public keys
        'clock_tolerance' => 5,                        // seconds of leeway for exp and nbf
        'max_lifetime' => (int) env('SERVICE_TOKEN_MAX_LIFETIME', 86400), // refuse tokens whose exp − iat is longer

        // Asymmetric service tokens (the server's SERVICE_TOKEN_ALG=ES256 or EdDSA): the server's
        // public keys instead of (or, during a migration, besides) the secret. Algorithms then
        // default to HS256 (with a secret) plus ES256 and EdDSA.
        'jwks_uri' => env('AUTH_SERVER_JWKS_URI'),    // https://auth.example.com/.well-known/jwks.json
        'discover_jwks' => false,                      // or read jwks_uri from the issuer's RFC 8414 metadata
        'public_keys' => [],                           // pinned JWKs (EC P-256 / Ed25519, with a kid)
        'jwks_cooldown' => 30,                         // seconds between two fetches (an unknown kid triggers one)
        'jwks_timeout' => 5,
    ],

    /*
    | Refusing revoked tokens: keep a copy of the server's revocation feed
    | (GET /api/v1/oauth/revocations) in the cache store, shared by every worker.
    | The feed is read with a token of a credential holding auth:revocations:read:
    | the calling credential above, or the one given here. Off by default.
    */
    'revocation' => [
        'enabled' => (bool) env('AUTH_SERVER_REVOCATION', false),
        'url' => env('AUTH_SERVER_REVOCATION_URL'),  // null: <server_url or verify.issuer>/api/v1/oauth/revocations
        'client_id' => env('AUTH_SERVER_REVOCATION_CLIENT_ID'),         // null: client_id above
        'client_secret' => env('AUTH_SERVER_REVOCATION_CLIENT_SECRET'), // with client_id; never logged
        'interval' => 2,              // seconds between two reads (one worker reads; the bound on a revoked token)
        'timeout' => 2.5,             // seconds per feed request, and the longest a request waits for a first read
        'fail_closed_after' => null,  // seconds without a complete read before every token is refused; null: never
    ],
];
