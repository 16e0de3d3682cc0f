<?php

declare(strict_types=1);

namespace Rw3iss\AuthServer\Tests\Fixtures;

use Rw3iss\AuthServer\Client\CurlTransport;
use Rw3iss\AuthServer\Client\HttpResponse;

/**
 * The real auth-api (packages/auth-api/dist/cli.js serve, built by `pnpm build`) on a
 * throwaway embedded database, a port of 4700-4799, and a system_admin to create
 * credentials with.
 */
final class AuthApiServer
{
    public const AUDIENCE = 'auth-platform';
    private const ADMIN_EMAIL = 'admin@php-e2e.test';

    public readonly string $url;
    public readonly string $secret;
    private string $adminPassword;
    private string $dataDir;
    /** @var resource */
    private $process;
    private string $log;

    public function __construct()
    {
        $root = dirname(__DIR__, 4);
        $cli = "{$root}/packages/auth-api/dist/cli.js";
        if (!is_file($cli)) {
            throw new \RuntimeException("{$cli} is missing: run `pnpm build` at the repository root first");
        }
        $port = self::freePort();
        $this->url = "http://127.0.0.1:{$port}";
        $this->secret = rtrim(strtr(base64_encode(random_bytes(48)), '+/', '-_'), '=');
        $this->adminPassword = 'Adm1n-' . bin2hex(random_bytes(12));
        $this->dataDir = sys_get_temp_dir() . '/auth-server-laravel-e2e-' . bin2hex(random_bytes(6));
        mkdir($this->dataDir, 0700);
        $this->log = "{$this->dataDir}/server.log";

        $env = [
            'PATH' => (string) getenv('PATH'),
            'HOME' => (string) (getenv('HOME') ?: sys_get_temp_dir()),
            'NODE_ENV' => 'development',
            'HOST' => '127.0.0.1',
            'PORT' => (string) $port,
            'DATA_DIR' => "{$this->dataDir}/data",
            'JWT_ACCESS_SECRET' => $this->secret,
            'JWT_ISSUER' => $this->url,
            'JWT_AUDIENCE' => self::AUDIENCE,
            'BCRYPT_COST' => '4',
            'LOG_LEVEL' => 'warn',
            'ADMIN_EMAIL' => self::ADMIN_EMAIL,
            'ADMIN_PASSWORD' => $this->adminPassword,
        ];
        $process = proc_open(['node', $cli, 'serve'], [0 => ['file', '/dev/null', 'r'], 1 => ['file', $this->log, 'a'], 2 => ['file', $this->log, 'a']], $pipes, $root, $env);
        if (!is_resource($process)) {
            throw new \RuntimeException('could not start node');
        }
        $this->process = $process;
        // Never leave the server behind, even when the test run dies.
        register_shutdown_function([$this, 'stop']);
        try {
            $this->waitUntilReady();
        } catch (\Throwable $e) {
            $this->stop();
            throw $e;
        }
    }

    public function tokenEndpoint(): string
    {
        return "{$this->url}/api/v1/oauth/token";
    }

    /** An admin session token (opaque, not a JWT), from POST /auth/login. */
    public function login(): string
    {
        $response = $this->json('POST', '/api/v1/auth/login', ['email' => self::ADMIN_EMAIL, 'password' => $this->adminPassword]);

        return $response['tokens']['access_token'];
    }

    /**
     * Creates a service credential; returns its client_id and secret.
     *
     * @param list<string> $scopes
     * @return array{client_id: string, client_secret: string, id: string}
     */
    public function createCredential(string $clientId, array $scopes): array
    {
        $created = $this->json('POST', '/api/v1/admin/m2m-clients', ['client_id' => $clientId, 'name' => "PHP e2e {$clientId}", 'scopes' => $scopes], $this->login());

        return ['client_id' => $created['client']['client_id'], 'client_secret' => $created['client_secret'], 'id' => $created['client']['id']];
    }

    /** A service token for `$credential` (client_credentials, Basic authentication), straight from the token endpoint. */
    public function grant(array $credential): string
    {
        $response = (new CurlTransport())->send('POST', $this->tokenEndpoint(), [
            'Authorization' => 'Basic ' . base64_encode(urlencode($credential['client_id']) . ':' . urlencode($credential['client_secret'])),
            'Content-Type' => 'application/x-www-form-urlencoded',
        ], 'grant_type=client_credentials', 10);
        if ($response->status !== 200) {
            throw new \RuntimeException("the grant answered {$response->status}: {$response->body}");
        }

        return $response->json()['access_token'];
    }

    /** RFC 7009: `$credential` revokes one of its own tokens. */
    public function revokeToken(array $credential, string $token): void
    {
        $response = (new CurlTransport())->send('POST', "{$this->url}/api/v1/oauth/revoke", [
            'Authorization' => 'Basic ' . base64_encode(urlencode($credential['client_id']) . ':' . urlencode($credential['client_secret'])),
            'Content-Type' => 'application/x-www-form-urlencoded',
        ], http_build_query(['token' => $token]), 10);
        if ($response->status !== 200) {
            throw new \RuntimeException("revoke answered {$response->status}: {$response->body}");
        }
    }

    /** `PATCH /admin/m2m-clients/:id` (e.g. `['status' => 'disabled']`); returns the record. */
    public function updateCredential(string $id, array $changes): array
    {
        return $this->json('PATCH', "/api/v1/admin/m2m-clients/{$id}", $changes, $this->login());
    }

    /** `DELETE /admin/m2m-clients/:id`: revokes the credential for good. */
    public function revokeCredential(string $id): void
    {
        $this->json('DELETE', "/api/v1/admin/m2m-clients/{$id}", null, $this->login());
    }

    public function stop(): void
    {
        if (is_resource($this->process)) {
            proc_terminate($this->process, 15); // SIGTERM: the server drains and exits
            $deadline = microtime(true) + 10;
            while (proc_get_status($this->process)['running'] && microtime(true) < $deadline) {
                usleep(50_000);
            }
            if (proc_get_status($this->process)['running']) {
                proc_terminate($this->process, 9);
            }
            proc_close($this->process);
        }
        if (is_dir($this->dataDir)) {
            self::remove($this->dataDir);
        }
    }

    /** @return array<string, mixed> */
    private function json(string $method, string $path, ?array $body, ?string $bearer = null): array
    {
        $headers = $body === null ? ['Accept' => 'application/json'] : ['Content-Type' => 'application/json', 'Accept' => 'application/json'];
        if ($bearer !== null) {
            $headers['Authorization'] = "Bearer {$bearer}";
        }
        $response = (new CurlTransport())->send($method, $this->url . $path, $headers, $body === null ? null : json_encode($body), 10);
        if ($response->status >= 300) {
            throw new \RuntimeException("{$method} {$path} answered {$response->status}: {$response->body}");
        }

        return $response->json() ?? [];
    }

    private function waitUntilReady(): void
    {
        $deadline = microtime(true) + 60;
        while (microtime(true) < $deadline) {
            if (!proc_get_status($this->process)['running']) {
                throw new \RuntimeException("auth-api exited:\n" . file_get_contents($this->log));
            }
            try {
                $ready = (new CurlTransport())->send('GET', "{$this->url}/readyz", [], null, 1);
                if ($ready instanceof HttpResponse && $ready->status === 200) {
                    return;
                }
            } catch (\RuntimeException) {
                // not listening yet
            }
            usleep(100_000);
        }
        throw new \RuntimeException("auth-api was not ready within 60 s:\n" . file_get_contents($this->log));
    }

    private static function freePort(): int
    {
        foreach (range(4700 + random_int(0, 49), 4799) as $port) {
            $socket = @stream_socket_server("tcp://127.0.0.1:{$port}");
            if ($socket !== false) {
                fclose($socket);

                return $port;
            }
        }
        throw new \RuntimeException('no free port in 4700-4799');
    }

    private static function remove(string $path): void
    {
        if (is_dir($path) && !is_link($path)) {
            foreach (scandir($path) ?: [] as $entry) {
                if ($entry !== '.' && $entry !== '..') {
                    self::remove("{$path}/{$entry}");
                }
            }
            rmdir($path);
        } elseif (file_exists($path) || is_link($path)) {
            unlink($path);
        }
    }
}
