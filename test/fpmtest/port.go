// port.go picks free TCP ports on loopback addresses.

package fpmtest

import (
	"net"
	"strconv"
	"testing"
)

// FreePort returns "host:port" for a TCP port that was free on host a moment
// ago. host must be a loopback address such as "127.0.0.2"; every address in
// 127.0.0.0/8 is usable on Linux without configuration.
//
// The port is found by listening on port 0 and closing the listener, so
// another process could take it before the caller binds it; on loopback
// addresses of our own that race is harmless in practice.
func FreePort(t testing.TB, host string) string {
	t.Helper()
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		t.Fatalf("fpmtest.FreePort: %q is not a loopback IP address", host)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatalf("fpmtest.FreePort: %v", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil {
		t.Fatalf("fpmtest.FreePort: %v", err)
	}
	return net.JoinHostPort(host, strconv.Itoa(port))
}
