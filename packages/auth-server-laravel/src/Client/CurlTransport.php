<?php

declare(strict_types=1);

namespace Rw3iss\AuthServer\Client;

/**
 * {@see HttpTransport} on ext-curl. Never follows redirects (the client secret
 * goes only where it was configured to go) and caps the answer's size.
 */
final class CurlTransport implements HttpTransport
{
    /** A token response is a few hundred bytes; anything far larger is not one. */
    public const MAX_BODY_BYTES = 256 * 1024;

    public function send(string $method, string $url, #[\SensitiveParameter] array $headers, #[\SensitiveParameter] ?string $body, float $timeoutSeconds): HttpResponse
    {
        $handle = curl_init();
        $received = '';
        $responseHeaders = [];
        $lines = [];
        foreach ($headers as $name => $value) {
            $lines[] = "{$name}: {$value}";
        }
        // No "Expect: 100-continue" round trip.
        $lines[] = 'Expect:';
        curl_setopt_array($handle, [
            CURLOPT_URL => $url,
            CURLOPT_CUSTOMREQUEST => $method,
            CURLOPT_HTTPHEADER => $lines,
            CURLOPT_FOLLOWLOCATION => false,
            CURLOPT_PROTOCOLS => CURLPROTO_HTTP | CURLPROTO_HTTPS,
            CURLOPT_TIMEOUT_MS => max(1, (int) ceil($timeoutSeconds * 1000)),
            CURLOPT_CONNECTTIMEOUT_MS => max(1, (int) ceil($timeoutSeconds * 1000)),
            CURLOPT_NOSIGNAL => true,
            CURLOPT_HEADERFUNCTION => static function ($ch, string $line) use (&$responseHeaders): int {
                $parts = explode(':', $line, 2);
                if (count($parts) === 2) {
                    $responseHeaders[strtolower(trim($parts[0]))] = trim($parts[1]);
                }

                return strlen($line);
            },
            CURLOPT_WRITEFUNCTION => static function ($ch, string $chunk) use (&$received): int {
                if (strlen($received) + strlen($chunk) > self::MAX_BODY_BYTES) {
                    return 0; // aborts the transfer (CURLE_WRITE_ERROR)
                }
                $received .= $chunk;

                return strlen($chunk);
            },
        ]);
        if ($body !== null) {
            curl_setopt($handle, CURLOPT_POSTFIELDS, $body);
        }
        $ok = curl_exec($handle);
        $errno = curl_errno($handle);
        $status = (int) curl_getinfo($handle, CURLINFO_RESPONSE_CODE);

        $host = (string) parse_url($url, PHP_URL_SCHEME) . '://' . (string) parse_url($url, PHP_URL_HOST)
            . (parse_url($url, PHP_URL_PORT) !== null ? ':' . parse_url($url, PHP_URL_PORT) : '');
        if ($ok === false || $errno !== 0) {
            if ($errno === CURLE_OPERATION_TIMEDOUT) {
                throw new TransportException("No answer from {$host} within {$timeoutSeconds} s", true);
            }
            if ($errno === CURLE_WRITE_ERROR) {
                throw new TransportException(sprintf('The answer from %s is larger than %d bytes', $host, self::MAX_BODY_BYTES), false);
            }
            // curl's error text names the host, never the request's headers or body.
            throw new TransportException("Could not reach {$host} (curl error {$errno})", false);
        }

        return new HttpResponse($status, $responseHeaders, $received);
    }
}
