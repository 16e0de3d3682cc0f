<?php

// One worker process: a Laravel app on the shared file cache, the revocation feed on, verifies a
// token of `billing-svc` and one of the revoked `gone-svc`; prints each outcome.
require __DIR__ . '/../bootstrap.php';

use Rw3iss\AuthServer\Exceptions\TokenVerificationException;
use Rw3iss\AuthServer\Tests\Fixtures\LaravelApp;
use Rw3iss\AuthServer\Tests\Fixtures\Tokens;
use Rw3iss\AuthServer\Verification\ServiceTokenVerifier;

[, $origin, $cacheDir] = $argv;
$laravel = new LaravelApp([
    'token_endpoint' => "{$origin}/token",
    'client_id' => 'worker-svc',
    'client_secret' => 'worker-secret',
    'verify' => Tokens::verifyConfig(),
    // A long wait for the first read: the one read must not be lost to a loaded machine.
    'revocation' => ['enabled' => true, 'url' => "{$origin}/revocations", 'timeout' => 10],
], $cacheDir);
$verifier = $laravel->app->make(ServiceTokenVerifier::class);
$outcomes = [];
foreach (['billing-svc', 'gone-svc'] as $clientId) {
    try {
        $verifier->verify(Tokens::sign(time(), ['client_id' => $clientId, 'sub' => $clientId]));
        $outcomes[] = "{$clientId}:ok";
    } catch (TokenVerificationException $e) {
        $outcomes[] = "{$clientId}:{$e->reason}";
    }
}
echo implode(' ', $outcomes);
