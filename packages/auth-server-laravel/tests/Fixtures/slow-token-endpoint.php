<?php

// A token endpoint for `php -S`: counts requests in $COUNTER_FILE, answers after 300 ms.
$counter = (string) getenv('COUNTER_FILE');
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
echo json_encode(['access_token' => "tok-{$n}", 'token_type' => 'Bearer', 'expires_in' => 900, 'scope' => '']);
