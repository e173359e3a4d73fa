<?php
// sleep.php?s=2: sleeps s seconds (default 2, fractions allowed, at most 600),
// then prints "slept".
header('Content-Type: text/plain');

$s = max(0.0, min(600.0, (float) ($_GET['s'] ?? 2)));
usleep((int) ($s * 1e6));
echo 'slept';
