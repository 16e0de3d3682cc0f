<?php

declare(strict_types=1);

namespace Rw3iss\AuthServer\Tests;

use PHPUnit\Framework\TestCase;
use Rw3iss\AuthServer\Exceptions\AuthServerException;
use Rw3iss\AuthServer\Exceptions\TokenVerificationException;
use Rw3iss\AuthServer\Tests\Fixtures\FixedClock;
use Rw3iss\AuthServer\Tests\Fixtures\Tokens;
use Rw3iss\AuthServer\Verification\ServiceTokenVerifier;

/** Options are checked once, with messages a person can act on; secrets never appear in them. */
final class VerifierOptionsTest extends TestCase
{
    private const NOW = 1_893_456_000;

    public function testRefusesUnusableOptions(): void
    {
        $jwk = ['kty' => 'OKP', 'crv' => 'Ed25519', 'x' => 'bGKYyrRs-2dSxvlxXw3nK5UtNPrRPmLTcHjAjnsNLVo', 'kid' => 'k1'];
        foreach ([
            'issuer is required' => ['issuer' => null],
            'audience is required' => ['audience' => ''],
            'too short' => ['secret' => 'short-secret'],
            'previous_secrets[0] is too short' => ['previous_secrets' => ['short']],
            'algorithms must be' => ['algorithms' => ['none']],
            'HS* algorithms need a secret' => ['secret' => null, 'public_keys' => [$jwk], 'algorithms' => ['HS256']],
            'need public_keys or jwks_uri' => ['algorithms' => ['HS256', 'EdDSA']],
            'is required' => ['secret' => null],
            'contains a private key' => ['public_keys' => [[...$jwk, 'd' => 'x']]],
            'not an EC P-256 or Ed25519 key' => ['public_keys' => [['kty' => 'RSA', 'kid' => 'r', 'n' => 'x', 'e' => 'AQAB']]],
            'alg does not match' => ['public_keys' => [[...$jwk, 'alg' => 'ES256']]],
            'not a valid public key' => ['public_keys' => [['kty' => 'EC', 'crv' => 'P-256', 'kid' => 'e', 'x' => str_repeat('A', 43), 'y' => str_repeat('A', 43)]]],
            'max_lifetime must be' => ['max_lifetime' => 0],
            'clock_tolerance must be' => ['clock_tolerance' => -1],
        ] as $message => $override) {
            try {
                new ServiceTokenVerifier([...Tokens::verifyConfig(), ...$override], new FixedClock(self::NOW));
                self::fail("expected invalid_options: {$message}");
            } catch (AuthServerException $e) {
                self::assertSame('invalid_options', $e->errorCode);
                self::assertStringContainsString($message, $e->getMessage());
                self::assertStringNotContainsString(Tokens::SECRET, (string) $e);
            }
        }
    }

    public function testIssuerAndAudienceChecksAreSkippedOnlyOnPurpose(): void
    {
        $verifier = new ServiceTokenVerifier([...Tokens::verifyConfig(), 'issuer' => false, 'audience' => false], new FixedClock(self::NOW));
        $token = Tokens::sign(self::NOW, ['iss' => 'https://elsewhere.test', 'aud' => 'other']);
        self::assertSame('billing-svc', $verifier->verify($token)->clientId);
    }

    public function testSetSecretsRotatesTheKeys(): void
    {
        $verifier = new ServiceTokenVerifier(Tokens::verifyConfig(), new FixedClock(self::NOW));
        $old = Tokens::sign(self::NOW, [], Tokens::PREVIOUS_SECRET);
        self::assertSame('billing-svc', $verifier->verify($old)->clientId);
        $verifier->setSecrets(Tokens::OTHER_SECRET, [Tokens::SECRET]);
        self::assertSame('billing-svc', $verifier->verify(Tokens::sign(self::NOW, [], Tokens::OTHER_SECRET))->clientId);
        try {
            $verifier->verify($old);
            self::fail('the retired secret must no longer verify');
        } catch (TokenVerificationException $e) {
            self::assertSame(['invalid_token', 'unknown_key'], [$e->errorCode, $e->reason]);
        }
    }

    /** A dump of the verifier (a stack trace's arguments, an error reporter) never shows a secret. */
    public function testDumpsNeverShowTheSecrets(): void
    {
        $verifier = new ServiceTokenVerifier(Tokens::verifyConfig(), new FixedClock(self::NOW));
        ob_start();
        var_dump($verifier);
        $dump = print_r($verifier, true) . ob_get_clean();
        self::assertStringContainsString('catalog-api', $dump);
        foreach ([Tokens::SECRET, Tokens::PREVIOUS_SECRET] as $secret) {
            self::assertStringNotContainsString($secret, $dump);
        }
        self::assertSame('billing-svc', $verifier->verify(Tokens::sign(self::NOW))->clientId);
    }

    public function testTheMaxLifetimeIsConfigurable(): void
    {
        $verifier = new ServiceTokenVerifier([...Tokens::verifyConfig(), 'max_lifetime' => 600], new FixedClock(self::NOW));
        try {
            $verifier->verify(Tokens::sign(self::NOW)); // 900 s
            self::fail('expected lifetime');
        } catch (TokenVerificationException $e) {
            self::assertSame('lifetime', $e->reason);
        }
        self::assertSame('billing-svc', $verifier->verify(Tokens::sign(self::NOW, ['exp' => self::NOW + 600]))->clientId);
    }
}
