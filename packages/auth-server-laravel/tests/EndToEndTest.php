<?php

declare(strict_types=1);

namespace Rw3iss\AuthServer\Tests;

use Illuminate\Http\Request;
use Illuminate\Support\Carbon;
use PHPUnit\Framework\TestCase;
use Rw3iss\AuthServer\Events\ServiceTokenEvent;
use Rw3iss\AuthServer\Exceptions\TokenRequestException;
use Rw3iss\AuthServer\Facades\VenService;
use Rw3iss\AuthServer\Tests\Fixtures\AuthApiServer;
use Rw3iss\AuthServer\Tests\Fixtures\LaravelApp;
use Rw3iss\AuthServer\Tests\Fixtures\Tokens;
use Rw3iss\AuthServer\Verification\Base64Url;
use Rw3iss\AuthServer\Verification\KeyId;

/**
 * The real auth-api issues the tokens: VenService::token() gets them over HTTP, and a
 * Laravel route behind `service.token:gsku:publish` verifies them locally.
 *
 * @group e2e
 */
final class EndToEndTest extends TestCase
{
    private static AuthApiServer $server;
    /** @var array{client_id: string, client_secret: string} */
    private static array $publisher;
    /** @var array{client_id: string, client_secret: string} */
    private static array $reader;

    private LaravelApp $laravel;
    /** @var list<ServiceTokenEvent> */
    private array $events = [];

    public static function setUpBeforeClass(): void
    {
        self::$server = new AuthApiServer();
        try {
            self::$publisher = self::$server->createCredential('php-publisher', ['gsku:publish', 'gsku:read']);
            self::$reader = self::$server->createCredential('php-reader', ['gsku:read']);
        } catch (\Throwable $e) {
            self::$server->stop();
            throw $e;
        }
    }

    public static function tearDownAfterClass(): void
    {
        self::$server->stop();
    }

    protected function setUp(): void
    {
        Carbon::setTestNow(Carbon::now());
        $this->useCredential(self::$publisher);
    }

    protected function tearDown(): void
    {
        Carbon::setTestNow();
    }

    /** A fresh app whose VenService calls with `$credential` and whose routes verify with the server's secret. */
    private function useCredential(array $credential): void
    {
        $this->laravel = new LaravelApp([
            'token_endpoint' => self::$server->tokenEndpoint(),
            'client_id' => $credential['client_id'],
            'client_secret' => $credential['client_secret'],
            'refresh' => ['jitter_fraction' => 0.0],
            'retry' => ['max_attempts' => 2, 'base_delay_ms' => 10],
            'verify' => ['secret' => self::$server->secret, 'issuer' => self::$server->url, 'audience' => AuthApiServer::AUDIENCE],
        ]);
        $this->events = [];
        $this->laravel->app['events']->listen(ServiceTokenEvent::class, function (ServiceTokenEvent $event): void {
            $this->events[] = $event;
        });
        $this->laravel->app['router']->post('/publish', static fn (Request $request) => [
            'by' => $request->servicePrincipal()->clientId,
            'scopes' => $request->servicePrincipal()->scopes,
        ])->middleware('service.token:gsku:publish');
    }

    private function tokenRequests(): int
    {
        return count(array_filter($this->events, static fn (ServiceTokenEvent $e) => $e->type === 'token_request'));
    }

    /** @return array{int, mixed} status and JSON body of POST /publish */
    private function publish(string $token): array
    {
        $response = $this->laravel->handle('POST', '/publish', "Bearer {$token}");

        return [$response->getStatusCode(), json_decode((string) $response->getContent(), true)];
    }

    public function testARealTokenOneRequestForManyCallsAcceptedWithTheScope(): void
    {
        $token = VenService::token();
        for ($i = 0; $i < 10; $i++) {
            self::assertSame($token, VenService::token());
        }
        self::assertSame(1, $this->tokenRequests());
        self::assertSame([200, ['by' => 'php-publisher', 'scopes' => ['gsku:publish', 'gsku:read']]], $this->publish($token));

        $narrow = VenService::token(['gsku:publish']);
        self::assertNotSame($token, $narrow);
        self::assertSame([200, ['by' => 'php-publisher', 'scopes' => ['gsku:publish']]], $this->publish($narrow));
        self::assertSame(2, $this->tokenRequests());
    }

    public function testRenewsBeforeExpiryOnTheControllableClock(): void
    {
        $first = VenService::token();
        $claims = json_decode((string) Base64Url::decode(explode('.', $first)[1]), true);
        $lifetime = $claims['exp'] - $claims['iat'];
        $start = Carbon::now();

        Carbon::setTestNow($start->copy()->addSeconds((int) floor(0.8 * $lifetime) - 2));
        self::assertSame($first, VenService::token());
        self::assertSame(1, $this->tokenRequests());

        Carbon::setTestNow($start->copy()->addSeconds((int) ceil(min($lifetime - 60, 0.8 * $lifetime)) + 1));
        $second = VenService::token();
        self::assertNotSame($first, $second);
        self::assertSame(2, $this->tokenRequests());
        self::assertSame(200, $this->publish($second)[0]);
        self::assertSame(200, $this->publish($first)[0], 'the first token is still valid until its exp');
    }

    public function testForbiddenWithoutTheScope(): void
    {
        $this->useCredential(self::$reader);
        [$status, $body] = $this->publish(VenService::token());
        self::assertSame(403, $status);
        self::assertSame(['error' => 'insufficient_scope', 'error_description' => 'The access token lacks the required scope', 'scope' => 'gsku:publish'], $body);
    }

    public function testRefusesTamperedExpiredUserAndForeignKeyTokens(): void
    {
        $token = VenService::token();
        [$head, $payload, $signature] = explode('.', $token);
        $claims = json_decode((string) Base64Url::decode($payload), true);
        $claims['scopes'][] = 'gsku:admin';
        $tampered = $head . '.' . Base64Url::encode(json_encode($claims, JSON_UNESCAPED_SLASHES)) . '.' . $signature;

        $foreignSecret = 'someone-elses-secret-' . bin2hex(random_bytes(16));
        $foreignHead = Base64Url::encode(json_encode(['alg' => 'HS256', 'typ' => 'at+jwt', 'kid' => KeyId::forSecret($foreignSecret)]));
        $foreign = "{$foreignHead}.{$payload}." . Base64Url::encode(hash_hmac('sha256', "{$foreignHead}.{$payload}", $foreignSecret, true));
        $foreignKidless = Tokens::sign(Carbon::now()->getTimestamp(), ['iss' => self::$server->url, 'aud' => AuthApiServer::AUDIENCE], $foreignSecret);

        $invalid = ['error' => 'invalid_token', 'error_description' => 'The access token is invalid'];
        self::assertSame([401, $invalid], $this->publish($tampered), 'tampered');
        self::assertSame([401, $invalid], $this->publish(self::$server->login()), 'user token');
        self::assertSame([401, $invalid], $this->publish($foreign), 'foreign key');
        self::assertSame([401, $invalid], $this->publish($foreignKidless), 'foreign key (own kid)');

        Carbon::setTestNow(Carbon::now()->addSeconds($claims['exp'] - $claims['iat'] + 10));
        self::assertSame([401, ['error' => 'token_expired', 'error_description' => 'The access token expired']], $this->publish($token), 'expired');
    }

    public function testAWrongSecretIsInvalidClientWithoutRetry(): void
    {
        $this->useCredential(['client_id' => self::$publisher['client_id'], 'client_secret' => 'cs_wrong_' . bin2hex(random_bytes(16))]);
        try {
            VenService::token();
            self::fail('expected invalid_client');
        } catch (TokenRequestException $e) {
            self::assertSame(['oauth_error', 'invalid_client', 401, 1], [$e->errorCode, $e->error, $e->status, $e->attempts]);
            self::assertStringNotContainsString(self::$publisher['client_secret'], (string) $e);
        }
        self::assertSame(1, $this->tokenRequests());
    }
}
