<?php

declare(strict_types=1);

namespace Rw3iss\AuthServer\Support;

use Rw3iss\AuthServer\Exceptions\AuthServerException;

/** @internal */
final class Scopes
{
    // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ). Keeping to it
    // also makes scopes safe inside RFC 6750's quoted `scope="…"` attribute.
    private const SCOPE_TOKEN = '/^[\x21\x23-\x5B\x5D-\x7E]+$/D';

    /**
     * Checks each scope is an RFC 6749 scope-token; returns them sorted and de-duplicated.
     *
     * @param mixed $scopes
     * @return list<string>
     */
    public static function normalize(mixed $scopes, string $label): array
    {
        if (!is_array($scopes)) {
            throw AuthServerException::invalidOptions("{$label} must be a list of strings");
        }
        foreach ($scopes as $scope) {
            if (!is_string($scope) || preg_match(self::SCOPE_TOKEN, $scope) !== 1) {
                throw AuthServerException::invalidOptions(sprintf(
                    '%s contains %s: a scope is a non-empty string without spaces, quotes or backslashes (RFC 6749 §3.3)',
                    $label,
                    json_encode($scope),
                ));
            }
        }
        $unique = array_values(array_unique($scopes));
        sort($unique, SORT_STRING);

        return $unique;
    }
}
