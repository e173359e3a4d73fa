<?php
// md5.php: reads the request body in 64 KiB chunks, never holding it whole,
// and prints "<md5 hex> <length>\n".
header('Content-Type: text/plain');

$in = fopen('php://input', 'rb');
$ctx = hash_init('md5');
$n = 0;
while (!feof($in)) {
    $buf = fread($in, 65536);
    if ($buf === false) {
        break;
    }
    $n += strlen($buf);
    hash_update($ctx, $buf);
}
fclose($in);
echo hash_final($ctx), ' ', $n, "\n";
