<?php

declare(strict_types=1);

namespace Rw3iss\AuthServer\Tests;

use Illuminate\Cache\ArrayStore;
use Illuminate\Cache\Repository;
use PHPUnit\Framework\TestCase;
use Rw3iss\AuthServer\Client\HttpResponse;
use Rw3iss\AuthServer\Client\ServiceTokenManager;
use Rw3iss\AuthServer\Client\TransportException;
use Rw3iss\AuthServer\Events\RevocationEvent;
use Rw3iss\AuthServer\Exceptions\AuthServerException;
use Rw3iss\AuthServer\Exceptions\TokenVerificationException;
use Rw3iss\AuthServer\Tests\Fixtures\FakeTransport;
use Rw3iss\AuthServer\Tests\Fixtures\FixedClock;
use Rw3iss\AuthServer\Tests\Fixtures\Tokens;
use Rw3iss\AuthServer\Verification\RevocationList;
use Rw3iss\AuthServer\Verification\ServiceTokenVerifier;

/**
 * The revocation list's sync protocol and failure policies, against a scripted feed (the real
 * feed, and the middleware's answers, are exercised in RevocationEndToEndTest).
 */
final class RevocationListTest extends TestCase
{
    private const URL = 'https://auth.test/api/v1/oauth/revocations';
    private const NOW = 1_893_456_000;

    private FixedClock $clock;
    private Repository $cache;
    /** @var list<HttpResponse|TransportException> answers of the feed, in order */
    private array $answers = [];
    private FakeTransport $transport;
    /** @var list<RevocationEvent> */
    private array $events = [];

    protected function setUp(): void
    {
        $this->clock = new FixedClock(self::NOW + 0.5);
        $this->cache = new Repository(new ArrayStore());
        $this->transport = new FakeTransport(function (array $request): HttpResponse|TransportException {
            if (str_ends_with($request['url'], '/oauth/token')) {
                return FakeTransport::token(count(array_filter($this->transport->requests, static fn ($r) => str_ends_with($r['url'], '/oauth/token'))));
            }

            return array_shift($this->answers) ?? new TransportException('no answer scripted', false);
        });
    }

    private function list(array $options = []): RevocationList
    {
        return new RevocationList(
            self::URL,
            $options['token'] ?? static fn (): string => 'feed-token',
            $this->cache,
            $this->transport,
            $this->clock,
            interval: $options['interval'] ?? 2.0,
            timeout: $options['timeout'] ?? 2.5,
            failClosedAfter: $options['fail_closed_after'] ?? null,
            maxTokenLifetime: 900,
            onEvent: function (RevocationEvent $event): void {
                $this->events[] = $event;
            },
        );
    }

    private static function page(string $cursor, array $clients = [], array $tokens = [], bool $hasMore = false, ?string $etag = null): HttpResponse
    {
        return FakeTransport::json(200, ['cursor' => $cursor, 'has_more' => $hasMore, 'clients' => $clients, 'tokens' => $tokens], $etag === null ? [] : ['etag' => $etag]);
    }

    private static function client(string $id, ?int $notBefore): array
    {
        return ['client_id' => $id, 'revoked_at' => '2030-01-01T00:00:00.000Z', 'not_before' => $notBefore];
    }

    /** The reason `check` refuses with, or null when it accepts. */
    private static function reason(RevocationList $list, string $clientId, int $iat = self::NOW - 10, ?string $jti = null): ?string
    {
        try {
            $list->check($clientId, $iat, $jti);

            return null;
        } catch (TokenVerificationException $e) {
            self::assertSame('invalid_token', $e->errorCode);
            self::assertSame(401, $e->httpStatus());

            return $e->reason;
        }
    }

    /** @return list<string> the feed requests' URLs */
    private function feedUrls(): array
    {
        return array_values(array_map(
            static fn (array $r) => $r['url'],
            array_filter($this->transport->requests, static fn (array $r) => str_starts_with($r['url'], self::URL)),
        ));
    }

    /** @return list<string> */
    private function eventTypes(): array
    {
        return array_map(static fn (RevocationEvent $e) => $e->type, $this->events);
    }

    public function testDumpsShowNoCachedTokenAndNoTokenSource(): void
    {
        // A cache store shared with the token manager holds its access token.
        $this->cache->put('auth-server:token:billing-svc', 'cached-access-token-sentinel', 60);
        $secret = 'token-source-secret-sentinel';
        $list = $this->list(['token' => static fn (): string => $secret]);
        $verifier = new ServiceTokenVerifier(Tokens::verifyConfig(), $this->clock, revocations: $list);
        foreach ([$list, $verifier] as $object) {
            ob_start();
            var_dump($object);
            $dump = print_r($object, true) . ob_get_clean();
            self::assertStringContainsString(RevocationList::class, $dump);
            self::assertStringNotContainsString('cached-access-token-sentinel', $dump);
            self::assertStringNotContainsString($secret, $dump);
        }
    }

    public function testSnapshotThenDeltaWithTheCursorAndAtMostOneReadPerInterval(): void
    {
        $list = $this->list();
        $this->answers = [self::page('c1', [self::client('gone-svc', null)], [['jti' => 'jti-x', 'client_id' => 'a-svc', 'exp' => self::NOW + 600]], etag: '"e1"')];
        self::assertNull(self::reason($list, 'ok-svc'));
        self::assertSame('revoked', self::reason($list, 'gone-svc'));
        self::assertSame('revoked', self::reason($list, 'a-svc', jti: 'jti-x'));
        self::assertNull(self::reason($list, 'a-svc', jti: 'jti-y'));
        self::assertSame([self::URL], $this->feedUrls(), 'one read for every check within the interval');
        self::assertSame('Bearer feed-token', $this->transport->requests[0]['headers']['Authorization']);
        self::assertSame(['ready'], $this->eventTypes());
        self::assertSame(['clients' => 1, 'tokens' => 1], $this->events[0]->data);

        $this->clock->advance(2);
        $this->answers = [new HttpResponse(304, [], '')];
        self::assertNull(self::reason($list, 'ok-svc'));
        self::assertSame([self::URL, self::URL . '?since=c1'], $this->feedUrls());
        self::assertSame('"e1"', $this->transport->requests[1]['headers']['If-None-Match']);

        $this->clock->advance(2);
        $this->answers = [self::page('c2', [self::client('ok-svc', null)])];
        self::assertSame('revoked', self::reason($list, 'ok-svc'));
        self::assertSame('revoked', self::reason($list, 'gone-svc'), 'the delta adds to the copy');
        self::assertSame(self::URL . '?since=c1', $this->feedUrls()[2]);
        self::assertSame('"e1"', $this->transport->requests[2]['headers']['If-None-Match'], 'the server decides: it changed');
    }

    public function testSyncReadsNowAndForgetStartsFromASnapshot(): void
    {
        $list = $this->list();
        $this->answers = [self::page('c1'), self::page('c2', [self::client('gone-svc', null)])];
        self::assertTrue($list->sync());
        self::assertTrue($list->sync(), 'whatever the interval');
        self::assertSame('revoked', self::reason($list, 'gone-svc'));
        self::assertSame([self::URL, self::URL . '?since=c1'], $this->feedUrls());

        $list->forget();
        $this->answers = [self::page('c9')];
        self::assertNull(self::reason($list, 'gone-svc'), 'the new snapshot has no entry for it');
        self::assertSame(self::URL, $this->feedUrls()[2]);
        $this->answers = [new TransportException('down', false)];
        self::assertFalse($list->sync());
    }

    public function testReadsEveryPageInOneRefresh(): void
    {
        $list = $this->list();
        $this->answers = [
            self::page('p1', [self::client('one-svc', null)], hasMore: true, etag: '"ignored"'),
            self::page('p2', [self::client('two-svc', null)]),
        ];
        self::assertSame('revoked', self::reason($list, 'two-svc'));
        self::assertSame('revoked', self::reason($list, 'one-svc'));
        self::assertSame([self::URL, self::URL . '?since=p1'], $this->feedUrls());
        self::assertArrayNotHasKey('If-None-Match', $this->transport->requests[1]['headers'], 'an ETag of a page with more to come is not kept');
    }

    public function testNotBeforeRefusesOlderTokensAndALaterEntryReplacesTheEarlierOne(): void
    {
        $list = $this->list();
        $this->answers = [self::page('c1', [self::client('back-svc', null), self::client('back-svc', self::NOW)])];
        self::assertSame('revoked', self::reason($list, 'back-svc', self::NOW - 1), 'issued before the enable');
        self::assertNull(self::reason($list, 'back-svc', self::NOW), 'issued at not_before');

        $this->clock->advance(2);
        $this->answers = [self::page('c2', [self::client('back-svc', null)])];
        self::assertSame('revoked', self::reason($list, 'back-svc', self::NOW + 1), 'disabled again: every token');
    }

    public function testFailsClosedUntilTheFirstCompleteRead(): void
    {
        $list = $this->list();
        $this->answers = [new TransportException('Could not reach https://auth.test (curl error 7)', false)];
        self::assertSame('revocation_unavailable', self::reason($list, 'ok-svc'));
        self::assertSame(['sync_failed'], $this->eventTypes());
        self::assertNull($this->events[0]->data['stale_seconds']);
        self::assertStringContainsString('Could not reach', $this->events[0]->data['error']);

        self::assertSame('revocation_unavailable', self::reason($list, 'ok-svc'));
        self::assertCount(1, $this->feedUrls(), 'a failed read is not repeated within the interval');

        $this->clock->advance(2);
        $this->answers = [FakeTransport::json(500, ['error' => 'internal'])];
        self::assertSame('revocation_unavailable', self::reason($list, 'ok-svc'));
        self::assertSame('the revocation feed answered 500', $this->events[1]->data['error']);

        $this->clock->advance(2);
        $this->answers = [self::page('c1', hasMore: true), FakeTransport::json(200, ['cursor' => 'c2', 'has_more' => false, 'clients' => [['client_id' => 'x']], 'tokens' => []])];
        self::assertSame('revocation_unavailable', self::reason($list, 'ok-svc'), 'a partial read is not a complete one');
        self::assertSame('the revocation feed answered with a malformed body', $this->events[2]->data['error']);

        $this->clock->advance(2);
        $this->answers = [self::page('c2')];
        self::assertNull(self::reason($list, 'ok-svc'));
        self::assertSame(self::URL . '?since=c1', $this->feedUrls()[4], 'continues after the pages already read');
        self::assertSame(['sync_failed', 'sync_failed', 'sync_failed', 'ready'], $this->eventTypes());
    }

    public function testA304ToARequestWithoutIfNoneMatchIsAFailedRead(): void
    {
        $list = $this->list();
        $this->answers = [FakeTransport::json(304, [])];
        self::assertSame('revocation_unavailable', self::reason($list, 'ok-svc'), 'an empty copy is never made current by a 304');
        self::assertSame(['sync_failed'], $this->eventTypes());
        self::assertSame('the revocation feed answered 304 to a request without If-None-Match', $this->events[0]->data['error']);

        $this->clock->advance(2);
        $this->answers = [self::page('c1', [self::client('gone-svc', null)])];
        self::assertNull(self::reason($list, 'ok-svc'));
        self::assertSame('revoked', self::reason($list, 'gone-svc'));
    }

    public function testKeepsTheLastCopyWhileTheFeedIsUnreachableByDefault(): void
    {
        $list = $this->list();
        $this->answers = [self::page('c1', [self::client('gone-svc', null)])];
        self::assertNull(self::reason($list, 'ok-svc'));

        for ($i = 1; $i <= 3; $i++) {
            $this->clock->advance(600);
            $this->answers = [new TransportException('No answer from https://auth.test within 2.5 s', true)];
            self::assertNull(self::reason($list, 'ok-svc'), 'verifying with the last copy');
            self::assertSame('revoked', self::reason($list, 'gone-svc'));
        }
        self::assertSame(['ready', 'sync_failed', 'sync_failed', 'sync_failed'], $this->eventTypes());
        self::assertEqualsWithDelta(1800.0, $this->events[3]->data['stale_seconds'], 0.01);

        $this->clock->advance(2);
        $this->answers = [self::page('c2')];
        self::assertNull(self::reason($list, 'ok-svc'));
        self::assertSame('recovered', $this->events[4]->type);
        self::assertEqualsWithDelta(1802.0, $this->events[4]->data['stale_seconds'], 0.01);
    }

    public function testFailClosedAfterRefusesEveryTokenUntilAReadSucceeds(): void
    {
        $list = $this->list(['fail_closed_after' => 5]);
        $this->answers = [self::page('c1')];
        self::assertNull(self::reason($list, 'ok-svc'));

        $this->clock->advance(2);
        $this->answers = [new TransportException('down', false)];
        self::assertNull(self::reason($list, 'ok-svc'), '2 s without a read: still verifying');
        $this->clock->advance(3);
        $this->answers = [new TransportException('down', false)];
        self::assertSame('revocation_unavailable', self::reason($list, 'ok-svc'), '5 s without a read: closed');
        $this->clock->advance(2);
        $this->answers = [new TransportException('down', false)];
        self::assertSame('revocation_unavailable', self::reason($list, 'ok-svc'));
        self::assertSame(['ready', 'sync_failed', 'sync_failed', 'fail_closed', 'sync_failed'], $this->eventTypes(), 'fail_closed once');

        $this->clock->advance(2);
        $this->answers = [self::page('c1')];
        self::assertNull(self::reason($list, 'ok-svc'), 'open again after a read');
        self::assertSame('recovered', $this->events[5]->type);
    }

    public function testWorkersShareOneCopyAndTheLockMakesOneRead(): void
    {
        $first = $this->list();
        $second = $this->list();
        $this->answers = [self::page('c1', [self::client('gone-svc', null)])];
        self::assertSame('revoked', self::reason($first, 'gone-svc'));
        self::assertSame('revoked', self::reason($second, 'gone-svc'), 'from the shared cache');
        self::assertCount(1, $this->feedUrls());

        // Due, while another worker holds the lock (its read under way): the copy serves, no second read.
        $this->clock->advance(2);
        $lock = $this->cache->getStore()->lock('auth-server:revocations:' . hash('sha256', self::URL) . ':lock', 30);
        self::assertTrue($lock->get());
        self::assertSame('revoked', self::reason($second, 'gone-svc'));
        self::assertNull(self::reason($second, 'ok-svc'));
        self::assertCount(1, $this->feedUrls());
        $lock->release();
        $this->answers = [self::page('c2')];
        self::assertNull(self::reason($second, 'ok-svc'));
        self::assertCount(2, $this->feedUrls());
    }

    public function testAWorkerWaitsForAnotherWorkersFirstReadThenFailsClosed(): void
    {
        $list = $this->list(['timeout' => 0.2]);
        $lock = $this->cache->getStore()->lock('auth-server:revocations:' . hash('sha256', self::URL) . ':lock', 30);
        self::assertTrue($lock->get());
        $start = microtime(true);
        self::assertSame('revocation_unavailable', self::reason($list, 'ok-svc'));
        self::assertGreaterThanOrEqual(0.2, microtime(true) - $start, 'waited for the other worker\'s read');
        self::assertSame([], $this->feedUrls());
        $lock->release();
    }

    public function testAFeedTokenRefusedWith401IsReplacedForTheNextRead(): void
    {
        $manager = new ServiceTokenManager([
            'token_endpoint' => 'https://auth.test/api/v1/oauth/token',
            'client_id' => 'reader-svc',
            'client_secret' => 'reader-secret',
        ], $this->cache, $this->transport, $this->clock);
        $list = $this->list(['token' => $manager]);
        $this->answers = [FakeTransport::json(401, ['error' => 'unauthorized'])];
        self::assertSame('revocation_unavailable', self::reason($list, 'ok-svc'));
        $this->clock->advance(2);
        $this->answers = [self::page('c1')];
        self::assertNull(self::reason($list, 'ok-svc'));
        $feed = array_values(array_filter($this->transport->requests, static fn (array $r) => str_starts_with($r['url'], self::URL)));
        self::assertSame(['Bearer tok-1', 'Bearer tok-2'], array_map(static fn (array $r) => $r['headers']['Authorization'], $feed));
        self::assertSame('grant_type=client_credentials&scope=auth%3Arevocations%3Aread', $this->transport->requests[0]['body']);
    }

    public function testFromConfigDerivesTheFeedAndRefusesPlainHttpToARemoteHost(): void
    {
        $base = ['client_id' => 'svc', 'client_secret' => 's', 'verify' => ['issuer' => 'https://issuer.test']];
        $url = static function (array $config): string {
            $property = new \ReflectionProperty(RevocationList::class, 'url');

            return $property->getValue(RevocationList::fromConfig($config, new Repository(new ArrayStore()), new FakeTransport(static fn () => new TransportException('x', false)), new FixedClock(0)));
        };
        self::assertSame('https://auth.test/api/v1/oauth/revocations', $url([...$base, 'server_url' => 'https://auth.test/']));
        self::assertSame('https://issuer.test/api/v1/oauth/revocations', $url([...$base, 'token_endpoint' => 'https://auth.test/api/v1/oauth/token']));
        self::assertSame('https://auth.test/api/v1/oauth/revocations', $url(['client_id' => 'svc', 'client_secret' => 's', 'token_endpoint' => 'https://auth.test/api/v1/oauth/token']));
        self::assertSame('http://127.0.0.1:5900/feed', $url([...$base, 'server_url' => 'https://auth.test', 'revocation' => ['url' => 'http://127.0.0.1:5900/feed']]));

        foreach ([
            [...$base, 'server_url' => 'https://auth.test', 'revocation' => ['url' => 'http://auth.test/feed']],
            [...$base, 'server_url' => 'https://auth.test', 'revocation' => ['interval' => 0]],
            [...$base, 'server_url' => 'https://auth.test', 'revocation' => ['fail_closed_after' => -1]],
            [...$base, 'server_url' => 'https://auth.test', 'revocation' => ['client_id' => 'reader']], // no secret for it
        ] as $i => $config) {
            try {
                $url($config);
                self::fail("config {$i} accepted");
            } catch (AuthServerException $e) {
                self::assertSame('invalid_options', $e->errorCode, $e->getMessage());
            }
        }
    }
}
