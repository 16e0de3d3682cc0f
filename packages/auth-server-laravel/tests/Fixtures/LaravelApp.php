<?php

declare(strict_types=1);

namespace Rw3iss\AuthServer\Tests\Fixtures;

use Illuminate\Cache\CacheServiceProvider;
use Illuminate\Config\Repository;
use Illuminate\Filesystem\FilesystemServiceProvider;
use Illuminate\Foundation\Application;
use Illuminate\Http\Request;
use Illuminate\Support\Facades\Facade;
use Rw3iss\AuthServer\AuthServerServiceProvider;
use Symfony\Component\HttpFoundation\Response;

/**
 * A real Laravel application (Illuminate\Foundation\Application with the
 * package's service provider, the cache and the router), without an HTTP
 * server: requests go through the router and its middleware.
 */
final class LaravelApp
{
    public readonly Application $app;

    /** @param array<string, mixed> $authServer the `auth-server` config */
    public function __construct(array $authServer, ?string $cacheDir = null)
    {
        $app = new Application(sys_get_temp_dir() . '/auth-server-laravel-test');
        $stores = ['array' => ['driver' => 'array']];
        if ($cacheDir !== null) {
            $stores['file'] = ['driver' => 'file', 'path' => $cacheDir];
        }
        $app->instance('config', new Repository([
            'app' => ['env' => 'testing', 'debug' => false],
            'cache' => ['default' => $cacheDir === null ? 'array' : 'file', 'stores' => $stores, 'prefix' => 'test'],
            'logging' => ['default' => 'null', 'channels' => ['null' => ['driver' => 'monolog', 'handler' => \Monolog\Handler\NullHandler::class]]],
            'auth-server' => $authServer,
        ]));
        Facade::clearResolvedInstances();
        Facade::setFacadeApplication($app);
        $app->register(FilesystemServiceProvider::class);
        $app->register(CacheServiceProvider::class);
        $app->register(AuthServerServiceProvider::class);
        $app->boot();
        $this->app = $app;
    }

    /** Sends a request through the router (route middleware included). */
    public function handle(string $method, string $uri, ?string $authorization = null): Response
    {
        $server = $authorization === null ? [] : ['HTTP_AUTHORIZATION' => $authorization];
        $request = Request::create($uri, $method, [], [], [], $server);
        $this->app->instance('request', $request);

        return $this->app['router']->dispatch($request);
    }
}
