package gateway

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"
)

func TestNew(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"valid", Config{Pools: []PoolConfig{testPool("127.0.0.1:9000")}}, true},
		{"no pool", Config{}, false},
		{"relative docroot", Config{Pools: []PoolConfig{{Name: "a", Backends: []string{"127.0.0.1:9000"}, DocumentRoot: "www"}}}, false},
		{"missing static root", Config{Pools: []PoolConfig{func() PoolConfig {
			p := testPool("127.0.0.1:9000")
			p.StaticRoot = "/nonexistent/fcgigate"
			return p
		}()}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := New(tt.cfg, nil)
			if (err == nil) != tt.ok {
				t.Fatalf("err %v, want ok %v", err, tt.ok)
			}
			if g != nil {
				if g.log != slog.Default() {
					t.Error("nil log is not slog.Default()")
				}
				if g.Close() != nil || g.Close() != nil {
					t.Error("Close failed")
				}
			}
		})
	}
}

// TestHeaderTooLarge: net/http answers 431 itself for a header block over
// MaxHeaderBytes (plus its 4 KiB of slack).
func TestHeaderTooLarge(t *testing.T) {
	leakCheck(t)
	f := startFake(t, answer("Content-Type: text/plain\r\n\r\nok"))
	tg := startGatewayConfig(t, Config{MaxHeaderBytes: 1024, Pools: []PoolConfig{testPool(f.addr)}}, nil)
	resp, _ := tg.raw(t, "GET /index.php HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 8<<10)+"\r\n\r\n")
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("status %d, want 431", resp.StatusCode)
	}
	if f.accepted.Load() != 0 {
		t.Error("the backend was contacted")
	}
}

// TestDrain: when Serve's context ends, a request in flight finishes, then
// Serve returns nil.
func TestDrain(t *testing.T) {
	leakCheck(t)
	rel := newRelease(t)
	started := make(chan struct{})
	addr := startFCGI(t, func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-rel.ch
		io.WriteString(w, "finished")
	})
	g, err := New(Config{Pools: []PoolConfig{testPool(addr)}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ln := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- g.Serve(ctx, ln, safety) }() // returns when ctx is cancelled and the request is done

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	type result struct {
		status int
		body   string
		err    error
	}
	got := make(chan result, 1)
	go func() { // ends when the request does
		resp, err := (&http.Client{Transport: tr, Timeout: safety}).Get("http://" + ln.Addr().String() + "/slow.php")
		if err != nil {
			got <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- result{resp.StatusCode, string(b), err}
	}()
	<-started
	cancel()
	select {
	case err := <-served:
		t.Fatalf("Serve returned %v with a request in flight", err)
	default:
	}
	rel.open()
	r := <-got
	if r.err != nil || r.status != 200 || r.body != "finished" {
		t.Errorf("request in flight: %d %q %v", r.status, r.body, r.err)
	}
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

// TestDrainTimeout: a request that outlives the drain is cut off, and
// Serve still returns nil.
func TestDrainTimeout(t *testing.T) {
	leakCheck(t)
	rel := newRelease(t)
	started := make(chan struct{})
	addr := startFCGI(t, func(w http.ResponseWriter, r *http.Request) {
		close(started)
		select {
		case <-rel.ch:
		case <-r.Context().Done():
		}
	})
	g, err := New(Config{Pools: []PoolConfig{testPool(addr)}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ln := listen(t)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- g.Serve(ctx, ln, 50*time.Millisecond) }() // returns once the drain times out

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	failed := make(chan error, 1)
	go func() { // ends when the gateway cuts the request off
		resp, err := (&http.Client{Transport: tr, Timeout: safety}).Get("http://" + ln.Addr().String() + "/forever.php")
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		failed <- err
	}()
	<-started
	cancel()
	if err := <-served; err != nil {
		t.Errorf("Serve: %v", err)
	}
	if err := <-failed; err == nil {
		t.Error("the request outlived the drain")
	}
}

// TestServeListenerError: a listener that fails is Serve's error.
func TestServeListenerError(t *testing.T) {
	leakCheck(t)
	g, err := New(Config{Pools: []PoolConfig{testPool("127.0.0.1:9000")}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	ln := listen(t)
	ln.Close()
	if err := g.Serve(context.Background(), ln, time.Second); err == nil {
		t.Error("Serve on a closed listener returned nil")
	}
}

// TestClosed: after Close, requests get 503.
func TestClosed(t *testing.T) {
	leakCheck(t)
	f := startFake(t, answer("Content-Type: text/plain\r\n\r\nok"))
	tg := startGateway(t, testPool(f.addr), nil)
	if resp, _ := tg.get(t, "/index.php"); resp.StatusCode != 200 {
		t.Fatalf("before Close: %d", resp.StatusCode)
	}
	tg.Close()
	tg.Close()
	if resp, _ := tg.get(t, "/index.php"); resp.StatusCode != 503 {
		t.Errorf("after Close: %d, want 503", resp.StatusCode)
	}
}

// TestClientGoesAway: a client that leaves while the backend works is
// logged as 499 at debug, not counted against the backend, and the backend
// connection is closed.
func TestClientGoesAway(t *testing.T) {
	leakCheck(t)
	started := make(chan struct{})
	closed := make(chan bool, 1)
	f := startFake(t, func(c *fakeConn) {
		if _, err := c.read(); err != nil {
			return
		}
		close(started)
		closed <- c.closedByPeer()
	})
	tg := startGateway(t, testPool(f.addr), nil)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", tg.url+"/slow.php", nil)
	done := make(chan error, 1)
	go func() { // ends when the request is cancelled
		resp, err := tg.client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	<-started
	cancel()
	<-done
	if !<-closed {
		t.Error("backend connection left open")
	}
	e := waitLog(t, tg, "request failed")
	if e["status"] != float64(499) || e["level"] != "DEBUG" {
		t.Errorf("logged %v, want status 499 at DEBUG", e)
	}
	if n := len(tg.logs.find("retrying")); n != 0 {
		t.Errorf("a cancelled request was retried")
	}
}
