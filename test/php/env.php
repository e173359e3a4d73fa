<?php
// env.php: reports, as one JSON object, what PHP received from FPM, for
// checks of the CGI params and the request body. Every map is a JSON object,
// even when empty. For multipart/form-data PHP consumes the body itself, so
// input_len is 0 and the parts show up in "files" and "post".
header('Content-Type: application/json');

$input = file_get_contents('php://input');

// One entry per uploaded file; a field "f[]" gives a list.
function file_summary(array $f): array
{
    if (is_array($f['name'])) {
        $out = [];
        foreach (array_keys($f['name']) as $i) {
            $out[] = file_summary([
                'name' => $f['name'][$i], 'type' => $f['type'][$i], 'size' => $f['size'][$i],
                'tmp_name' => $f['tmp_name'][$i], 'error' => $f['error'][$i],
            ]);
        }
        return $out;
    }
    $ok = $f['error'] === UPLOAD_ERR_OK && is_uploaded_file($f['tmp_name']);
    return [
        'name' => $f['name'],
        'type' => $f['type'],
        'size' => $f['size'],
        'error' => $f['error'],
        'md5' => $ok ? md5_file($f['tmp_name']) : null,
    ];
}

$files = [];
foreach ($_FILES as $field => $f) {
    $files[$field] = file_summary($f);
}

echo json_encode([
    'server' => (object) $_SERVER,
    'get' => (object) $_GET,
    'post' => (object) $_POST,
    'cookie' => (object) $_COOKIE,
    'headers' => (object) getallheaders(),
    'files' => (object) $files,
    'input_md5' => md5($input),
    'input_len' => strlen($input),
    'auth_user' => $_SERVER['PHP_AUTH_USER'] ?? null,
    'auth_pw' => $_SERVER['PHP_AUTH_PW'] ?? null,
], JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE), "\n";
