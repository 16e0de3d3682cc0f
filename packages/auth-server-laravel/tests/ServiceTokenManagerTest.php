<?php

declare(strict_types=1);

namespace Rw3iss\AuthServer\Tests;

use Illuminate\Cache\ArrayStore;
use Illuminate\Cache\Repository;
use PHPUnit\Framework\TestCase;
use Rw3iss\AuthServer\Client\CurlTransport;
use Rw3iss\AuthServer\Client\ServiceTokenManager;
use Rw3iss\AuthServer\Client\TransportException;
use Rw3iss\AuthServer\Events\ServiceTokenEvent;
use Rw3iss\AuthServer\Exceptions\AuthServerException;
use Rw3iss\AuthServer\Exceptions\TokenRequestException;
use Rw3iss\AuthServer\Tests\Fixtures\FakeTransport;
use Rw3iss\AuthServer\Tests\Fixtures\FixedClock;

final class ServiceTokenManagerTest extends TestCase
{
    private const SECRET = 'cs_test_Sup3r-s3cret value/with+odd&chars';
    private const ENDPOINT = 'https://auth.test/api/v1/oauth/token';

    private FixedClock $clock;
    private Repository $cache;
    /** @var list<int> */
    private array $sleeps = [];
    /** @var list<ServiceTokenEvent> */
    private array $events = [];

    protected function setUp(): void
    {
        $this->clock = new FixedClock(1_893_456_000.0);
        $this->cache = new Repository(new ArrayStore());
    }

    /** @param array<string, mixed> $options */
    private function manager(FakeTransport $transport, array $options = []): ServiceTokenManager
    {
        return new ServiceTokenManager(
            array_replace_recursive([
                'token_endpoint' => self::ENDPOINT,
                'client_id' => 'billing-svc',
                'client_secret' => self::SECRET,
                'refresh' => ['jitter_fraction' => 0.0],
            ], $options),
            $this->cache,
            $transport,
            $this->clock,
            random: static fn (): float => 0.5,
            sleep: function (int $ms): void {
                $this->sleeps[] = $ms;
                $this->clock->advance($ms / 1000);
            },
            onEvent: function (ServiceTokenEvent $event): void {
                $this->events[] = $event;
            },
        );
    }

    /** @return list<string> */
    private function eventTypes(): array
    {
        return array_map(static fn (ServiceTokenEvent $e) => $e->type, $this->events);
    }

    public function testOneRequestForManyCallsWithBasicAuthAndTheFormBody(): void
    {
        $transport = new FakeTransport(static fn (array $r, int $n) => FakeTransport::token($n));
        $manager = $this->manager($transport, ['scopes' => ['gsku:read', 'gsku:publish'], 'audience' => 'catalog-api']);
        for ($i = 0; $i < 5; $i++) {
            self::assertSame('tok-1', $manager->token());
        }
        self::assertSame('Bearer tok-1', $manager->authorizationHeader());
        self::assertCount(1, $transport->requests);
        $request = $transport->requests[0];
        self::assertSame(['POST', self::ENDPOINT], [$request['method'], $request['url']]);
        self::assertSame('Basic ' . base64_encode('billing-svc:' . urlencode(self::SECRET)), $request['headers']['Authorization']);
        self::assertSame('application/x-www-form-urlencoded', $request['headers']['Content-Type']);
        parse_str((string) $request['body'], $form);
        self::assertSame(['grant_type' => 'client_credentials', 'scope' => 'gsku:publish gsku:read', 'audience' => 'catalog-api'], $form);
    }

    public function testClientSecretPostSendsTheCredentialsInTheBody(): void
    {
        $transport = new FakeTransport(static fn (array $r, int $n) => FakeTransport::token($n));
        $this->manager($transport, ['auth_method' => 'client_secret_post'])->token();
        parse_str((string) $transport->requests[0]['body'], $form);
        self::assertSame(['grant_type' => 'client_credentials', 'client_id' => 'billing-svc', 'client_secret' => self::SECRET], $form);
        self::assertArrayNotHasKey('Authorization', $transport->requests[0]['headers']);
    }

    public function testEachScopeSetAndAudienceHasItsOwnToken(): void
    {
        $transport = new FakeTransport(static fn (array $r, int $n) => FakeTransport::token($n));
        $manager = $this->manager($transport);
        self::assertSame('tok-1', $manager->token(['a:b']));
        self::assertSame('tok-2', $manager->token(['c:d']));
        self::assertSame('tok-3', $manager->token(['a:b'], 'other-api'));
        self::assertSame('tok-1', $manager->token(['a:b', 'a:b']));
        self::assertCount(3, $transport->requests);
    }

    /** The Node manager's rule: the earlier of exp − skew and 80 % of the lifetime, from when the request started. */
    public function testRenewsAtTheEarlierOfExpMinusSkewAnd80PercentOfTheLifetime(): void
    {
        foreach ([[900, 720.0], [100, 40.0]] as [$lifetime, $renewAt]) {
            $this->setUp();
            $transport = new FakeTransport(static fn (array $r, int $n) => FakeTransport::token($n, $lifetime));
            $manager = $this->manager($transport);
            $start = $this->clock->now;
            self::assertSame('tok-1', $manager->token());
            $this->clock->now = $start + $renewAt - 0.001;
            self::assertSame('tok-1', $manager->token(), "lifetime {$lifetime}: still before renewal");
            $this->clock->now = $start + $renewAt;
            self::assertSame('tok-2', $manager->token(), "lifetime {$lifetime}: renewed at {$renewAt} s");
            self::assertSame('tok-2', $manager->token());
            self::assertCount(2, $transport->requests);
        }
    }

    public function testJitterRenewsEarlierByUpToItsFraction(): void
    {
        $transport = new FakeTransport(static fn (array $r, int $n) => FakeTransport::token($n, 1000));
        // random() = 0.5, jitter 0.1: 0.5 · 0.1 · 1000 = 50 s before min(940, 800) = 800 s.
        $manager = $this->manager($transport, ['refresh' => ['jitter_fraction' => 0.1]]);
        $start = $this->clock->now;
        $manager->token();
        $this->clock->now = $start + 749;
        self::assertSame('tok-1', $manager->token());
        $this->clock->now = $start + 750;
        self::assertSame('tok-2', $manager->token());
    }

    public function testAFailedRenewalKeepsServingTheStillValidToken(): void
    {
        $transport = new FakeTransport(static fn (array $r, int $n) => $n === 1
            ? FakeTransport::token($n)
            : FakeTransport::json(503, ['error' => 'temporarily_unavailable']));
        $manager = $this->manager($transport, ['retry' => ['max_attempts' => 2]]);
        $manager->token();
        $this->clock->advance(800);
        self::assertSame('tok-1', $manager->token());
        self::assertContains('token_request_failed', $this->eventTypes());
        $failed = array_values(array_filter($this->events, static fn ($e) => $e->type === 'token_request_failed'))[0];
        self::assertTrue($failed->data['background']);
        $this->clock->advance(100); // past expiry: now it must fail
        $this->expectException(TokenRequestException::class);
        $manager->token();
    }

    /** A token is cached for at most 24 h whatever expires_in says: one grant, renewed within the day, never a grant per call. */
    public function testAHugeExpiresInIsCappedAt24Hours(): void
    {
        foreach ([10_000_000, 1e19, 1e300] as $expiresIn) {
            $this->setUp();
            $transport = new FakeTransport(static fn (array $r, int $n) => FakeTransport::json(200, ['access_token' => "tok-{$n}", 'token_type' => 'Bearer', 'expires_in' => $expiresIn]));
            $manager = $this->manager($transport);
            $start = $this->clock->now;
            self::assertSame('tok-1', $manager->token());
            self::assertSame('tok-1', $manager->token(), "expires_in {$expiresIn}: cached");
            $this->clock->now = $start + 0.8 * 86400 - 1;
            self::assertSame('tok-1', $manager->token(), "expires_in {$expiresIn}: still cached");
            $this->clock->now = $start + 86400;
            self::assertSame('tok-2', $manager->token(), "expires_in {$expiresIn}: renewed within 24 h");
            self::assertCount(2, $transport->requests);
        }
    }

    public function testAnExpiredTokenIsNeverServed(): void
    {
        $transport = new FakeTransport(static fn (array $r, int $n) => FakeTransport::token($n, 60));
        $manager = $this->manager($transport, ['refresh' => ['skew' => 0, 'lifetime_fraction' => 1.0]]);
        self::assertSame('tok-1', $manager->token());
        $this->clock->advance(60);
        self::assertSame('tok-2', $manager->token());
    }

    public function testRetriesTransientFailuresWithBackoffAndRetryAfter(): void
    {
        $answers = [
            new TransportException('Could not reach https://auth.test (curl error 7)', false),
            FakeTransport::json(503, []),
            FakeTransport::json(429, ['error' => 'rate_limited'], ['retry-after' => '3']),
        ];
        $transport = new FakeTransport(static fn (array $r, int $n) => $answers[$n - 1] ?? FakeTransport::token($n));
        $manager = $this->manager($transport, ['retry' => ['base_delay_ms' => 200, 'max_delay_ms' => 10_000]]);
        self::assertSame('tok-4', $manager->token());
        // Full jitter with random() = 0.5: 0.5·200, 0.5·400, then Retry-After: 3 s.
        self::assertSame([100, 200, 3000], $this->sleeps);
        self::assertSame(['token_request', 'token_retry', 'token_request', 'token_retry', 'token_request', 'token_retry', 'token_request', 'token_acquired'], $this->eventTypes());
    }

    public function testGivesUpAfterMaxAttemptsWithTheLastError(): void
    {
        $transport = new FakeTransport(static fn () => new TransportException('No answer from https://auth.test within 10 s', true));
        try {
            $this->manager($transport, ['retry' => ['max_attempts' => 3]])->token();
            self::fail('expected a TokenRequestException');
        } catch (TokenRequestException $e) {
            self::assertSame(['timeout', 3], [$e->errorCode, $e->attempts]);
        }
        self::assertCount(3, $transport->requests);
    }

    public function testARetryAfterBeyondTheLimitEndsTheRetries(): void
    {
        $transport = new FakeTransport(static fn () => FakeTransport::json(429, [], ['retry-after' => '120']));
        try {
            $this->manager($transport)->token();
            self::fail('expected a TokenRequestException');
        } catch (TokenRequestException $e) {
            self::assertSame(['http_error', 429, 1], [$e->errorCode, $e->status, $e->attempts]);
        }
        self::assertSame([], $this->sleeps);
    }

    public function testNeverRetriesOAuthErrors(): void
    {
        foreach ([[401, 'invalid_client'], [400, 'invalid_scope'], [400, 'unauthorized_client']] as [$status, $error]) {
            $this->sleeps = [];
            $transport = new FakeTransport(static fn () => FakeTransport::json($status, ['error' => $error, 'error_description' => 'nope'], ['www-authenticate' => 'Basic']));
            try {
                $this->manager($transport)->token(['gsku:publish']);
                self::fail('expected a TokenRequestException');
            } catch (TokenRequestException $e) {
                self::assertSame(['oauth_error', $error, 'nope', $status, 1], [$e->errorCode, $e->error, $e->errorDescription, $e->status, $e->attempts]);
            }
            self::assertCount(1, $transport->requests);
            self::assertSame([], $this->sleeps);
        }
    }

    public function testFailuresAreNotCached(): void
    {
        $transport = new FakeTransport(static fn (array $r, int $n) => $n === 1 ? FakeTransport::json(401, ['error' => 'invalid_client']) : FakeTransport::token($n));
        $manager = $this->manager($transport);
        try {
            $manager->token();
        } catch (TokenRequestException) {
        }
        self::assertSame('tok-2', $manager->token());
    }

    public function testRefusesAnUnusableTokenResponse(): void
    {
        foreach ([
            ['access_token' => 'x', 'token_type' => 'mac', 'expires_in' => 900],
            ['access_token' => '', 'token_type' => 'Bearer', 'expires_in' => 900],
            ['access_token' => 'x', 'token_type' => 'Bearer', 'expires_in' => 0],
            ['access_token' => 'x', 'token_type' => 'Bearer'],
        ] as $body) {
            $transport = new FakeTransport(static fn () => FakeTransport::json(200, $body));
            try {
                $this->manager($transport)->token();
                self::fail('expected invalid_response');
            } catch (TokenRequestException $e) {
                self::assertSame('invalid_response', $e->errorCode);
            }
        }
    }

    public function testTheSecretIsNeverInAnExceptionOrAnEvent(): void
    {
        $transport = new FakeTransport(static fn (array $r, int $n) => match ($n) {
            1 => new TransportException('Could not reach https://auth.test (curl error 7)', false),
            default => FakeTransport::json(401, ['error' => 'invalid_client']),
        });
        // Stack traces keep call arguments unless zend.exception_ignore_args is on (PHP's built-in
        // default and php.ini-development leave it off; error reporters read getTrace()).
        $ignoreArgs = ini_set('zend.exception_ignore_args', '0');
        try {
            foreach (['client_secret_post', 'client_secret_basic'] as $method) {
                try {
                    $this->manager($transport, ['auth_method' => $method])->token();
                    self::fail('expected a TokenRequestException');
                } catch (TokenRequestException $e) {
                    $transport->requests = []; // the fixture's own record of what it was sent
                    // Events carry the exception itself: its frames are checked above, its message here.
                    $events = array_map(static fn ($event) => print_r(array_map(static fn ($v) => $v instanceof \Throwable ? $v->getMessage() : $v, $event->data), true), $this->events);
                    $everything = (string) $e . self::ourFrames($e) . implode("\n", $events);
                    self::assertStringContainsString('billing-svc', $everything, 'the frames and their arguments are there');
                    self::assertStringNotContainsString(self::SECRET, $everything, $method);
                    self::assertStringNotContainsString(urlencode(self::SECRET), $everything, $method);
                    self::assertStringNotContainsString(base64_encode('billing-svc:' . urlencode(self::SECRET)), $everything, $method);
                }
            }
            // The curl transport's own frame (an exception's previous, e.g. in the revocation list).
            try {
                (new CurlTransport())->send('POST', 'http://127.0.0.1:1/oauth/token', ['Authorization' => 'Basic ' . self::SECRET], 'client_secret=' . self::SECRET, 1.0);
                self::fail('expected a TransportException');
            } catch (TransportException $e) {
                self::assertStringNotContainsString(self::SECRET, self::ourFrames($e));
            }
        } finally {
            ini_set('zend.exception_ignore_args', (string) $ignoreArgs);
        }
        try {
            $this->manager($transport, ['client_id' => '']);
        } catch (AuthServerException $e) {
            self::assertStringNotContainsString(self::SECRET, (string) $e);
        }
    }

    /** The stack frames of this package, with their arguments, as print_r() dumps them. */
    private static function ourFrames(\Throwable $e): string
    {
        return print_r(array_filter($e->getTrace(), static fn (array $f) => str_starts_with($f['class'] ?? '', 'Rw3iss\\AuthServer\\Client')), true);
    }

    public function testInvalidateDropsOnlyTheCachedToken(): void
    {
        $transport = new FakeTransport(static fn (array $r, int $n) => FakeTransport::token($n));
        $manager = $this->manager($transport);
        $token = $manager->token();
        self::assertFalse($manager->invalidate('some-other-token'));
        self::assertSame($token, $manager->token());
        self::assertTrue($manager->invalidate($token));
        self::assertFalse($manager->invalidate($token));
        self::assertSame('tok-2', $manager->token());
    }

    public function testDiscoversTheTokenEndpointOnceFromTheMetadata(): void
    {
        $transport = new FakeTransport(static fn (array $r, int $n) => $r['method'] === 'GET'
            ? FakeTransport::json(200, ['issuer' => 'https://auth.test', 'token_endpoint' => self::ENDPOINT])
            : FakeTransport::token($n));
        $manager = $this->manager($transport, ['token_endpoint' => null, 'server_url' => 'https://auth.test/some/path']);
        $manager->token(['a:b']);
        $manager->token(['c:d']);
        self::assertSame(
            ['GET https://auth.test/.well-known/oauth-authorization-server', 'POST ' . self::ENDPOINT, 'POST ' . self::ENDPOINT],
            array_map(static fn ($r) => "{$r['method']} {$r['url']}", $transport->requests),
        );
    }

    public function testRefusesMetadataThatPointsTheSecretElsewhere(): void
    {
        foreach ([
            ['issuer' => 'https://auth.test', 'token_endpoint' => 'https://evil.test/token'],
            ['issuer' => 'https://evil.test', 'token_endpoint' => self::ENDPOINT],
            ['issuer' => 'https://auth.test'],
        ] as $metadata) {
            $transport = new FakeTransport(static fn () => FakeTransport::json(200, $metadata));
            try {
                $this->manager($transport, ['token_endpoint' => null, 'server_url' => 'https://auth.test'])->token();
                self::fail('expected discovery_failed');
            } catch (TokenRequestException $e) {
                self::assertSame('discovery_failed', $e->errorCode);
            }
            self::assertCount(1, $transport->requests, 'no token request was sent');
        }
    }

    public function testValidatesOptions(): void
    {
        $transport = new FakeTransport(static fn () => FakeTransport::token(1));
        foreach ([
            ['token_endpoint' => 'http://auth.example.com/token'],
            ['token_endpoint' => 'not a url'],
            ['server_url' => 'https://auth.test'],
            ['client_secret' => ''],
            ['auth_method' => 'private_key_jwt'],
            ['scopes' => ['has space']],
            ['retry' => ['max_attempts' => 0]],
            ['refresh' => ['lifetime_fraction' => 1.5]],
        ] as $options) {
            try {
                $this->manager($transport, $options);
                self::fail('expected invalid_options for ' . json_encode($options));
            } catch (AuthServerException $e) {
                self::assertSame('invalid_options', $e->errorCode);
            }
        }
        // Plain http is fine to a loopback address (and explicitly allowed elsewhere).
        $this->manager($transport, ['token_endpoint' => 'http://127.0.0.1:4700/api/v1/oauth/token']);
        $this->manager($transport, ['token_endpoint' => 'http://auth.internal/token', 'allow_insecure_http' => true]);
        $this->addToAssertionCount(1);
    }
}
