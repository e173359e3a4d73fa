package balancer

import (
	"testing"
	"time"
)

// TestSlownessLevels: levels follow each backend's average against the
// fastest of the pool, in powers of two, up to 7.
func TestSlownessLevels(t *testing.T) {
	_, bs, _ := newTestPool(t, Config{}, 4)
	for range relevelEvery {
		bs[0].ObserveLatency(time.Millisecond)
		bs[1].ObserveLatency(3 * time.Millisecond)
		bs[2].ObserveLatency(10 * time.Millisecond)
		bs[3].ObserveLatency(time.Second)
	}
	for i, want := range []uint{0, 1, 3, 7} {
		if got := slowOf(bs[i].state.Load()); got != want {
			t.Errorf("backend %d: level %d, want %d", i, got, want)
		}
	}
}

// TestSlowBackendLoadCounts: a backend ten times slower counts each of its
// requests in flight eight times, so under load it takes far fewer; idle,
// it still ties with the others.
func TestSlowBackendLoadCounts(t *testing.T) {
	p, bs, _ := newTestPool(t, Config{}, 2)
	for range relevelEvery {
		bs[0].ObserveLatency(2 * time.Millisecond)
		bs[1].ObserveLatency(20 * time.Millisecond)
	}
	tests := []struct {
		fast, slow int64
		want       int
	}{
		{5, 1, 0}, // 5 against 8
		{9, 1, 1}, // 9 against 8
		{0, 1, 0},
	}
	for _, tt := range tests {
		bs[0].inflight.Store(tt.fast)
		bs[1].inflight.Store(tt.slow)
		b, err := p.Pick(nil)
		if err != nil {
			t.Fatal(err)
		}
		b.release()
		if b != bs[tt.want] {
			t.Errorf("fast %d, slow %d in flight: picked %s, want %s", tt.fast, tt.slow, b.Addr(), bs[tt.want].Addr())
		}
	}
	// Idle: both tie at zero, and the slow one still gets its turns.
	bs[0].inflight.Store(0)
	bs[1].inflight.Store(0)
	slow := 0
	for range 2000 {
		b, _ := p.Pick(nil)
		b.release()
		if b == bs[1] {
			slow++
		}
	}
	if slow < 800 || slow > 1200 {
		t.Errorf("idle: slow backend picked %d of 2000 times, want about half", slow)
	}
}
