package balancer

// leastconn.go holds Pick: the backend with the fewest requests in flight
// per unit of weight, among those that can take a request, ties broken at
// random; in a pool of more than sampleSize backends, among a random window
// of sampleSize of them. It reads atomics only: no lock, no allocation, and
// the clock only when a backend's flags need it.

import (
	"math/bits"
	"math/rand/v2"
)

// Pick chooses a backend for a request and counts it in flight there; the
// caller must call Done on it exactly once when the request ends.
//
// It chooses the backend with the lowest (in flight + load penalty) /
// effective weight, at random among ties in proportion to weight (as
// nginx's least_conn does, so that weights hold when requests do not
// overlap: idle backends all tie), among those that are healthy,
// not ejected, below their concurrency limit, have a weight above 0, and
// whose breaker is closed or admits a trial request. It skips the backends
// in avoid (those a retried request already failed on), unless no other
// can take the request, so that a pool of one can still retry.
//
// In a pool of up to 32 backends the choice is exact: Pick looks at them
// all. In a larger pool it looks at 32 consecutive backends from a random
// offset, wrapping around, and picks the least loaded of those; only when
// none of the 32 can take the request does it look at the whole pool. See
// sampleSize for why that is close enough.
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

// sampleSize bounds the cost of a pick in a large pool. A pool of up to
// sampleSize backends is scanned whole, so its pick is exact. In a larger
// pool, Pick scans a window of sampleSize consecutive backends from a
// random offset, wrapping around the end of the list, and takes the least
// loaded per weight there; it scans the whole pool only when no backend in
// the window can take the request (all down, open, ejected, avoided, at
// their limit or of weight 0), so it fails only when an exact pick would.
//
// This is the "power of d choices" (Azar, Broder, Karlin and Upfal,
// "Balanced Allocations", 1994; Mitzenmacher, "The Power of Two Choices in
// Randomized Load Balancing", 2001): sending each request to the least
// loaded of d backends drawn at random keeps the most loaded within about
// ln ln n / ln d of the mean, against ln n / ln ln n for one random
// choice, and most of the gain is there at d = 2. With d = 32, the backend
// picked is on average about the fourth least loaded of 128 (when load
// does not follow the order of the list), and 10,000 requests held on 128
// backends end up 77 to 79 on each where an exact pick leaves 78 or 79
// (TestPickSampledSpreads); yet a pick costs 32 backends, about 2ns each,
// whatever the size of the pool. The sample is a window rather than 32
// independent draws because that takes one random number and reads the
// list in order; every offset being as likely, each backend is in the
// window of sampleSize/n of the picks, so ties and load still spread
// evenly.
//
// The price: in a pool of n > sampleSize, a backend is looked at by only
// sampleSize/n of the picks (a quarter with 128), so that is the most it
// can get, however light its load or large its weight, besides the picks
// that find no backend able to serve in their window. Weights of the same
// order, the common case, are not affected.
const sampleSize = 32

func (p *Pool) pick(avoid []*Backend) (*Backend, pickStatus) {
	bs := p.Backends()
	c := clock{p: p}
	var off int
	var seed uint64
	if len(bs) > sampleSize {
		// One random number for both the window and its ties: its low
		// 32 bits give the offset (multiply-shift, uniform but for a bias
		// of n/2^32), its high 32 bits seed the tie-breaking. rand.Uint64
		// reads the runtime's per-thread generator: no lock.
		r := rand.Uint64()
		off = int(uint64(uint32(r)) * uint64(len(bs)) >> 32)
		seed = r>>32 | 1
	}
	b, st := p.pickFrom(bs, off, seed, avoid, &c)
	if st == none && len(avoid) > 0 {
		b, st = p.pickFrom(bs, off, 0, nil, &c)
	}
	return b, st
}

// pickFrom picks among bs but those in avoid, looking first at the window
// that starts at off (see sampleSize), and counts the request on the
// backend picked. When that backend turns it down (its last slot went to
// another request, or its breaker admits no more trials), it picks again
// without it. seed, if not 0, seeds the tie-breaking of the first scan
// (the others draw their own, so that their choices are independent).
func (p *Pool) pickFrom(bs []*Backend, off int, seed uint64, avoid []*Backend, c *clock) (*Backend, pickStatus) {
	var refused [8]*Backend
	anyBusy := false
	for n := 0; ; n++ {
		b, full := best(p, bs, off, seed, avoid, refused[:n], c)
		seed = 0
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

// best returns the backend with the lowest load per weight, or nil, among
// bs but those in avoid and refused: in a pool of up to sampleSize, among
// all; in a larger one, among the sampleSize backends from off on
// (wrapping), or among all when none of those can take the request. full
// reports that some backend was skipped only because it is at its limit.
// seed seeds the tie-breaking; 0 draws one at the first tie.
func best(p *Pool, bs []*Backend, off int, seed uint64, avoid, refused []*Backend, c *clock) (*Backend, bool) {
	s := scan{rng: seed}
	if len(bs) > sampleSize {
		if end := off + sampleSize; end <= len(bs) {
			s.over(p, bs[off:end], avoid, refused, c)
		} else {
			s.over(p, bs[off:], avoid, refused, c)
			s.over(p, bs[:end-len(bs)], avoid, refused, c)
		}
		if s.best != nil {
			return s.best, s.full
		}
	}
	s.over(p, bs, avoid, refused, c)
	return s.best, s.full
}

// scan is the running result of best, carried across the parts of a
// window that wraps around.
type scan struct {
	best             *Backend
	bestLoad, bestWt uint64 // of best
	ties             uint64 // backends tied with best so far
	rng              uint64 // tie-breaking generator (wyrand); 0 until seeded
	full             bool   // some backend was skipped only for its limit
}

// over scans bs into s, on locals that it stores back once.
//
// Loads are compared as load/w < bestLoad/bestWeight, multiplied out:
// loads (in flight plus penalty, clamped below 2^18, times the slowness
// factor of up to 2^7; see latency.go) stay below 2^25 and weights, in
// fixed point, below 2^37, so the products fit in 63 bits.
func (s *scan) over(p *Pool, bs, avoid, refused []*Backend, c *clock) {
	best, bestLoad, bestWeight, ties, rng, full := s.best, s.bestLoad, s.bestWt, s.ties, s.rng, s.full
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
		load := uint64(min(max(n, 0)+penaltyOf(s), maxLoad)) << slowOf(s)
		l, r := load*bestWeight, bestLoad*uint64(w)
		switch {
		case best == nil || l < r:
			best, bestLoad, bestWeight, ties = b, load, uint64(w), uint64(w)
		case l == r:
			// Weighted reservoir sampling: ties holds the summed weight
			// of the tied backends so far, and this one replaces the pick
			// with probability w/ties, so each ends up picked in
			// proportion to its weight. Idle backends all tie at load 0,
			// so weights hold at low concurrency too (one request at a
			// time still splits 1:2:3). The random numbers come from a
			// generator (wyrand) seeded with the window's random number,
			// or at the first tie.
			ties += uint64(w)
			if rng == 0 {
				rng = rand.Uint64() | 1
			}
			rng += 0x9e3779b97f4a7c15
			hi, lo := bits.Mul64(rng, rng^0xe7037ed1a0b428db)
			if k, _ := bits.Mul64(hi^lo, ties); k < uint64(w) {
				best, bestLoad, bestWeight = b, load, uint64(w)
			}
		}
	}
	s.best, s.bestLoad, s.bestWt, s.ties, s.rng, s.full = best, bestLoad, bestWeight, ties, rng, full
}

// maxLoad clamps the in-flight count plus penalty in comparisons (see
// scan.over): shifted by a slowness level of up to 7 it stays below 2^25.
const maxLoad = 1<<18 - 1

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
