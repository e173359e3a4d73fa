// Package lab is fcgigate's lab: it starts real php-fpm masters, nginx and
// fcgigate processes on loopback addresses, drives load at them with wrk and
// reports what it measured.
//
// Its first use is the system benchmark behind `fcgilab bench` (bench.go),
// which runs fcgigate and nginx side by side in front of one php-fpm master,
// interleaving rounds so that the noise of a shared machine falls on both,
// and reports fcgigate's figures as ratios to nginx's.
//
// Invariants:
//   - Every server is started by this package in a process group of its own
//     and stopped by its PID (and that group) only: Stop, or the Pdeathsig
//     backstop if the lab itself dies. Nothing is ever signalled by name.
//   - Servers listen only on 127.0.0.0/8 and load goes only to loopback
//     URLs, bounded in connections and time (wrk's -d); see checkLoopback.
//   - Configuration and logs of each server live in a directory the caller
//     passes in (usually one temp dir per run); system configuration and
//     services (/etc/nginx, /etc/php, the php-fpm service) are never used.
//   - Waits poll with capped backoff up to a deadline; nothing sleeps to
//     synchronise.
package lab
