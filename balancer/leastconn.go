package balancer

// leastconn.go holds Pick: the backend with the fewest requests in flight
// per unit of weight, among those that can take a request, ties broken at
// random. It reads atomics only: no lock, no allocation, and the clock only
// when a backend's flags need it.

import (
	"math/bits"
	"math/rand/v2"
)

// Pick chooses a backend for a request and counts it in flight there; the
// caller must call Done on it exactly once when the request ends.
//
// It chooses the backend with the lowest (in flight + load penalty + 1) /
// effective weight, at random among ties, among those that are healthy,
// not ejected, below their concurrency limit, have a weight above 0, and
// whose breaker is closed or admits a trial request. It skips the backends
// in avoid (those a retried request already failed on), unless no other
// can take the request, so that a pool of one can still retry.
//
// Pick never waits: when every backend that could take the request is at
// its limit, it fails, as it does when none can; both errors match
// ErrNoBackend. Acquire waits for a slot instead.
func (p *Pool) Pick(avoid []*Backend) (*Backend, error) {
	b, st := p.pick(avoid)
	switch st {
	case picked:
		return b, nil
	case busy:
		return nil, p.errBusy
	}
	return nil, p.errNone
}

// pickStatus is the result of pick.
type pickStatus uint8

const (
	picked pickStatus = iota
	busy              // none picked, but some backend would be, below its limit
	none              // no backend can take a request
)

// clock reads the pool's clock once per pick, and only if asked.
type clock struct {
	p  *Pool
	t  int64
	ok bool
}

func (c *clock) now() int64 {
	if !c.ok {
		c.t, c.ok = c.p.nowNano(), true
	}
	return c.t
}

func (p *Pool) pick(avoid []*Backend) (*Backend, pickStatus) {
	bs := p.Backends()
	c := clock{p: p}
	b, st := p.pickFrom(bs, avoid, &c)
	if st == none && len(avoid) > 0 {
		b, st = p.pickFrom(bs, nil, &c)
	}
	return b, st
}

// pickFrom picks among bs but those in avoid, and counts the request on the
// backend picked. When that backend turns it down (its last slot went to
// another request, or its breaker admits no more trials), it picks again
// without it.
func (p *Pool) pickFrom(bs, avoid []*Backend, c *clock) (*Backend, pickStatus) {
	var refused [8]*Backend
	anyBusy := false
	for n := 0; ; n++ {
		b, full := best(p, bs, avoid, refused[:n], c)
		anyBusy = anyBusy || full
		if b == nil {
			break
		}
		var ok bool
		if b.state.Load()&(flagOpen|flagHalfOpen) != 0 {
			ok, full = b.br.claimTrial(b, c.now())
		} else {
			ok = b.take()
			full = !ok
		}
		if ok {
			return b, picked
		}
		anyBusy = anyBusy || full
		if n == len(refused) {
			break
		}
		refused[n] = b
	}
	if anyBusy {
		return nil, busy
	}
	return nil, none
}

// best returns the backend of bs, but those in avoid and refused, with the
// lowest load per weight, or nil. full reports that some backend was
// skipped only because it is at its limit.
//
// Loads are compared as load/w < bestLoad/bestWeight, multiplied out:
// loads are clamped below 2^26 and weights, in fixed point, stay below
// 2^37, so the products fit in 63 bits.
func best(p *Pool, bs, avoid, refused []*Backend, c *clock) (best *Backend, full bool) {
	var bestLoad, bestWeight uint64
	var ties, rng uint64
	special := flagDown | flagsTimed | flagLimited
	if len(avoid)+len(refused) > 0 {
		special = ^uint64(0) // look at every backend closely
	}
	for _, b := range bs {
		s := b.state.Load()
		n := b.inflight.Load()
		w := weightOf(s) << rampShift
		if s&special != 0 {
			var ok bool
			if w, ok = b.usable(p, s, w, n, avoid, refused, c, &full); !ok {
				continue
			}
		}
		if w <= 0 {
			continue
		}
		load := uint64(min(max(n, 0), maxLoad)+penaltyOf(s)) + 1
		l, r := load*bestWeight, bestLoad*uint64(w)
		switch {
		case best == nil || l < r:
			best, bestLoad, bestWeight, ties = b, load, uint64(w), 1
		case l == r:
			// Reservoir sampling: the k-th tie replaces the pick with
			// probability 1/k, so each of k ties ends up picked with 1/k.
			// The random numbers come from a generator seeded once per
			// pick that has ties (wyrand).
			ties++
			if rng == 0 {
				rng = rand.Uint64() | 1
			}
			rng += 0x9e3779b97f4a7c15
			hi, lo := bits.Mul64(rng, rng^0xe7037ed1a0b428db)
			if k, _ := bits.Mul64(hi^lo, ties); k == 0 {
				best, bestLoad, bestWeight = b, load, uint64(w)
			}
		}
	}
	return best, full
}

// maxLoad clamps the in-flight count in comparisons (see best).
const maxLoad = 1<<26 - maxPenalty - 1

// usable looks closely at a backend whose state s has flags set, or when
// some backends are to be skipped. It reports whether b can take a request,
// with its weight w (fixed point) scaled by slow start, and sets *full when
// b is skipped only because it is at its limit. It ends an ejection that is
// over.
func (b *Backend) usable(p *Pool, s uint64, w, n int64, avoid, refused []*Backend, c *clock, full *bool) (int64, bool) {
	if s&flagDown != 0 || contains(avoid, b) || contains(refused, b) {
		return 0, false
	}
	if s&(flagOpen|flagHalfOpen) != 0 && !b.br.admits(s, c.now()) {
		return 0, false
	}
	if s&flagEjected != 0 {
		until := b.out.until.Load()
		if c.now() < until {
			return 0, false
		}
		b.endFlag(flagEjected, &b.out.until, until)
	}
	if s&flagRamp != 0 {
		w = (w >> rampShift) * b.ramp(p, c.now())
	}
	if s&flagLimited != 0 && w > 0 {
		if lim := b.limit.Load(); lim > 0 && n >= lim {
			*full = true
			return 0, false
		}
	}
	return w, true
}

func contains(bs []*Backend, b *Backend) bool {
	for _, x := range bs {
		if x == b {
			return true
		}
	}
	return false
}
