<?php

declare(strict_types=1);

namespace Rw3iss\AuthServer\Events;

/**
 * What the token client reports (dispatched on Laravel's event bus). Carries
 * no secret and no token.
 *
 * Types, as in the Node SDK: `token_request` (attempt, scopes, audience, background),
 * `token_retry` (attempt, delay_ms, code, status), `token_acquired` (scopes, audience,
 * expires_in, renew_in, background), `token_request_failed` (scopes, audience, background,
 * error: the TokenRequestException), `token_invalidated` (scopes, audience).
 * `background` is true for a renewal ahead of expiry while the cached token is still valid.
 */
final class ServiceTokenEvent
{
    /** @param array<string, mixed> $data */
    public function __construct(public readonly string $type, public readonly array $data)
    {
    }
}
