<?php

declare(strict_types=1);

namespace Rw3iss\AuthServer\Exceptions;

/**
 * A client_credentials token request (RFC 6749 §4.4) that failed, after
 * {@see $attempts} HTTP requests. Never contains the client secret.
 *
 * `errorCode` is one of:
 * - `oauth_error`: the server answered with an RFC 6749 §5.2 error (`invalid_client`,
 *   `invalid_scope`, …), in {@see $error} and {@see $errorDescription}; not retried;
 * - `http_error`: any other non-2xx answer (429 or 5xx after the last retry, 404…);
 * - `network_error`: the connection failed;
 * - `timeout`: no complete answer within the request timeout;
 * - `invalid_response`: a 2xx answer that is not a usable token response;
 * - `discovery_failed`: the RFC 8414 metadata named no usable `token_endpoint`.
 *
 * ```php
 * try { $token = VenService::token(); }
 * catch (TokenRequestException $e) { if ($e->error === 'invalid_client') report($e); }
 * ```
 */
final class TokenRequestException extends AuthServerException
{
    public function __construct(
        string $errorCode,
        string $message,
        public readonly ?string $error = null,
        public readonly ?string $errorDescription = null,
        public readonly ?int $status = null,
        public readonly int $attempts = 1,
    ) {
        parent::__construct($errorCode, $message);
    }
}
