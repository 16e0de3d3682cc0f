<?php

declare(strict_types=1);

namespace Rw3iss\AuthServer\Client;

use Illuminate\Contracts\Cache\LockProvider;
use Illuminate\Contracts\Cache\LockTimeoutException;
use Illuminate\Contracts\Cache\Repository as Cache;
use Rw3iss\AuthServer\Events\ServiceTokenEvent;
use Rw3iss\AuthServer\Exceptions\AuthServerException;
use Rw3iss\AuthServer\Exceptions\TokenRequestException;
use Rw3iss\AuthServer\Support\Clock;
use Rw3iss\AuthServer\Support\DebugView;
use Rw3iss\AuthServer\Support\Scopes;

/**
 * Gets service tokens with the OAuth 2.0 client_credentials grant (RFC 6749
 * §4.4), the PHP twin of the Node SDK's `ServiceTokenManager`: tokens are kept
 * in Laravel's cache per (scopes, audience) until their renewal time (the
 * earlier of exp − skew and 80 % of the lifetime, minus jitter, counted from
 * when the request started), one request is made among concurrent workers (a
 * cache lock), transient failures (network, timeout, 429, 5xx) are retried
 * with backoff and full jitter, `invalid_client` / `invalid_scope` and other
 * OAuth errors never are. The client secret never appears in an exception,
 * an event or a log.
 *
 * Behind the `VenService` facade in a Laravel app:
 * ```php
 * $token = VenService::token();                    // default scopes and audience
 * $token = VenService::token(['gsku:publish']);    // a token for these scopes
 * Http::withToken($token)->post('https://catalog.internal/api/publish', $payload);
 * ```
 */
final class ServiceTokenManager
{
    private const WELL_KNOWN = '/.well-known/oauth-authorization-server';
    /**
     * Longest time a token is cached, whatever `expires_in` says: the server's longest
     * SERVICE_TOKEN_TTL (24 h). A larger value is a fault (or a hostile answer): believed, it
     * outlived the token's real `exp`, and past PHP's integer range the cache TTL came out ≤ 0,
     * so nothing was cached and every call was a grant.
     */
    private const MAX_CACHED_LIFETIME = 86400.0;

    private ?string $tokenEndpoint = null;
    private ?string $metadataUrl = null;
    private bool $allowInsecureHttp;
    /** @var array{headers: array<string, string>, params: array<string, string>} the only place the secret lives */
    private array $credentials;
    private string $clientId;
    /** @var list<string> */
    private array $defaultScopes;
    private ?string $defaultAudience;
    private float $timeout;
    /** @var array{max_attempts: int, base_delay_ms: int|float, max_delay_ms: int|float, max_retry_after_ms: int|float} */
    private array $retry;
    /** @var array{skew: int|float, lifetime_fraction: float, jitter_fraction: float} */
    private array $refresh;
    private string $cachePrefix;
    private int $lockSeconds;
    private int $lockWait;
    /** @var callable(): float */
    private $random;
    /** @var callable(int): void milliseconds */
    private $sleep;
    /** @var (callable(ServiceTokenEvent): void)|null */
    private $onEvent;

    /**
     * @param array<string, mixed> $options the `auth-server` config (see config/auth-server.php):
     *   `token_endpoint` or `server_url` (one of them), `client_id`, `client_secret`, `auth_method`,
     *   `scopes`, `audience`, `timeout`, `retry`, `refresh`, `cache.prefix`, `cache.lock_seconds`,
     *   `cache.lock_wait`, `allow_insecure_http`
     * @param (callable(): float)|null $random numbers in [0, 1) for jitter
     * @param (callable(int): void)|null $sleep waits that many milliseconds (backoff)
     * @param (callable(ServiceTokenEvent): void)|null $onEvent
     */
    public function __construct(
        #[\SensitiveParameter] array $options,
        private readonly Cache $cache,
        private readonly HttpTransport $transport,
        private readonly Clock $clock,
        ?callable $random = null,
        ?callable $sleep = null,
        ?callable $onEvent = null,
    ) {
        $allowInsecure = $options['allow_insecure_http'] ?? false;
        if (!is_bool($allowInsecure)) {
            self::invalid('allow_insecure_http must be a boolean');
        }
        $this->allowInsecureHttp = $allowInsecure;

        $endpoint = self::blankToNull($options['token_endpoint'] ?? null);
        $server = self::blankToNull($options['server_url'] ?? null);
        if (($endpoint === null) === ($server === null)) {
            self::invalid('give exactly one of token_endpoint (the token URL) or server_url (discovery via RFC 8414)');
        }
        if ($endpoint !== null) {
            $this->tokenEndpoint = $this->checkUrl($endpoint, 'token_endpoint');
        } else {
            $this->metadataUrl = self::origin($this->checkUrl($server, 'server_url')) . self::WELL_KNOWN;
        }

        $clientId = $options['client_id'] ?? null;
        $secret = $options['client_secret'] ?? null;
        if (!is_string($clientId) || $clientId === '') {
            self::invalid('client_id must be a non-empty string (AUTH_SERVER_CLIENT_ID)');
        }
        if (!is_string($secret) || $secret === '') {
            self::invalid('client_secret must be a non-empty string (AUTH_SERVER_CLIENT_SECRET)');
        }
        $this->clientId = $clientId;
        $method = $options['auth_method'] ?? 'client_secret_basic';
        $this->credentials = match ($method) {
            // RFC 6749 §2.3.1: form-urlencode id and secret, then base64 "id:secret".
            'client_secret_basic' => [
                'headers' => ['Authorization' => 'Basic ' . base64_encode(urlencode($clientId) . ':' . urlencode($secret))],
                'params' => [],
            ],
            'client_secret_post' => ['headers' => [], 'params' => ['client_id' => $clientId, 'client_secret' => $secret]],
            default => self::invalid("auth_method must be 'client_secret_basic' or 'client_secret_post'"),
        };

        $this->defaultScopes = Scopes::normalize($options['scopes'] ?? [], 'ServiceTokenManager: scopes');
        $this->defaultAudience = self::audience($options['audience'] ?? null, 'audience');
        $this->timeout = self::number($options['timeout'] ?? 10, 'timeout', 0, false);

        $retry = $options['retry'] ?? [];
        $maxAttempts = $retry['max_attempts'] ?? 4;
        if (!is_int($maxAttempts) || $maxAttempts < 1) {
            self::invalid('retry.max_attempts must be an integer ≥ 1');
        }
        $this->retry = [
            'max_attempts' => $maxAttempts,
            'base_delay_ms' => self::number($retry['base_delay_ms'] ?? 200, 'retry.base_delay_ms'),
            'max_delay_ms' => self::number($retry['max_delay_ms'] ?? 10_000, 'retry.max_delay_ms'),
            'max_retry_after_ms' => self::number($retry['max_retry_after_ms'] ?? 60_000, 'retry.max_retry_after_ms'),
        ];
        $refresh = $options['refresh'] ?? [];
        $this->refresh = [
            'skew' => self::number($refresh['skew'] ?? 60, 'refresh.skew'),
            'lifetime_fraction' => self::fraction($refresh['lifetime_fraction'] ?? 0.8, 'refresh.lifetime_fraction'),
            'jitter_fraction' => self::fraction($refresh['jitter_fraction'] ?? 0.05, 'refresh.jitter_fraction'),
        ];

        $cacheOptions = $options['cache'] ?? [];
        $this->cachePrefix = (string) ($cacheOptions['prefix'] ?? 'auth-server:token:');
        $this->lockSeconds = (int) ($cacheOptions['lock_seconds'] ?? 30);
        $this->lockWait = (int) ($cacheOptions['lock_wait'] ?? 15);

        $this->random = $random ?? static fn (): float => mt_rand() / (mt_getrandmax() + 1);
        $this->sleep = $sleep ?? static function (int $ms): void {
            usleep($ms * 1000);
        };
        $this->onEvent = $onEvent;
    }

    /**
     * A valid access token for the default (or given) scopes and audience, from
     * the cache when it can.
     *
     * @param list<string> $scopes scopes to request; empty: the configured default ones
     *   (which, when empty too, means every scope the credential holds)
     * @throws TokenRequestException
     */
    public function token(array $scopes = [], ?string $audience = null): string
    {
        $scopes = $scopes === [] ? $this->defaultScopes : Scopes::normalize($scopes, 'VenService::token scopes');
        $audience = $audience === null ? $this->defaultAudience : self::audience($audience, 'VenService::token audience');
        $key = $this->cacheKey($scopes, $audience);
        $slot = ['scopes' => $scopes, 'audience' => $audience];

        $cached = $this->cached($key);
        $now = $this->clock->now();
        if ($cached !== null && $now < $cached['renew_at']) {
            return $cached['access_token'];
        }
        if ($cached !== null) {
            // Due for renewal but still valid: one worker renews, the others keep using it.
            return $this->renewAhead($key, $slot, $cached);
        }

        $lock = $this->lock($key);
        if ($lock === null) {
            return $this->fetchAndStore($key, $slot, false)['access_token'];
        }
        try {
            $lock->block($this->lockWait);
        } catch (LockTimeoutException) {
            // The worker holding the lock is slow or gone: fetch rather than fail.
            return $this->fetchAndStore($key, $slot, false)['access_token'];
        }
        try {
            // Another worker may have fetched it while this one waited.
            $cached = $this->cached($key);
            if ($cached !== null && $this->clock->now() < $cached['renew_at']) {
                return $cached['access_token'];
            }

            return $this->fetchAndStore($key, $slot, false)['access_token'];
        } finally {
            $lock->release();
        }
    }

    /** `Bearer <token>`, for an `Authorization` header (RFC 6750 §2.1). */
    public function authorizationHeader(array $scopes = [], ?string $audience = null): string
    {
        return 'Bearer ' . $this->token($scopes, $audience);
    }

    /**
     * Drops `$token` from the cache if it is still the cached one (for those scopes and
     * audience), so the next `token()` fetches a new one. Call it when a downstream API
     * answers 401 to it. Returns whether it evicted.
     *
     * @param list<string> $scopes
     */
    public function invalidate(string $token, array $scopes = [], ?string $audience = null): bool
    {
        $scopes = $scopes === [] ? $this->defaultScopes : Scopes::normalize($scopes, 'VenService::invalidate scopes');
        $audience = $audience ?? $this->defaultAudience;
        $key = $this->cacheKey($scopes, $audience);
        $cached = $this->cached($key);
        if ($cached === null || !hash_equals($cached['access_token'], $token)) {
            return false;
        }
        $this->cache->forget($key);
        $this->emit('token_invalidated', ['scopes' => $scopes, 'audience' => $audience]);

        return true;
    }

    /**
     * @param array{scopes: list<string>, audience: ?string} $slot
     * @param array{access_token: string, expires_at: float, renew_at: float} $cached
     */
    private function renewAhead(string $key, array $slot, array $cached): string
    {
        $lock = $this->lock($key);
        if ($lock !== null && !$lock->get()) {
            return $cached['access_token'];
        }
        try {
            $fresh = $this->cached($key);
            if ($fresh !== null && $this->clock->now() < $fresh['renew_at']) {
                return $fresh['access_token'];
            }

            return $this->fetchAndStore($key, $slot, true)['access_token'];
        } catch (TokenRequestException) {
            // Reported through token_request_failed; the cached token is still valid.
            return $cached['access_token'];
        } finally {
            $lock?->release();
        }
    }

    /** @return array{access_token: string, expires_at: float, renew_at: float}|null a cached token that has not expired */
    private function cached(string $key): ?array
    {
        $value = $this->cache->get($key);
        if (!is_array($value) || !is_string($value['access_token'] ?? null)
            || !is_float($value['expires_at'] ?? null) || !is_float($value['renew_at'] ?? null)) {
            return null;
        }

        return $this->clock->now() < $value['expires_at'] ? $value : null;
    }

    private function lock(string $key): ?\Illuminate\Contracts\Cache\Lock
    {
        $store = $this->cache->getStore();

        return $store instanceof LockProvider ? $store->lock("{$key}:lock", $this->lockSeconds) : null;
    }

    /** @param list<string> $scopes */
    private function cacheKey(array $scopes, ?string $audience): string
    {
        $where = $this->tokenEndpoint ?? $this->metadataUrl;

        return $this->cachePrefix . hash('sha256', json_encode([$where, $this->clientId, $scopes, $audience], JSON_THROW_ON_ERROR));
    }

    /**
     * @param array{scopes: list<string>, audience: ?string} $slot
     * @return array{access_token: string, expires_at: float, renew_at: float}
     */
    private function fetchAndStore(string $key, array $slot, bool $background): array
    {
        try {
            $token = $this->request($slot, $background);
        } catch (TokenRequestException $e) {
            $this->emit('token_request_failed', [...$slot, 'background' => $background, 'error' => $e]);
            throw $e;
        }
        $ttl = (int) floor($token['expires_at'] - $this->clock->now());
        if ($ttl > 0) {
            $this->cache->put($key, $token, $ttl);
        }

        return $token;
    }

    /**
     * @param array{scopes: list<string>, audience: ?string} $slot
     * @return array{access_token: string, expires_at: float, renew_at: float}
     */
    private function request(array $slot, bool $background): array
    {
        $endpoint = $this->endpoint();
        $form = ['grant_type' => 'client_credentials'];
        if ($slot['scopes'] !== []) {
            $form['scope'] = implode(' ', $slot['scopes']);
        }
        if ($slot['audience'] !== null) {
            $form['audience'] = $slot['audience'];
        }

        // The secret is added inside the attempt, never captured by the closure: a stack trace's
        // arguments (zend.exception_ignore_args off) show a closure's captured variables.
        return $this->withRetries(function (int $attempt) use ($endpoint, $form, $slot, $background): array {
            $this->emit('token_request', [...$slot, 'attempt' => $attempt, 'background' => $background]);
            $startedAt = $this->clock->now();
            $response = $this->send(
                'POST',
                $endpoint,
                [...$this->credentials['headers'], 'Content-Type' => 'application/x-www-form-urlencoded', 'Accept' => 'application/json'],
                http_build_query([...$form, ...$this->credentials['params']], '', '&', PHP_QUERY_RFC1738),
                $attempt,
            );
            if (!$response instanceof HttpResponse) {
                return $response;
            }
            if ($response->status < 200 || $response->status > 299) {
                return $this->failure($response, $attempt, 'The token endpoint');
            }

            return $this->parseToken($response, $startedAt, $attempt, $slot, $background);
        });
    }

    /**
     * What var_dump() / print_r() show (a stack trace's arguments, an error reporter's dump):
     * the settings without the credentials, and collaborators (the cache holding the tokens,
     * the transport, callbacks) by class name only.
     *
     * @return array<string, mixed>
     */
    public function __debugInfo(): array
    {
        return DebugView::of(get_object_vars($this), ['credentials']);
    }

    /** The token endpoint: configured, or read once from the RFC 8414 metadata. */
    private function endpoint(): string
    {
        if ($this->tokenEndpoint !== null) {
            return $this->tokenEndpoint;
        }
        $metadataUrl = (string) $this->metadataUrl;
        $this->tokenEndpoint = $this->withRetries(function (int $attempt) use ($metadataUrl): array {
            $response = $this->send('GET', $metadataUrl, ['Accept' => 'application/json'], null, $attempt);
            if (!$response instanceof HttpResponse) {
                return $response;
            }
            if ($response->status !== 200) {
                return $this->failure($response, $attempt, 'The metadata endpoint');
            }
            $body = $response->json();
            $endpoint = is_array($body) && is_string($body['token_endpoint'] ?? null) ? $body['token_endpoint'] : null;
            $issuer = is_array($body) && is_string($body['issuer'] ?? null) ? $body['issuer'] : '';
            try {
                $url = $endpoint === null ? null : $this->checkUrl($endpoint, 'token_endpoint');
            } catch (AuthServerException) {
                $url = null;
            }
            // RFC 8414 §3.3: the metadata must name the server it was fetched from, and the secret
            // is only ever sent to that origin, whatever a wrong or poisoned document says.
            $origin = self::origin($metadataUrl);
            if ($url === null || self::origin($issuer) !== $origin || self::origin($url) !== $origin) {
                return ['ok' => false, 'retryable' => false, 'error' => new TokenRequestException(
                    'discovery_failed',
                    "{$metadataUrl} has no usable token_endpoint on its own origin, or names another issuer",
                    status: $response->status,
                    attempts: $attempt,
                )];
            }

            return ['ok' => true, 'value' => $url];
        });

        return $this->tokenEndpoint;
    }

    /**
     * Runs `$attempt` until it succeeds, fails for good, or max_attempts is reached, waiting
     * between attempts with exponential backoff and full jitter (a random delay in
     * [0, min(max_delay, base·2^(n−1)))), or what the server's Retry-After asks for. A
     * Retry-After beyond max_retry_after_ms ends the retries: waiting less would only be refused again.
     *
     * @template T
     * @param callable(int): array{ok: bool, value?: T, error?: TokenRequestException, retryable?: bool, retry_after_ms?: ?int} $attempt
     * @return T
     */
    private function withRetries(callable $attempt): mixed
    {
        for ($n = 1; ; $n++) {
            $result = $attempt($n);
            if ($result['ok']) {
                return $result['value'];
            }
            $retryAfter = $result['retry_after_ms'] ?? null;
            if ($n >= $this->retry['max_attempts'] || !$result['retryable'] || ($retryAfter ?? 0) > $this->retry['max_retry_after_ms']) {
                throw $result['error'];
            }
            $backoff = ($this->random)() * min($this->retry['max_delay_ms'], $this->retry['base_delay_ms'] * 2 ** ($n - 1));
            $delay = $retryAfter ?? (int) floor($backoff);
            $this->emit('token_retry', [
                'attempt' => $n,
                'delay_ms' => $delay,
                'code' => $result['error']->errorCode,
                'status' => $result['error']->status,
            ]);
            ($this->sleep)($delay);
        }
    }

    /**
     * One exchange; a transport failure comes back as a retryable result.
     *
     * @param array<string, string> $headers
     * @return HttpResponse|array{ok: false, error: TokenRequestException, retryable: true}
     */
    private function send(string $method, string $url, #[\SensitiveParameter] array $headers, #[\SensitiveParameter] ?string $body, int $attempt): HttpResponse|array
    {
        try {
            return $this->transport->send($method, $url, $headers, $body, $this->timeout);
        } catch (TransportException $e) {
            return ['ok' => false, 'retryable' => true, 'error' => new TokenRequestException(
                $e->timedOut ? 'timeout' : 'network_error',
                $e->getMessage(),
                attempts: $attempt,
            )];
        }
    }

    /**
     * A non-2xx answer: 429 and 5xx may be retried; other 4xx are final (RFC 6749 §5.2 errors keep their fields).
     *
     * @return array{ok: false, error: TokenRequestException, retryable: bool, retry_after_ms: ?int}
     */
    private function failure(HttpResponse $response, int $attempt, string $what): array
    {
        $body = $response->json();
        $error = is_array($body) && is_string($body['error'] ?? null) ? $body['error'] : null;
        $description = is_array($body) && is_string($body['error_description'] ?? null) ? $body['error_description'] : null;
        $transient = $response->status === 429 || $response->status >= 500;
        $code = !$transient && $error !== null ? 'oauth_error' : 'http_error';
        $message = "{$what} answered {$response->status}" . ($error === null ? '' : " {$error}");

        return [
            'ok' => false,
            'error' => new TokenRequestException($code, $message, $error, $description, $response->status, $attempt),
            'retryable' => $transient,
            'retry_after_ms' => $transient ? $this->retryAfterMs($response->headers['retry-after'] ?? null) : null,
        ];
    }

    /**
     * @param array{scopes: list<string>, audience: ?string} $slot
     * @return array{ok: bool, value?: array{access_token: string, expires_at: float, renew_at: float}, error?: TokenRequestException, retryable?: bool}
     */
    private function parseToken(HttpResponse $response, float $startedAt, int $attempt, array $slot, bool $background): array
    {
        $body = $response->json();
        $value = is_array($body) ? ($body['access_token'] ?? null) : null;
        $type = is_array($body) ? ($body['token_type'] ?? null) : null;
        $raw = is_array($body) ? ($body['expires_in'] ?? null) : null;
        $expiresIn = is_int($raw) || is_float($raw) ? (float) $raw : (is_string($raw) && is_numeric($raw) ? (float) $raw : NAN);
        if (!is_string($value) || $value === '' || !is_string($type) || strtolower($type) !== 'bearer'
            || !is_finite($expiresIn) || $expiresIn <= 0) {
            return ['ok' => false, 'retryable' => false, 'error' => new TokenRequestException(
                'invalid_response',
                'The token endpoint answered without a Bearer access_token and a positive expires_in',
                status: $response->status,
                attempts: $attempt,
            )];
        }
        $expiresIn = min($expiresIn, self::MAX_CACHED_LIFETIME);
        // Renew at the earlier of exp − skew and lifetime_fraction of the lifetime, minus some
        // jitter, counted from when the request started (the server's clock started the
        // lifetime no earlier than that).
        $jitter = ($this->random)() * $this->refresh['jitter_fraction'] * $expiresIn;
        $renewIn = max(0.0, min($expiresIn - $this->refresh['skew'], $expiresIn * $this->refresh['lifetime_fraction']) - $jitter);
        $this->emit('token_acquired', [...$slot, 'expires_in' => $expiresIn, 'renew_in' => $renewIn, 'background' => $background]);

        return ['ok' => true, 'value' => [
            'access_token' => $value,
            'expires_at' => $startedAt + $expiresIn,
            'renew_at' => $startedAt + $renewIn,
        ]];
    }

    /** `Retry-After` (RFC 9110 §10.2.3) in ms: delay-seconds or an HTTP-date. */
    private function retryAfterMs(?string $value): ?int
    {
        if ($value === null || trim($value) === '') {
            return null;
        }
        if (preg_match('/^\s*\d+\s*$/D', $value) === 1) {
            return (int) trim($value) * 1000;
        }
        $date = strtotime($value);

        return $date === false ? null : max(0, (int) (($date - $this->clock->now()) * 1000));
    }

    /** @param array<string, mixed> $data */
    private function emit(string $type, array $data): void
    {
        if ($this->onEvent === null) {
            return;
        }
        try {
            ($this->onEvent)(new ServiceTokenEvent($type, $data));
        } catch (\Throwable) {
            // A faulty listener must not break token handling.
        }
    }

    private function checkUrl(string $value, string $name): string
    {
        $parts = parse_url($value);
        $scheme = is_array($parts) ? strtolower($parts['scheme'] ?? '') : '';
        if (!is_array($parts) || !isset($parts['host']) || !in_array($scheme, ['http', 'https'], true)) {
            self::invalid("{$name} must be an absolute http(s) URL");
        }
        if ($scheme === 'http' && !$this->allowInsecureHttp && !self::isLoopback($parts['host'])) {
            self::invalid("{$name} uses plain http to a remote host, which would send the client secret unencrypted: use https, or set allow_insecure_http");
        }

        return $value;
    }

    private static function origin(string $url): ?string
    {
        $parts = parse_url($url);
        if (!is_array($parts) || !isset($parts['scheme'], $parts['host'])) {
            return null;
        }
        $scheme = strtolower($parts['scheme']);
        $port = $parts['port'] ?? null;
        $default = ['http' => 80, 'https' => 443][$scheme] ?? null;

        return $scheme . '://' . strtolower($parts['host']) . ($port === null || $port === $default ? '' : ":{$port}");
    }

    private static function isLoopback(string $host): bool
    {
        return $host === 'localhost' || $host === '[::1]' || preg_match('/^127\.\d+\.\d+\.\d+$/D', $host) === 1;
    }

    private static function blankToNull(mixed $value): ?string
    {
        if ($value === null || $value === '') {
            return null;
        }
        if (!is_string($value)) {
            self::invalid('token_endpoint and server_url must be strings');
        }

        return $value;
    }

    private static function audience(mixed $value, string $name): ?string
    {
        if ($value === null || $value === '') {
            return null;
        }
        if (!is_string($value)) {
            self::invalid("{$name} must be a non-empty string");
        }

        return $value;
    }

    private static function number(mixed $value, string $name, float $min = 0, bool $inclusive = true): float
    {
        if (!(is_int($value) || is_float($value)) || !is_finite((float) $value) || ($inclusive ? $value < $min : $value <= $min)) {
            self::invalid(sprintf('%s must be a number %s %s', $name, $inclusive ? '≥' : '>', $min));
        }

        return (float) $value;
    }

    private static function fraction(mixed $value, string $name): float
    {
        if (!(is_int($value) || is_float($value)) || $value < 0 || $value > 1) {
            self::invalid("{$name} must be between 0 and 1");
        }

        return (float) $value;
    }

    private static function invalid(string $message): never
    {
        throw AuthServerException::invalidOptions("ServiceTokenManager: {$message}");
    }
}
