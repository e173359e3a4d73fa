<?php
// stderr.php: writes one line through error_log(), which FPM sends to the
// web server as a FastCGI STDERR record ("PHP message: stderr.php via
// error_log"), and one to the worker's own stderr, which lands in FPM's error
// log (catch_workers_output); then prints "ok".
header('Content-Type: text/plain');

error_log('stderr.php via error_log');
file_put_contents('php://stderr', "stderr.php via php://stderr\n");
echo 'ok';
