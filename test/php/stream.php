<?php
// stream.php?n=5&ms=300: prints "line <i>\n" n times (default 5, at most
// 1000), flushing after each line and sleeping ms milliseconds (default 300,
// at most 60000) between lines; the first line is sent at once. With
// output_buffering=0, flush() hands each line to FPM, which sends it as its
// own FastCGI STDOUT record.
header('Content-Type: text/plain');
header('X-Accel-Buffering: no');

$n = max(1, min(1000, (int) ($_GET['n'] ?? 5)));
$ms = max(0, min(60000, (int) ($_GET['ms'] ?? 300)));
for ($i = 0; $i < $n; $i++) {
    if ($i > 0) {
        usleep($ms * 1000);
    }
    echo "line $i\n";
    if (ob_get_level() > 0) {
        ob_flush();
    }
    flush();
}
