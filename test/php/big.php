<?php
// big.php?mb=N: streams N MiB (default 20, at most 1024) without a
// Content-Length. The body is N*16 chunks of 65536 bytes; chunk i is
// sprintf("%010d", i) . str_repeat(".", 65525) . "\n", so a lost, doubled or
// reordered chunk changes the body's md5.
header('Content-Type: application/octet-stream');

$mb = max(0, min(1024, (int) ($_GET['mb'] ?? 20)));
$pad = str_repeat('.', 65525) . "\n";
for ($i = 0; $i < $mb * 16; $i++) {
    echo sprintf('%010d', $i), $pad;
}
