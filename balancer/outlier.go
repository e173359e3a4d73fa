package balancer

// outlier.go ejects a backend that fails requests in a row from its pool
// for a while (passive health checking), longer each time it is ejected
// again, and never more than Config.Outlier.MaxEjectedPercent of the pool
// at once. Ejections end by time, read from Config.Now when Pick looks; no
// timer runs.

import (
	"slices"
	"sync/atomic"
)

type outlier struct {
	consecutive atomic.Int32 // backend failures in a row
	until       atomic.Int64 // Unix ns when the current or last ejection ends; 0 if none
	ejections   atomic.Int64 // ejections so far
	last        int64        // length of the last ejection in ns; guarded by Pool.ejectMu
}

// observe counts an outcome of a request on b, and ejects b when it has
// failed Outlier.ConsecutiveFailures times in a row.
func (p *Pool) observe(b *Backend, o outcome) {
	switch o {
	case success:
		if b.out.consecutive.Load() != 0 { // spare the cache line a write
			b.out.consecutive.Store(0)
		}
	case failure:
		n := b.out.consecutive.Add(1)
		if t := p.cfg.Outlier.ConsecutiveFailures; t > 0 && int(n) >= t && p.eject(b) {
			p.kick() // queued requests may have no backend left
		}
	}
}

// eject takes b out of the pool unless it is out already, it left the pool,
// or the pool has as many backends ejected as it may. It reports whether it
// ejected b. A refused ejection is tried again on b's next failure.
func (p *Pool) eject(b *Backend) bool {
	p.ejectMu.Lock()
	defer p.ejectMu.Unlock()
	now := p.nowNano()
	last := b.out.until.Load()
	if last > now {
		return false
	}
	bs := p.Backends()
	if !slices.Contains(bs, b) {
		return false
	}
	ejected := 0
	for _, x := range bs {
		if x.out.until.Load() > now {
			ejected++
		}
	}
	if ejected >= maxEjected(len(bs), p.cfg.Outlier.MaxEjectedPercent) {
		return false
	}
	o := p.cfg.Outlier
	d := int64(o.BaseEjection)
	if last != 0 && now-last < int64(o.MaxEjection) {
		d = min(2*b.out.last, int64(o.MaxEjection))
	}
	b.out.last = d
	b.out.until.Store(now + d)
	b.out.ejections.Add(1)
	b.out.consecutive.Store(0)
	b.setFlags(flagEjected, 0)
	b.startRamp(p, now+d)
	return true
}

// endEjection ends b's ejection at now, if one is running. The ejection's
// length is kept, so that a backend ejected again soon is out for longer.
func (p *Pool) endEjection(b *Backend, now int64) {
	p.ejectMu.Lock()
	defer p.ejectMu.Unlock()
	if b.out.until.Load() > now {
		b.out.until.Store(now)
		b.setFlags(0, flagEjected)
	}
}

// maxEjected returns how many of n backends may be ejected at once: pct
// percent of them, rounded down, but at least one of two or more.
func maxEjected(n, pct int) int {
	if n < 2 {
		return 0
	}
	return max(1, n*pct/100)
}
