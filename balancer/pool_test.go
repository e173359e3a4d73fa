package balancer

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeClock is a clock that moves only when told to.
type fakeClock struct {
	mu sync.Mutex // guards t
	t  time.Time
}

func newClock() *fakeClock { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// errBackend stands for a dial error, reset or timeout.
var errBackend = errors.New("connection reset by peer")

// newTestPool returns a pool of n backends, 127.0.0.1:9000 and up, on a
// fake clock.
func newTestPool(t testing.TB, cfg Config, n int) (*Pool, []*Backend, *fakeClock) {
	t.Helper()
	clk := newClock()
	if cfg.Now == nil {
		cfg.Now = clk.Now
	}
	bs := make([]*Backend, n)
	for i := range bs {
		bs[i] = NewBackend(fmt.Sprintf("127.0.0.%d:9000", i+1))
	}
	p, err := NewPoolConfig("test", cfg, bs)
	if err != nil {
		t.Fatal(err)
	}
	return p, bs, clk
}

// release undoes a pick without telling the breaker or outlier detection.
func (b *Backend) release() { b.inflight.Add(-1) }

// waitFor polls cond until it holds, or fails the test after 5s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
		time.Sleep(100 * time.Microsecond)
	}
}

func TestNewPoolKeepsAPI(t *testing.T) {
	a, b := NewBackend("127.0.0.2:9000"), NewBackend("127.0.0.3:9000")
	p := NewPool("web", []*Backend{a, b})
	if p.Name() != "web" || len(p.Backends()) != 2 || a.Addr() != "127.0.0.2:9000" {
		t.Fatalf("pool %q with %d backends", p.Name(), len(p.Backends()))
	}
	got, err := p.Pick(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.InFlight() != 1 {
		t.Fatalf("in flight = %d after Pick, want 1", got.InFlight())
	}
	got.Done(nil)
	if got.InFlight() != 0 {
		t.Fatalf("in flight = %d after Done, want 0", got.InFlight())
	}
	if d := DefaultConfig(); p.Config().MaxQueue != d.MaxQueue || p.Config().BreakerOpenTime != d.BreakerOpenTime {
		t.Fatalf("NewPool config = %+v, want the defaults", p.Config())
	}
}

func TestSetKeepsStateAndPanicsOnForeignBackend(t *testing.T) {
	p, bs, _ := newTestPool(t, Config{}, 2)
	bs[0].inflight.Store(3)
	c := NewBackend("127.0.0.9:9000")
	p.Set([]*Backend{bs[0], c})
	if got := p.Backends(); len(got) != 2 || got[0] != bs[0] || got[1] != c {
		t.Fatalf("Backends = %v", got)
	}
	if bs[0].InFlight() != 3 {
		t.Fatalf("kept backend lost its state")
	}
	q, _, _ := newTestPool(t, Config{}, 0)
	defer func() {
		if recover() == nil {
			t.Fatal("giving a backend of one pool to another did not panic")
		}
	}()
	q.Set([]*Backend{c})
}

func TestStats(t *testing.T) {
	p, bs, clk := newTestPool(t, Config{MaxConcurrent: 7}, 2)
	bs[0].inflight.Store(2)
	bs[0].SetWeight(3)
	bs[0].SetLoadPenalty(4)
	bs[1].SetHealthy(false)
	st := p.Stats()
	want := BackendStats{Addr: bs[0].Addr(), InFlight: 2, Weight: 3, EffectiveWeight: 3, LoadPenalty: 4, Healthy: true, MaxConcurrent: 7}
	if st[0] != want {
		t.Errorf("Stats[0] = %+v\nwant       %+v", st[0], want)
	}
	if st[1].Healthy {
		t.Errorf("Stats[1] healthy after SetHealthy(false)")
	}
	for range 5 {
		b, err := p.Pick(nil)
		if err != nil {
			t.Fatal(err)
		}
		b.Done(errBackend)
	}
	s0 := p.Stats()[0]
	if s0.Breaker != BreakerOpen || !s0.OpenUntil.Equal(clk.Now().Add(10*time.Second)) {
		t.Errorf("after 5 failures: breaker %v until %v", s0.Breaker, s0.OpenUntil)
	}
	if p.Queued() != 0 {
		t.Errorf("Queued = %d", p.Queued())
	}
}
