// Package test holds the end-to-end tests of fcgigate against real
// components: php-fpm masters started by test/fpmtest on 127.0.0.x
// addresses, gateways on their own loopback addresses, and (in later issues)
// Consul and Apache. Under CI a missing component is a failure, not a skip.
package test
