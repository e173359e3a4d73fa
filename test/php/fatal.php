<?php
// fatal.php: dies with an uncaught exception before any output. PHP answers
// 500 with an empty body and sends the error as a FastCGI STDERR record.
throw new RuntimeException('fatal.php: deliberate');
