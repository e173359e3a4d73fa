package balancer

// slowstart.go ramps a backend that joins a pool or comes back (health up,
// breaker closed, ejection over) from a tenth of its weight to all of it
// over Config.SlowStart, so that a cold FPM (empty opcache, no connections)
// is not handed its full share of a busy pool at once.

// Weights in Pick are fixed-point, with rampOne standing for a factor of 1.
const (
	rampShift       = 16
	rampOne   int64 = 1 << rampShift
	rampMin         = rampOne / 10 // where a ramp starts: a tenth of the weight
)

// startRamp starts slow start on b at from (Unix ns), which may lie ahead:
// an ejected backend ramps from the end of its ejection. It does nothing
// when slow start is off.
func (b *Backend) startRamp(p *Pool, from int64) {
	if p.cfg.SlowStart <= 0 {
		return
	}
	b.rampFrom.Store(from)
	b.setFlags(flagRamp, 0)
}

// ramp returns the factor, out of rampOne, by which slow start scales b's
// weight at now, and ends the ramp once it is over. It rises linearly from
// rampMin at the start to rampOne after Config.SlowStart.
func (b *Backend) ramp(p *Pool, now int64) int64 {
	from := b.rampFrom.Load()
	elapsed, span := now-from, int64(p.cfg.SlowStart)
	switch {
	case elapsed >= span:
		b.endFlag(flagRamp, &b.rampFrom, from)
		return rampOne
	case elapsed <= 0:
		return rampMin
	}
	return rampMin + int64(float64(rampOne-rampMin)*float64(elapsed)/float64(span))
}
