<?php
// size.php?bytes=N: prints exactly N bytes of "x" (default 0, at most 1 GiB),
// for benchmarks (tiny and 64 KiB responses).
header('Content-Type: text/plain');

$n = max(0, min(1 << 30, (int) ($_GET['bytes'] ?? 0)));
$chunk = str_repeat('x', 65536);
for (; $n >= 65536; $n -= 65536) {
    echo $chunk;
}
echo substr($chunk, 0, $n);
