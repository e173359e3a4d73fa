<?php
// auth.php: prints the Basic credentials PHP derived from HTTP_AUTHORIZATION,
// as JSON {"user":..,"pw":..,"type":..}; null when absent.
header('Content-Type: application/json');

echo json_encode([
    'user' => $_SERVER['PHP_AUTH_USER'] ?? null,
    'pw' => $_SERVER['PHP_AUTH_PW'] ?? null,
    'type' => $_SERVER['AUTH_TYPE'] ?? null,
], JSON_UNESCAPED_SLASHES | JSON_INVALID_UTF8_SUBSTITUTE), "\n";
