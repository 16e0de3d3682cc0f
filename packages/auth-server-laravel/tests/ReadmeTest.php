<?php

declare(strict_types=1);

namespace Rw3iss\AuthServer\Tests;

use Illuminate\Support\Carbon;
use PHPUnit\Framework\TestCase;
use Rw3iss\AuthServer\Client\HttpTransport;
use Rw3iss\AuthServer\Client\TransportException;
use Rw3iss\AuthServer\Exceptions\TokenRequestException;
use Rw3iss\AuthServer\Tests\Fixtures\FakeTransport;
use Rw3iss\AuthServer\Tests\Fixtures\LaravelApp;
use Rw3iss\AuthServer\Tests\Fixtures\Tokens;

/** The README's PHP snippets, run as written inside a Laravel application. */
final class ReadmeTest extends TestCase
{
    private const NOW = 1_893_456_000;

    /** @return list<string> the README's ```php blocks, `use` lines removed (they are hoisted into the eval'd namespace) */
    private static function snippets(): array
    {
        preg_match_all('/```php\n(.*?)```/s', (string) file_get_contents(__DIR__ . '/../README.md'), $m);

        return $m[1];
    }

    private static function runSnippet(string $snippet, array $vars = []): void
    {
        extract($vars);
        eval($snippet);
    }

    protected function setUp(): void
    {
        Carbon::setTestNow(Carbon::createFromTimestamp(self::NOW));
    }

    protected function tearDown(): void
    {
        Carbon::setTestNow();
    }

    public function testTheReceiveSnippetProtectsItsRoutes(): void
    {
        $snippet = array_values(array_filter(self::snippets(), static fn ($s) => str_contains($s, "->middleware('service.token:gsku:publish')")))[0];
        $laravel = new LaravelApp(['verify' => Tokens::verifyConfig()]);
        self::runSnippet($snippet);

        $ok = $laravel->handle('POST', '/api/publish', 'Bearer ' . Tokens::sign(self::NOW));
        self::assertSame(200, $ok->getStatusCode());
        self::assertSame(['published_by' => 'billing-svc', 'scopes' => ['gsku:publish', 'gsku:read']], json_decode((string) $ok->getContent(), true));
        self::assertSame(403, $laravel->handle('POST', '/api/sync', 'Bearer ' . Tokens::sign(self::NOW))->getStatusCode());
        self::assertSame(200, $laravel->handle('GET', '/api/items', 'Bearer ' . Tokens::sign(self::NOW))->getStatusCode());
        self::assertSame(401, $laravel->handle('GET', '/api/ping')->getStatusCode());
    }

    public function testTheVerifyByHandSnippetLogsTheReason(): void
    {
        $snippet = array_values(array_filter(self::snippets(), static fn ($s) => str_contains($s, 'app(ServiceTokenVerifier::class)')))[0];
        $laravel = new LaravelApp(['verify' => Tokens::verifyConfig()]);
        $logs = [];
        $laravel->app['log']->listen(static function ($event) use (&$logs): void {
            $logs[] = [$event->message, $event->context];
        });
        self::runSnippet($snippet, ['token' => Tokens::sign(self::NOW, ['token_type' => 'user'])]);
        self::assertSame([['service token refused', ['code' => 'invalid_token', 'reason' => 'token_type']]], $logs);
    }

    public function testTheErrorSnippetRethrowsInvalidClient(): void
    {
        $snippet = array_values(array_filter(self::snippets(), static fn ($s) => str_contains($s, "\$e->error === 'invalid_client'")))[0];
        $laravel = new LaravelApp(['token_endpoint' => 'https://auth.test/token', 'client_id' => 'billing-svc', 'client_secret' => 'wrong']);
        $laravel->app->instance(HttpTransport::class, new FakeTransport(static fn () => FakeTransport::json(401, ['error' => 'invalid_client'])));
        $reported = [];
        $laravel->app->instance(\Illuminate\Contracts\Debug\ExceptionHandler::class, new class ($reported) {
            public function __construct(private array &$reported)
            {
            }

            public function report(\Throwable $e): void
            {
                $this->reported[] = $e;
            }

            public function shouldReport(\Throwable $e): bool
            {
                return true;
            }
        });
        try {
            self::runSnippet($snippet);
            self::fail('expected the snippet to rethrow');
        } catch (TokenRequestException $e) {
            self::assertSame('invalid_client', $e->error);
        }
        self::assertCount(1, $reported);
    }

    public function testTheRevocationEventSnippetLogsAFailedRead(): void
    {
        $snippet = array_values(array_filter(self::snippets(), static fn ($s) => str_contains($s, 'RevocationEvent $event')))[0];
        $laravel = new LaravelApp([
            'server_url' => 'https://auth.test',
            'client_id' => 'billing-svc',
            'client_secret' => 'secret',
            'verify' => Tokens::verifyConfig(),
            'revocation' => ['enabled' => true],
        ]);
        $laravel->app->instance(HttpTransport::class, new FakeTransport(static fn () => new TransportException('Could not reach https://auth.test (curl error 7)', false)));
        $logs = [];
        $laravel->app['log']->listen(static function ($event) use (&$logs): void {
            $logs[] = [$event->level, $event->message, $event->context];
        });
        self::runSnippet($snippet);
        $laravel->app['router']->get('/ping', static fn () => 'ok')->middleware('service.token');

        self::assertSame(401, $laravel->handle('GET', '/ping', 'Bearer ' . Tokens::sign(self::NOW))->getStatusCode());
        self::assertSame('warning', $logs[0][0]);
        self::assertSame('revocation feed: sync_failed', $logs[0][1]);
        self::assertStringContainsString('Could not reach', $logs[0][2]['error']);
        self::assertNull($logs[0][2]['stale_seconds']);
    }

    public function testTheCallSnippetSendsTheToken(): void
    {
        $snippet = array_values(array_filter(self::snippets(), static fn ($s) => str_contains($s, 'Http::withToken($token)')))[0];
        $laravel = new LaravelApp(['token_endpoint' => 'https://auth.test/token', 'client_id' => 'billing-svc', 'client_secret' => 'secret']);
        $transport = new FakeTransport(static fn (array $r, int $n) => FakeTransport::token($n));
        $laravel->app->instance(HttpTransport::class, $transport);
        // Laravel's Http client needs guzzlehttp/guzzle, which Debian's Laravel does not ship:
        // a recorder stands in for it behind the Http facade.
        $http = new class () {
            public array $calls = [];
            private ?string $token = null;

            public function withToken(string $token): self
            {
                $this->token = $token;

                return $this;
            }

            public function post(string $url, array $data): void
            {
                $this->calls[] = [$this->token, $url, $data];
            }
        };
        $laravel->app->instance(\Illuminate\Http\Client\Factory::class, $http);
        self::runSnippet($snippet);
        self::assertSame([['tok-1', 'https://other-svc/api/items', ['sku' => 'A-1']]], $http->calls);
        parse_str((string) $transport->requests[2]['body'], $form);
        self::assertSame(['grant_type' => 'client_credentials', 'audience' => 'catalog-api'], $form);
        self::assertCount(3, $transport->requests);
    }
}
