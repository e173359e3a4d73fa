// Package fpmtest starts real php-fpm masters for tests.
//
// Each call to Start writes its own php.ini, php-fpm.conf and pool in
// t.TempDir(), runs `php-fpm8.2 --nodaemonize` in a process group of its
// own, waits until the listen address accepts TCP connections and registers
// a cleanup that stops the master and all its workers. The system php-fpm
// service and its configuration files are never used, so the settings a test
// sees are the ones written here (see Options and the pool defaults in
// config.go), whatever the host's /etc/php holds.
//
// Invariants:
//   - Every master is started in its own process group, so Kill, Pause and
//     Resume reach the workers too.
//   - FPM only binds to the address it is given; tests pass loopback addresses
//     (127.0.0.0/8) obtained from FreePort, never hardcoded ports.
//   - Start, Restart and Need call t.Fatal and must run on the test goroutine.
//     Kill, Stop, Pause, Resume, Log and Workers may be called from any
//     goroutine; they report problems with t.Errorf.
//
// This package imports nothing else of fcgigate.
package fpmtest
