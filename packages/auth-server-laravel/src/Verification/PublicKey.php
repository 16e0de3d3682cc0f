<?php

declare(strict_types=1);

namespace Rw3iss\AuthServer\Verification;

/**
 * A public key of the auth server, from a JWK (RFC 7517): EC P-256 for ES256
 * (RFC 7518 §3.4, checked with ext-openssl) or Ed25519 for EdDSA (RFC 8037,
 * checked with ext-sodium). A key is only ever used for its own algorithm.
 */
final class PublicKey
{
    // DER SubjectPublicKeyInfo prefix of an uncompressed P-256 point (id-ecPublicKey, prime256v1).
    private const P256_SPKI_PREFIX = '3059301306072a8648ce3d020106082a8648ce3d030107034200';

    private function __construct(
        public readonly string $kid,
        public readonly string $alg,
        private readonly mixed $key,
    ) {
    }

    /**
     * The key a JWK holds, or a reason it cannot be used: the key type decides the algorithm
     * (EC P-256 → ES256, OKP Ed25519 → EdDSA); a JWK whose `alg` says otherwise, with `use`
     * other than `sig`, or carrying private material, is refused.
     */
    public static function fromJwk(mixed $jwk): self|string
    {
        if (!is_array($jwk) || array_is_list($jwk) && $jwk !== []) {
            return 'not a JSON object';
        }
        $kid = $jwk['kid'] ?? null;
        if (!is_string($kid) || $kid === '') {
            return 'has no kid';
        }
        if (array_key_exists('d', $jwk)) {
            return "{$kid}: contains a private key";
        }
        if (array_key_exists('use', $jwk) && $jwk['use'] !== 'sig') {
            return "{$kid}: use is not \"sig\"";
        }
        $kty = $jwk['kty'] ?? null;
        $crv = $jwk['crv'] ?? null;
        $alg = match (true) {
            $kty === 'EC' && $crv === 'P-256' => 'ES256',
            $kty === 'OKP' && $crv === 'Ed25519' => 'EdDSA',
            default => null,
        };
        if ($alg === null) {
            return "{$kid}: not an EC P-256 or Ed25519 key";
        }
        if (array_key_exists('alg', $jwk) && $jwk['alg'] !== $alg) {
            return "{$kid}: alg does not match the key type";
        }
        $x = is_string($jwk['x'] ?? null) ? Base64Url::decode($jwk['x']) : null;
        if ($alg === 'EdDSA') {
            if (!function_exists('sodium_crypto_sign_verify_detached')) {
                return "{$kid}: EdDSA needs ext-sodium";
            }

            return $x !== null && strlen($x) === SODIUM_CRYPTO_SIGN_PUBLICKEYBYTES ? new self($kid, $alg, $x) : "{$kid}: not a valid public key";
        }
        $y = is_string($jwk['y'] ?? null) ? Base64Url::decode($jwk['y']) : null;
        if ($x === null || $y === null || strlen($x) !== 32 || strlen($y) !== 32) {
            return "{$kid}: not a valid public key";
        }
        if (!function_exists('openssl_pkey_get_public')) {
            return "{$kid}: ES256 needs ext-openssl";
        }
        $der = hex2bin(self::P256_SPKI_PREFIX) . "\x04" . $x . $y;
        $pem = "-----BEGIN PUBLIC KEY-----\n" . chunk_split(base64_encode($der), 64, "\n") . "-----END PUBLIC KEY-----\n";
        // OpenSSL refuses a point that is not on the curve.
        $key = @openssl_pkey_get_public($pem);
        while (openssl_error_string() !== false) {
            // drain OpenSSL's error queue so it does not leak into later calls
        }

        return $key === false ? "{$kid}: not a valid public key" : new self($kid, $alg, $key);
    }

    /** Checks a JWS signature over `$input`: ES256 as the 64-byte R||S pair JWS uses, EdDSA as 64 bytes. */
    public function verify(string $input, string $signature): bool
    {
        if (strlen($signature) !== 64) {
            return false;
        }
        if ($this->alg === 'EdDSA') {
            return sodium_crypto_sign_verify_detached($signature, $input, $this->key);
        }
        $ok = openssl_verify($input, self::derSignature($signature), $this->key, OPENSSL_ALGO_SHA256) === 1;
        while (openssl_error_string() !== false) {
            // drain
        }

        return $ok;
    }

    /** R||S (RFC 7518 §3.4) as the DER SEQUENCE of two INTEGERs OpenSSL expects. */
    private static function derSignature(string $rs): string
    {
        $integer = static function (string $bytes): string {
            $bytes = ltrim($bytes, "\x00");
            if ($bytes === '' || ord($bytes[0]) >= 0x80) {
                $bytes = "\x00" . $bytes;
            }

            return "\x02" . chr(strlen($bytes)) . $bytes;
        };
        $body = $integer(substr($rs, 0, 32)) . $integer(substr($rs, 32, 32));

        return "\x30" . chr(strlen($body)) . $body;
    }
}
