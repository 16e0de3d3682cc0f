<?php

// A token endpoint and a revocation feed for `php -S`: counts requests in $COUNTER_FILE (the feed's
// in $COUNTER_FILE.feed), answers after 300 ms. The feed revokes every token of `gone-svc`.
$feed = str_contains((string) ($_SERVER['REQUEST_URI'] ?? ''), '/revocations');
$counter = (string) getenv('COUNTER_FILE') . ($feed ? '.feed' : '');
$handle = fopen($counter, 'c+');
flock($handle, LOCK_EX);
$n = (int) stream_get_contents($handle) + 1;
ftruncate($handle, 0);
rewind($handle);
fwrite($handle, (string) $n);
flock($handle, LOCK_UN);
fclose($handle);
usleep(300_000);
header('Content-Type: application/json');
echo json_encode($feed
    ? ['cursor' => "c{$n}", 'has_more' => false, 'clients' => [['client_id' => 'gone-svc', 'revoked_at' => gmdate('Y-m-d\TH:i:s.000\Z'), 'not_before' => null]], 'tokens' => []]
    : ['access_token' => "tok-{$n}", 'token_type' => 'Bearer', 'expires_in' => 900, 'scope' => '']);
