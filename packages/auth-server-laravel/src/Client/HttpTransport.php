<?php

declare(strict_types=1);

namespace Rw3iss\AuthServer\Client;

/** One HTTP exchange. {@see CurlTransport} is the default; tests inject their own. */
interface HttpTransport
{
    /**
     * @param array<string, string> $headers
     * @throws TransportException when no complete answer arrives (network error or timeout)
     */
    public function send(string $method, string $url, #[\SensitiveParameter] array $headers, #[\SensitiveParameter] ?string $body, float $timeoutSeconds): HttpResponse;
}
