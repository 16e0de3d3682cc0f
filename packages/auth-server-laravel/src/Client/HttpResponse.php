<?php

declare(strict_types=1);

namespace Rw3iss\AuthServer\Client;

/** An HTTP answer as the token client sees it. */
final class HttpResponse
{
    /**
     * @param array<string, string> $headers lower-cased names
     */
    public function __construct(
        public readonly int $status,
        public readonly array $headers,
        public readonly string $body,
    ) {
    }

    /** The body parsed as JSON, or null when it is not JSON. */
    public function json(): mixed
    {
        try {
            return json_decode($this->body, true, 64, JSON_THROW_ON_ERROR);
        } catch (\JsonException) {
            return null;
        }
    }
}
