package gateway

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fcgigate/fcgigate/balancer"
	"github.com/fcgigate/fcgigate/fastcgi"
)

func TestRetryable(t *testing.T) {
	dial := &fastcgi.DialError{Addr: "127.0.0.2:9000", Err: syscall.ECONNREFUSED}
	stale := fmt.Errorf("%w: read: connection reset by peer", fastcgi.ErrStaleConn)
	rejected := fmt.Errorf("%w: overloaded", fastcgi.ErrRequestRejected)
	reset := fmt.Errorf("fastcgi: read response from x: %w", syscall.ECONNRESET)
	timeout := fmt.Errorf("fastcgi: read response from x: %w", os.ErrDeadlineExceeded)
	protocol := fmt.Errorf("%w: connection closed before any answer", fastcgi.ErrProtocol)
	canceled := fmt.Errorf("fastcgi: read response: %w", context.Canceled)
	bad := badHeader("garbage")

	tests := []struct {
		name       string
		err        error
		method     string
		resendable bool
		want       bool
	}{
		{"dial error, POST", dial, "POST", true, true},
		{"dial error, PATCH", dial, "PATCH", true, true},
		{"stale conn, POST", stale, "POST", true, true},
		{"rejected by FPM, POST", rejected, "POST", true, true},
		{"dial error, body already read", dial, "POST", false, false},
		{"stale conn, streamed body read", stale, "PUT", false, false},
		{"reset after sending, GET", reset, "GET", true, true},
		{"reset after sending, HEAD", reset, "HEAD", true, true},
		{"reset after sending, PUT", reset, "PUT", true, true},
		{"reset after sending, DELETE", reset, "DELETE", true, true},
		{"reset after sending, OPTIONS", reset, "OPTIONS", true, true},
		{"reset after sending, POST", reset, "POST", true, false},
		{"reset after sending, PATCH", reset, "PATCH", true, false},
		{"timeout, GET", timeout, "GET", true, true},
		{"timeout, POST", timeout, "POST", true, false},
		{"closed before answering, GET", protocol, "GET", true, true},
		{"closed before answering, POST", protocol, "POST", true, false},
		{"client went away, GET", canceled, "GET", true, false},
		{"bad CGI header, GET", bad, "GET", true, false},
		{"pool closed, GET", fastcgi.ErrPoolClosed, "GET", true, false},
		{"no backend, GET", balancer.ErrNoBackend, "GET", true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := retryable(tt.err, tt.method, tt.resendable); got != tt.want {
				t.Errorf("retryable(%v, %s, %v) = %v, want %v", tt.err, tt.method, tt.resendable, got, tt.want)
			}
		})
	}
}

func TestErrorStatus(t *testing.T) {
	tests := []struct {
		err  error
		want int
	}{
		{&fastcgi.DialError{Addr: "x", Err: syscall.ECONNREFUSED}, 503},
		{&fastcgi.DialError{Addr: "x", Err: os.ErrDeadlineExceeded}, 503},
		{fmt.Errorf("pool %q: %w", "php", balancer.ErrNoBackend), 503},
		{fastcgi.ErrPoolClosed, 503},
		{fmt.Errorf("%w: overloaded", fastcgi.ErrRequestRejected), 503},
		{fmt.Errorf("read: %w", os.ErrDeadlineExceeded), 504},
		{&net.OpError{Op: "read", Err: timeoutErr{}}, 504},
		{fmt.Errorf("%w: truncated", fastcgi.ErrProtocol), 502},
		{badHeader("garbage"), 502},
		{syscall.ECONNRESET, 502},
		{fmt.Errorf("x: %w", context.Canceled), 499},
	}
	for _, tt := range tests {
		if got := errorStatus(tt.err); got != tt.want {
			t.Errorf("errorStatus(%v) = %d, want %d", tt.err, got, tt.want)
		}
	}
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

// TestRetryDialError: a POST whose first backend refuses the connection
// goes to the other, body and all, whether the body is streamed or
// spooled. Which backend is picked first is random, so enough requests are
// sent that both orders happen.
func TestRetryDialError(t *testing.T) {
	leakCheck(t)
	f := startFake(t, echo)
	d := &refusingDial{dead: map[string]bool{"127.0.0.2:9000": true}}
	tg := startGateway(t, testPool("127.0.0.2:9000", f.addr), d.dial)
	for i := range 24 {
		body := fmt.Sprintf("request %d", i)
		var r io.Reader = strings.NewReader(body)
		if i%2 == 1 {
			r = io.MultiReader(r) // chunked: spooled
		}
		req, _ := http.NewRequest("POST", tg.url+"/form.php", r)
		resp, got := tg.do(t, req)
		if resp.StatusCode != 200 || got != body {
			t.Fatalf("request %d: %d %q", i, resp.StatusCode, got)
		}
	}
	if d.refused.Load() == 0 {
		t.Error("the dead backend was never tried first")
	}
	if n := len(f.requests()); n != 24 {
		t.Errorf("live backend got %d requests, want 24", n)
	}
}

// TestRetryRules uses one backend whose first connection fails in a
// scripted way and whose later ones answer (Pick falls back to a backend
// already tried when it is the only one).
func TestRetryRules(t *testing.T) {
	leakCheck(t)
	// hangUp reads the request and closes without answering: the request
	// may have reached PHP.
	hangUp := func(c *fakeConn) { c.read() }
	// overloaded answers as FPM does when it cannot take the request.
	overloaded := func(c *fakeConn) {
		if _, err := c.read(); err == nil {
			c.write(endRequest(2))
		}
	}
	tests := []struct {
		name    string
		first   func(*fakeConn)
		method  string
		body    string
		chunked bool
		status  int
		conns   int32
	}{
		{"POST not retried after a hang-up", hangUp, "POST", "", false, 502, 1},
		{"PATCH not retried after a hang-up", hangUp, "PATCH", "x=1", true, 502, 1},
		{"GET retried after a hang-up", hangUp, "GET", "", false, 200, 2},
		{"DELETE retried after a hang-up", hangUp, "DELETE", "", false, 200, 2},
		{"PUT with a spooled body retried", hangUp, "PUT", "replay me", true, 200, 2},
		{"PUT with a streamed body that was read is not", hangUp, "PUT", "gone", false, 502, 1},
		{"POST retried when FPM is overloaded", overloaded, "POST", "a=1", true, 200, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startFake(t, func(c *fakeConn) {
				if c.n == 1 {
					tt.first(c)
					return
				}
				echo(c)
			})
			tg := startGateway(t, testPool(f.addr), nil)
			var body io.Reader
			if tt.body != "" {
				body = strings.NewReader(tt.body)
				if tt.chunked {
					body = io.MultiReader(body)
				}
			}
			req, _ := http.NewRequest(tt.method, tg.url+"/x.php", body)
			resp, got := tg.do(t, req)
			if resp.StatusCode != tt.status {
				t.Errorf("status %d %q, want %d", resp.StatusCode, got, tt.status)
			}
			if tt.status == 200 && got != tt.body {
				t.Errorf("body %q, want %q", got, tt.body)
			}
			if n := f.accepted.Load(); n != tt.conns {
				t.Errorf("%d connections, want %d", n, tt.conns)
			}
		})
	}
}

// TestAllRefuse: when no backend takes the connection, the client gets a
// 503 with Retry-After, after MaxAttempts tries.
func TestAllRefuse(t *testing.T) {
	leakCheck(t)
	// Real refusals: ports that were just closed.
	var addrs []string
	for range 2 {
		ln := listen(t)
		addrs = append(addrs, ln.Addr().String())
		ln.Close()
	}
	tg := startGateway(t, testPool(addrs...), nil)
	resp, body := tg.get(t, "/index.php")
	if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" {
		t.Errorf("got %d %q, Retry-After %q; want 503 with Retry-After: 1", resp.StatusCode, body, resp.Header.Get("Retry-After"))
	}
	if got := resp.Header.Get("Content-Type"); !strings.HasPrefix(got, "text/plain") {
		t.Errorf("Content-Type %q", got)
	}
	if n := len(tg.logs.find("retrying")); n != 2 {
		t.Errorf("%d retries logged, want 2 (3 attempts)", n)
	}
}

// TestSlowBackend: a backend that does not answer within ReadTimeout is a
// 504; the GET is tried once more, the POST is not.
func TestSlowBackend(t *testing.T) {
	leakCheck(t)
	rel := newRelease(t)
	var started atomic.Int32
	addr := startFCGI(t, func(w http.ResponseWriter, r *http.Request) {
		started.Add(1)
		<-rel.ch
	})
	pc := testPool(addr)
	pc.ReadTimeout = 100 * time.Millisecond
	pc.MaxAttempts = 2
	tg := startGateway(t, pc, nil)
	for _, tt := range []struct {
		method string
		tries  int32
	}{{"GET", 2}, {"POST", 1}} {
		before := started.Load()
		req, _ := http.NewRequest(tt.method, tg.url+"/slow.php", nil)
		resp, body := tg.do(t, req)
		if resp.StatusCode != 504 {
			t.Errorf("%s: %d %q, want 504", tt.method, resp.StatusCode, body)
		}
		if n := started.Load() - before; n != tt.tries {
			t.Errorf("%s: tried %d times, want %d", tt.method, n, tt.tries)
		}
	}
}

// TestLongStreamNotCut: ReadTimeout bounds each wait, not the response, so
// a stream that keeps sending outlives it.
func TestLongStreamNotCut(t *testing.T) {
	leakCheck(t)
	const (
		chunks      = 20
		readTimeout = 400 * time.Millisecond
		gap         = 50 * time.Millisecond // 20 gaps: over twice readTimeout
	)
	rel := newRelease(t)
	ticks := make(chan struct{})
	addr := startFCGI(t, func(w http.ResponseWriter, r *http.Request) {
		for i := range chunks {
			if i > 0 {
				select {
				case <-ticks:
				case <-rel.ch:
					return
				}
			}
			io.WriteString(w, "tick\n")
			w.(http.Flusher).Flush()
		}
	})
	pc := testPool(addr)
	pc.ReadTimeout = readTimeout
	pc.MaxAttempts = 1 // a retry would leave a handler behind to take the ticks
	tg := startGateway(t, pc, nil)
	start := time.Now()
	resp, err := tg.client.Get(tg.url + "/stream.php")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, len("tick\n"))
	for i := range chunks {
		var slept time.Duration
		if i > 0 {
			t0 := time.Now()
			time.Sleep(gap) // paces the stream; synchronisation is the channel
			slept = time.Since(t0)
			ticks <- struct{}{}
		}
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			if slept >= readTimeout-gap {
				t.Skipf("chunk %d: a %v pause of the machine outlasted the read timeout (%v): %v", i, slept, readTimeout, err)
			}
			t.Fatalf("chunk %d, %v after a %v gap: %v", i, time.Since(start), slept, err)
		}
	}
	if rest, err := io.ReadAll(resp.Body); err != nil || len(rest) != 0 {
		t.Errorf("end %q, %v", rest, err)
	}
	if d := time.Since(start); d < 2*readTimeout {
		t.Errorf("stream lasted %v, not well over the read timeout %v: the test proves nothing", d, readTimeout)
	}
}

func TestVerdict(t *testing.T) {
	canceled := fmt.Errorf("fastcgi: read response: %w", context.Canceled)
	reset := fmt.Errorf("read: %w", syscall.ECONNRESET)
	tests := []struct {
		err, want error
	}{
		{nil, nil},
		{fmt.Errorf("%w: EOF", fastcgi.ErrStaleConn), nil},
		{canceled, canceled},
		{reset, reset},
	}
	for _, tt := range tests {
		if got := verdict(tt.err); got != tt.want {
			t.Errorf("verdict(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}
