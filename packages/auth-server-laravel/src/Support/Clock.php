<?php

declare(strict_types=1);

namespace Rw3iss\AuthServer\Support;

/**
 * Time as the package sees it: expiry, renewal and backoff all read it, so a
 * test (or `Carbon::setTestNow()`, with {@see CarbonClock}) controls them.
 */
interface Clock
{
    /** Seconds since the epoch, with a fraction. */
    public function now(): float;
}
