package balancer

// latency.go makes least connections latency aware: each backend keeps an
// average of its time to first answer, and a backend much slower than the
// fastest of its pool counts its requests in flight as 2, 4 ... 128 each.
// Plain least connections keeps in-flight counts level, so a pool ten times
// slower than the others still gets about a twentieth of the requests (its
// share of in-flight slots, at a tenth of the speed), and those set the
// tail: p99 becomes the slow pool's latency. Weighting the count by
// slowness keeps the slow pool down to a request or two at a time under
// load, while idle backends still all tie at zero, so weights and a slow
// backend's recovery are unaffected at low traffic.

import (
	"math/bits"
	"time"
)

const (
	// slowShift places the slowness level in the state word, above the
	// load penalty; three bits hold levels 0 to 7.
	slowShift = penaltyShift + 21
	slowMask  = 1<<3 - 1

	// relevelEvery is how many latency samples of a pool pass between two
	// recomputations of its backends' levels.
	relevelEvery = 32
)

func slowOf(s uint64) uint { return uint(s >> slowShift & slowMask) }

// ObserveLatency records how long b took to answer a request (its time to
// the response header). The average moves by an eighth of each sample's
// difference, about the last dozen requests. Every relevelEvery samples of
// the pool, the slowness levels of its backends are recomputed: level k
// when a backend is at least 2^k times slower than the pool's fastest.
func (b *Backend) ObserveLatency(d time.Duration) {
	ns := max(int64(d), 1)
	for {
		old := b.ewma.Load()
		v := ns
		if old != 0 {
			v = old + (ns-old)/8
		}
		if b.ewma.CompareAndSwap(old, max(v, 1)) {
			break
		}
	}
	if p := b.pool.Load(); p != nil && p.samples.Add(1)%relevelEvery == 0 {
		p.relevel()
	}
}

// relevel sets each backend's slowness level from its average latency
// against the pool's fastest.
func (p *Pool) relevel() {
	bs := p.Backends()
	var fastest int64
	for _, b := range bs {
		if v := b.ewma.Load(); v > 0 && (fastest == 0 || v < fastest) {
			fastest = v
		}
	}
	if fastest == 0 {
		return
	}
	for _, b := range bs {
		lvl := uint64(0)
		if v := b.ewma.Load(); v > 0 {
			lvl = uint64(min(max(bits.Len64(uint64(v/fastest))-1, 0), slowMask))
		}
		if slowOf(b.state.Load()) != uint(lvl) {
			b.setField(slowShift, slowMask, lvl)
		}
	}
}
