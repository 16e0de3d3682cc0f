<?php

declare(strict_types=1);

namespace Rw3iss\AuthServer\Tests;

use Illuminate\Http\Request;
use Illuminate\Support\Carbon;
use PHPUnit\Framework\TestCase;
use Rw3iss\AuthServer\Exceptions\AuthServerException;
use Rw3iss\AuthServer\Tests\Fixtures\LaravelApp;
use Rw3iss\AuthServer\Tests\Fixtures\Tokens;
use Rw3iss\AuthServer\Verification\ServicePrincipal;
use Symfony\Component\HttpFoundation\Response;

/** The `service.token` middleware in a real Laravel application (router, container, provider). */
final class MiddlewareTest extends TestCase
{
    private const NOW = 1_893_456_000;

    private LaravelApp $laravel;

    protected function setUp(): void
    {
        Carbon::setTestNow(Carbon::createFromTimestamp(self::NOW));
        $this->laravel = new LaravelApp(['verify' => Tokens::verifyConfig()]);
        $router = $this->laravel->app['router'];
        $who = static fn (Request $request) => [
            'clientId' => $request->servicePrincipal()->clientId,
            'scopes' => ServicePrincipal::of($request)->scopes,
        ];
        $router->post('/publish', $who)->middleware('service.token:gsku:publish');
        $router->post('/both', $who)->middleware('service.token:gsku:publish,gsku:admin');
        $router->get('/any', $who)->middleware('service.token.any:gsku:admin,gsku:read');
        $router->get('/open', $who)->middleware('service.token');
        $router->get('/bad-scope', $who)->middleware('service.token:has space');
    }

    protected function tearDown(): void
    {
        Carbon::setTestNow();
    }

    /** @return array{status: int, challenge: ?string, body: mixed} */
    private function call(string $method, string $uri, ?string $authorization): array
    {
        $response = $this->laravel->handle($method, $uri, $authorization);

        return [
            'status' => $response->getStatusCode(),
            'challenge' => $response->headers->get('WWW-Authenticate'),
            'body' => json_decode((string) $response->getContent(), true),
        ];
    }

    public function testAcceptsAValidTokenWithTheScopeAndPutsThePrincipalOnTheRequest(): void
    {
        self::assertSame(
            ['status' => 200, 'challenge' => null, 'body' => ['clientId' => 'billing-svc', 'scopes' => ['gsku:publish', 'gsku:read']]],
            $this->call('POST', '/publish', 'Bearer ' . Tokens::sign(self::NOW)),
        );
    }

    public function testSeveralScopesAreAllRequiredAndAny(): void
    {
        $token = Tokens::sign(self::NOW);
        $both = $this->call('POST', '/both', "Bearer {$token}");
        self::assertSame(403, $both['status']);
        self::assertSame('gsku:admin gsku:publish', $both['body']['scope']);
        self::assertSame(200, $this->call('GET', '/any', "Bearer {$token}")['status']);
        $none = Tokens::sign(self::NOW, ['scopes' => ['other:x'], 'scope' => 'other:x']);
        self::assertSame(403, $this->call('GET', '/any', "Bearer {$none}")['status']);
        self::assertSame(200, $this->call('GET', '/open', "Bearer {$none}")['status']);
    }

    public function testMissingTokenAnswersABareBearerChallenge(): void
    {
        foreach ([null, 'Basic dXNlcjpwYXNz', 'Bearer ', 'Bearer', 'Bearer    '] as $authorization) {
            self::assertSame(
                ['status' => 401, 'challenge' => 'Bearer', 'body' => ['error' => 'missing_token', 'error_description' => 'A bearer token is required']],
                $this->call('POST', '/publish', $authorization),
                var_export($authorization, true),
            );
        }
    }

    public function testInvalidTokensAnswer401InvalidToken(): void
    {
        $valid = Tokens::sign(self::NOW);
        [$h, $p, $s] = explode('.', $valid);
        $tampered = $h . '.' . substr_replace($p, $p[5] === 'A' ? 'B' : 'A', 5, 1) . '.' . $s;
        foreach ([
            'garbage',
            'two.parts',
            $tampered,
            Tokens::sign(self::NOW, [], Tokens::OTHER_SECRET),
            Tokens::sign(self::NOW, ['token_type' => 'user']),
            Tokens::sign(self::NOW, ['aud' => 'someone-else']),
            Tokens::sign(self::NOW, ['exp' => self::NOW + 2 * 86400]),
        ] as $token) {
            self::assertSame(
                [
                    'status' => 401,
                    'challenge' => 'Bearer error="invalid_token", error_description="The access token is invalid"',
                    'body' => ['error' => 'invalid_token', 'error_description' => 'The access token is invalid'],
                ],
                $this->call('POST', '/publish', "Bearer {$token}"),
            );
        }
    }

    public function testExpiredTokenAndTheSchemeIsCaseInsensitive(): void
    {
        $token = Tokens::sign(self::NOW - 2000);
        self::assertSame(
            [
                'status' => 401,
                'challenge' => 'Bearer error="invalid_token", error_description="The access token expired"',
                'body' => ['error' => 'token_expired', 'error_description' => 'The access token expired'],
            ],
            $this->call('POST', '/publish', "bearer {$token}"),
        );
    }

    public function testFollowsTheClockCarbonTestNowMoves(): void
    {
        $token = Tokens::sign(self::NOW);
        self::assertSame(200, $this->call('POST', '/publish', "Bearer {$token}")['status']);
        Carbon::setTestNow(Carbon::createFromTimestamp(self::NOW + 905));
        self::assertSame('token_expired', $this->call('POST', '/publish', "Bearer {$token}")['body']['error']);
    }

    /** Every refusal is answered exactly as the Node guards answer it (status, headers, body from the Node SDK). */
    public function testAnswersAsTheNodeGuards(): void
    {
        $corpus = json_decode((string) file_get_contents(__DIR__ . '/../../auth-server-ts/test/vectors/service-tokens.json'), true);
        $requests = [
            'missing_token' => null,
            'invalid_token' => 'Bearer ' . Tokens::sign(self::NOW, [], Tokens::OTHER_SECRET),
            'token_expired' => 'Bearer ' . Tokens::sign(self::NOW - 2000),
            'insufficient_scope' => 'Bearer ' . Tokens::sign(self::NOW, ['scopes' => ['gsku:read'], 'scope' => 'gsku:read']),
        ];
        self::assertCount(4, $corpus['guard_answers']);
        foreach ($corpus['guard_answers'] as $node) {
            $response = $this->laravel->handle('POST', '/publish', $requests[$node['code']]);
            self::assertSame($node['status'], $response->getStatusCode(), $node['code']);
            self::assertSame($node['body'], json_decode((string) $response->getContent(), true), $node['code']);
            self::assertSame(json_encode($node['body'], JSON_UNESCAPED_SLASHES), $response->getContent(), $node['code']);
            foreach ($node['headers'] as $name => $value) {
                // Symfony adds "private" to every Cache-Control without public/private/s-maxage;
                // "no-store, private" forbids the same caching as "no-store".
                $expected = $name === 'cache-control' && $value === 'no-store' ? 'no-store, private' : $value;
                self::assertSame($expected, $this->header($response, $name), "{$node['code']}: {$name}");
            }
        }
    }

    public function testABadScopeOnARouteIsAProgrammingError(): void
    {
        $this->expectException(AuthServerException::class);
        $this->expectExceptionMessage('RFC 6749');
        $this->laravel->handle('GET', '/bad-scope', 'Bearer ' . Tokens::sign(self::NOW));
    }

    public function testAMissingIssuerFailsClosed(): void
    {
        $laravel = new LaravelApp(['verify' => [...Tokens::verifyConfig(), 'issuer' => null]]);
        $laravel->app['router']->get('/x', static fn () => 'through')->middleware('service.token');
        try {
            $laravel->handle('GET', '/x', 'Bearer ' . Tokens::sign(self::NOW));
            self::fail('expected invalid_options');
        } catch (AuthServerException $e) {
            self::assertSame('invalid_options', $e->errorCode);
            self::assertStringContainsString('issuer is required', $e->getMessage());
        }
    }

    /** The header as it goes on the wire. */
    private function header(Response $response, string $name): ?string
    {
        foreach (explode("\r\n", (string) $response->headers) as $line) {
            [$key, $value] = array_pad(explode(':', $line, 2), 2, '');
            if (strcasecmp(trim($key), $name) === 0) {
                return trim($value);
            }
        }

        return null;
    }
}
