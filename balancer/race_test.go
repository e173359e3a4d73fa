package balancer

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestConcurrentUse runs requests through Acquire and Done from many
// goroutines while backends fail, flap and change, and checks that no
// backend goes over its limit and that every count returns to zero. Run it
// with -race.
func TestConcurrentUse(t *testing.T) {
	clk := newClock()
	cfg := Config{
		MaxConcurrent:   3,
		MaxQueue:        1000,
		QueueTimeout:    time.Second,
		SlowStart:       time.Second,
		BreakerOpenTime: time.Millisecond,
		Now:             clk.Now,
	}
	p, bs, _ := newTestPool(t, cfg, 4)
	const workers, requests = 16, 300
	var overLimit, served, refused atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() { // ends after its requests
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			var avoid []*Backend
			for range requests {
				b, err := p.Acquire(context.Background(), avoid)
				if err != nil {
					if !errors.Is(err, ErrNoBackend) {
						panic(err)
					}
					refused.Add(1)
					avoid = nil
					continue
				}
				if b.InFlight() > 3 {
					overLimit.Add(1)
				}
				served.Add(1)
				switch r := rng.IntN(10); {
				case r == 0:
					b.Done(errBackend)
					avoid = append(avoid[:0], b)
				case r == 1:
					b.Done(context.Canceled)
				default:
					b.Done(nil)
					avoid = nil
				}
			}
		}()
	}
	wg.Add(1)
	go func() { // ends after its changes
		defer wg.Done()
		for i := range 200 {
			b := bs[i%len(bs)]
			b.SetHealthy(i%3 != 0)
			b.SetLoadPenalty(i % 4)
			b.SetWeight(1 + i%3)
			clk.Advance(time.Millisecond)
			if i%50 == 0 {
				p.Set(bs[:len(bs)-i%2])
			}
			p.Stats()
		}
		for _, b := range bs {
			b.SetHealthy(true)
		}
		p.Set(bs)
	}()
	wg.Wait()
	if overLimit.Load() != 0 {
		t.Errorf("%d requests over the limit", overLimit.Load())
	}
	for _, b := range bs {
		if n := b.InFlight(); n != 0 {
			t.Errorf("%s: %d in flight at the end", b.Addr(), n)
		}
	}
	if p.Queued() != 0 {
		t.Errorf("%d queued at the end", p.Queued())
	}
	t.Logf("served %d, refused %d", served.Load(), refused.Load())
}
