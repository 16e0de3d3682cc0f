<?php

declare(strict_types=1);

namespace Rw3iss\AuthServer\Exceptions;

use RuntimeException;

/**
 * Base class of every exception this package throws. Switch on
 * {@see errorCode}, never on the message.
 *
 * Codes: `invalid_options`; the token request codes of {@see TokenRequestException};
 * the verification codes of {@see TokenVerificationException}.
 */
class AuthServerException extends RuntimeException
{
    public function __construct(
        public readonly string $errorCode,
        string $message,
        ?\Throwable $previous = null,
    ) {
        parent::__construct($message, 0, $previous);
    }

    /** An option the package cannot use (a programming or configuration error). */
    public static function invalidOptions(string $message): self
    {
        return new self('invalid_options', $message);
    }
}
