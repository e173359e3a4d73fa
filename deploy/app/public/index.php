<?php
// The fcgigate demo app: one front controller. The gateway sends every path
// that is not a file here (/, /hello, /info, ...); style.css is served by the
// gateway as a static file. scripts/demo.sh runs it.

declare(strict_types=1);

function h(?string $s): string
{
    return htmlspecialchars($s ?? '', ENT_QUOTES | ENT_SUBSTITUTE, 'UTF-8');
}

// count_request adds one to the request counter shared by all workers of
// this FPM, kept in a file under the demo's state directory.
function count_request(): int
{
    $dir = getenv('FCGIGATE_DEMO_STATE') ?: sys_get_temp_dir();
    $fp = @fopen($dir . '/requests.count', 'c+');
    if ($fp === false) {
        return 0;
    }
    flock($fp, LOCK_EX);
    $n = (int) stream_get_contents($fp) + 1;
    ftruncate($fp, 0);
    rewind($fp);
    fwrite($fp, (string) $n);
    fflush($fp);
    flock($fp, LOCK_UN);
    fclose($fp);
    return $n;
}

function page(string $title, string $body, int $status = 200): void
{
    http_response_code($status);
    header('Content-Type: text/html; charset=utf-8');
    $t = h($title);
    $v = h(PHP_VERSION);
    echo <<<HTML
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>$t · fcgigate demo</title>
    <link rel="stylesheet" href="/style.css">
    </head>
    <body>
    <header><a class="brand" href="/">fcgigate</a>
    <nav><a href="/">home</a> <a href="/hello">/hello</a> <a href="/info">/info</a></nav></header>
    <main>
    <h1>$t</h1>
    $body
    </main>
    <footer>PHP-FPM behind fcgigate · PHP $v</footer>
    </body>
    </html>

    HTML;
}

$count = count_request();
$path = parse_url($_SERVER['REQUEST_URI'] ?? '/', PHP_URL_PATH) ?: '/';

switch ($path) {
    case '/':
    case '/index.php':
        $greeting = '';
        if (($_SERVER['REQUEST_METHOD'] ?? '') === 'POST') {
            $name = trim((string) ($_POST['name'] ?? ''));
            $greeting = '<p class="greeting">Hello, ' . h($name === '' ? 'stranger' : $name) . '!</p>';
        }
        $rows = [
            'Host (FPM node)' => gethostname(),
            'FPM address' => getenv('FCGIGATE_FPM_ADDR') ?: 'unknown',
            'FPM worker PID' => (string) getmypid(),
            'Gateway address' => ($_SERVER['SERVER_ADDR'] ?? '?') . ':' . ($_SERVER['SERVER_PORT'] ?? '?'),
            'Client address' => ($_SERVER['REMOTE_ADDR'] ?? '?') . ':' . ($_SERVER['REMOTE_PORT'] ?? '?'),
            'Server software' => $_SERVER['SERVER_SOFTWARE'] ?? '?',
            'APP_ENV' => $_SERVER['APP_ENV'] ?? '(not set)',
            'PHP version' => PHP_VERSION,
            'Requests served' => (string) $count,
        ];
        $table = '';
        foreach ($rows as $k => $v) {
            $table .= '<tr><th>' . h($k) . '</th><td><code>' . h($v) . "</code></td></tr>\n";
        }
        page('It works', <<<HTML
        <p>This page was rendered by a PHP-FPM worker and reached you through
        fcgigate. Reload it: the worker PID and the counter change as requests
        are spread over the workers.</p>
        <table>$table</table>
        <h2>Post a form</h2>
        <form method="post" action="/">
        <label>Your name <input name="name" autocomplete="off"></label>
        <button>Send</button>
        </form>
        $greeting
        HTML);
        break;

    case '/hello':
        $name = (string) ($_GET['name'] ?? 'world');
        page('Hello', '<p class="greeting">Hello, ' . h($name) . '!</p>'
            . '<p>Try <a href="/hello?name=fcgigate">/hello?name=fcgigate</a>.</p>');
        break;

    case '/info':
        $server = $_SERVER;
        ksort($server);
        $table = '';
        foreach ($server as $k => $v) {
            $v = is_scalar($v) ? (string) $v : json_encode($v);
            $table .= '<tr><th>' . h((string) $k) . '</th><td><code>' . h($v) . "</code></td></tr>\n";
        }
        page('Request info', '<p>The CGI parameters fcgigate sent for this request, as PHP sees them in <code>$_SERVER</code>.</p>'
            . "<table>$table</table>");
        break;

    default:
        page('Not found', '<p>No route for <code>' . h($path) . '</code>. Back to <a href="/">home</a>.</p>', 404);
}
