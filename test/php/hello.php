<?php
// hello.php: the tiny benchmark response, exactly "hello".
echo "hello";
