<?php

declare(strict_types=1);

namespace Rw3iss\AuthServer\Tests\Fixtures;

use Rw3iss\AuthServer\Support\Clock;

/** A clock that moves only when a test says so. */
final class FixedClock implements Clock
{
    public function __construct(public float $now)
    {
    }

    public function now(): float
    {
        return $this->now;
    }

    public function advance(float $seconds): void
    {
        $this->now += $seconds;
    }
}
