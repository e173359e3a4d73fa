<?php
// die.php?bytes=N: prints N bytes of "d" (default 0), flushes them, then
// SIGKILLs its own worker, so FPM's connection closes without an
// END_REQUEST: a backend failing mid-response (or, with bytes=0, before it).
header('Content-Type: text/plain');

$n = max(0, min(1 << 20, (int) ($_GET['bytes'] ?? 0)));
if ($n > 0) {
    echo str_repeat('d', $n);
    flush();
}
posix_kill(getmypid(), 9);
