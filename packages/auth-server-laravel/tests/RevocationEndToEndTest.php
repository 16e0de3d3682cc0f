<?php

declare(strict_types=1);

namespace Rw3iss\AuthServer\Tests;

use Illuminate\Http\Request;
use Illuminate\Support\Carbon;
use PHPUnit\Framework\TestCase;
use Rw3iss\AuthServer\Events\RevocationEvent;
use Rw3iss\AuthServer\Exceptions\TokenVerificationException;
use Rw3iss\AuthServer\Tests\Fixtures\AuthApiServer;
use Rw3iss\AuthServer\Tests\Fixtures\LaravelApp;
use Rw3iss\AuthServer\Verification\ServiceTokenVerifier;
use Symfony\Component\HttpFoundation\Response;

/**
 * The revocation feed end to end: the real auth-api revokes, disables and enables credentials
 * through its admin API, and a Laravel route behind `service.token` with `revocation.enabled`
 * refuses their tokens within the bound (≤ 5 s with the defaults), on the real clock. The last
 * test stops the server (the feed unreachable) and moves the verifiers' clock by hand.
 *
 * @group e2e
 */
final class RevocationEndToEndTest extends TestCase
{
    /** Seconds: the Node SDK's bound with the default 2 s interval, asserted the same way. */
    private const BOUND = 5.0;

    private static AuthApiServer $server;
    /** @var array{client_id: string, client_secret: string, id: string} reads the feed */
    private static array $reader;

    /** @var list<RevocationEvent> */
    private array $events = [];

    public static function setUpBeforeClass(): void
    {
        self::$server = new AuthApiServer();
        try {
            self::$reader = self::$server->createCredential('php-feed-reader', ['auth:revocations:read']);
        } catch (\Throwable $e) {
            self::$server->stop();
            throw $e;
        }
    }

    public static function tearDownAfterClass(): void
    {
        self::$server->stop();
    }

    protected function tearDown(): void
    {
        Carbon::setTestNow();
    }

    /** A Laravel app that calls as the reader and guards POST /publish with the feed on. */
    private function app(array $revocation = []): LaravelApp
    {
        $laravel = new LaravelApp([
            'token_endpoint' => self::$server->tokenEndpoint(),
            'client_id' => self::$reader['client_id'],
            'client_secret' => self::$reader['client_secret'],
            'verify' => ['secret' => self::$server->secret, 'issuer' => self::$server->url, 'audience' => AuthApiServer::AUDIENCE],
            'revocation' => ['enabled' => true, ...$revocation],
        ]);
        $laravel->app['events']->listen(RevocationEvent::class, function (RevocationEvent $event): void {
            $this->events[] = $event;
        });
        $laravel->app['router']->post('/publish', static fn (Request $request) => ['by' => $request->servicePrincipal()->clientId])
            ->middleware('service.token:gsku:publish');

        return $laravel;
    }

    private static function publish(LaravelApp $laravel, string $token): Response
    {
        return $laravel->handle('POST', '/publish', "Bearer {$token}");
    }

    /** The verifier's reason for refusing `$token` (null: accepted). */
    private static function reason(LaravelApp $laravel, string $token): ?string
    {
        try {
            $laravel->app->make(ServiceTokenVerifier::class)->verify($token);

            return null;
        } catch (TokenVerificationException $e) {
            return $e->reason;
        }
    }

    /** Sends `$token` every 50 ms until it answers `$status`; returns the seconds that took (fails past the bound). */
    private static function secondsUntil(int $status, LaravelApp $laravel, string $token): float
    {
        $start = microtime(true);
        do {
            $response = self::publish($laravel, $token);
            $elapsed = microtime(true) - $start;
            if ($response->getStatusCode() === $status) {
                return $elapsed;
            }
            usleep(50_000);
        } while ($elapsed < self::BOUND + 2);
        self::fail("still {$response->getStatusCode()} after {$elapsed} s, expected {$status}: " . $response->getContent());
    }

    private static function assertRefusedAsRevoked(Response $response): void
    {
        self::assertSame(401, $response->getStatusCode());
        self::assertSame(['error' => 'invalid_token', 'error_description' => 'The access token is invalid'], json_decode((string) $response->getContent(), true));
        self::assertSame('Bearer error="invalid_token", error_description="The access token is invalid"', $response->headers->get('WWW-Authenticate'));
    }

    public function testADisabledCredentialsTokenIsRefusedWithinTheBoundAndItsNewTokensPassOnceEnabled(): void
    {
        $publisher = self::$server->createCredential('php-disabled-publisher', ['gsku:publish']);
        $laravel = $this->app();
        $old = self::$server->grant($publisher);
        self::assertSame(200, self::publish($laravel, $old)->getStatusCode(), 'accepted before (the first read of the feed)');
        self::assertSame(['ready'], array_map(static fn (RevocationEvent $e) => $e->type, $this->events));

        self::$server->updateCredential($publisher['id'], ['status' => 'disabled']);
        $elapsed = self::secondsUntil(401, $laravel, $old);
        self::assertLessThanOrEqual(self::BOUND, $elapsed, 'refused within the bound');
        self::assertRefusedAsRevoked(self::publish($laravel, $old));
        self::assertSame('revoked', self::reason($laravel, $old));

        self::$server->updateCredential($publisher['id'], ['status' => 'active']);
        // The feed's entry refuses tokens issued before the enable (committed by now) + 1 s, in whole seconds.
        time_sleep_until(floor(microtime(true)) + 2.05);
        $new = self::$server->grant($publisher);
        self::assertLessThanOrEqual(self::BOUND, self::secondsUntil(200, $laravel, $new), 'a new token passes within the bound');
        self::assertSame(['by' => 'php-disabled-publisher'], json_decode((string) self::publish($laravel, $new)->getContent(), true));
        self::assertRefusedAsRevoked(self::publish($laravel, $old));
    }

    public function testARevokedCredentialAndATokenRevokedThroughRfc7009AreRefusedInEveryWorker(): void
    {
        $revoked = self::$server->createCredential('php-revoked-publisher', ['gsku:publish']);
        $own = self::$server->createCredential('php-own-revoker', ['gsku:publish']);
        $worker = $this->app();
        $revokedToken = self::$server->grant($revoked);
        $ownToken = self::$server->grant($own);
        $keptToken = self::$server->grant($own);
        foreach ([$revokedToken, $ownToken, $keptToken] as $token) {
            self::assertSame(200, self::publish($worker, $token)->getStatusCode());
        }

        self::$server->revokeCredential($revoked['id']);
        self::$server->revokeToken($own, $ownToken);
        self::assertLessThanOrEqual(self::BOUND, self::secondsUntil(401, $worker, $revokedToken));
        self::assertLessThanOrEqual(self::BOUND, self::secondsUntil(401, $worker, $ownToken));
        self::assertSame('revoked', self::reason($worker, $ownToken));
        self::assertSame(200, self::publish($worker, $keptToken)->getStatusCode(), 'the credential\'s other token still passes');

        // A worker started now reads the snapshot: refused from its first request.
        $fresh = $this->app();
        self::assertRefusedAsRevoked(self::publish($fresh, $revokedToken));
        self::assertRefusedAsRevoked(self::publish($fresh, $ownToken));
        self::assertSame(200, self::publish($fresh, $keptToken)->getStatusCode());
    }

    public function testAReaderWithoutTheScopeFailsClosedBeforeItsFirstRead(): void
    {
        $noScope = self::$server->createCredential('php-no-feed-scope', ['gsku:publish']);
        $laravel = new LaravelApp([
            'token_endpoint' => self::$server->tokenEndpoint(),
            'client_id' => $noScope['client_id'],
            'client_secret' => $noScope['client_secret'],
            'verify' => ['secret' => self::$server->secret, 'issuer' => self::$server->url, 'audience' => AuthApiServer::AUDIENCE],
            'revocation' => ['enabled' => true],
        ]);
        $laravel->app['events']->listen(RevocationEvent::class, function (RevocationEvent $event): void {
            $this->events[] = $event;
        });
        $token = self::$server->grant($noScope);
        self::assertSame('revocation_unavailable', self::reason($laravel, $token));
        self::assertSame('sync_failed', $this->events[0]->type);
        self::assertStringContainsString('invalid_scope', $this->events[0]->data['error']);
        self::assertNull($this->events[0]->data['stale_seconds']);
    }

    /** Last: stops the server. */
    public function testAnUnreachableFeedKeepsTheLastCopyByDefaultAndFailsClosedWhenConfigured(): void
    {
        $publisher = self::$server->createCredential('php-outage-publisher', ['gsku:publish']);
        $token = self::$server->grant($publisher);
        // The verifiers' clock from here on (stopping the server takes a while, more under load).
        $start = Carbon::now();
        Carbon::setTestNow($start);
        $keeps = $this->app(['interval' => 0.2, 'timeout' => 1]);
        $closes = $this->app(['interval' => 0.2, 'timeout' => 1, 'fail_closed_after' => 1]);
        self::assertSame(200, self::publish($keeps, $token)->getStatusCode());
        self::assertSame(200, self::publish($closes, $token)->getStatusCode());

        self::$server->stop();
        $this->events = [];
        Carbon::setTestNow($start->copy()->addMilliseconds(300));
        self::assertSame(200, self::publish($keeps, $token)->getStatusCode(), 'the last copy keeps verifying');
        self::assertSame(200, self::publish($closes, $token)->getStatusCode(), 'within fail_closed_after');
        self::assertSame(['sync_failed', 'sync_failed'], array_map(static fn (RevocationEvent $e) => $e->type, $this->events));
        self::assertStringContainsString('Could not reach', $this->events[0]->data['error']);

        Carbon::setTestNow($start->copy()->addMilliseconds(1500));
        self::assertSame(200, self::publish($keeps, $token)->getStatusCode(), 'still verifying (default policy)');
        self::assertRefusedAsRevoked(self::publish($closes, $token));
        self::assertSame('revocation_unavailable', self::reason($closes, $token));
        self::assertContains('fail_closed', array_map(static fn (RevocationEvent $e) => $e->type, $this->events));

        // A worker that never read the feed refuses every token.
        $cold = $this->app(['timeout' => 1]);
        self::assertRefusedAsRevoked(self::publish($cold, $token));
        self::assertSame('revocation_unavailable', self::reason($cold, $token));
    }
}
