<?php

declare(strict_types=1);

namespace Rw3iss\AuthServer\Verification;

use Illuminate\Contracts\Cache\Repository as Cache;
use Rw3iss\AuthServer\Client\HttpTransport;
use Rw3iss\AuthServer\Client\TransportException;
use Rw3iss\AuthServer\Exceptions\AuthServerException;
use Rw3iss\AuthServer\Support\Clock;

/**
 * The auth server's public keys from its JWKS URI (RFC 7517), kept in Laravel's
 * cache so every worker shares one copy, as the Node SDK's `RemoteKeySet` does:
 * a kid it does not know triggers at most one fetch per cooldown (across all
 * workers: an atomic `Cache::add`), so a flood of tokens with random kids costs
 * one request; a set older than its `Cache-Control: max-age` is refreshed (also
 * at most once per cooldown); when a fetch fails, the last good set keeps serving.
 */
final class JwksKeySet
{
    private const DEFAULT_MAX_AGE = 300.0;
    private const MAX_AGE_CAP = 86400.0;

    /** @var array<string, PublicKey> imported keys of the set {@see $importedId} */
    private array $keys = [];
    private ?string $importedId = null;
    private string $cacheKey;

    /**
     * @param string|null $uri the JWKS URI, or null to discover it from `$issuer`'s RFC 8414 metadata
     */
    public function __construct(
        private ?string $uri,
        private readonly ?string $issuer,
        private readonly Cache $cache,
        private readonly HttpTransport $transport,
        private readonly Clock $clock,
        private readonly float $cooldown = 30.0,
        private readonly float $timeout = 5.0,
        string $prefix = 'auth-server:jwks:',
    ) {
        foreach (['jwks_uri' => $uri, 'issuer' => $uri === null ? $issuer : null] as $name => $url) {
            if ($url !== null && !self::isSafeUrl($url)) {
                throw AuthServerException::invalidOptions("ServiceTokenVerifier: {$name} must be an https URL (plain http only to a loopback address)");
            }
        }
        if ($uri === null && $issuer === null) {
            throw AuthServerException::invalidOptions('ServiceTokenVerifier: jwks_uri, or an issuer to discover it from, is required');
        }
        $this->cacheKey = $prefix . hash('sha256', (string) ($uri ?? "discover:{$issuer}"));
    }

    /** Whether a key set was ever obtained (by any worker sharing the cache). */
    public function loaded(): bool
    {
        return $this->set() !== null;
    }

    /** The key for `$kid`, fetching the set when it is unknown or stale and the cooldown allows. */
    public function get(string $kid): ?PublicKey
    {
        $set = $this->set();
        if ($set === null || $this->clock->now() - $set['fetched_at'] >= $set['max_age']) {
            $this->refreshIfAllowed();
        }
        $key = $this->keys()[$kid] ?? null;
        if ($key === null && $this->refreshIfAllowed()) {
            $key = $this->keys()[$kid] ?? null;
        }

        return $key;
    }

    /** @return array{id: string, keys: list<mixed>, fetched_at: float, max_age: float}|null */
    private function set(): ?array
    {
        $set = $this->cache->get($this->cacheKey);

        return is_array($set) && is_string($set['id'] ?? null) && is_array($set['keys'] ?? null)
            && is_float($set['fetched_at'] ?? null) && is_float($set['max_age'] ?? null) ? $set : null;
    }

    /** @return array<string, PublicKey> */
    private function keys(): array
    {
        $set = $this->set();
        if ($set === null) {
            return [];
        }
        if ($this->importedId !== $set['id']) {
            $keys = [];
            foreach ($set['keys'] as $jwk) {
                $key = PublicKey::fromJwk($jwk);
                // Keys of other types (RSA, encryption keys) may share the set: skipped, not fatal.
                if ($key instanceof PublicKey && !isset($keys[$key->kid])) {
                    $keys[$key->kid] = $key;
                }
            }
            $this->keys = $keys;
            $this->importedId = $set['id'];
        }

        return $this->keys;
    }

    /** Fetches now unless another fetch happened within the cooldown. Returns whether it fetched. */
    private function refreshIfAllowed(): bool
    {
        if (!$this->cache->add("{$this->cacheKey}:attempt", true, max(1, (int) ceil($this->cooldown)))) {
            return false;
        }
        try {
            $uri = $this->uri ??= $this->discover();
            $response = $this->transport->send('GET', $uri, ['Accept' => 'application/jwk-set+json, application/json'], null, $this->timeout);
            $body = $response->json();
            if ($response->status !== 200 || !is_array($body) || !is_array($body['keys'] ?? null) || !array_is_list($body['keys'])) {
                return false;
            }
            // The last good set is kept without expiry: it serves while the server is unreachable.
            $this->cache->forever($this->cacheKey, [
                'id' => bin2hex(random_bytes(8)), // each fetch, so every worker re-imports a new set
                'keys' => $body['keys'],
                'fetched_at' => $this->clock->now(),
                'max_age' => $this->maxAge($response->headers['cache-control'] ?? ''),
            ]);

            return true;
        } catch (TransportException | \UnexpectedValueException) {
            // Down, slow or answering nonsense: keep the last good set (or none) until the next allowed attempt.
            return false;
        }
    }

    private function discover(): string
    {
        $issuer = (string) $this->issuer;
        $response = $this->transport->send('GET', rtrim($issuer, '/') . '/.well-known/oauth-authorization-server', ['Accept' => 'application/json'], null, $this->timeout);
        $body = $response->json();
        // RFC 8414 §3.3: the metadata must name the issuer it was fetched for.
        if ($response->status !== 200 || !is_array($body) || ($body['issuer'] ?? null) !== $issuer
            || !is_string($body['jwks_uri'] ?? null) || !self::isSafeUrl($body['jwks_uri'])) {
            throw new \UnexpectedValueException('discovery failed');
        }

        return $body['jwks_uri'];
    }

    private function maxAge(string $cacheControl): float
    {
        $age = preg_match('/(?:^|,)\s*max-age\s*=\s*(\d+)/i', $cacheControl, $m) === 1 ? (float) $m[1] : self::DEFAULT_MAX_AGE;

        return min(max($age, $this->cooldown), self::MAX_AGE_CAP);
    }

    /** https, or http to a loopback address: a key set from anywhere else could be swapped in transit. */
    private static function isSafeUrl(string $url): bool
    {
        $parts = parse_url($url);
        if (!is_array($parts) || !isset($parts['scheme'], $parts['host'])) {
            return false;
        }
        $scheme = strtolower($parts['scheme']);
        $host = $parts['host'];

        return $scheme === 'https'
            || ($scheme === 'http' && ($host === 'localhost' || $host === '[::1]' || preg_match('/^127\.\d+\.\d+\.\d+$/D', $host) === 1));
    }
}
