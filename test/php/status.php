<?php
// status.php?code=201&location=/x&reason=Custom%20Reason: answers with
// status code, sent as "Status: <code> <reason>" when reason is given.
// Without code the status is 200, or PHP's 302 when location is given.
// Sends Location when location is given, and always three Set-Cookie
// headers: a=1, b=2 (Path=/; HttpOnly) and c="x y" (sent as c=x%20y).
header('Content-Type: text/plain');

$code = isset($_GET['code']) ? (int) $_GET['code'] : 0;
$reason = (string) ($_GET['reason'] ?? '');
// Location first: PHP turns the status into 302 when Location is set and the
// status is not already 201 or 3xx; the status set below then wins.
if (isset($_GET['location'])) {
    header('Location: ' . $_GET['location']);
}
if ($code !== 0 && $reason !== '') {
    header("Status: $code $reason");
} elseif ($code !== 0) {
    http_response_code($code);
}
setcookie('a', '1');
setcookie('b', '2', ['path' => '/', 'httponly' => true]);
setcookie('c', 'x y');
echo "status ", $code ?: http_response_code(), "\n";
