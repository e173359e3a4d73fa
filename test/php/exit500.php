<?php
// exit500.php: a script that answers 500 itself, with body "err".
http_response_code(500);
echo "err";
