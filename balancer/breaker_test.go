package balancer

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"
)

// runOutcomes sends one request per letter of outcomes to a pool of one
// backend and ends it as the letter says: S success, F failure, C client
// cancellation. It returns the 1-based index of the request after which
// the breaker was open, or 0.
func runOutcomes(t *testing.T, cfg Config, outcomes string) int {
	t.Helper()
	cfg.Outlier.ConsecutiveFailures = -1
	p, _, _ := newTestPool(t, cfg, 1)
	for i, o := range outcomes {
		b, err := p.Pick(nil)
		if err != nil {
			t.Fatalf("request %d: %v", i+1, err)
		}
		switch o {
		case 'S':
			b.Done(nil)
		case 'F':
			b.Done(fmt.Errorf("read: %w", errBackend))
		case 'C':
			b.Done(fmt.Errorf("write: %w", context.Canceled))
		}
		if b.breakerState() == BreakerOpen {
			return i + 1
		}
	}
	return 0
}

func TestBreakerTrips(t *testing.T) {
	noConsecutive := Config{BreakerConsecutiveFailures: -1}
	tests := []struct {
		name     string
		cfg      Config
		outcomes string
		wantOpen int // request after which it opens; 0 for never
	}{
		{"four failures", Config{}, "FFFF", 0},
		{"five failures in a row", Config{}, "SFFFFF", 6},
		{"a success resets the run", Config{}, "FFFFSFFFF", 0},
		{"cancellations do not count", Config{}, "FFCCFFCF", 8},
		{"three in a row if so configured", Config{BreakerConsecutiveFailures: 3}, "FSFFF", 5},
		{"ratio needs the minimum", noConsecutive, strings.Repeat("FS", 9) + "F", 0},
		{"ratio at the minimum", noConsecutive, strings.Repeat("SF", 10), 20},
		{"ratio reached after the minimum", noConsecutive, strings.Repeat("FS", 10) + "F", 21},
		{"ratio below", noConsecutive, strings.Repeat("SSF", 20), 0},
		{"cancellations are not requests", noConsecutive, strings.Repeat("SFC", 10), 29}, // the 10th F is the 20th outcome counted
		{"lower ratio", Config{BreakerConsecutiveFailures: -1, BreakerFailureRatio: 0.25, BreakerMinRequests: 8}, "SSSFSSSF", 8},
		{"both rules off", Config{BreakerConsecutiveFailures: -1, BreakerFailureRatio: -1}, strings.Repeat("F", 50), 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := runOutcomes(t, tt.cfg, tt.outcomes); got != tt.wantOpen {
				t.Fatalf("open after request %d, want %d", got, tt.wantOpen)
			}
		})
	}
}

// TestBreakerCycle drives a breaker through open, half-open and closed on
// the fake clock.
func TestBreakerCycle(t *testing.T) {
	var mu sync.Mutex
	var changes []string
	cfg := Config{
		Outlier: OutlierConfig{ConsecutiveFailures: -1},
		OnBreakerChange: func(b *Backend, from, to BreakerState) {
			mu.Lock()
			changes = append(changes, from.String()+">"+to.String())
			mu.Unlock()
		},
	}
	p, bs, clk := newTestPool(t, cfg, 1)
	b := bs[0]
	pick := func() (*Backend, error) { t.Helper(); return p.Pick(nil) }
	mustPick := func() *Backend {
		t.Helper()
		got, err := pick()
		if err != nil {
			t.Fatal(err)
		}
		return got
	}
	wantState := func(want BreakerState) {
		t.Helper()
		if got := b.breakerState(); got != want {
			t.Fatalf("breaker %v, want %v", got, want)
		}
	}

	// A request in flight when the breaker trips: its outcome is ignored.
	straggler := mustPick()
	for range 5 {
		mustPick().Done(errBackend)
	}
	wantState(BreakerOpen)
	if _, err := pick(); !errors.Is(err, ErrNoBackend) {
		t.Fatalf("Pick on an open breaker = %v, want ErrNoBackend", err)
	}
	straggler.Done(nil)
	wantState(BreakerOpen)

	clk.Advance(10*time.Second - 1)
	if _, err := pick(); err == nil {
		t.Fatal("Pick succeeded before the open time was over")
	}
	clk.Advance(1)
	trials := []*Backend{mustPick(), mustPick(), mustPick()}
	wantState(BreakerHalfOpen)
	if _, err := pick(); err == nil {
		t.Fatal("Pick let a fourth trial through")
	}
	// A cancelled trial says nothing: another may go.
	trials[2].Done(context.Canceled)
	trials[2] = mustPick()
	// A failed trial opens the breaker again, for another open time.
	trials[0].Done(errBackend)
	wantState(BreakerOpen)
	if until := p.Stats()[0].OpenUntil; !until.Equal(clk.Now().Add(10 * time.Second)) {
		t.Fatalf("open until %v, want %v", until, clk.Now().Add(10*time.Second))
	}
	trials[1].Done(nil) // trials of the last period end while open: ignored
	trials[2].Done(nil)
	wantState(BreakerOpen)

	clk.Advance(10 * time.Second)
	trials = []*Backend{mustPick(), mustPick(), mustPick()}
	for _, tr := range trials {
		wantState(BreakerHalfOpen)
		tr.Done(nil)
	}
	wantState(BreakerClosed)
	for range 10 {
		mustPick().Done(nil)
	}
	if b.InFlight() != 0 {
		t.Fatalf("in flight = %d, want 0", b.InFlight())
	}
	mu.Lock()
	defer mu.Unlock()
	want := "closed>open open>half-open half-open>open open>half-open half-open>closed"
	if got := strings.Join(changes, " "); got != want {
		t.Fatalf("changes:\n%s\nwant\n%s", got, want)
	}
}

// TestBreakerTrialPickedAmongOthers checks that a backend whose open time
// is over gets trials when it is the best pick, and that a refused trial
// sends the request to the next best backend.
func TestBreakerTrialPickedAmongOthers(t *testing.T) {
	p, bs, clk := newTestPool(t, Config{Outlier: OutlierConfig{ConsecutiveFailures: -1}, BreakerHalfOpenRequests: 1}, 2)
	tripBreaker(bs[0])
	bs[1].inflight.Store(5)
	if got, _ := p.Pick(nil); got != bs[1] {
		t.Fatal("open backend picked")
	}
	clk.Advance(10 * time.Second)
	trial, _ := p.Pick(nil)
	if trial != bs[0] {
		t.Fatalf("Pick = %s, want the trial on %s", trial.Addr(), bs[0].Addr())
	}
	if got, _ := p.Pick(nil); got != bs[1] {
		t.Fatal("second trial let through")
	}
	trial.Done(nil)
	if bs[0].breakerState() != BreakerClosed {
		t.Fatalf("breaker %v after the one trial succeeded", bs[0].breakerState())
	}
}

// TestBreakerStragglerCountsAsTrial documents that Done cannot tell a
// trial from a request sent before the breaker opened: while trials are
// out, the next outcomes stand for theirs.
func TestBreakerStragglerCountsAsTrial(t *testing.T) {
	p, bs, clk := newTestPool(t, Config{Outlier: OutlierConfig{ConsecutiveFailures: -1}, BreakerHalfOpenRequests: 1}, 1)
	straggler, _ := p.Pick(nil)
	tripBreaker(bs[0])
	clk.Advance(10 * time.Second)
	trial, _ := p.Pick(nil)
	straggler.Done(errBackend) // the straggler times out: the backend is still bad
	if bs[0].breakerState() != BreakerOpen {
		t.Fatalf("breaker %v, want open again", bs[0].breakerState())
	}
	trial.Done(nil) // ignored while open
	if bs[0].breakerState() != BreakerOpen || bs[0].InFlight() != 0 {
		t.Fatalf("breaker %v with %d in flight", bs[0].breakerState(), bs[0].InFlight())
	}
}

func TestStatusErr(t *testing.T) {
	tests := []struct {
		break5xx bool
		status   int
		want     error
	}{
		{false, 200, nil},
		{false, 500, nil},
		{false, 503, nil},
		{true, 200, nil},
		{true, 404, nil},
		{true, 499, nil},
		{true, 500, ErrServerError},
		{true, 502, ErrServerError},
		{true, 599, ErrServerError},
		{true, 600, nil},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v/%d", tt.break5xx, tt.status), func(t *testing.T) {
			p, _, _ := newTestPool(t, Config{Break5xx: tt.break5xx}, 0)
			if got := p.StatusErr(tt.status); got != tt.want {
				t.Fatalf("StatusErr = %v, want %v", got, tt.want)
			}
		})
	}
	// Passed to Done, ErrServerError is a failure like any other.
	if got := runOutcomes(t, Config{Break5xx: true}, "SFFFFF"); got != 6 {
		t.Fatalf("open after %d", got)
	}
	p, _, _ := newTestPool(t, Config{Break5xx: true, Outlier: OutlierConfig{ConsecutiveFailures: -1}}, 1)
	for range 5 {
		b, _ := p.Pick(nil)
		b.Done(p.StatusErr(503))
	}
	if st := p.Stats()[0].Breaker; st != BreakerOpen {
		t.Fatalf("breaker %v after five 503s with Break5xx", st)
	}
}

// BenchmarkGobreaker compares the two ways of reporting an outcome to
// gobreaker: TwoStepCircuitBreaker.Allow, whose done closure allocates, and
// CircuitBreaker.Execute with a function that captures nothing, which
// Done uses.
func BenchmarkGobreaker(b *testing.B) {
	st := gobreaker.Settings{Interval: 10 * time.Second, BucketPeriod: time.Second}
	b.Run("TwoStepAllow", func(b *testing.B) {
		cb := gobreaker.NewTwoStepCircuitBreaker[struct{}](st)
		b.ReportAllocs()
		for b.Loop() {
			done, err := cb.Allow()
			if err != nil {
				b.Fatal(err)
			}
			done(nil)
		}
	})
	b.Run("Execute", func(b *testing.B) {
		cb := gobreaker.NewCircuitBreaker[struct{}](st)
		b.ReportAllocs()
		for b.Loop() {
			cb.Execute(reportSuccess)
		}
	})
}
