<?php

declare(strict_types=1);

namespace Rw3iss\AuthServer\Support;

use Illuminate\Support\Carbon;

/** Laravel's clock: follows `Carbon::setTestNow()`, so tests can move time. The default. */
final class CarbonClock implements Clock
{
    public function now(): float
    {
        return Carbon::now()->getPreciseTimestamp(3) / 1000;
    }
}
