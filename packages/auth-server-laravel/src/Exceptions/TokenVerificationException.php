<?php

declare(strict_types=1);

namespace Rw3iss\AuthServer\Exceptions;

/**
 * A presented service token that was missing or refused, with its RFC 6750
 * HTTP mapping. The same codes, reasons and answers as the Node SDK's
 * `TokenVerificationError`.
 *
 * `errorCode`:
 * - `missing_token`: no bearer token (401, `WWW-Authenticate: Bearer`);
 * - `invalid_token`: malformed, bad signature, unknown key, wrong `alg`, `typ`, `token_type`,
 *   issuer or audience, not yet valid, lifetime over the cap (401);
 * - `token_expired`: `exp` has passed (401, `invalid_token` in the challenge);
 * - `insufficient_scope`: a valid token without the required scope (403).
 *
 * {@see $reason} details `invalid_token` for logs and tests (`malformed`, `signature`,
 * `unknown_key`, `algorithm`, `type`, `token_type`, `issuer`, `audience`, `claims`,
 * `not_yet_valid`, `lifetime`, `jwks_unavailable`; with the revocation feed on, `revoked`: the
 * token or its credential was revoked or disabled, and `revocation_unavailable`: the feed was
 * never read, or not for `fail_closed_after`); it is never sent to the caller.
 */
final class TokenVerificationException extends AuthServerException
{
    // Fixed, caller-safe descriptions: the wire never says why a token failed
    // beyond its code, and these stay within RFC 6750's quoted-string charset.
    private const DESCRIPTIONS = [
        'missing_token' => 'A bearer token is required',
        'invalid_token' => 'The access token is invalid',
        'token_expired' => 'The access token expired',
        'insufficient_scope' => 'The access token lacks the required scope',
    ];

    /**
     * @param list<string> $requiredScopes for `insufficient_scope`: the scopes the route asked for
     */
    public function __construct(
        string $errorCode,
        string $message,
        public readonly ?string $reason = null,
        public readonly array $requiredScopes = [],
    ) {
        parent::__construct($errorCode, $message);
    }

    public static function invalid(string $reason, string $message): self
    {
        return new self('invalid_token', $message, $reason);
    }

    /** 403 for `insufficient_scope`, 401 otherwise (RFC 6750 §3.1). */
    public function httpStatus(): int
    {
        return $this->errorCode === 'insufficient_scope' ? 403 : 401;
    }

    /** A caller-safe description of the code (no verification detail). */
    public function description(): string
    {
        return self::DESCRIPTIONS[$this->errorCode];
    }

    /**
     * The `WWW-Authenticate` header value (RFC 6750 §3): `Bearer` for a missing token,
     * `Bearer error="invalid_token", …` for a refused one, `Bearer error="insufficient_scope", …, scope="…"`.
     */
    public function wwwAuthenticate(): string
    {
        return match ($this->errorCode) {
            'missing_token' => 'Bearer',
            'insufficient_scope' => sprintf(
                'Bearer error="insufficient_scope", error_description="%s", scope="%s"',
                $this->description(),
                implode(' ', $this->requiredScopes),
            ),
            default => sprintf('Bearer error="invalid_token", error_description="%s"', $this->description()),
        };
    }
}
