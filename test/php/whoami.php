<?php
// whoami.php?ms=N: sleeps WORK_MS (from the pool's env, default 0) plus N
// milliseconds, then prints the pool's FPM_NAME (from its env), so that
// balancing tests can tell which backend answered.
header('Content-Type: text/plain');

$ms = (int) (getenv('WORK_MS') ?: 0) + max(0, min(60000, (int) ($_GET['ms'] ?? 0)));
if ($ms > 0) {
    usleep($ms * 1000);
}
echo getenv('FPM_NAME') ?: 'unnamed';
