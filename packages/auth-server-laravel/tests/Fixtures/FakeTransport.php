<?php

declare(strict_types=1);

namespace Rw3iss\AuthServer\Tests\Fixtures;

use Rw3iss\AuthServer\Client\HttpResponse;
use Rw3iss\AuthServer\Client\HttpTransport;
use Rw3iss\AuthServer\Client\TransportException;

/** Records every request and answers with `$handler(request, n)`: an HttpResponse, or a TransportException to throw. */
final class FakeTransport implements HttpTransport
{
    /** @var list<array{method: string, url: string, headers: array<string, string>, body: ?string}> */
    public array $requests = [];

    /** @param \Closure(array, int): (HttpResponse|TransportException) $handler */
    public function __construct(private \Closure $handler)
    {
    }

    public function send(string $method, string $url, array $headers, ?string $body, float $timeoutSeconds): HttpResponse
    {
        $request = ['method' => $method, 'url' => $url, 'headers' => $headers, 'body' => $body];
        $this->requests[] = $request;
        $answer = ($this->handler)($request, count($this->requests));
        if ($answer instanceof TransportException) {
            throw $answer;
        }

        return $answer;
    }

    /** @param array<string, mixed> $body */
    public static function json(int $status, array $body, array $headers = []): HttpResponse
    {
        return new HttpResponse($status, ['content-type' => 'application/json', ...$headers], json_encode($body));
    }

    /** A token endpoint answer: `tok-<n>` for the n-th request. */
    public static function token(int $n, int $expiresIn = 900): HttpResponse
    {
        return self::json(200, ['access_token' => "tok-{$n}", 'token_type' => 'Bearer', 'expires_in' => $expiresIn, 'scope' => '']);
    }
}
