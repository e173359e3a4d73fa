package balancer

import (
	"math"
	"testing"
	"time"
)

func TestSlowStartRamp(t *testing.T) {
	p, bs, clk := newTestPool(t, Config{SlowStart: 30 * time.Second}, 1)
	if w := p.Stats()[0].EffectiveWeight; w != 1 {
		t.Fatalf("a backend the pool starts with ramps: weight %v", w)
	}
	nb := NewBackend("127.0.0.9:9000")
	nb.SetWeight(4)
	p.Set([]*Backend{bs[0], nb})
	tests := []struct {
		after time.Duration // since it joined
		want  float64
	}{
		{0, 0.4},
		{10 * time.Second, 4 * (0.1 + 0.9/3)},
		{15 * time.Second, 4 * 0.55},
		{29 * time.Second, 4 * (0.1 + 0.9*29/30)},
		{30 * time.Second, 4},
		{time.Hour, 4},
	}
	start := clk.Now()
	for _, tt := range tests {
		clk.Advance(start.Add(tt.after).Sub(clk.Now()))
		if got := p.Stats()[1].EffectiveWeight; math.Abs(got-tt.want) > 1e-3 {
			t.Errorf("after %v: effective weight %.4f, want %.4f", tt.after, got, tt.want)
		}
	}
	if nb.state.Load()&flagRamp != 0 {
		t.Fatal("ramp flag still set after the ramp")
	}
}

// TestSlowStartPick checks that Pick uses the ramped weight: a backend at a
// tenth of weight 1 counts as ten times as loaded.
func TestSlowStartPick(t *testing.T) {
	p, bs, clk := newTestPool(t, Config{SlowStart: 30 * time.Second}, 1)
	nb := NewBackend("127.0.0.9:9000")
	p.Set([]*Backend{bs[0], nb})
	nb.inflight.Store(1)
	bs[0].inflight.Store(8) // 8/1 against 1/0.1
	if got, _ := p.Pick(nil); got != bs[0] {
		t.Fatal("ramping backend picked over a less loaded one")
	}
	bs[0].inflight.Store(11) // 11/1 against 1/0.1
	nb.inflight.Store(1)
	if got, _ := p.Pick(nil); got != nb {
		t.Fatal("ramping backend not picked when the other is more loaded")
	}
	clk.Advance(30 * time.Second)
	bs[0].inflight.Store(2) // after the ramp: 2/1 against 1/1
	nb.inflight.Store(1)
	if got, _ := p.Pick(nil); got != nb {
		t.Fatal("backend at full weight not picked")
	}
}

// TestSlowStartRestarts checks each way a backend comes back.
func TestSlowStartRestarts(t *testing.T) {
	tests := []struct {
		name string
		// leave takes the backend out and brings it back, returning when
		// it came back.
		leave func(p *Pool, b *Backend, clk *fakeClock) time.Time
	}{
		{"health", func(_ *Pool, b *Backend, clk *fakeClock) time.Time {
			b.SetHealthy(false)
			clk.Advance(time.Minute)
			b.SetHealthy(true)
			return clk.Now()
		}},
		{"breaker", func(p *Pool, b *Backend, clk *fakeClock) time.Time {
			tripBreaker(b)
			clk.Advance(10 * time.Second)
			tr, _ := p.Pick(nil)
			tr.Done(nil) // BreakerHalfOpenRequests is 1 here
			return clk.Now()
		}},
		{"ejection", func(p *Pool, b *Backend, clk *fakeClock) time.Time {
			p.eject(b)
			clk.Advance(10 * time.Second)
			return clk.Now()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, bs, clk := newTestPool(t, Config{SlowStart: 20 * time.Second, BreakerHalfOpenRequests: 1}, 2)
			bs[1].SetHealthy(false)
			back := tt.leave(p, bs[0], clk)
			if d := clk.Now().Sub(back); d != 0 {
				t.Fatalf("clock moved %v", d)
			}
			if w := p.Stats()[0].EffectiveWeight; math.Abs(w-0.1) > 1e-3 {
				t.Fatalf("weight %v on coming back, want 0.1", w)
			}
			clk.Advance(10 * time.Second)
			if w := p.Stats()[0].EffectiveWeight; math.Abs(w-0.55) > 1e-3 {
				t.Fatalf("weight %v half way, want 0.55", w)
			}
		})
	}
}
