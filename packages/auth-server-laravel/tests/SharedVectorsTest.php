<?php

declare(strict_types=1);

namespace Rw3iss\AuthServer\Tests;

use PHPUnit\Framework\TestCase;
use Rw3iss\AuthServer\Exceptions\TokenVerificationException;
use Rw3iss\AuthServer\Tests\Fixtures\FixedClock;
use Rw3iss\AuthServer\Verification\ServiceTokenVerifier;

/**
 * The corpus the Node side generates (packages/auth-server-ts/test/vectors/service-tokens.json):
 * this verifier must reach the committed decision on every token, as the Node verifier does
 * (packages/auth-server-ts/test/vectors.test.ts).
 */
final class SharedVectorsTest extends TestCase
{
    private const CORPUS = __DIR__ . '/../../auth-server-ts/test/vectors/service-tokens.json';

    /** @return array<string, mixed> */
    private static function corpus(): array
    {
        return json_decode((string) file_get_contents(self::CORPUS), true, 512, JSON_THROW_ON_ERROR);
    }

    /** @return iterable<string, array{array<string, mixed>}> */
    public static function vectors(): iterable
    {
        foreach (self::corpus()['vectors'] as $vector) {
            yield $vector['name'] => [$vector];
        }
    }

    /** @dataProvider vectors */
    public function testReachesTheCommittedDecision(array $vector): void
    {
        $options = array_merge(self::corpus()['verifier'], $vector['verifier'] ?? []);
        $verifier = new ServiceTokenVerifier([
            'secret' => $options['secret'],
            'public_keys' => $options['public_keys'] ?? [],
            'previous_secrets' => $options['previous_secrets'],
            'issuer' => $options['issuer'],
            'audience' => $options['audience'],
            'algorithms' => $options['algorithms'],
            'clock_tolerance' => $options['clock_tolerance_sec'],
            'max_lifetime' => $options['max_lifetime_sec'],
        ], new FixedClock($options['now']));

        $expect = $vector['expect'];
        try {
            $principal = $verifier->verify($vector['token'], $vector['required_scopes'], $vector['mode']);
        } catch (TokenVerificationException $e) {
            self::assertFalse($expect['ok'], "{$vector['name']}: refused ({$e->errorCode}/{$e->reason}: {$e->getMessage()}), expected accepted");
            self::assertSame(
                ['code' => $expect['code'], 'reason' => $expect['reason'] ?? null],
                ['code' => $e->errorCode, 'reason' => $e->reason],
                $vector['description'],
            );

            return;
        }
        self::assertTrue($expect['ok'], sprintf('%s: accepted, expected %s/%s', $vector['name'], $expect['code'] ?? '', $expect['reason'] ?? ''));
        self::assertSame(
            ['client_id' => $expect['client_id'], 'service_name' => $expect['service_name'], 'scopes' => $expect['scopes']],
            ['client_id' => $principal->clientId, 'service_name' => $principal->serviceName, 'scopes' => $principal->scopes],
        );
    }

    public function testTheCorpusIsTheOneNodeChecks(): void
    {
        $vectors = self::corpus()['vectors'];
        self::assertGreaterThanOrEqual(70, count($vectors));
        self::assertContains('lifetime', array_column(array_column($vectors, 'expect'), 'reason'));
    }
}
