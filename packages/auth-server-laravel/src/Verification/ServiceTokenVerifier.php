<?php

declare(strict_types=1);

namespace Rw3iss\AuthServer\Verification;

use Rw3iss\AuthServer\Exceptions\AuthServerException;
use Rw3iss\AuthServer\Exceptions\TokenVerificationException;
use Rw3iss\AuthServer\Support\CarbonClock;
use Rw3iss\AuthServer\Support\Clock;
use Rw3iss\AuthServer\Support\DebugView;
use stdClass;

/**
 * Verifies service tokens locally: JWTs with header `typ: at+jwt` (RFC 9068)
 * and claim `token_type: "service"`, signed with the platform's
 * `JWT_ACCESS_SECRET` (HS256; a previous one during a rotation) or with the
 * server's private key (ES256 / EdDSA; public keys from `public_keys` or the
 * server's JWKS, {@see JwksKeySet}).
 *
 * It reaches the same decision as the Node SDK's verifier (jose) on every
 * token, checked by the shared vectors, in the same order: compact form,
 * header, `crit`, `alg` allow-list, key (by `kid`, or each secret in turn),
 * signature (constant-time), payload, `typ`, `iss`, `aud`, `iat`, `nbf`,
 * `exp` (with leeway), lifetime cap (`iat` required, 0 ≤ `exp − iat` ≤ `max_lifetime`, both integers, `iat` not in the future), `token_type`, client,
 * revocation (with a {@see RevocationList}), scopes.
 *
 * ```php
 * $verifier = new ServiceTokenVerifier([
 *     'secret' => env('JWT_ACCESS_SECRET'),
 *     'issuer' => 'https://auth.example.com',
 *     'audience' => 'catalog-api',
 * ]);
 * $principal = $verifier->verify($token, ['gsku:publish']);
 * ```
 */
final class ServiceTokenVerifier
{
    public const ALGORITHMS = ['HS256' => 'sha256', 'HS384' => 'sha384', 'HS512' => 'sha512'];
    public const ASYMMETRIC_ALGORITHMS = ['ES256', 'EdDSA'];
    public const DEFAULT_MAX_LIFETIME = 86400;
    private const MIN_SECRET_BYTES = 32;
    private const ACCESS_TOKEN_TYP = 'at+jwt';

    /** @var list<array{kid: string, secret: string}> current first: the order kid-less tokens are tried in */
    private array $keys = [];
    /** @var array<string, string> kid => secret */
    private array $byKid = [];
    /** @var list<string>|false */
    private array|false $issuer;
    /** @var list<string>|false */
    private array|false $audience;
    /** @var list<string> */
    private array $algorithms;
    private int|float $clockTolerance;
    private int $maxLifetime;
    private Clock $clock;
    /** @var array<string, PublicKey> static public keys (`public_keys`), by kid */
    private array $publicKeys = [];

    /**
     * @param array{
     *     secret?: string|null,
     *     previous_secrets?: list<string>|string|null,
     *     public_keys?: list<array<string, string>>,
     *     issuer: string|list<string>|false,
     *     audience: string|list<string>|false,
     *     algorithms?: list<string>,
     *     clock_tolerance?: int|float,
     *     max_lifetime?: int,
     * } $options `issuer` and `audience` are required; `false` skips that check on purpose.
     *   `secret` verifies HS* tokens; `public_keys` (JWKs: EC P-256, Ed25519) and/or `$jwks` (the
     *   server's JWKS URI) verify ES256 / EdDSA tokens; one of them is required.
     *   `algorithms` defaults to `['HS256']` with a secret, plus ES256 and EdDSA with public keys
     *   (`none` never; a secret only for HS*, a public key only for its own algorithm).
     *   `clock_tolerance` (seconds, for `exp`/`nbf`) defaults to 5. `max_lifetime` (seconds, the
     *   largest `exp − iat` accepted) defaults to 24 h.
     */
    public function __construct(
        array $options,
        ?Clock $clock = null,
        private readonly ?JwksKeySet $jwks = null,
        private readonly ?RevocationList $revocations = null,
    ) {
        $this->issuer = self::expected($options['issuer'] ?? null, 'issuer');
        $this->audience = self::expected($options['audience'] ?? null, 'audience');

        $publicKeys = $options['public_keys'] ?? [];
        if (!is_array($publicKeys) || !array_is_list($publicKeys)) {
            self::invalid('public_keys must be a list of JWKs');
        }
        foreach ($publicKeys as $i => $jwk) {
            $key = PublicKey::fromJwk($jwk);
            if (is_string($key)) {
                self::invalid("public_keys[{$i}] cannot be used: {$key}");
            }
            $this->publicKeys[$key->kid] = $key;
        }
        $secret = $options['secret'] ?? null;
        $hasSecret = $secret !== null && $secret !== '';
        $hasPublicKeys = $this->publicKeys !== [] || $jwks !== null;
        if (!$hasSecret && !$hasPublicKeys) {
            self::invalid('secret (HS256, JWT_ACCESS_SECRET), or public_keys / jwks_uri (ES256, EdDSA), is required');
        }

        $all = [...array_keys(self::ALGORITHMS), ...self::ASYMMETRIC_ALGORITHMS];
        $algorithms = $options['algorithms'] ?? [...($hasSecret ? ['HS256'] : []), ...($hasPublicKeys ? self::ASYMMETRIC_ALGORITHMS : [])];
        if (!is_array($algorithms) || $algorithms === [] || array_filter($algorithms, static fn ($a) => !in_array($a, $all, true)) !== []) {
            self::invalid('algorithms must be a non-empty list of ' . implode(', ', $all));
        }
        $this->algorithms = array_values(array_unique($algorithms));
        $hmac = array_intersect($this->algorithms, array_keys(self::ALGORITHMS)) !== [];
        if ($hmac && !$hasSecret) {
            self::invalid('HS* algorithms need a secret: without one, only ES256 / EdDSA can be verified');
        }
        if (!$hasPublicKeys && array_intersect($this->algorithms, self::ASYMMETRIC_ALGORITHMS) !== []) {
            self::invalid('ES256 / EdDSA need public_keys or jwks_uri');
        }

        $tolerance = $options['clock_tolerance'] ?? 5;
        if (!(is_int($tolerance) || is_float($tolerance)) || !is_finite((float) $tolerance) || $tolerance < 0) {
            self::invalid('clock_tolerance must be a number of seconds ≥ 0');
        }
        $this->clockTolerance = $tolerance;

        $maxLifetime = $options['max_lifetime'] ?? self::DEFAULT_MAX_LIFETIME;
        if (!is_int($maxLifetime) || $maxLifetime <= 0) {
            self::invalid('max_lifetime must be an integer number of seconds > 0');
        }
        $this->maxLifetime = $maxLifetime;

        $this->clock = $clock ?? new CarbonClock();
        if ($hasSecret) {
            $this->setSecrets($secret, $options['previous_secrets'] ?? []);
        }
    }

    /**
     * Replaces the secrets (e.g. after a rotation), for HS* tokens.
     *
     * @param list<string>|string|null $previousSecrets
     */
    public function setSecrets(#[\SensitiveParameter] mixed $secret, #[\SensitiveParameter] mixed $previousSecrets = []): void
    {
        if ($previousSecrets === null || $previousSecrets === '') {
            $previousSecrets = [];
        }
        if (is_string($previousSecrets)) {
            $previousSecrets = [$previousSecrets];
        }
        if (!is_array($previousSecrets)) {
            self::invalid('previous_secrets must be a list of strings');
        }
        $keys = [];
        foreach ([$secret, ...array_values($previousSecrets)] as $i => $value) {
            $name = $i === 0 ? 'secret' : 'previous_secrets[' . ($i - 1) . ']';
            if (!is_string($value)) {
                self::invalid("{$name} must be a string");
            }
            // RFC 7518 §3.2: an HMAC key must be at least as long as the hash output.
            if (strlen($value) < self::MIN_SECRET_BYTES) {
                self::invalid(sprintf('%s is too short: at least %d bytes are required (RFC 7518 §3.2)', $name, self::MIN_SECRET_BYTES));
            }
            $keys[] = ['kid' => KeyId::forSecret($value), 'secret' => $value];
        }
        $byKid = [];
        // The current secret wins if an old one is configured again by mistake.
        foreach (array_reverse($keys) as $key) {
            $byKid[$key['kid']] = $key['secret'];
        }
        $this->keys = $keys;
        $this->byKid = $byKid;
    }

    /**
     * What var_dump() / print_r() show (a stack trace's arguments, an error reporter's dump):
     * everything but the secrets.
     *
     * @return array<string, mixed>
     */
    public function __debugInfo(): array
    {
        // Collaborators (key set, revocation list) by class name: their cache may hold access tokens.
        return DebugView::of(get_object_vars($this), ['keys', 'byKid']);
    }

    /**
     * Verifies `$token` (the bare JWT, without `Bearer `) and the required scopes.
     *
     * @param list<string> $scopes required scopes (default none)
     * @param 'all'|'any' $mode every scope (default) or one of them
     * @throws TokenVerificationException
     */
    public function verify(?string $token, array $scopes = [], string $mode = 'all'): ServicePrincipal
    {
        if ($token === null || $token === '') {
            throw new TokenVerificationException('missing_token', 'No bearer token was presented');
        }
        $principal = $this->verifyToken($token);
        // Only a token that passed every other check can make the list read the feed.
        $this->revocations?->check($principal->clientId, $principal->claims['iat'], $principal->claims['jti'] ?? null);
        self::checkScopes($principal->scopes, $scopes, $mode);

        return $principal;
    }

    private function verifyToken(string $token): ServicePrincipal
    {
        $parts = explode('.', $token);
        if (count($parts) !== 3) {
            throw TokenVerificationException::invalid('malformed', 'The token is not a compact JWS');
        }
        [$head, $body, $signature] = $parts;
        $header = self::decodeJsonObject($head);
        if ($header === null) {
            throw TokenVerificationException::invalid('malformed', 'The token header is invalid');
        }

        self::checkCrit($header);
        $alg = $header->alg ?? null;
        if (!is_string($alg) || $alg === '') {
            throw TokenVerificationException::invalid('malformed', 'The token has no alg');
        }
        if (!in_array($alg, $this->algorithms, true)) {
            throw TokenVerificationException::invalid('algorithm', 'The token algorithm is not allowed');
        }

        if (in_array($alg, self::ASYMMETRIC_ALGORITHMS, true)) {
            $claims = $this->verifyAsymmetric($header, $alg, $head, $body, $signature);
            $this->checkClaims($header, $claims);

            return self::principal($claims);
        }

        // Tokens carry a kid (KeyId) that names the key; a token without one is
        // tried against each configured secret in turn.
        if (property_exists($header, 'kid')) {
            $secret = is_string($header->kid) ? ($this->byKid[$header->kid] ?? null) : null;
            if ($secret === null) {
                throw TokenVerificationException::invalid('unknown_key', 'The token was signed with an unknown key');
            }
            $candidates = [$secret];
        } else {
            $candidates = array_column($this->keys, 'secret');
        }

        if (preg_match('/^[\x00-\x7F]*$/D', $body) !== 1) {
            throw TokenVerificationException::invalid('malformed', 'The token payload is not ASCII');
        }
        $given = Base64Url::decode($signature);
        if ($given === null) {
            throw TokenVerificationException::invalid('malformed', 'The token signature is not base64url');
        }
        $verified = false;
        foreach ($candidates as $secret) {
            $expected = hash_hmac(self::ALGORITHMS[$alg], "{$head}.{$body}", $secret, true);
            if (hash_equals($expected, $given)) {
                $verified = true;
                break;
            }
        }
        if (!$verified) {
            throw TokenVerificationException::invalid('signature', 'The token signature is invalid');
        }
        self::refuseUnencodedPayload($header);

        $claims = self::decodeJsonObject($body);
        if ($claims === null) {
            throw TokenVerificationException::invalid('malformed', 'The token payload is not a JSON object');
        }
        $this->checkClaims($header, $claims);

        return self::principal($claims);
    }

    /**
     * ES256 / EdDSA: the public key the kid names (static keys first, then the JWKS), used only
     * for its own algorithm, so a public key can never serve as an HMAC secret.
     */
    private function verifyAsymmetric(stdClass $header, string $alg, string $head, string $body, string $signature): stdClass
    {
        $kid = $header->kid ?? null;
        $key = is_string($kid) ? ($this->publicKeys[$kid] ?? $this->jwks?->get($kid)) : null;
        if ($key === null || $key->alg !== $alg) {
            if ($this->jwks !== null && !$this->jwks->loaded()) {
                throw TokenVerificationException::invalid('jwks_unavailable', 'The key set (JWKS) could not be fetched yet');
            }
            throw TokenVerificationException::invalid('unknown_key', 'The token was signed with an unknown key');
        }
        if (preg_match('/^[\x00-\x7F]*$/D', $body) !== 1) {
            throw TokenVerificationException::invalid('malformed', 'The token payload is not ASCII');
        }
        $given = Base64Url::decode($signature);
        if ($given === null) {
            throw TokenVerificationException::invalid('malformed', 'The token signature is not base64url');
        }
        if (!$key->verify("{$head}.{$body}", $given)) {
            throw TokenVerificationException::invalid('signature', 'The token signature is invalid');
        }
        self::refuseUnencodedPayload($header);
        $claims = self::decodeJsonObject($body);
        if ($claims === null) {
            throw TokenVerificationException::invalid('malformed', 'The token payload is not a JSON object');
        }

        return $claims;
    }

    /** The JSON object a base64url segment holds, or null. JSON arrays stay arrays, objects stay stdClass. */
    private static function decodeJsonObject(string $segment): ?stdClass
    {
        $json = Base64Url::decode($segment);
        if ($json === null) {
            return null;
        }
        try {
            // Invalid UTF-8 is a JSON error, as with a fatal TextDecoder.
            $value = json_decode($json, false, 512, JSON_THROW_ON_ERROR);
        } catch (\JsonException) {
            return null;
        }

        return $value instanceof stdClass ? $value : null;
    }

    /** b64 counts only when listed in crit (RFC 7797 §6); a JWT payload is always encoded. */
    private static function refuseUnencodedPayload(stdClass $header): void
    {
        if (in_array('b64', is_array($header->crit ?? null) ? $header->crit : [], true) && $header->b64 === false) {
            throw TokenVerificationException::invalid('malformed', 'JWTs must not use an unencoded payload');
        }
    }

    /** RFC 7515 §4.1.11: only `b64` (RFC 7797) is understood; any other critical extension is refused. */
    private static function checkCrit(stdClass $header): void
    {
        if (!property_exists($header, 'crit')) {
            return;
        }
        $crit = $header->crit;
        if (!is_array($crit) || $crit === []) {
            throw TokenVerificationException::invalid('malformed', 'The crit header is invalid');
        }
        foreach ($crit as $name) {
            if (!is_string($name) || $name === '') {
                throw TokenVerificationException::invalid('malformed', 'The crit header is invalid');
            }
        }
        foreach ($crit as $name) {
            if ($name !== 'b64') {
                throw TokenVerificationException::invalid('algorithm', 'The token uses an unsupported critical extension');
            }
            if (!property_exists($header, 'b64') || !is_bool($header->b64)) {
                throw TokenVerificationException::invalid('malformed', 'The b64 header is invalid');
            }
        }
    }

    private function checkClaims(stdClass $header, stdClass $claims): void
    {
        $typ = $header->typ ?? null;
        if (!is_string($typ) || self::mediaType($typ) !== self::mediaType(self::ACCESS_TOKEN_TYP)) {
            throw TokenVerificationException::invalid('type', 'The token is not an access token (typ)');
        }
        if ($this->issuer !== false && !property_exists($claims, 'iss')) {
            throw TokenVerificationException::invalid('issuer', 'The token has no iss');
        }
        if ($this->audience !== false && !property_exists($claims, 'aud')) {
            throw TokenVerificationException::invalid('audience', 'The token has no aud');
        }
        // exp and iat are required (iat for the lifetime cap); jose checks iss, aud, iat, exp in this order.
        foreach (['iat', 'exp'] as $name) {
            if (!property_exists($claims, $name)) {
                throw TokenVerificationException::invalid('claims', "The token has no {$name}");
            }
        }
        if ($this->issuer !== false && !in_array($claims->iss, $this->issuer, true)) {
            throw TokenVerificationException::invalid('issuer', 'The token has another issuer');
        }
        if ($this->audience !== false && !self::audienceMatches($claims->aud, $this->audience)) {
            throw TokenVerificationException::invalid('audience', 'The token is for another audience');
        }

        $now = floor($this->clock->now());
        $iat = $claims->iat;
        if (!self::isNumber($iat)) {
            throw TokenVerificationException::invalid('claims', 'The iat claim is not a number');
        }
        if (property_exists($claims, 'nbf')) {
            if (!self::isNumber($claims->nbf)) {
                throw TokenVerificationException::invalid('not_yet_valid', 'The nbf claim is not a number');
            }
            if ($claims->nbf > $now + $this->clockTolerance) {
                throw TokenVerificationException::invalid('not_yet_valid', 'The token is not valid yet');
            }
        }
        $exp = $claims->exp;
        if (!self::isNumber($exp)) {
            throw TokenVerificationException::invalid('claims', 'The exp claim is not a number');
        }
        if ($exp <= $now - $this->clockTolerance) {
            throw new TokenVerificationException('token_expired', 'The token expired');
        }
        // The lifetime cap: a token minted for longer than this (by a leaked or
        // misconfigured signer) is refused however far its exp is. An iat in the
        // future would stretch the cap to any date, so it is refused too.
        if (!self::isSafeInteger($iat) || !self::isSafeInteger($exp) || $exp < $iat || $exp - $iat > $this->maxLifetime
            || $iat > $now + $this->clockTolerance) {
            throw TokenVerificationException::invalid('lifetime', "The token lifetime (exp − iat) is not an integer number of seconds up to {$this->maxLifetime}, or iat is in the future");
        }
    }

    private static function principal(stdClass $claims): ServicePrincipal
    {
        if (($claims->token_type ?? null) !== 'service') {
            throw TokenVerificationException::invalid('token_type', 'Not a service token (token_type must be "service")');
        }
        $clientId = $claims->client_id ?? $claims->sub ?? null;
        if (!is_string($clientId) || $clientId === '') {
            throw TokenVerificationException::invalid('claims', 'The token has no client_id');
        }
        $scopes = self::readScopes($claims);
        if ($scopes === null) {
            throw TokenVerificationException::invalid('claims', 'The scopes / scope claim is malformed');
        }
        $serviceName = is_string($claims->service_name ?? null) ? $claims->service_name : $clientId;

        return new ServicePrincipal($clientId, $serviceName, $scopes, get_object_vars($claims));
    }

    /** @return list<string>|null */
    private static function readScopes(stdClass $claims): ?array
    {
        $scopes = $claims->scopes ?? null;
        $scope = $claims->scope ?? null;
        if (is_array($scopes)) {
            foreach ($scopes as $s) {
                if (!is_string($s)) {
                    return null;
                }
            }

            return $scopes;
        }
        if (is_string($scope)) {
            return array_values(array_filter(explode(' ', $scope), static fn (string $s) => $s !== ''));
        }
        if (!property_exists($claims, 'scopes') && !property_exists($claims, 'scope')) {
            return [];
        }

        return null;
    }

    /**
     * @param list<string> $granted
     * @param list<string> $required
     */
    private static function checkScopes(array $granted, array $required, string $mode): void
    {
        if ($required === []) {
            return;
        }
        $any = $mode === 'any';
        $held = array_intersect($required, $granted);
        $ok = $any ? $held !== [] : count($held) === count($required);
        if (!$ok) {
            throw new TokenVerificationException(
                'insufficient_scope',
                sprintf('The token lacks %s of the required scopes: %s', $any ? 'any' : 'all', implode(' ', $required)),
                null,
                array_values($required),
            );
        }
    }

    /** RFC 7515 §4.1.9: "at+jwt" and "application/at+jwt" are the same media type, compared case-insensitively. */
    private static function mediaType(string $value): string
    {
        $lower = strtolower($value);

        return str_contains($value, '/') ? $lower : "application/{$lower}";
    }

    /** @param list<string> $accepted */
    private static function audienceMatches(mixed $aud, array $accepted): bool
    {
        if (is_string($aud)) {
            return in_array($aud, $accepted, true);
        }
        if (is_array($aud)) {
            foreach ($accepted as $candidate) {
                if (in_array($candidate, $aud, true)) {
                    return true;
                }
            }
        }

        return false;
    }

    private static function isNumber(mixed $value): bool
    {
        return is_int($value) || is_float($value);
    }

    /** An integer a JSON number holds exactly (JavaScript's Number.isSafeInteger), as the Node verifier requires. */
    private static function isSafeInteger(mixed $value): bool
    {
        $max = 9007199254740991; // 2^53 − 1

        return (is_int($value) || (is_float($value) && is_finite($value) && floor($value) === $value))
            && $value >= -$max && $value <= $max;
    }

    /** @return list<string>|false */
    private static function expected(mixed $value, string $name): array|false
    {
        if ($value === false) {
            return false;
        }
        if (is_string($value) && $value !== '') {
            return [$value];
        }
        if (is_array($value) && $value !== [] && array_filter($value, static fn ($v) => !is_string($v) || $v === '') === []) {
            return array_values($value);
        }
        self::invalid("{$name} is required: a non-empty string or list of strings, or false to skip the {$name} check on purpose");
    }

    private static function invalid(string $message): never
    {
        throw AuthServerException::invalidOptions("ServiceTokenVerifier: {$message}");
    }
}
