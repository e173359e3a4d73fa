package balancer

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestPickLeastPerWeight(t *testing.T) {
	tests := []struct {
		name     string
		weights  []int
		inflight []int64
		penalty  []int
		want     int
	}{
		{"fewest in flight", []int{1, 1, 1}, []int64{3, 1, 2}, nil, 1},
		{"per unit of weight", []int{1, 2}, []int64{2, 3}, nil, 1},    // 2/1 against 3/2
		{"heavy but busy", []int{1, 4}, []int64{1, 8}, nil, 0},        // 1/1 against 8/4
		{"heavy and not so busy", []int{1, 4}, []int64{2, 6}, nil, 1}, // 2/1 against 6/4
		{"load penalty counts", []int{1, 1}, []int64{0, 1}, []int{2, 0}, 1},
		{"weight 0 drains", []int{0, 1}, []int64{0, 9}, nil, 1},
		{"max weight", []int{MaxWeight, 1}, []int64{1 << 19, 1}, nil, 0},                                  // about 1/2 against 1/1
		{"huge count is clamped", []int{MaxWeight, 1}, []int64{1 << 40, 0}, []int{maxPenalty, 0}, 1},      // about 65/1 against 1/1
		{"clamped without overflow", []int{MaxWeight, 1}, []int64{1 << 40, 100}, []int{maxPenalty, 0}, 0}, // about 65/1 against 101/1
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, bs, _ := newTestPool(t, Config{}, len(tt.weights))
			for i, b := range bs {
				b.SetWeight(tt.weights[i])
				b.inflight.Store(tt.inflight[i])
				if tt.penalty != nil {
					b.SetLoadPenalty(tt.penalty[i])
				}
			}
			got, err := p.Pick(nil)
			if err != nil {
				t.Fatal(err)
			}
			if got != bs[tt.want] {
				t.Fatalf("Pick = %s, want %s", got.Addr(), bs[tt.want].Addr())
			}
			if got.InFlight() != tt.inflight[tt.want]+1 {
				t.Fatalf("in flight = %d, want %d", got.InFlight(), tt.inflight[tt.want]+1)
			}
		})
	}
}

// TestPickTiesRandom checks that ties are broken at random in proportion
// to weight: each of the tied backends gets its share within 1.5 points over
// 40,000 picks (the standard deviation is about 0.2 points), and the others
// get none.
func TestPickTiesRandom(t *testing.T) {
	tests := []struct {
		name     string
		weights  []int
		inflight []int64
		share    []float64
	}{
		{"four equal", []int{1, 1, 1, 1}, []int64{0, 0, 0, 0}, []float64{.25, .25, .25, .25}},
		{"two of three", []int{1, 1, 1}, []int64{2, 5, 2}, []float64{.5, 0, .5}},
		// Ties go in proportion to weight: idle backends split 1:2:3.
		{"idle, weighted", []int{1, 2, 3}, []int64{0, 0, 0}, []float64{1. / 6, 2. / 6, 3. / 6}},
		{"tied per weight", []int{1, 2, 3}, []int64{1, 2, 3}, []float64{1. / 6, 2. / 6, 3. / 6}},
	}
	const picks = 40_000
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, bs, _ := newTestPool(t, Config{}, len(tt.weights))
			idx := map[*Backend]int{}
			for i, b := range bs {
				b.SetWeight(tt.weights[i])
				b.inflight.Store(tt.inflight[i])
				idx[b] = i
			}
			count := make([]int, len(bs))
			for range picks {
				b, err := p.Pick(nil)
				if err != nil {
					t.Fatal(err)
				}
				b.release()
				count[idx[b]]++
			}
			for i, c := range count {
				if got := float64(c) / picks; math.Abs(got-tt.share[i]) > 0.015 {
					t.Errorf("backend %d got %.3f of the picks, want %.3f (counts %v)", i, got, tt.share[i], count)
				}
			}
		})
	}
}

// TestPickSkips checks each reason to pass a backend over. Backend 0 would
// be picked (fewest in flight) but for the condition set up; backend 1 is
// next best.
func TestPickSkips(t *testing.T) {
	tests := []struct {
		name  string
		setup func(p *Pool, bs []*Backend, clk *fakeClock) []*Backend // returns avoid
	}{
		{"unhealthy", func(_ *Pool, bs []*Backend, _ *fakeClock) []*Backend {
			bs[0].SetHealthy(false)
			return nil
		}},
		{"avoided", func(_ *Pool, bs []*Backend, _ *fakeClock) []*Backend {
			return []*Backend{bs[0]}
		}},
		{"at its learned limit", func(_ *Pool, bs []*Backend, _ *fakeClock) []*Backend {
			bs[0].SetMaxConcurrent(1)
			return nil
		}},
		{"weight 0", func(_ *Pool, bs []*Backend, _ *fakeClock) []*Backend {
			bs[0].SetWeight(0)
			return nil
		}},
		{"breaker open", func(_ *Pool, bs []*Backend, _ *fakeClock) []*Backend {
			tripBreaker(bs[0])
			return nil
		}},
		{"half-open without trials left", func(_ *Pool, bs []*Backend, clk *fakeClock) []*Backend {
			tripBreaker(bs[0])
			clk.Advance(10 * time.Second)
			bs[0].inflight.Store(0)
			for range 3 {
				if ok, _ := bs[0].br.claimTrial(bs[0], clk.Now().UnixNano()); !ok {
					panic("trial refused")
				}
			}
			bs[0].inflight.Store(1)
			return nil
		}},
		{"ejected", func(p *Pool, bs []*Backend, _ *fakeClock) []*Backend {
			if !p.eject(bs[0]) {
				panic("not ejected")
			}
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, bs, clk := newTestPool(t, Config{}, 3)
			for i, b := range bs {
				b.inflight.Store(int64(i + 1))
			}
			avoid := tt.setup(p, bs, clk)
			got, err := p.Pick(avoid)
			if err != nil {
				t.Fatal(err)
			}
			if got != bs[1] {
				t.Fatalf("Pick = %s, want %s", got.Addr(), bs[1].Addr())
			}
		})
	}
}

// tripBreaker opens b's breaker with five failures, keeping its in-flight
// count.
func tripBreaker(b *Backend) {
	n := b.inflight.Load()
	for range 5 {
		b.inflight.Add(1)
		b.br.report(b, failure)
		b.inflight.Add(-1)
	}
	b.inflight.Store(n)
	if b.breakerState() != BreakerOpen {
		panic("breaker did not open")
	}
}

func TestPickFallsBackToAvoided(t *testing.T) {
	p, bs, _ := newTestPool(t, Config{}, 2)
	bs[1].SetHealthy(false)
	got, err := p.Pick([]*Backend{bs[0]})
	if err != nil || got != bs[0] {
		t.Fatalf("Pick = %v, %v; want the avoided backend", got, err)
	}
}

func TestPickNoBackend(t *testing.T) {
	tests := []struct {
		name     string
		setup    func(bs []*Backend)
		wantBusy bool
	}{
		{"empty pool", func([]*Backend) {}, false},
		{"all down", func(bs []*Backend) {
			for _, b := range bs {
				b.SetHealthy(false)
			}
		}, false},
		{"all at their limit", func(bs []*Backend) {
			for _, b := range bs {
				b.SetMaxConcurrent(1)
				b.inflight.Store(1)
			}
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n := 2
			if tt.name == "empty pool" {
				n = 0
			}
			p, bs, _ := newTestPool(t, Config{}, n)
			tt.setup(bs)
			b, err := p.Pick(nil)
			if b != nil || !errors.Is(err, ErrNoBackend) {
				t.Fatalf("Pick = %v, %v; want ErrNoBackend", b, err)
			}
			if busy := err == p.errBusy; busy != tt.wantBusy {
				t.Fatalf("Pick error %q: busy %v, want %v", err, busy, tt.wantBusy)
			}
		})
	}
}

// TestWeightShares sends 10,000 requests to backends of weights 1, 2 and 3
// and checks that each gets its share (1/6, 2/6, 3/6) within 2 points.
//
// The simulation: requests arrive one per tick, and each stays in flight
// for a duration drawn uniformly from 1 to 59 ticks (seeded, so the run is
// the same each time), whichever backend serves it; about 30 requests are
// in flight at once. Least-in-flight per weight then keeps the in-flight
// counts near 5, 10 and 15, and with durations that do not depend on the
// backend, the shares of requests follow. (Requests that ended before the
// next began would all go to the heaviest backend: with nothing in flight,
// it always has the lowest load per weight.)
func TestWeightShares(t *testing.T) {
	const requests = 10_000
	const maxDuration = 59
	p, bs, _ := newTestPool(t, Config{}, 3)
	idx := map[*Backend]int{}
	for i, b := range bs {
		b.SetWeight(i + 1)
		idx[b] = i
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var ending [maxDuration + 1][]*Backend // requests by the tick they end, modulo
	count := make([]int, len(bs))
	for tick := range requests {
		slot := tick % len(ending)
		for _, b := range ending[slot] {
			b.Done(nil)
		}
		ending[slot] = ending[slot][:0]
		b, err := p.Pick(nil)
		if err != nil {
			t.Fatal(err)
		}
		count[idx[b]]++
		end := (tick + 1 + rng.IntN(maxDuration)) % len(ending)
		ending[end] = append(ending[end], b)
	}
	for i, c := range count {
		want := float64(i+1) / 6
		if got := float64(c) / requests; math.Abs(got-want) > 0.02 {
			t.Errorf("weight %d got %.4f of the requests, want %.4f±0.02 (counts %v)", i+1, got, want, count)
		} else {
			t.Logf("weight %d: %.4f of the requests (want %.4f)", i+1, got, want)
		}
	}
}

// windowMin returns the index of the least loaded backend of the window
// of sampleSize that starts at off in a pool of len(load) backends of
// weight 1, whose loads are distinct.
func windowMin(load []int64, off int) int {
	m := -1
	for k := range sampleSize {
		if i := (off + k) % len(load); m < 0 || load[i] < load[m] {
			m = i
		}
	}
	return m
}

// distinctLoads puts a shuffled 0..n-1 in flight on bs (seeded, so each
// run is the same) and returns it.
func distinctLoads(bs []*Backend) []int64 {
	rng := rand.New(rand.NewPCG(3, 4))
	load := make([]int64, len(bs))
	for i, j := range rng.Perm(len(bs)) {
		load[i] = int64(j)
		bs[i].inflight.Store(load[i])
	}
	return load
}

// TestPickWindow checks the sampling contract offset by offset: in a pool
// of more than sampleSize backends, the pick is the least loaded of the
// sampleSize backends from the offset on, wrapping around the end; in a
// pool of up to sampleSize it is the least loaded of all.
func TestPickWindow(t *testing.T) {
	for _, n := range []int{2, sampleSize, sampleSize + 1, 100, 128} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			p, bs, _ := newTestPool(t, Config{}, n)
			load := distinctLoads(bs)
			for off := range n {
				if n <= sampleSize && off > 0 {
					break // pick always passes 0
				}
				want := slices.Index(load, 0) // the least loaded of all
				if n > sampleSize {
					want = windowMin(load, off)
				}
				got, st := p.pickFrom(bs, off, 0, nil, &clock{p: p})
				if st != picked {
					t.Fatalf("offset %d: status %d, want picked", off, st)
				}
				got.release()
				if got != bs[want] {
					t.Fatalf("offset %d: picked %s (load %d), want %s (load %d)",
						off, got.Addr(), got.InFlight(), bs[want].Addr(), load[want])
				}
			}
		})
	}
}

// TestPickSampled checks the contract through Pick, which draws the offset
// itself: with 128 backends of distinct loads, every pick is the least
// loaded of some window, and each backend gets the share of the 10,000
// picks that its wins predict, within 2 points (the largest share is 1/4,
// whose standard deviation is about 0.4 points), so the offsets are
// uniform. The least loaded backend of all, in 32 windows out of 128, gets
// a quarter.
func TestPickSampled(t *testing.T) {
	const n, picks = 128, 10_000
	p, bs, _ := newTestPool(t, Config{}, n)
	load := distinctLoads(bs)
	wins := make([]int, n) // windows in which each backend is the least loaded
	for off := range n {
		wins[windowMin(load, off)]++
	}
	idx := map[*Backend]int{}
	for i, b := range bs {
		idx[b] = i
	}
	count := make([]int, n)
	for range picks {
		b, err := p.Pick(nil)
		if err != nil {
			t.Fatal(err)
		}
		b.release()
		count[idx[b]]++
	}
	for i := range n {
		want := float64(wins[i]) / n
		got := float64(count[i]) / picks
		if wins[i] == 0 && count[i] > 0 {
			t.Errorf("backend %d (load %d) picked %d times, but it is the least loaded of no window", i, load[i], count[i])
		} else if math.Abs(got-want) > 0.02 {
			t.Errorf("backend %d (load %d) got %.4f of the picks, want %.4f", i, load[i], got, want)
		}
	}
	if i := slices.Index(load, 0); wins[i] != sampleSize {
		t.Errorf("the least loaded backend wins %d windows, want %d", wins[i], sampleSize)
	}
}

// TestPickSampledSpreads checks that sampling keeps the load even: 10,000
// requests that stay in flight on 128 backends of weight 1 end up within 3
// of each other, and on backends of weights 1 to 3 within 3 per unit of
// weight. An exact pick would leave 78 or 79 on each; sampling leaves 77
// to 79 about a third of the time (39 to 39.5 weighted); a random pick,
// about 50 apart.
func TestPickSampledSpreads(t *testing.T) {
	const n, requests = 128, 10_000
	for _, weighted := range []bool{false, true} {
		t.Run(fmt.Sprintf("weighted=%v", weighted), func(t *testing.T) {
			p, bs, _ := newTestPool(t, Config{}, n)
			if weighted {
				for i, b := range bs {
					b.SetWeight(i%3 + 1)
				}
			}
			for range requests {
				if _, err := p.Pick(nil); err != nil {
					t.Fatal(err)
				}
			}
			lo, hi := math.Inf(1), math.Inf(-1)
			for _, b := range bs {
				perWeight := float64(b.InFlight()) / float64(b.Weight())
				lo, hi = min(lo, perWeight), max(hi, perWeight)
			}
			if hi-lo > 3 {
				t.Errorf("in flight per unit of weight from %.2f to %.2f, want within 3", lo, hi)
			}
			t.Logf("in flight per unit of weight from %.2f to %.2f", lo, hi)
		})
	}
}

// TestPickSampleFallback checks that when no backend in the window can
// take the request, Pick looks at the whole pool: the one backend that can,
// outside the window, gets it. The window is bs[0:32]; bs[100] is the one.
func TestPickSampleFallback(t *testing.T) {
	const n, one = 128, 100
	tests := []struct {
		name string
		skip func(b *Backend) // makes b unable to take a request
		// avoided: the window is in the avoid list instead.
		avoided bool
	}{
		{"down", func(b *Backend) { b.SetHealthy(false) }, false},
		{"at their limit", func(b *Backend) { b.SetMaxConcurrent(1); b.inflight.Store(1) }, false},
		{"weight 0", func(b *Backend) { b.SetWeight(0) }, false},
		{"breaker open", tripBreaker, false},
		{"avoided", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, bs, _ := newTestPool(t, Config{}, n)
			var avoid []*Backend
			for i, b := range bs {
				switch {
				case i < sampleSize && tt.avoided:
					avoid = append(avoid, b)
				case i < sampleSize:
					tt.skip(b)
				case i != one:
					b.SetHealthy(false)
				}
			}
			got, st := p.pickFrom(bs, 0, 0, avoid, &clock{p: p})
			if st != picked || got != bs[one] {
				t.Fatalf("pickFrom = %v, %d; want %s", got, st, bs[one].Addr())
			}
			got.release()
			// Through Pick, whose window misses bs[100] three times out
			// of four.
			for range 200 {
				got, err := p.Pick(avoid)
				if err != nil || got != bs[one] {
					t.Fatalf("Pick = %v, %v; want %s", got, err, bs[one].Addr())
				}
				got.release()
			}
		})
	}

	t.Run("all at their limit", func(t *testing.T) {
		p, bs, _ := newTestPool(t, Config{}, n)
		for _, b := range bs {
			b.SetMaxConcurrent(1)
			b.inflight.Store(1)
		}
		if b, err := p.Pick(nil); b != nil || err != p.errBusy {
			t.Fatalf("Pick = %v, %v; want %v", b, err, p.errBusy)
		}
	})
}

func BenchmarkPick8(b *testing.B)           { benchmarkPick(b, 8, false) }
func BenchmarkPick32(b *testing.B)          { benchmarkPick(b, 32, false) }
func BenchmarkPick128(b *testing.B)         { benchmarkPick(b, 128, false) }
func BenchmarkPick1024(b *testing.B)        { benchmarkPick(b, 1024, false) }
func BenchmarkPickParallel8(b *testing.B)   { benchmarkPick(b, 8, true) }
func BenchmarkPickParallel32(b *testing.B)  { benchmarkPick(b, 32, true) }
func BenchmarkPickParallel128(b *testing.B) { benchmarkPick(b, 128, true) }

// benchmarkPick measures the selection path: Pick on a pool of n backends
// of weights 1 to 3 with 0 to 4 requests in flight each, undoing each pick
// without telling the breaker, so that the pool stays as it is.
func benchmarkPick(b *testing.B, n int, parallel bool) {
	p := benchPool(b, n)
	b.ReportAllocs()
	if parallel {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				be, err := p.Pick(nil)
				if err != nil {
					panic(err)
				}
				be.release()
			}
		})
		return
	}
	for b.Loop() {
		be, err := p.Pick(nil)
		if err != nil {
			b.Fatal(err)
		}
		be.release()
	}
}

func BenchmarkPickDone8(b *testing.B)           { benchmarkPickDone(b, 8, false) }
func BenchmarkPickDone128(b *testing.B)         { benchmarkPickDone(b, 128, false) }
func BenchmarkPickDoneParallel8(b *testing.B)   { benchmarkPickDone(b, 8, true) }
func BenchmarkPickDoneParallel128(b *testing.B) { benchmarkPickDone(b, 128, true) }

// benchmarkPickDone measures a whole request cycle as the balancer sees
// it: Pick, then Done(nil), which reports to the backend's breaker.
func benchmarkPickDone(b *testing.B, n int, parallel bool) {
	p := benchPool(b, n)
	b.ReportAllocs()
	if parallel {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				be, err := p.Pick(nil)
				if err != nil {
					panic(err)
				}
				be.Done(nil)
			}
		})
		return
	}
	for b.Loop() {
		be, err := p.Pick(nil)
		if err != nil {
			b.Fatal(err)
		}
		be.Done(nil)
	}
}

func benchPool(b *testing.B, n int) *Pool {
	p, bs, _ := newTestPool(b, Config{Now: time.Now}, n)
	for i, be := range bs {
		be.SetWeight(i%3 + 1)
		be.inflight.Store(int64(i % 5))
	}
	return p
}
