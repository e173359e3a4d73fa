package balancer

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// failOn ends n requests on b as failures. It picks b by avoiding every
// other backend.
func failOn(t *testing.T, p *Pool, b *Backend, n int) {
	t.Helper()
	var others []*Backend
	for _, x := range p.Backends() {
		if x != b {
			others = append(others, x)
		}
	}
	for range n {
		got, err := p.Pick(others)
		if err != nil || got != b {
			t.Fatalf("Pick = %v, %v; want %s", got, err, b.Addr())
		}
		got.Done(errBackend)
	}
}

// noBreaker turns the breaker off, to see ejection alone.
var noBreaker = Config{BreakerConsecutiveFailures: -1, BreakerFailureRatio: -1}

func TestOutlierEjectionGrows(t *testing.T) {
	p, bs, clk := newTestPool(t, noBreaker, 2)
	b := bs[0]
	ejectedFor := func() time.Duration {
		t.Helper()
		until := p.Stats()[0].EjectedUntil
		if until.IsZero() {
			t.Fatal("not ejected")
		}
		return until.Sub(clk.Now())
	}
	failOn(t, p, b, 4)
	if !p.Stats()[0].EjectedUntil.IsZero() {
		t.Fatal("ejected after 4 failures")
	}
	failOn(t, p, b, 1)
	want := []time.Duration{10 * time.Second, 20 * time.Second, 40 * time.Second, 80 * time.Second,
		160 * time.Second, 300 * time.Second, 300 * time.Second}
	for i, w := range want {
		if i > 0 {
			failOn(t, p, b, 5)
		}
		if got := ejectedFor(); got != w {
			t.Fatalf("ejection %d lasts %v, want %v", i+1, got, w)
		}
		// Ejected: requests go elsewhere, even when avoided.
		if got, _ := p.Pick([]*Backend{bs[1]}); got != bs[1] {
			t.Fatal("ejected backend picked")
		}
		bs[1].release()
		clk.Advance(w)
		if got, _ := p.Pick([]*Backend{bs[1]}); got != b {
			t.Fatal("backend not back after its ejection")
		}
		b.release()
	}
	// Five minutes without an ejection: back to the base time.
	clk.Advance(5 * time.Minute)
	failOn(t, p, b, 5)
	if got := ejectedFor(); got != 10*time.Second {
		t.Fatalf("ejection after a quiet spell lasts %v, want 10s", got)
	}
	if n := p.Stats()[0].Ejections; n != int64(len(want)+1) {
		t.Fatalf("Ejections = %d", n)
	}
}

func TestOutlierRunBroken(t *testing.T) {
	p, bs, _ := newTestPool(t, noBreaker, 2)
	failOn(t, p, bs[0], 4)
	got, _ := p.Pick([]*Backend{bs[1]})
	got.Done(context.Canceled) // says nothing
	failOn(t, p, bs[0], 1)
	if p.Stats()[0].EjectedUntil.IsZero() {
		t.Fatal("a cancellation broke the run of failures")
	}
	p, bs, _ = newTestPool(t, noBreaker, 2)
	failOn(t, p, bs[0], 4)
	got, _ = p.Pick([]*Backend{bs[1]})
	got.Done(nil)
	failOn(t, p, bs[0], 4)
	if !p.Stats()[0].EjectedUntil.IsZero() {
		t.Fatal("ejected though a success broke the run")
	}
}

func TestOutlierMaxEjectedPercent(t *testing.T) {
	p, bs, clk := newTestPool(t, noBreaker, 4) // 50% of 4: two at once
	failOn(t, p, bs[0], 5)
	clk.Advance(time.Second)
	failOn(t, p, bs[1], 5)
	failOn(t, p, bs[2], 5)
	ejected := func() string {
		s := ""
		for i, st := range p.Stats() {
			if !st.EjectedUntil.IsZero() {
				s += fmt.Sprint(i)
			}
		}
		return s
	}
	if got := ejected(); got != "01" {
		t.Fatalf("ejected %q, want 01", got)
	}
	clk.Advance(9 * time.Second) // bs[0]'s ejection is over
	failOn(t, p, bs[2], 1)       // its run goes on: now it may go
	if got := ejected(); got != "12" {
		t.Fatalf("ejected %q, want 12", got)
	}
}

func TestMaxEjected(t *testing.T) {
	tests := []struct{ n, pct, want int }{
		{0, 50, 0},
		{1, 100, 0}, // a pool of one never ejects
		{2, 50, 1},
		{2, 10, 1}, // at least one of two or more
		{3, 50, 1},
		{4, 50, 2},
		{10, 30, 3},
		{10, 100, 10},
	}
	for _, tt := range tests {
		if got := maxEjected(tt.n, tt.pct); got != tt.want {
			t.Errorf("maxEjected(%d, %d) = %d, want %d", tt.n, tt.pct, got, tt.want)
		}
	}
	p, bs, _ := newTestPool(t, noBreaker, 1)
	failOn(t, p, bs[0], 10)
	if !p.Stats()[0].EjectedUntil.IsZero() {
		t.Fatal("the only backend was ejected")
	}
}

func TestOutlierRemovedBackendNotEjected(t *testing.T) {
	p, bs, _ := newTestPool(t, noBreaker, 3)
	b, _ := p.Pick([]*Backend{bs[1], bs[2]})
	for range 4 {
		b.inflight.Add(1)
		b.Done(errBackend)
	}
	p.Set(bs[1:])
	b.Done(errBackend)
	if b.out.until.Load() != 0 {
		t.Fatal("a backend no longer in the pool was ejected")
	}
}
