package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fcgigate/fcgigate/balancer"
	"github.com/fcgigate/fcgigate/fastcgi"
)

// namedFCGI is a stand-in FPM that answers with its name; /slow.php waits
// for rel first.
func namedFCGI(t *testing.T, name string, rel *release) string {
	return startFCGI(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow.php" {
			<-rel.ch
		}
		io.WriteString(w, name)
	})
}

func (tg *testGateway) backend(t *testing.T, addr string) *balancer.Backend {
	t.Helper()
	for _, b := range tg.pools[0].bal.Backends() {
		if b.Addr() == addr {
			return b
		}
	}
	return nil
}

// waitUntil polls cond until it holds, failing after safety.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(safety)
	for delay := time.Millisecond; !cond(); delay = min(2*delay, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(delay)
	}
}

func TestSetBackends(t *testing.T) {
	leakCheck(t)
	rel := newRelease(t)
	a, b, c := namedFCGI(t, "a", rel), namedFCGI(t, "b", rel), namedFCGI(t, "c", rel)
	pc := testPool()
	pc.Service = "php-app"
	tg := startGateway(t, pc, nil)

	// No member yet: 503.
	if resp, _ := tg.get(t, "/x.php"); resp.StatusCode != 503 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("no backend: %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if tg.SetBackends("nope", []string{a}) {
		t.Errorf("SetBackends of an unknown pool reported true")
	}

	tg.SetBackends("php", []string{a, "", a})
	if got, _ := tg.Backends("php"); !slices.Equal(got, []string{a}) {
		t.Fatalf("backends %v, want [%s]", got, a)
	}
	ba := tg.backend(t, a)
	ba.SetWeight(3) // state that must survive the changes below

	// A slow request on a; then a leaves, b and c join.
	slow := make(chan string, 1)
	go func() { // ends when rel opens
		resp, err := tg.client.Get(tg.url + "/slow.php")
		if err != nil {
			slow <- err.Error()
			return
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		slow <- string(body)
	}()
	waitUntil(t, "the slow request in flight on a", func() bool { return ba.InFlight() == 1 })
	tg.SetBackends("php", []string{b, c})
	bb := tg.backend(t, b)
	for range 20 {
		if _, body := tg.get(t, "/x.php"); body != "b" && body != "c" {
			t.Errorf("request answered by %q after a left", body)
		}
	}
	// b stays, a comes back while its slow request runs: both keep their
	// backends, state and all.
	tg.SetBackends("php", []string{a, b})
	if tg.backend(t, a) != ba || tg.backend(t, b) != bb || ba.Weight() != 3 {
		t.Errorf("a and b did not keep their backends")
	}
	// a leaves again; its slow request finishes with its answer.
	tg.SetBackends("php", []string{b})
	rel.open()
	if got := <-slow; got != "a" {
		t.Errorf("slow request on the backend that left: %q, want a's answer", got)
	}
	pool := ba.Value.(*fastcgi.Pool)
	waitUntil(t, "a's connections closed once its request was done", func() bool { return pool.Stats().Open == 0 })
	waitUntil(t, "a retired", func() bool {
		m := &tg.pools[0].members
		m.mu.Lock()
		defer m.mu.Unlock()
		return len(m.retiring) == 0
	})
	if _, err := pool.Do(t.Context(), &fastcgi.Request{}); err != fastcgi.ErrPoolClosed {
		t.Errorf("a's pool after it retired: %v, want ErrPoolClosed", err)
	}
	// Once retired, a comes back as a new backend.
	tg.SetBackends("php", []string{a, b})
	if na := tg.backend(t, a); na == nil || na == ba {
		t.Errorf("a came back as %p, want a new backend", na)
	}
	if n := len(tg.logs.find("pool backends changed")); n != 5 {
		t.Errorf("%d log lines about changes, want 5", n)
	}
	tg.SetBackends("php", []string{a, b}) // no change: no log line
	if n := len(tg.logs.find("pool backends changed")); n != 5 {
		t.Errorf("%d log lines about changes, want 5", n)
	}
}

// TestSetBackendsClose: a backend still retiring when the Gateway closes is
// closed with it, and changes after Close are ignored.
func TestSetBackendsClose(t *testing.T) {
	leakCheck(t)
	rel := newRelease(t)
	a, b := namedFCGI(t, "a", rel), namedFCGI(t, "b", rel)
	pc := testPool()
	pc.Service = "php-app"
	g, err := New(Config{Pools: []PoolConfig{pc}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	g.SetBackends("php", []string{a})
	ba := g.pools[0].bal.Backends()[0]
	h := httptest.NewServer(g)
	defer h.Close()
	done := make(chan int, 1)
	go func() { // ends when rel opens
		resp, err := http.Get(h.URL + "/slow.php")
		if err != nil {
			done <- -1
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	waitUntil(t, "the slow request in flight", func() bool { return ba.InFlight() == 1 })
	g.SetBackends("php", []string{b})
	g.Close()
	g.SetBackends("php", []string{a})
	if got, _ := g.Backends("php"); !slices.Equal(got, []string{b}) {
		t.Errorf("backends %v after Close, want [%s]", got, b)
	}
	rel.open()
	if code := <-done; code != 200 {
		t.Errorf("request in flight at Close: %d, want 200", code)
	}
	pool := ba.Value.(*fastcgi.Pool)
	waitUntil(t, "a's connection closed", func() bool { return pool.Stats().Open == 0 })
	http.DefaultClient.CloseIdleConnections()
}

func TestAdminHandler(t *testing.T) {
	pc := testPool("127.0.0.2:9000")
	g, err := New(Config{Pools: []PoolConfig{pc}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	var stopping atomic.Bool
	h := g.AdminHandler(func() bool { return !stopping.Load() })
	get := func(method, path string) (int, string) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, nil))
		return rec.Code, rec.Body.String()
	}
	if code, body := get("GET", "/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("GET /healthz: %d %q", code, body)
	}
	if code, _ := get("GET", "/other"); code != 404 {
		t.Errorf("GET /other: %d, want 404", code)
	}
	if code, _ := get("POST", "/healthz"); code != 405 {
		t.Errorf("POST /healthz: %d, want 405", code)
	}
	stopping.Store(true)
	if code, body := get("GET", "/healthz"); code != 503 || body != "stopping\n" {
		t.Errorf("GET /healthz while stopping: %d %q", code, body)
	}
}

func TestServicePoolConfig(t *testing.T) {
	pc := testPool()
	pc.Service = "php-app"
	pc.Weights = map[string]int{"10.0.0.9:9000": 2}
	if err := pc.Defaults().Validate(); err != nil {
		t.Errorf("service pool: %v", err)
	}
	pc.Backends = []string{"127.0.0.2:9000"}
	if err := pc.Defaults().Validate(); err == nil || err.Error() != "service: set either backends or service, not both" {
		t.Errorf("both: %v", err)
	}
	pc.Backends, pc.Service = nil, ""
	if err := pc.Defaults().Validate(); err == nil || err.Error() != "backends: at least one address is required (or a service to discover them)" {
		t.Errorf("neither: %v", err)
	}
}

// TestTimedOutCheck: a check that timed out makes the gateway close its
// idle connections to the backend when the backend answered nothing since
// the last check (they may hold the FPM workers the check waited for), and
// keeps the backend up when it did answer (saturated, not down).
func TestTimedOutCheck(t *testing.T) {
	leakCheck(t)
	addr := namedFCGI(t, "a", newRelease(t))
	tg := startGateway(t, testPool(addr), nil)
	b := tg.backend(t, addr)
	fp := b.Value.(*fastcgi.Pool)
	idle := func() int { return fp.Stats().Idle }

	// The first report only sets the baseline of answered requests.
	tg.SetBackendState("php", addr, BackendState{Up: true})
	if resp, body := tg.get(t, "/x.php"); resp.StatusCode != 200 || body != "a" {
		t.Fatalf("GET: %d %q", resp.StatusCode, body)
	}
	waitUntil(t, "the connection back in the pool", func() bool { return idle() == 1 })

	// Answered since the last check: saturated, kept up, connection kept.
	tg.SetBackendState("php", addr, BackendState{Up: false, TimedOut: true})
	if !b.Healthy() {
		t.Errorf("a backend that answered since the last check went down on a timed-out check")
	}
	if idle() != 1 {
		t.Errorf("idle connections = %d after a timed-out check of a backend that answered; want 1 kept", idle())
	}

	// Nothing answered since: the idle connection is closed, and the
	// verdict stands.
	tg.SetBackendState("php", addr, BackendState{Up: true, TimedOut: true})
	if idle() != 0 {
		t.Errorf("idle connections = %d after a timed-out check with nothing answered; want 0", idle())
	}
	if n := len(tg.logs.find("health check timed out while this gateway held idle connections to the backend: closed them, freeing FPM workers")); n != 1 {
		t.Errorf("%d log lines of the closed idle connections, want 1", n)
	}
	tg.SetBackendState("php", addr, BackendState{Up: false, TimedOut: true})
	if b.Healthy() {
		t.Errorf("a backend that answered nothing stayed up on a down verdict")
	}
	// A dial replaces the closed connection once the backend is up again.
	tg.SetBackendState("php", addr, BackendState{Up: true})
	if resp, body := tg.get(t, "/x.php"); resp.StatusCode != 200 || body != "a" {
		t.Fatalf("GET after the close: %d %q", resp.StatusCode, body)
	}
}
