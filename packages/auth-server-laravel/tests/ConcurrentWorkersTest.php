<?php

declare(strict_types=1);

namespace Rw3iss\AuthServer\Tests;

use PHPUnit\Framework\TestCase;

/**
 * Several PHP processes (as PHP-FPM workers are) on one cache store: the cache
 * lock makes one token request among them, the others wait for its token; and
 * one read of the revocation feed, the others waiting for its copy.
 */
final class ConcurrentWorkersTest extends TestCase
{
    public function testConcurrentWorkersShareOneTokenRequest(): void
    {
        $this->withWorkers('token-worker.php', '/token', function (array $outputs, string $counter): void {
            self::assertSame(['tok-1', 'tok-1', 'tok-1', 'tok-1'], $outputs);
            self::assertSame('1', file_get_contents($counter));
        });
    }

    public function testConcurrentWorkersShareOneReadOfTheRevocationFeed(): void
    {
        $this->withWorkers('revocation-worker.php', '', function (array $outputs, string $counter): void {
            self::assertSame(array_fill(0, 4, 'billing-svc:ok gone-svc:revoked'), $outputs);
            self::assertSame('1', file_get_contents("{$counter}.feed"), 'one feed read among four workers');
            self::assertSame('1', file_get_contents($counter), 'one token for the feed');
        });
    }

    /**
     * Runs four `$worker` processes at once against the slow endpoint (`php -S`) on one file cache,
     * then `$check(their outputs, the request counter file)`.
     *
     * @param \Closure(list<string>, string): void $check
     */
    private function withWorkers(string $worker, string $path, \Closure $check): void
    {
        $dir = sys_get_temp_dir() . '/auth-server-laravel-workers-' . bin2hex(random_bytes(6));
        mkdir("{$dir}/cache", 0700, true);
        $counter = "{$dir}/requests";
        $port = self::freePort();
        $server = proc_open(
            [PHP_BINARY, '-S', "127.0.0.1:{$port}", __DIR__ . '/Fixtures/slow-token-endpoint.php'],
            [0 => ['file', '/dev/null', 'r'], 1 => ['file', '/dev/null', 'w'], 2 => ['file', '/dev/null', 'w']],
            $pipes,
            null,
            // One process (no PHP_CLI_SERVER_WORKERS: its forks outlive a terminated master). Requests
            // then queue, which still tells one request from four.
            ['COUNTER_FILE' => $counter],
        );
        try {
            self::waitForPort($port);
            $workers = [];
            $outputs = [];
            for ($i = 0; $i < 4; $i++) {
                $workers[] = proc_open(
                    [PHP_BINARY, __DIR__ . "/Fixtures/{$worker}", "http://127.0.0.1:{$port}{$path}", "{$dir}/cache"],
                    [0 => ['file', '/dev/null', 'r'], 1 => ['pipe', 'w'], 2 => ['pipe', 'w']],
                    $workerPipes,
                );
                $outputs[] = $workerPipes;
            }
            $results = [];
            foreach ($workers as $i => $process) {
                $results[] = stream_get_contents($outputs[$i][1]) . stream_get_contents($outputs[$i][2]);
                proc_close($process);
            }
            $check($results, $counter);
        } finally {
            proc_terminate($server);
            for ($i = 0; $i < 100 && proc_get_status($server)['running']; $i++) {
                usleep(20_000);
            }
            proc_close($server);
            exec('rm -rf ' . escapeshellarg($dir));
        }
    }

    private static function freePort(): int
    {
        foreach (range(4750 + random_int(0, 40), 4799) as $port) {
            $socket = @stream_socket_server("tcp://127.0.0.1:{$port}");
            if ($socket !== false) {
                fclose($socket);

                return $port;
            }
        }
        self::fail('no free port in 4750-4799');
    }

    private static function waitForPort(int $port): void
    {
        for ($i = 0; $i < 100; $i++) {
            $socket = @fsockopen('127.0.0.1', $port, $errno, $error, 0.1);
            if ($socket !== false) {
                fclose($socket);

                return;
            }
            usleep(20_000);
        }
        self::fail("php -S did not listen on {$port}");
    }
}
