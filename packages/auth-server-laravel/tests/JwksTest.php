<?php

declare(strict_types=1);

namespace Rw3iss\AuthServer\Tests;

use Illuminate\Cache\ArrayStore;
use Illuminate\Cache\Repository;
use Illuminate\Support\Carbon;
use PHPUnit\Framework\TestCase;
use Rw3iss\AuthServer\Client\HttpResponse;
use Rw3iss\AuthServer\Client\HttpTransport;
use Rw3iss\AuthServer\Client\TransportException;
use Rw3iss\AuthServer\Exceptions\AuthServerException;
use Rw3iss\AuthServer\Exceptions\TokenVerificationException;
use Rw3iss\AuthServer\Tests\Fixtures\FakeTransport;
use Rw3iss\AuthServer\Tests\Fixtures\FixedClock;
use Rw3iss\AuthServer\Tests\Fixtures\LaravelApp;
use Rw3iss\AuthServer\Tests\Fixtures\Tokens;
use Rw3iss\AuthServer\Verification\Base64Url;
use Rw3iss\AuthServer\Verification\JwksKeySet;
use Rw3iss\AuthServer\Verification\ServiceTokenVerifier;

/** Asymmetric (EdDSA) service tokens verified with the server's JWKS, cached in Laravel's cache. */
final class JwksTest extends TestCase
{
    private const NOW = 1_893_456_000;
    private const JWKS_URI = 'https://auth.test/.well-known/jwks.json';

    private FixedClock $clock;
    private Repository $cache;
    /** @var array<string, string> kid => Ed25519 secret key */
    private array $signingKeys = [];
    /** @var list<string> kids the fake server publishes */
    private array $published = [];
    private bool $serverUp = true;
    private FakeTransport $transport;

    protected function setUp(): void
    {
        $this->clock = new FixedClock((float) self::NOW);
        $this->cache = new Repository(new ArrayStore());
        $this->addKey('key-1');
        $this->transport = new FakeTransport(function (array $request): HttpResponse|TransportException {
            if (!$this->serverUp) {
                return new TransportException('Could not reach https://auth.test (curl error 7)', false);
            }
            if (str_ends_with($request['url'], '/.well-known/oauth-authorization-server')) {
                return FakeTransport::json(200, ['issuer' => 'https://auth.test', 'jwks_uri' => self::JWKS_URI]);
            }

            return FakeTransport::json(200, ['keys' => array_map(fn (string $kid) => $this->jwk($kid), $this->published)], ['cache-control' => 'public, max-age=300']);
        });
    }

    private function addKey(string $kid): void
    {
        $this->signingKeys[$kid] = sodium_crypto_sign_secretkey(sodium_crypto_sign_keypair());
        $this->published[] = $kid;
    }

    /** @return array<string, string> */
    private function jwk(string $kid): array
    {
        $public = sodium_crypto_sign_publickey_from_secretkey($this->signingKeys[$kid]);

        return ['kty' => 'OKP', 'crv' => 'Ed25519', 'x' => Base64Url::encode($public), 'kid' => $kid, 'alg' => 'EdDSA', 'use' => 'sig'];
    }

    private function token(string $kid, ?string $signWith = null): string
    {
        $input = Base64Url::encode(json_encode(['alg' => 'EdDSA', 'typ' => 'at+jwt', 'kid' => $kid]))
            . '.' . explode('.', Tokens::sign((int) $this->clock->now))[1];

        return $input . '.' . Base64Url::encode(sodium_crypto_sign_detached($input, $this->signingKeys[$signWith ?? $kid]));
    }

    private function verifier(?string $uri = self::JWKS_URI, ?string $issuer = null): ServiceTokenVerifier
    {
        $jwks = new JwksKeySet($uri, $issuer, $this->cache, $this->transport, $this->clock, 30.0, 5.0);

        return new ServiceTokenVerifier(['issuer' => Tokens::ISSUER, 'audience' => Tokens::AUDIENCE], $this->clock, $jwks);
    }

    private function refusal(ServiceTokenVerifier $verifier, string $token): ?string
    {
        try {
            $verifier->verify($token);

            return null;
        } catch (TokenVerificationException $e) {
            return $e->reason;
        }
    }

    public function testFetchesTheKeySetOnceForEveryWorkerSharingTheCache(): void
    {
        self::assertSame('billing-svc', $this->verifier()->verify($this->token('key-1'))->clientId);
        self::assertSame('billing-svc', $this->verifier()->verify($this->token('key-1'))->clientId, 'another worker');
        self::assertCount(1, $this->transport->requests);
        self::assertSame(['GET', self::JWKS_URI], [$this->transport->requests[0]['method'], $this->transport->requests[0]['url']]);
    }

    public function testUnknownKidsCostOneFetchPerCooldown(): void
    {
        $verifier = $this->verifier();
        $verifier->verify($this->token('key-1'));
        $this->addKey('stranger');
        array_pop($this->published); // signed by a key the server does not publish
        for ($i = 0; $i < 5; $i++) {
            self::assertSame('unknown_key', $this->refusal($verifier, $this->token('stranger')));
        }
        self::assertCount(1, $this->transport->requests, 'within the first cooldown the set was just fetched');
        $this->cache->forget($this->attemptKey()); // the cooldown has passed
        for ($i = 0; $i < 5; $i++) {
            self::assertSame('unknown_key', $this->refusal($verifier, $this->token('stranger')));
        }
        self::assertCount(2, $this->transport->requests);
    }

    public function testANewKeyIsPickedUpAfterTheCooldown(): void
    {
        $verifier = $this->verifier();
        $verifier->verify($this->token('key-1'));
        $this->addKey('key-2');
        self::assertSame('unknown_key', $this->refusal($verifier, $this->token('key-2')));
        $this->cache->forget($this->attemptKey()); // the cooldown has passed
        self::assertSame('billing-svc', $verifier->verify($this->token('key-2'))->clientId);
    }

    public function testUnavailableUntilTheFirstFetchSucceedsThenTheLastGoodSetServes(): void
    {
        $this->serverUp = false;
        $verifier = $this->verifier();
        self::assertSame('jwks_unavailable', $this->refusal($verifier, $this->token('key-1')));
        $this->serverUp = true;
        $this->cache->forget($this->attemptKey());
        self::assertNull($this->refusal($verifier, $this->token('key-1')));

        // Down again, and the set is past its max-age: the last good set keeps serving.
        $this->serverUp = false;
        $this->clock->advance(3600);
        $this->cache->forget($this->attemptKey());
        self::assertNull($this->refusal($verifier, $this->token('key-1')));
        self::assertCount(3, $this->transport->requests, 'one failed, one good, one failed refresh');
    }

    public function testAForgedSignatureUnderAPublishedKidIsRefused(): void
    {
        $this->addKey('attacker');
        array_pop($this->published);
        self::assertSame('signature', $this->refusal($this->verifier(), $this->token('key-1', 'attacker')));
    }

    public function testDiscoversTheJwksUriFromTheIssuerMetadata(): void
    {
        $verifier = $this->verifier(null, 'https://auth.test');
        self::assertNull($this->refusal($verifier, $this->token('key-1')));
        self::assertSame(
            ['https://auth.test/.well-known/oauth-authorization-server', self::JWKS_URI],
            array_column($this->transport->requests, 'url'),
        );
    }

    public function testRefusesAJwksUriThatCouldBeSwappedInTransit(): void
    {
        $this->expectException(AuthServerException::class);
        $this->verifier('http://auth.example.com/.well-known/jwks.json');
    }

    public function testTheMiddlewareVerifiesWithTheConfiguredJwks(): void
    {
        Carbon::setTestNow(Carbon::createFromTimestamp(self::NOW));
        try {
            $laravel = new LaravelApp(['verify' => ['issuer' => Tokens::ISSUER, 'audience' => Tokens::AUDIENCE, 'jwks_uri' => self::JWKS_URI]]);
            $laravel->app->instance(HttpTransport::class, $this->transport);
            $laravel->app['router']->post('/publish', static fn () => 'published')->middleware('service.token:gsku:publish');
            self::assertSame(200, $laravel->handle('POST', '/publish', 'Bearer ' . $this->token('key-1'))->getStatusCode());
            // Only public keys are trusted: an HS256 token, even one signed with a secret, is refused.
            self::assertSame(401, $laravel->handle('POST', '/publish', 'Bearer ' . Tokens::sign(self::NOW))->getStatusCode());
        } finally {
            Carbon::setTestNow();
        }
    }

    private function attemptKey(): string
    {
        return 'auth-server:jwks:' . hash('sha256', self::JWKS_URI) . ':attempt';
    }
}
