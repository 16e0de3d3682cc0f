<?php

declare(strict_types=1);

namespace Rw3iss\AuthServer;

use Illuminate\Contracts\Events\Dispatcher;
use Illuminate\Contracts\Foundation\Application;
use Illuminate\Http\Request;
use Illuminate\Routing\Router;
use Illuminate\Support\ServiceProvider;
use Rw3iss\AuthServer\Client\CurlTransport;
use Rw3iss\AuthServer\Client\HttpTransport;
use Rw3iss\AuthServer\Client\ServiceTokenManager;
use Rw3iss\AuthServer\Events\RevocationEvent;
use Rw3iss\AuthServer\Events\ServiceTokenEvent;
use Rw3iss\AuthServer\Http\Middleware\RequireAnyServiceToken;
use Rw3iss\AuthServer\Http\Middleware\RequireServiceToken;
use Rw3iss\AuthServer\Support\CarbonClock;
use Rw3iss\AuthServer\Support\Clock;
use Rw3iss\AuthServer\Verification\JwksKeySet;
use Rw3iss\AuthServer\Verification\RevocationList;
use Rw3iss\AuthServer\Verification\ServicePrincipal;
use Rw3iss\AuthServer\Verification\ServiceTokenVerifier;

/**
 * Registers the token client behind `VenService`, the verifier, the
 * `service.token` / `service.token.any` middleware and the publishable
 * `config/auth-server.php`. Auto-discovered by Laravel.
 */
final class AuthServerServiceProvider extends ServiceProvider
{
    public function register(): void
    {
        $this->mergeConfigFrom(__DIR__ . '/../config/auth-server.php', 'auth-server');

        $this->app->bindIf(Clock::class, CarbonClock::class, true);
        $this->app->bindIf(HttpTransport::class, CurlTransport::class, true);

        // Options are read when first used, so an app that only receives (or only calls)
        // needs only that half of the configuration.
        $this->app->singleton(ServiceTokenVerifier::class, static function (Application $app) {
            $options = $app['config']->get('auth-server.verify', []);
            $jwksUri = $options['jwks_uri'] ?? null;
            $discover = (bool) ($options['discover_jwks'] ?? false);
            $jwks = null;
            if (($jwksUri !== null && $jwksUri !== '') || $discover) {
                $issuer = $options['issuer'] ?? null;
                $jwks = new JwksKeySet(
                    $jwksUri === '' ? null : $jwksUri,
                    is_string($issuer) ? $issuer : null,
                    $app['cache']->store($app['config']->get('auth-server.cache.store')),
                    $app->make(HttpTransport::class),
                    $app->make(Clock::class),
                    (float) ($options['jwks_cooldown'] ?? 30),
                    (float) ($options['jwks_timeout'] ?? 5),
                );
            }
            if (($options['algorithms'] ?? null) === null) {
                unset($options['algorithms']);
            }

            $revocation = (bool) $app['config']->get('auth-server.revocation.enabled', false)
                ? $app->make(RevocationList::class)
                : null;

            return new ServiceTokenVerifier($options, $app->make(Clock::class), $jwks, $revocation);
        });

        $this->app->singleton(RevocationList::class, static function (Application $app) {
            $config = $app['config']->get('auth-server', []);
            $events = $app->bound('events') ? $app->make(Dispatcher::class) : null;

            return RevocationList::fromConfig(
                $config,
                $app['cache']->store($config['cache']['store'] ?? null),
                $app->make(HttpTransport::class),
                $app->make(Clock::class),
                $events === null ? null : static fn (RevocationEvent $event) => $events->dispatch($event),
            );
        });

        $this->app->singleton(ServiceTokenManager::class, static function (Application $app) {
            $config = $app['config']->get('auth-server', []);
            $events = $app->bound('events') ? $app->make(Dispatcher::class) : null;

            return new ServiceTokenManager(
                $config,
                $app['cache']->store($config['cache']['store'] ?? null),
                $app->make(HttpTransport::class),
                $app->make(Clock::class),
                onEvent: $events === null ? null : static fn (ServiceTokenEvent $event) => $events->dispatch($event),
            );
        });
    }

    public function boot(Router $router): void
    {
        $this->publishes([__DIR__ . '/../config/auth-server.php' => $this->app->configPath('auth-server.php')], 'auth-server-config');

        $router->aliasMiddleware('service.token', RequireServiceToken::class);
        $router->aliasMiddleware('service.token.any', RequireAnyServiceToken::class);

        if (!Request::hasMacro('servicePrincipal')) {
            Request::macro('servicePrincipal', function (): ?ServicePrincipal {
                /** @var Request $this */
                return ServicePrincipal::of($this);
            });
        }
    }
}
