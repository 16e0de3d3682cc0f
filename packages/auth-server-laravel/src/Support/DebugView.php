<?php

declare(strict_types=1);

namespace Rw3iss\AuthServer\Support;

/**
 * What a class's __debugInfo() returns (var_dump(), print_r(), a stack trace's arguments):
 * its properties, the named ones as `[redacted]`, and every object by class name only (a cache
 * store may be the token manager's, a closure may hold the client secret).
 *
 * @internal
 */
final class DebugView
{
    /**
     * @param array<string, mixed> $properties the class's get_object_vars($this)
     * @param list<string> $redacted
     * @return array<string, mixed>
     */
    public static function of(array $properties, array $redacted = []): array
    {
        foreach ($properties as $name => $value) {
            if (in_array($name, $redacted, true)) {
                $properties[$name] = '[redacted]';
            } elseif (is_object($value)) {
                $properties[$name] = $value::class;
            }
        }

        return $properties;
    }
}
