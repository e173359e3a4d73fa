<?php
// sub/index.php: the index of a subdirectory.
echo "sub index";
