<?php

// One worker process: a Laravel app on the shared file cache asks VenService for a token and prints it.
require __DIR__ . '/../bootstrap.php';

[, $endpoint, $cacheDir] = $argv;
new Rw3iss\AuthServer\Tests\Fixtures\LaravelApp([
    'token_endpoint' => $endpoint,
    'client_id' => 'worker-svc',
    'client_secret' => 'worker-secret',
], $cacheDir);
echo Rw3iss\AuthServer\Facades\VenService::token();
