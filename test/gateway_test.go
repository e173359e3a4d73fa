package test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/fcgigate/fcgigate/fastcgi"
	"github.com/fcgigate/fcgigate/gateway"
	"github.com/fcgigate/fcgigate/internal/syncbuf"
	"github.com/fcgigate/fcgigate/test/fpmtest"
)

// syncBuffer is a log sink that tests read while the gateway writes.
type syncBuffer = syncbuf.Buffer

// testGateway is a gateway served in-process on a loopback address.
type testGateway struct {
	URL  string
	Addr string
	Logs *syncBuffer
}

// startGateway serves cfg on host (a 127.x address) until the test ends.
func startGateway(t *testing.T, host string, cfg gateway.Config) *testGateway {
	t.Helper()
	gw, _ := startGatewayG(t, host, cfg)
	return gw
}

// startGatewayG is startGateway that also returns the Gateway.
func startGatewayG(t *testing.T, host string, cfg gateway.Config) (*testGateway, *gateway.Gateway) {
	t.Helper()
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen = ln.Addr().String()
	g, err := gateway.New(cfg, log)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.Serve(ctx, ln, 5*time.Second) }() // returns when ctx is cancelled
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway Serve: %v", err)
		}
		g.Close()
		if t.Failed() {
			t.Logf("gateway log:\n%s", logs.String())
		}
	})
	return &testGateway{URL: "http://" + ln.Addr().String(), Addr: ln.Addr().String(), Logs: logs}, g
}

// phpPool is a pool config for the test docroot with the given backends.
func phpPool(backends ...string) gateway.PoolConfig {
	return gateway.PoolConfig{
		Name:         "php",
		Backends:     backends,
		DocumentRoot: fpmtest.PHPDir(),
		StaticRoot:   fpmtest.PHPDir(),
	}
}

// client returns an HTTP client that does not follow redirects and has its
// own connections, so each test's keep-alives end with it.
func client(t *testing.T) *http.Client {
	tr := &http.Transport{MaxIdleConnsPerHost: 64, DisableCompression: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{
		Transport:     tr,
		Timeout:       60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for delay := time.Millisecond; !cond(); delay = min(delay*2, 100*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(delay)
	}
}

// withPool is a gateway config with one pool.
func withPool(p gateway.PoolConfig) gateway.Config {
	return gateway.Config{Pools: []gateway.PoolConfig{p}}
}

// fpmStatus reads FPM's plain-text status page straight over FastCGI, for
// tests that wait for a script to be running.
func fpmStatus(t *testing.T, addr string) string {
	p := fastcgi.NewPool(fastcgi.PoolConfig{Addr: addr, MaxIdle: -1})
	defer p.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	resp, err := p.Do(ctx, &fastcgi.Request{Params: []fastcgi.Param{
		{Name: "SCRIPT_NAME", Value: "/fpm-status"}, {Name: "SCRIPT_FILENAME", Value: "/fpm-status"},
		{Name: "REQUEST_URI", Value: "/fpm-status"}, {Name: "REQUEST_METHOD", Value: "GET"},
		{Name: "QUERY_STRING", Value: ""}, {Name: "SERVER_PROTOCOL", Value: "HTTP/1.1"},
	}, ReadTimeout: 2 * time.Second})
	if err != nil {
		return ""
	}
	defer resp.Close()
	b, _ := io.ReadAll(resp)
	return string(b)
}
