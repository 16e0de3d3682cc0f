<?php

declare(strict_types=1);

namespace Rw3iss\AuthServer\Verification;

use Illuminate\Contracts\Cache\Lock;
use Illuminate\Contracts\Cache\LockProvider;
use Illuminate\Contracts\Cache\Repository as Cache;
use Rw3iss\AuthServer\Client\HttpResponse;
use Rw3iss\AuthServer\Client\HttpTransport;
use Rw3iss\AuthServer\Client\ServiceTokenManager;
use Rw3iss\AuthServer\Client\TransportException;
use Rw3iss\AuthServer\Events\RevocationEvent;
use Rw3iss\AuthServer\Exceptions\AuthServerException;
use Rw3iss\AuthServer\Exceptions\TokenRequestException;
use Rw3iss\AuthServer\Exceptions\TokenVerificationException;
use Rw3iss\AuthServer\Support\Clock;
use Rw3iss\AuthServer\Support\DebugView;

/**
 * A copy of the auth server's revocation feed (`GET /api/v1/oauth/revocations`),
 * the PHP twin of the Node verifier's `revocation` option, kept in Laravel's
 * cache so every worker shares one copy.
 *
 * PHP has no background poller: the copy is refreshed lazily, by the request
 * that finds it older than `interval`, under a cache lock (so N workers make one
 * feed request per interval; the others go on with the copy they have). The
 * refresh reads the delta since the stored cursor, page by page until `has_more`
 * is false, with `If-None-Match` when nothing is expected to have changed.
 *
 * Policy, as in Node: until the feed was read completely once, every token is
 * refused (reason `revocation_unavailable`); once loaded, an unreachable feed
 * keeps the last copy in use (event `sync_failed`), unless `fail_closed_after`
 * seconds pass without a complete read, after which every token is refused
 * (event `fail_closed`) until a read succeeds (event `recovered`).
 */
final class RevocationList
{
    /** Pages read in one refresh at most (each ≤ 200 entries): a runaway feed cannot hold a request. */
    private const MAX_PAGES = 1000;
    private const VERSION = 1;
    /** The scope a reader of the feed needs. */
    public const SCOPE = 'auth:revocations:read';
    public const PATH = '/api/v1/oauth/revocations';

    private string $cacheKey;
    private int $lockSeconds;
    /** @var (callable(RevocationEvent): void)|null */
    private $onEvent;

    /**
     * @param ServiceTokenManager|\Closure(): string $token where the feed's bearer token comes from (a
     *   credential holding `auth:revocations:read`); a manager's token the feed refuses with 401 is invalidated
     * @param float $interval seconds between two reads of the feed (the bound on how long a revoked token is still accepted)
     * @param float $timeout seconds per feed request, and the longest a request waits for another worker's first read
     * @param float|null $failClosedAfter refuse every token once the feed was not read completely for this long; null: never
     * @param int $maxTokenLifetime the longest token lifetime the verifier accepts: entries are forgotten after it
     * @param (callable(RevocationEvent): void)|null $onEvent
     */
    public function __construct(
        private readonly string $url,
        private readonly ServiceTokenManager|\Closure $token,
        private readonly Cache $cache,
        private readonly HttpTransport $transport,
        private readonly Clock $clock,
        private readonly float $interval = 2.0,
        private readonly float $timeout = 2.5,
        private readonly ?float $failClosedAfter = null,
        private readonly int $maxTokenLifetime = ServiceTokenVerifier::DEFAULT_MAX_LIFETIME,
        ?callable $onEvent = null,
        string $prefix = 'auth-server:revocations:',
    ) {
        if (!self::isHttpUrl($url)) {
            throw AuthServerException::invalidOptions('revocation: url must be an absolute http(s) URL');
        }
        foreach (['interval' => $interval, 'timeout' => $timeout] as $name => $value) {
            if (!is_finite($value) || $value <= 0) {
                throw AuthServerException::invalidOptions("revocation: {$name} must be a number of seconds > 0");
            }
        }
        if ($failClosedAfter !== null && (!is_finite($failClosedAfter) || $failClosedAfter <= 0)) {
            throw AuthServerException::invalidOptions('revocation: fail_closed_after must be a number of seconds > 0, or null');
        }
        $this->onEvent = $onEvent;
        // Short: a worker that dies while reading holds the others up at most this long. Two reads
        // at once (a read longer than this) are harmless: each stores a consistent copy.
        $this->lockSeconds = max(1, (int) ceil(2 * $timeout));
        $this->cacheKey = $prefix . hash('sha256', $url);
    }

    /**
     * The list the `revocation` block of the `auth-server` config describes (see config/auth-server.php):
     * the feed at `revocation.url`, or derived from `server_url`, `verify.issuer` or `token_endpoint`;
     * read with a token of its own ServiceTokenManager (`revocation.client_id` / `client_secret`, or
     * the calling credential's), asking only for `auth:revocations:read`, for the server's own audience.
     *
     * @param array<string, mixed> $config the whole `auth-server` config
     * @param (callable(RevocationEvent): void)|null $onEvent
     */
    public static function fromConfig(array $config, Cache $cache, HttpTransport $transport, Clock $clock, ?callable $onEvent = null): self
    {
        $options = $config['revocation'] ?? [];
        $blank = static fn (mixed $v): ?string => is_string($v) && $v !== '' ? $v : null;
        $serverUrl = $blank($config['server_url'] ?? null);
        $tokenEndpoint = $blank($config['token_endpoint'] ?? null);
        $issuer = $blank($config['verify']['issuer'] ?? null);
        $url = $blank($options['url'] ?? null);
        if ($url === null) {
            $base = $serverUrl ?? $issuer;
            if ($base !== null) {
                $url = rtrim($base, '/') . self::PATH;
            } elseif ($tokenEndpoint !== null && preg_match('#^(.*)/oauth/token/?$#D', $tokenEndpoint, $m) === 1) {
                $url = $m[1] . '/oauth/revocations';
            } else {
                throw AuthServerException::invalidOptions('revocation: set revocation.url, or server_url / verify.issuer to derive it from');
            }
        }
        $allowInsecure = ($config['allow_insecure_http'] ?? false) === true;
        // The feed carries a bearer token, and anyone in the path could hide revocations.
        if (!self::isHttpUrl($url) || (!$allowInsecure && !self::isSafeUrl($url))) {
            throw AuthServerException::invalidOptions('revocation: url must be https (plain http only to a loopback address, or with allow_insecure_http)');
        }
        $clientId = $blank($options['client_id'] ?? null);
        $reader = new ServiceTokenManager(
            [
                'token_endpoint' => $tokenEndpoint,
                'server_url' => $tokenEndpoint === null ? ($serverUrl ?? $issuer) : null,
                'client_id' => $clientId ?? ($config['client_id'] ?? null),
                'client_secret' => $clientId !== null ? ($options['client_secret'] ?? null) : ($config['client_secret'] ?? null),
                'auth_method' => $config['auth_method'] ?? 'client_secret_basic',
                'scopes' => [self::SCOPE],
                'audience' => null,                                  // the server's own audience
                'timeout' => self::seconds($options['timeout'] ?? 2.5, 'timeout'),
                'allow_insecure_http' => $allowInsecure,
                'retry' => ['max_attempts' => 1],                  // the next read retries
                'cache' => $config['cache'] ?? [],
            ],
            $cache,
            $transport,
            $clock,
        );
        $failClosedAfter = $options['fail_closed_after'] ?? null;

        return new self(
            $url,
            $reader,
            $cache,
            $transport,
            $clock,
            self::seconds($options['interval'] ?? 2, 'interval'),
            self::seconds($options['timeout'] ?? 2.5, 'timeout'),
            $failClosedAfter === null ? null : self::seconds($failClosedAfter, 'fail_closed_after'),
            (int) ($config['verify']['max_lifetime'] ?? ServiceTokenVerifier::DEFAULT_MAX_LIFETIME),
            $onEvent,
        );
    }

    /**
     * Refuses the token (its credential's client_id, its iat and jti) if the feed revokes it, or if
     * the copy cannot be trusted (never loaded, or fail-closed). Refreshes the copy first when due.
     *
     * @throws TokenVerificationException `invalid_token`, reason `revoked` or `revocation_unavailable`
     */
    public function check(string $clientId, int|float $iat, mixed $jti): void
    {
        $state = $this->current();
        if ($state === null || $state['synced_at'] === null) {
            throw TokenVerificationException::invalid('revocation_unavailable', 'The revocation feed has not been read yet');
        }
        if ($state['failed_closed']) {
            throw TokenVerificationException::invalid('revocation_unavailable', 'The revocation feed could not be read for too long (fail_closed_after)');
        }
        if (array_key_exists($clientId, $state['clients'])) {
            $notBefore = $state['clients'][$clientId]['not_before'];
            if ($notBefore === null || $iat < $notBefore) {
                throw TokenVerificationException::invalid('revoked', 'The token, or its credential, was revoked');
            }
        }
        if (is_string($jti) && isset($state['tokens'][$jti])) {
            throw TokenVerificationException::invalid('revoked', 'The token, or its credential, was revoked');
        }
    }

    /**
     * Reads the feed now (under the lock, unless another worker is reading it), whatever the
     * interval says: e.g. from a scheduled command or at deploy. Returns whether the copy is complete.
     */
    public function sync(): bool
    {
        $lock = $this->lock();
        if ($lock !== null && !$this->waitFor($lock)) {
            return $this->synced($this->load());
        }
        try {
            return $this->synced($this->refresh($this->load() ?? $this->fresh()));
        } finally {
            $lock?->release();
        }
    }

    /** Forgets the local copy (every worker's): the next check reads the whole feed again. */
    public function forget(): void
    {
        $this->cache->forget($this->cacheKey);
    }

    /**
     * The copy to decide with, refreshed first when it is due:
     * - not due (read less than `interval` ago): as is;
     * - due, and this worker gets the lock: refreshed now;
     * - due, another worker refreshing: as is, unless it was never loaded, or is older than one
     *   interval plus one request while the feed was not failing (an idle service waking up):
     *   then wait (at most `timeout`) for that worker's read.
     *
     * @return array<string, mixed>|null
     */
    private function current(): ?array
    {
        $state = $this->load();
        if ($state !== null && !$this->due($state)) {
            return $state;
        }
        $lock = $this->lock();
        if ($lock === null) {
            return $this->refresh($state ?? $this->fresh());
        }
        if (!$lock->get()) {
            $stale = $state === null || $state['synced_at'] === null
                || (!$state['failing'] && $this->clock->now() - $state['synced_at'] > $this->interval + $this->timeout);
            if (!$stale || !$this->waitFor($lock)) {
                return $state;
            }
        }
        try {
            // Another worker may have read it while this one waited.
            $state = $this->load();
            if ($state !== null && !$this->due($state)) {
                return $state;
            }

            return $this->refresh($state ?? $this->fresh());
        } finally {
            $lock->release();
        }
    }

    /** @param array<string, mixed> $state */
    private function due(array $state): bool
    {
        return $this->clock->now() - $state['attempted_at'] >= $this->interval;
    }

    /** @param array<string, mixed>|null $state */
    private function synced(?array $state): bool
    {
        return $state !== null && $state['synced_at'] !== null && !$state['failing'];
    }

    /**
     * One refresh: every page since the stored cursor; stores the result (on failure, the pages read
     * so far, but no complete read) and reports what changed.
     *
     * @param array<string, mixed> $state
     * @return array<string, mixed>
     */
    private function refresh(array $state): array
    {
        $startedAt = $this->clock->now();
        $state['attempted_at'] = $startedAt;
        try {
            for ($page = 0; $page < self::MAX_PAGES; $page++) {
                if (!$this->readPage($state)) {
                    break;
                }
            }
        } catch (\RuntimeException $e) {
            return $this->failed($state, $e);
        }
        $now = $this->clock->now();
        $wasLoaded = $state['synced_at'] !== null;
        $wasFailing = $state['failing'];
        $staleSeconds = $wasLoaded ? $now - $state['synced_at'] : null;
        $state['synced_at'] = $now;
        $state['failing'] = false;
        $state['failed_closed'] = false;
        $state = $this->prune($state, $now);
        $this->store($state);
        if (!$wasLoaded) {
            $this->emit('ready', ['clients' => count($state['clients']), 'tokens' => count($state['tokens'])]);
        } elseif ($wasFailing) {
            $this->emit('recovered', ['stale_seconds' => $staleSeconds]);
        }

        return $state;
    }

    /**
     * @param array<string, mixed> $state
     * @return array<string, mixed>
     */
    private function failed(array $state, \RuntimeException $error): array
    {
        $now = $this->clock->now();
        // Counted from the last complete read, or from the first attempt before one.
        $staleSeconds = $now - ($state['synced_at'] ?? $state['created_at']);
        $state['failing'] = true;
        $closing = $this->failClosedAfter !== null && $staleSeconds >= $this->failClosedAfter && !$state['failed_closed'];
        if ($closing) {
            $state['failed_closed'] = true;
        }
        $this->store($state);
        $this->emit('sync_failed', ['error' => $error->getMessage(), 'stale_seconds' => $state['synced_at'] === null ? null : $staleSeconds]);
        if ($closing) {
            $this->emit('fail_closed', ['stale_seconds' => $staleSeconds]);
        }

        return $state;
    }

    /**
     * Reads one page into `$state`; returns whether another one is waiting.
     *
     * @param array<string, mixed> $state
     * @throws \RuntimeException when the page cannot be read
     */
    private function readPage(array &$state): bool
    {
        $token = $this->bearer();
        $url = $this->url;
        if ($state['cursor'] !== null) {
            $url .= (str_contains($url, '?') ? '&' : '?') . 'since=' . rawurlencode($state['cursor']);
        }
        $headers = ['Accept' => 'application/json', 'Authorization' => "Bearer {$token}"];
        if ($state['etag'] !== null && $state['etag']['cursor'] === $state['cursor']) {
            $headers['If-None-Match'] = $state['etag']['value'];
        }
        try {
            $response = $this->transport->send('GET', $url, $headers, null, $this->timeout);
        } catch (TransportException $e) {
            throw new \RuntimeException($e->getMessage(), 0, $e);
        }
        if ($response->status === 304) {
            // Only an answer to our If-None-Match: without one (a proxy's, a broken server's) it says
            // nothing about the feed and must not count as a read (it would make an empty copy current).
            if (!isset($headers['If-None-Match'])) {
                throw new \RuntimeException('the revocation feed answered 304 to a request without If-None-Match');
            }

            return false;
        }
        if ($response->status === 401 && $this->token instanceof ServiceTokenManager) {
            // A token the feed no longer takes (e.g. the server's secret rotated): the next read gets a new one.
            $this->token->invalidate($token, [self::SCOPE]);
        }
        if ($response->status !== 200) {
            throw new \RuntimeException("the revocation feed answered {$response->status}");
        }
        $page = self::readBody($response);
        if ($page === null) {
            throw new \RuntimeException('the revocation feed answered with a malformed body');
        }
        $keep = $this->maxTokenLifetime + 60;
        // In feed order: a later entry for a client_id replaces the earlier one (enabled again after a disable).
        foreach ($page['clients'] as $entry) {
            $notBefore = $entry['not_before'];
            $state['clients'][$entry['client_id']] = [
                'not_before' => $notBefore,
                'until' => ($notBefore ?? (int) floor((float) strtotime($entry['revoked_at']))) + $keep,
            ];
        }
        foreach ($page['tokens'] as $entry) {
            $state['tokens'][$entry['jti']] = $entry['exp'];
        }
        $etag = $response->headers['etag'] ?? null;
        $state['etag'] = is_string($etag) && $etag !== '' && !$page['has_more'] ? ['cursor' => $page['cursor'], 'value' => $etag] : null;
        $state['cursor'] = $page['cursor'];

        return $page['has_more'];
    }

    /** The feed's bearer token; a failure to get one is a failed read. */
    private function bearer(): string
    {
        try {
            $token = $this->token instanceof ServiceTokenManager
                ? $this->token->token([self::SCOPE])
                : ($this->token)();
        } catch (TokenRequestException $e) {
            throw new \RuntimeException('no token for the revocation feed: ' . $e->getMessage(), 0, $e);
        }
        if (!is_string($token) || $token === '') {
            throw new \RuntimeException('the revocation feed token source returned no token');
        }

        return $token;
    }

    /**
     * @return array{cursor: string, has_more: bool, clients: list<array{client_id: string, revoked_at: string, not_before: ?int}>, tokens: list<array{jti: string, exp: int}>}|null
     */
    private static function readBody(HttpResponse $response): ?array
    {
        $body = $response->json();
        if (!is_array($body) || !is_string($body['cursor'] ?? null) || !is_bool($body['has_more'] ?? null)
            || !is_array($body['clients'] ?? null) || !array_is_list($body['clients'])
            || !is_array($body['tokens'] ?? null) || !array_is_list($body['tokens'])) {
            return null;
        }
        foreach ($body['clients'] as $c) {
            if (!is_array($c) || !is_string($c['client_id'] ?? null) || !is_string($c['revoked_at'] ?? null)
                || strtotime($c['revoked_at']) === false
                || !array_key_exists('not_before', $c) || !($c['not_before'] === null || is_int($c['not_before']))) {
                return null;
            }
        }
        foreach ($body['tokens'] as $t) {
            if (!is_array($t) || !is_string($t['jti'] ?? null) || !is_int($t['exp'] ?? null)) {
                return null;
            }
        }

        return $body;
    }

    /**
     * Forgets entries no live token can match any more: a token's after its exp, a credential's
     * once every token it refuses has expired.
     *
     * @param array<string, mixed> $state
     * @return array<string, mixed>
     */
    private function prune(array $state, float $now): array
    {
        $nowSec = (int) floor($now);
        $state['tokens'] = array_filter($state['tokens'], static fn (int $exp) => $exp >= $nowSec - 60);
        $state['clients'] = array_filter($state['clients'], static fn (array $c) => $c['until'] >= $nowSec);

        return $state;
    }

    /** @return array<string, mixed> */
    private function fresh(): array
    {
        $now = $this->clock->now();

        return [
            'v' => self::VERSION,
            'cursor' => null,
            'etag' => null,
            'clients' => [],
            'tokens' => [],
            'created_at' => $now,
            'attempted_at' => $now,
            'synced_at' => null,
            'failing' => false,
            'failed_closed' => false,
        ];
    }

    /** @return array<string, mixed>|null */
    private function load(): ?array
    {
        $state = $this->cache->get($this->cacheKey);

        return is_array($state) && ($state['v'] ?? null) === self::VERSION ? $state : null;
    }

    /** @param array<string, mixed> $state */
    private function store(array $state): void
    {
        // Without expiry: the last copy serves while the feed is unreachable.
        $this->cache->forever($this->cacheKey, $state);
    }

    private function lock(): ?Lock
    {
        $store = $this->cache->getStore();

        return $store instanceof LockProvider ? $store->lock("{$this->cacheKey}:lock", $this->lockSeconds) : null;
    }

    /** Waits at most `timeout` for the lock (another worker's read). */
    private function waitFor(Lock $lock): bool
    {
        $deadline = microtime(true) + $this->timeout;
        while (!$lock->get()) {
            if (microtime(true) >= $deadline) {
                return false;
            }
            usleep(20_000);
        }

        return true;
    }

    /** @param array<string, mixed> $data */
    private function emit(string $type, array $data): void
    {
        if ($this->onEvent === null) {
            return;
        }
        try {
            ($this->onEvent)(new RevocationEvent($type, $data));
        } catch (\Throwable) {
            // A faulty listener must not break verification.
        }
    }

    private static function seconds(mixed $value, string $name): float
    {
        if (!(is_int($value) || is_float($value)) || !is_finite((float) $value) || $value <= 0) {
            throw AuthServerException::invalidOptions("revocation: {$name} must be a number of seconds > 0");
        }

        return (float) $value;
    }

    /** https, or http to a loopback address. */
    private static function isSafeUrl(string $url): bool
    {
        $parts = parse_url($url);
        $scheme = strtolower((string) ($parts['scheme'] ?? ''));
        $host = (string) ($parts['host'] ?? '');

        return $scheme === 'https'
            || ($scheme === 'http' && ($host === 'localhost' || $host === '[::1]' || preg_match('/^127\.\d+\.\d+\.\d+$/D', $host) === 1));
    }

    private static function isHttpUrl(string $url): bool
    {
        $parts = parse_url($url);

        return is_array($parts) && isset($parts['host']) && in_array(strtolower($parts['scheme'] ?? ''), ['http', 'https'], true);
    }

    /**
     * What var_dump() / print_r() show (a stack trace's arguments, an error reporter's dump): the
     * settings and the local copy, collaborators by class name only (the cache store may be the
     * token manager's, holding access tokens; the token source holds the client secret).
     *
     * @return array<string, mixed>
     */
    public function __debugInfo(): array
    {
        return DebugView::of(get_object_vars($this));
    }
}
