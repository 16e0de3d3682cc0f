<?php

declare(strict_types=1);

namespace Rw3iss\AuthServer\Client;

/** The exchange failed before a complete answer arrived. Its message names the host, never the request. */
final class TransportException extends \RuntimeException
{
    public function __construct(string $message, public readonly bool $timedOut)
    {
        parent::__construct($message);
    }
}
