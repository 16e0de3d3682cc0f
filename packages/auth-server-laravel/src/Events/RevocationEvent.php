<?php

declare(strict_types=1);

namespace Rw3iss\AuthServer\Events;

/**
 * What the revocation list reports (dispatched on Laravel's event bus; the
 * Node verifier's `revocation.onEvent`). Carries no token.
 *
 * Types: `ready` (clients, tokens: the first complete read), `sync_failed` (error: a message,
 * stale_seconds: since the last complete read, null before the first; the last copy stays in use),
 * `recovered` (stale_seconds: a read succeeded after failures), `fail_closed` (stale_seconds:
 * `fail_closed_after` passed without a complete read; every token is refused until one succeeds).
 * Each is dispatched by the worker that made the read, once per read.
 */
final class RevocationEvent
{
    /** @param array<string, mixed> $data */
    public function __construct(public readonly string $type, public readonly array $data)
    {
    }
}
