package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/fcgi"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// waitTimeout bounds every wait for something the prober does; tests poll
// until it happens and fail only after this long.
const waitTimeout = 10 * time.Second

// fakeFPM is an in-process FastCGI responder, served by the standard
// library, that answers the ping and status pages the way the test says.
type fakeFPM struct {
	addr    string
	mode    atomic.Value // string: see serve
	pings   atomic.Int64
	status  atomic.Int64
	release chan struct{} // closed at cleanup, ends "hang" answers

	mu     sync.Mutex                   // protects params
	params map[string]map[string]string // by path
	order  []string                     // paths asked for, in order
}

func newFakeFPM(t *testing.T) *fakeFPM {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeFPM{addr: ln.Addr().String(), release: make(chan struct{})}
	f.mode.Store("ok")
	done := make(chan struct{})
	go func() { // stops when the listener is closed
		defer close(done)
		fcgi.Serve(ln, http.HandlerFunc(f.serve))
	}()
	t.Cleanup(func() {
		close(f.release)
		ln.Close()
		<-done
	})
	return f
}

func (f *fakeFPM) setMode(m string) { f.mode.Store(m) }

// lastParams returns the params of the last request for path.
func (f *fakeFPM) lastParams(path string) map[string]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.params[path]
}

// serve answers like FPM in mode "ok"; the other modes break one thing.
func (f *fakeFPM) serve(w http.ResponseWriter, r *http.Request) {
	env := fcgi.ProcessEnv(r)
	env["REQUEST_METHOD"] = r.Method
	env["REQUEST_URI"] = r.URL.RequestURI()
	env["QUERY_STRING"] = r.URL.RawQuery
	env["HTTP_USER_AGENT"] = r.UserAgent()
	f.mu.Lock()
	if f.params == nil {
		f.params = map[string]map[string]string{}
	}
	f.params[r.URL.Path] = env
	f.order = append(f.order, r.URL.Path)
	f.mu.Unlock()

	mode := f.mode.Load().(string)
	switch r.URL.Path {
	case "/fpm-ping":
		f.pings.Add(1)
		switch mode {
		case "hang":
			<-f.release
		case "404":
			http.Error(w, "File not found.", http.StatusNotFound)
		case "500":
			w.WriteHeader(http.StatusInternalServerError)
		case "wrong body":
			io.WriteString(w, "pang")
		default:
			w.Header().Set("Content-Type", "text/plain;charset=UTF-8")
			io.WriteString(w, "pong")
		}
	case "/fpm-status":
		f.status.Add(1)
		if r.URL.RawQuery != "json" {
			io.WriteString(w, "pool: fake\n")
			return
		}
		switch mode {
		case "status hang":
			<-f.release
		case "status 404":
			http.Error(w, "File not found.", http.StatusNotFound)
		case "status garbage":
			io.WriteString(w, `{"pool":"fake","idle proc`)
		case "status busy":
			io.WriteString(w, `{"pool":"fake","process manager":"static","listen queue":3,"idle processes":0,"active processes":4,"total processes":4}`)
		default:
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, fpmJSON)
		}
	default:
		http.Error(w, "File not found.", http.StatusNotFound)
	}
}

// rawBackend accepts connections and answers each with the given bytes,
// for answers no FastCGI server would give.
func rawBackend(t *testing.T, answer []byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // stops when the listener is closed
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { // ends once the answer is written
				defer wg.Done()
				defer c.Close()
				c.SetDeadline(time.Now().Add(waitTimeout))
				var b [512]byte
				c.Read(b[:]) // the request, which fits in one read here
				c.Write(answer)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String()
}

// closedAddr returns an address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// harness runs a Prober for one test and records what it reports.
type harness struct {
	p *Prober

	mu      sync.Mutex // protects results
	results []Result
	ch      chan Result // every result, for tests that step with ProbeNow
}

// manual is an Interval long enough that probes happen only on ProbeNow.
const manual = time.Hour

// startProber runs a Prober for cfg on targets until the test ends.
func startProber(t *testing.T, cfg Config, targets ...string) *harness {
	t.Helper()
	h := &harness{ch: make(chan Result, 1000)}
	ctx, cancel := context.WithCancel(context.Background())
	cfg.Reporter = ReporterFunc(func(r Result) {
		h.mu.Lock()
		h.results = append(h.results, r)
		h.mu.Unlock()
		select {
		case h.ch <- r:
		default: // a test that steps reads them; one that polls does not
		}
	})
	h.p = New(cfg, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})))
	h.p.SetTargets(targets)
	done := make(chan error, 1)
	go func() { done <- h.p.Run(ctx) }() // stops when the test ends
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
	})
	return h
}

// step asks for a probe of addr and returns its result.
func (h *harness) step(t *testing.T, addr string) Result {
	t.Helper()
	if !h.p.ProbeNow(addr) {
		t.Fatalf("ProbeNow(%s) = false", addr)
	}
	timer := time.NewTimer(waitTimeout)
	defer timer.Stop()
	for {
		select {
		case r := <-h.ch:
			if r.Addr == addr {
				return r
			}
		case <-timer.C:
			t.Fatalf("no probe result for %s after %v", addr, waitTimeout)
		}
	}
}

func (h *harness) count(addr string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.results {
		if r.Addr == addr {
			n++
		}
	}
	return n
}

// state returns the snapshot of addr.
func (h *harness) state(t *testing.T, addr string) TargetState {
	t.Helper()
	for _, s := range h.p.Snapshot() {
		if s.Addr == addr {
			return s
		}
	}
	t.Fatalf("%s not in the snapshot", addr)
	return TargetState{}
}

// waitFor polls cond until it holds, failing the test after waitTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for backoff := time.Millisecond; !cond(); backoff = min(2*backoff, 20*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", waitTimeout, what)
		}
		time.Sleep(backoff) // polling a condition no event reports
	}
}

// manualConfig probes only on ProbeNow, with a timeout that a loaded
// machine does not reach unless the backend hangs.
func manualConfig() Config {
	cfg := DefaultConfig()
	cfg.Interval = manual
	cfg.Timeout = 5 * time.Second
	return cfg
}

// hangTimeout is the timeout of tests whose backend never answers, long
// enough for a dial on a loaded machine.
const hangTimeout = time.Second

func TestProbeOK(t *testing.T) {
	f := newFakeFPM(t)
	h := startProber(t, manualConfig(), f.addr)
	r := h.step(t, f.addr)
	if !r.OK() || !r.Up || r.Changed || r.StatusErr != nil {
		t.Fatalf("result = %+v, want a good probe of an up target", r)
	}
	if r.Status == nil || r.Status.Pool != "fpmtest" || r.Status.TotalProcesses != 4 {
		t.Fatalf("status = %+v, want the fake's", r.Status)
	}
	s := h.state(t, f.addr)
	if !s.Up || s.ConsecOK != 1 || s.ConsecFail != 0 || s.LastProbe.IsZero() || s.LastError != "" ||
		s.Status == nil || *s.Status != *r.Status || s.StatusAt != r.At || s.StatusError != "" {
		t.Fatalf("snapshot = %+v", s)
	}
}

func TestProbeParams(t *testing.T) {
	f := newFakeFPM(t)
	h := startProber(t, manualConfig(), f.addr)
	h.step(t, f.addr)
	f.mu.Lock()
	order := fmt.Sprint(f.order)
	f.mu.Unlock()
	if order != "[/fpm-status /fpm-ping]" {
		t.Errorf("requests %s, want the status page, then the ping", order)
	}
	for path, want := range map[string]map[string]string{
		"/fpm-status": {
			"SCRIPT_FILENAME": "/fpm-status", "REQUEST_URI": "/fpm-status?json", "QUERY_STRING": "json",
			"REQUEST_METHOD": "GET", "HTTP_USER_AGENT": "fcgigate-health",
		},
		"/fpm-ping": {
			"SCRIPT_FILENAME": "/fpm-ping", "REQUEST_URI": "/fpm-ping", "QUERY_STRING": "",
			"REQUEST_METHOD": "GET", "HTTP_USER_AGENT": "fcgigate-health",
		},
	} {
		got := f.lastParams(path)
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %s = %q, want %q (all: %v)", path, k, got[k], v, got)
			}
		}
	}
}

func TestProbeFailures(t *testing.T) {
	tests := []struct {
		name   string
		mode   string // of the fake; "" for the addresses below
		addr   func(t *testing.T) string
		reason string // prefix
		is     error
	}{
		{name: "refused", addr: closedAddr, reason: "dial: connection refused", is: syscall.ECONNREFUSED},
		{name: "404", mode: "404", reason: "status 404"},
		{name: "500", mode: "500", reason: "status 500"},
		{name: "wrong body", mode: "wrong body", reason: `ping answered "pang"`},
		{name: "timeout", mode: "hang", reason: "timeout", is: context.Canceled},
		{name: "not fastcgi", addr: func(t *testing.T) string { return rawBackend(t, []byte("HTTP/1.1 400 Bad Request\r\n\r\n")) },
			reason: "protocol error: invalid header version"},
		{name: "closed without answer", addr: func(t *testing.T) string { return rawBackend(t, nil) },
			reason: "protocol error: connection closed before any answer"},
		{name: "no CGI header", addr: func(t *testing.T) string { return rawBackend(t, stdoutAnswer("pong")) },
			reason: "protocol: malformed CGI header"},
		{name: "bad Status header", addr: func(t *testing.T) string { return rawBackend(t, stdoutAnswer("Status: OK\r\n\r\npong")) },
			reason: `protocol: bad Status header "OK"`},
		{name: "answer too long", addr: func(t *testing.T) string {
			return rawBackend(t, stdoutAnswer("\r\n"+strings.Repeat("x", 65000), strings.Repeat("y", 1000)))
		}, reason: "answer longer than 65536 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var addr string
			if tt.addr != nil {
				addr = tt.addr(t)
			} else {
				f := newFakeFPM(t)
				f.setMode(tt.mode)
				addr = f.addr
			}
			cfg := manualConfig()
			if tt.mode == "hang" {
				cfg.Timeout = hangTimeout
			}
			h := startProber(t, cfg, addr)
			r := h.step(t, addr)
			var pe *ProbeError
			if !errors.As(r.Err, &pe) || !strings.HasPrefix(pe.Reason, tt.reason) {
				t.Fatalf("Err = %v, want a *ProbeError with reason %q...", r.Err, tt.reason)
			}
			if tt.is != nil && !errors.Is(r.Err, tt.is) {
				t.Errorf("Err = %v (%#v), want it to wrap %v", r.Err, pe.Err, tt.is)
			}
			if r.Status != nil || r.StatusErr != nil {
				t.Errorf("status asked for after a failed ping: %+v, %v", r.Status, r.StatusErr)
			}
			if s := h.state(t, addr); s.LastError != r.Err.Error() || s.ConsecFail != 1 || !s.LastErrorAt.Equal(r.At) {
				t.Errorf("snapshot = %+v", s)
			}
		})
	}
}

// stdoutAnswer encodes a FastCGI answer of STDOUT records with the given
// contents, then END_REQUEST.
func stdoutAnswer(chunks ...string) []byte {
	var b []byte
	rec := func(typ byte, content []byte) {
		b = append(b, 1, typ, 0, 1, byte(len(content)>>8), byte(len(content)), 0, 0)
		b = append(b, content...)
	}
	for _, c := range chunks {
		rec(6, []byte(c))
	}
	rec(6, nil)
	rec(3, []byte{0, 0, 0, 0, 0, 0, 0, 0})
	return b
}

func TestRiseFall(t *testing.T) {
	f := newFakeFPM(t)
	cfg := manualConfig()
	cfg.Rise, cfg.Fall = 2, 3
	h := startProber(t, cfg, f.addr)
	steps := []struct {
		mode    string
		up      bool
		changed bool
	}{
		{"ok", true, false},
		{"404", true, false}, // a new target is up until Fall failures
		{"404", true, false},
		{"ok", true, false}, // a success resets the count
		{"404", true, false},
		{"404", true, false},
		{"404", false, true}, // third in a row: down
		{"404", false, false},
		{"ok", false, false}, // Rise is 2
		{"404", false, false},
		{"ok", false, false},
		{"ok", true, true},
		{"ok", true, false},
	}
	for i, s := range steps {
		f.setMode(s.mode)
		r := h.step(t, f.addr)
		if r.Up != s.up || r.Changed != s.changed || r.OK() != (s.mode == "ok") {
			t.Fatalf("step %d (%s): up=%v changed=%v err=%v; want up=%v changed=%v", i, s.mode, r.Up, r.Changed, r.Err, s.up, s.changed)
		}
	}
	st := h.state(t, f.addr)
	if st.ConsecOK != 3 || st.ConsecFail != 0 || st.LastError != "status 404" {
		t.Fatalf("snapshot = %+v", st)
	}
}

func TestNewTargetFallsAfterFall(t *testing.T) {
	cfg := manualConfig()
	cfg.Fall = 1
	addr := closedAddr(t)
	h := startProber(t, cfg, addr)
	if s := h.state(t, addr); !s.Up || !s.LastProbe.IsZero() {
		t.Fatalf("before any probe: %+v, want up and unprobed", s)
	}
	if r := h.step(t, addr); r.Up || !r.Changed {
		t.Fatalf("Fall 1: first failure left %+v", r)
	}
}

func TestStatusProblemsDoNotFail(t *testing.T) {
	tests := []struct {
		mode, reason string
	}{
		{"status 404", "status 404"},
		{"status garbage", "malformed FPM status: unexpected end of JSON input"},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			f := newFakeFPM(t)
			cfg := manualConfig()
			cfg.Fall = 1
			h := startProber(t, cfg, f.addr)
			h.step(t, f.addr) // a good status first
			f.setMode(tt.mode)
			r := h.step(t, f.addr)
			if !r.OK() || !r.Up || r.Status != nil || r.StatusErr == nil || r.StatusErr.Error() != tt.reason {
				t.Fatalf("result = %+v (status error %v), want a good probe without status, reason %q", r, r.StatusErr, tt.reason)
			}
			if tt.mode == "status garbage" && !errors.Is(r.StatusErr, ErrStatusFormat) {
				t.Errorf("StatusErr %v does not wrap ErrStatusFormat", r.StatusErr)
			}
			s := h.state(t, f.addr)
			if s.StatusError != tt.reason || s.Status == nil || s.Status.Pool != "fpmtest" {
				t.Fatalf("snapshot = %+v, want the last good status kept and the error", s)
			}
			f.setMode("ok")
			h.step(t, f.addr)
			if s := h.state(t, f.addr); s.StatusError != "" {
				t.Fatalf("StatusError = %q after a good status page", s.StatusError)
			}
		})
	}
}

func TestStatusWithoutAnswerFailsProbe(t *testing.T) {
	f := newFakeFPM(t)
	f.setMode("status hang")
	cfg := manualConfig()
	cfg.Timeout = hangTimeout
	h := startProber(t, cfg, f.addr)
	r := h.step(t, f.addr)
	if r.OK() || r.Err.Error() != "timeout" || r.Status != nil || r.StatusErr != nil {
		t.Fatalf("result = %+v, want a timeout and no status", r)
	}
	if n := f.pings.Load(); n != 0 {
		t.Fatalf("%d pings after the status page timed out, want none", n)
	}
}

func TestStatusLoad(t *testing.T) {
	f := newFakeFPM(t)
	f.setMode("status busy")
	h := startProber(t, manualConfig(), f.addr)
	r := h.step(t, f.addr)
	if r.Status == nil || r.Status.Penalty() != 3 || r.Status.MaxConcurrent() != 0 || r.Status.Busy() != 3 {
		t.Fatalf("status = %+v", r.Status)
	}
}

func TestStatusDisabled(t *testing.T) {
	f := newFakeFPM(t)
	cfg := manualConfig()
	cfg.StatusPath = ""
	h := startProber(t, cfg, f.addr)
	r := h.step(t, f.addr)
	if !r.OK() || r.Status != nil || r.StatusErr != nil {
		t.Fatalf("result = %+v", r)
	}
	if f.pings.Load() != 1 || f.status.Load() != 0 {
		t.Fatalf("pings %d, status requests %d; want 1 and 0", f.pings.Load(), f.status.Load())
	}
}

func TestCustomPaths(t *testing.T) {
	f := newFakeFPM(t)
	cfg := manualConfig()
	cfg.PingPath = "/other-ping"
	h := startProber(t, cfg, f.addr)
	if r := h.step(t, f.addr); r.OK() || r.Err.Error() != "status 404" {
		t.Fatalf("ping of an unknown path: %+v", r)
	}
	cfg = manualConfig()
	cfg.PingResponse = "pang"
	h = startProber(t, cfg, f.addr)
	if r := h.step(t, f.addr); r.OK() || r.Err.Error() != `ping answered "pong"` {
		t.Fatalf("ping with another expected response: %+v", r)
	}
}

func TestIntervalProbes(t *testing.T) {
	f := newFakeFPM(t)
	cfg := DefaultConfig()
	cfg.Interval, cfg.Timeout = 20*time.Millisecond, 20*time.Millisecond
	h := startProber(t, cfg, f.addr)
	waitFor(t, "three probes on the interval", func() bool { return h.state(t, f.addr).ConsecOK >= 3 })
	// The probes keep no connection: each ping and status page is a new one.
	if p, s := f.pings.Load(), f.status.Load(); p < 3 || s < 3 {
		t.Fatalf("pings %d, status %d", p, s)
	}
}

func TestSetTargets(t *testing.T) {
	a, b, c := newFakeFPM(t), newFakeFPM(t), newFakeFPM(t)
	cfg := DefaultConfig()
	cfg.Interval, cfg.Timeout = 10*time.Millisecond, 10*time.Millisecond
	h := startProber(t, cfg, a.addr, b.addr, "", a.addr)
	waitFor(t, "probes of a and b", func() bool { return h.count(a.addr) > 0 && h.count(b.addr) > 0 })

	h.p.SetTargets([]string{b.addr, c.addr})
	removed := h.count(a.addr)
	if h.p.ProbeNow(a.addr) {
		t.Error("ProbeNow of a removed target = true")
	}
	var addrs []string
	for _, s := range h.p.Snapshot() {
		addrs = append(addrs, s.Addr)
	}
	if want := sorted(b.addr, c.addr); fmt.Sprint(addrs) != fmt.Sprint(want) {
		t.Fatalf("snapshot addresses = %v, want %v", addrs, want)
	}
	// b keeps its state; c is new.
	if h.state(t, b.addr).LastProbe.IsZero() {
		t.Error("b lost its state")
	}
	nb := h.count(b.addr)
	waitFor(t, "more probes of b and some of c", func() bool { return h.count(b.addr) > nb+3 && h.count(c.addr) > 0 })
	if n := h.count(a.addr); n != removed {
		t.Fatalf("%d reports for a after SetTargets removed it", n-removed)
	}
	pings := a.pings.Load()
	h.p.SetTargets(nil)
	if len(h.p.Snapshot()) != 0 {
		t.Fatalf("snapshot after SetTargets(nil) = %v", h.p.Snapshot())
	}
	if a.pings.Load() != pings {
		t.Fatal("a was pinged after its removal")
	}
}

func sorted(a, b string) []string {
	if a > b {
		return []string{b, a}
	}
	return []string{a, b}
}

func TestRemoveHangingTarget(t *testing.T) {
	f := newFakeFPM(t)
	f.setMode("hang")
	cfg := manualConfig()
	cfg.Timeout = manual // only removal can end the probe
	h := startProber(t, cfg, f.addr)
	h.p.ProbeNow(f.addr)
	waitFor(t, "the ping to reach the fake", func() bool { return f.pings.Load() == 1 })
	h.p.SetTargets(nil) // returns once the probe is abandoned
	if n := h.count(f.addr); n != 0 {
		t.Fatalf("%d reports of an abandoned probe", n)
	}
}

func TestRun(t *testing.T) {
	f := newFakeFPM(t)
	p := New(manualConfig(), nil)
	p.SetTargets([]string{f.addr}) // before Run: probed once it runs
	if !p.ProbeNow(f.addr) {
		t.Fatal("ProbeNow before Run = false")
	}
	for round := range 2 { // Run may run again after it returned
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- p.Run(ctx) }() // ends with cancel below
		if round > 0 {
			p.ProbeNow(f.addr)
		}
		waitFor(t, "a probe", func() bool { return f.pings.Load() > int64(round) })
		if err := p.Run(ctx); !errors.Is(err, ErrRunning) {
			t.Errorf("second Run = %v, want ErrRunning", err)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v after cancel, want nil", err)
		}
	}
	bad := New(Config{Interval: -time.Second}, nil)
	if err := bad.Run(context.Background()); err == nil || !strings.Contains(err.Error(), "Interval") {
		t.Fatalf("Run with a bad config = %v", err)
	}
}

func TestConfig(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("DefaultConfig: %v", err)
	}
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero Config: %v", err)
	}
	d := Config{Interval: 300 * time.Millisecond}.withDefaults()
	if d.Timeout != 300*time.Millisecond || d.StatusPath != "" || d.PingPath != "/fpm-ping" || d.Rise != 2 || d.Fall != 2 {
		t.Fatalf("defaults for a short Interval: %+v", d)
	}
	tests := []struct {
		name string
		mod  func(*Config)
		msg  string
	}{
		{"relative ping path", func(c *Config) { c.PingPath = "fpm-ping" }, "PingPath"},
		{"query in status path", func(c *Config) { c.StatusPath = "/fpm-status?json" }, "StatusPath"},
		{"blank ping response", func(c *Config) { c.PingResponse = " " }, "PingResponse"},
		{"negative interval", func(c *Config) { c.Interval = -1 }, "Interval"},
		{"negative timeout", func(c *Config) { c.Timeout = -1 }, "Timeout"},
		{"timeout over interval", func(c *Config) { c.Timeout = 2 * c.Interval }, "must not exceed Interval"},
		{"negative rise", func(c *Config) { c.Rise = -1 }, "Rise"},
		{"negative fall", func(c *Config) { c.Fall = -2 }, "Fall"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			tt.mod(&c)
			if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Validate = %v, want an error about %s", err, tt.msg)
			}
		})
	}
}
