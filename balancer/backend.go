package balancer

// backend.go holds Backend: the counters that Pick reads for every request,
// the setters through which the prober and discovery steer a backend, and
// Done, which ends a request.

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
)

// Backend is one FastCGI backend of one Pool. Its state is in atomics, so
// that Pick reads it without a lock; Backend values must not be copied.
//
// A backend starts healthy, with weight 1, no load penalty and no learned
// concurrency limit. It belongs to the first Pool that it is given to
// (NewPool or Pool.Set), which sets up its breaker from the pool's Config;
// giving it to a second pool panics.
type Backend struct {
	// The fields that Pick reads come first, to share a cache line. Pick
	// reads state and inflight for every backend, and the others only when
	// a flag in state says so.
	state     atomic.Uint64 // flag bits, weight and load penalty; see flagDown
	inflight  atomic.Int64  // requests counted by Pick or Acquire and not yet Done
	successes atomic.Uint64 // requests that ended with the backend's answer
	ewma      atomic.Int64  // average time to answer in ns (ObserveLatency); 0: none yet
	limit     atomic.Int64  // max concurrent requests in force; 0 means none (flagLimited)
	rampFrom  atomic.Int64  // Unix ns when slow start began; read while flagRamp is set

	addr string

	// Value is free for the caller: the gateway keeps the backend's
	// connection pool there. It is set before the backend is published.
	Value any

	pool atomic.Pointer[Pool] // set once, by attach
	br   breaker              // set up by attach, before the backend is published
	out  outlier

	mu           sync.Mutex // serializes the limit setters; guards limitCfg and limitLearned
	limitCfg     int64      // Config.MaxConcurrent of the pool
	limitLearned int64      // SetMaxConcurrent
}

// A backend's state word holds, from the lowest bit up, the flags (what
// Pick must look at beyond the in-flight count), the weight and the load
// penalty, so that Pick reads them with one load. A backend whose flags
// are zero is healthy, closed, not ejected, at full weight and unlimited.
const (
	flagDown     uint64 = 1 << iota // SetHealthy(false)
	flagOpen                        // breaker open until br.openUntil
	flagHalfOpen                    // breaker half-open: trial requests only
	flagEjected                     // ejected until out.until
	flagRamp                        // in slow start since rampFrom
	flagLimited                     // limit > 0

	// flagsTimed are the flags that need the time to interpret.
	flagsTimed = flagOpen | flagHalfOpen | flagEjected | flagRamp

	weightShift  = 8
	weightMask   = 1<<21 - 1 // holds MaxWeight
	penaltyShift = weightShift + 21
	penaltyMask  = 1<<21 - 1 // holds maxPenalty
)

func weightOf(s uint64) int64  { return int64(s >> weightShift & weightMask) }
func penaltyOf(s uint64) int64 { return int64(s >> penaltyShift & penaltyMask) }

// NewBackend returns a healthy backend for addr with weight 1.
func NewBackend(addr string) *Backend {
	b := &Backend{addr: addr}
	b.state.Store(1 << weightShift)
	return b
}

// Addr returns the backend's address.
func (b *Backend) Addr() string { return b.addr }

// InFlight returns the number of requests in flight on b.
func (b *Backend) InFlight() int64 { return b.inflight.Load() }

// SetHealthy marks b up or down; Pick skips a backend that is down. A
// backend that comes back up restarts slow start. The prober and the
// cluster view set it.
func (b *Backend) SetHealthy(up bool) {
	p := b.pool.Load()
	if up {
		if old := b.setFlags(0, flagDown); old&flagDown != 0 && p != nil {
			now := p.nowNano()
			// The health check saw it recover: that ends an ejection
			// for the failures it had while it was down.
			p.endEjection(b, now)
			b.startRamp(p, now)
			p.kick()
		}
		return
	}
	if old := b.setFlags(flagDown, 0); old&flagDown == 0 && p != nil {
		p.kick() // queued requests may have no backend left
	}
}

// Healthy reports whether b is marked up.
func (b *Backend) Healthy() bool { return b.state.Load()&flagDown == 0 }

// SetWeight sets b's weight, clamped to [0, MaxWeight]: b gets requests in
// proportion to it. Weight 0 drains b: it gets no new requests.
func (b *Backend) SetWeight(w int) {
	b.setField(weightShift, weightMask, uint64(min(max(w, 0), MaxWeight)))
	if p := b.pool.Load(); p != nil {
		p.kick()
	}
}

// Weight returns b's configured weight.
func (b *Backend) Weight() int { return int(weightOf(b.state.Load())) }

// SetLoadPenalty sets the load that the prober sees on b beyond the
// requests of this gateway, counted in requests (health.FPMStatus.Penalty:
// the listen queue, plus one when no worker is idle). Pick adds it to b's
// in-flight count, so a loaded backend gets less traffic. It is clamped to
// [0, 1<<20].
func (b *Backend) SetLoadPenalty(n int) {
	b.setField(penaltyShift, penaltyMask, uint64(min(max(n, 0), maxPenalty)))
}

// SetMaxConcurrent sets the limit learned from FPM (its total processes),
// clamped to [0, 1<<30]; 0 means unknown. It applies unless the pool's
// Config.MaxConcurrent is set, which wins.
func (b *Backend) SetMaxConcurrent(n int) {
	b.mu.Lock()
	b.limitLearned = int64(min(max(n, 0), maxConcurrency))
	b.updateLimitLocked()
	b.mu.Unlock()
	if p := b.pool.Load(); p != nil {
		p.kick() // a higher limit frees slots for queued requests
	}
}

func (b *Backend) updateLimitLocked() {
	lim := b.limitLearned
	if b.limitCfg > 0 {
		lim = b.limitCfg
	}
	b.limit.Store(lim)
	if lim > 0 {
		b.setFlags(flagLimited, 0)
	} else {
		b.setFlags(0, flagLimited)
	}
}

// Done ends a request that Pick or Acquire counted on b; call it exactly
// once per request. err says how the backend did:
//
//   - nil: the backend answered, whatever the status (but see
//     Pool.StatusErr for Config.Break5xx);
//   - an error matching context.Canceled: the client went away, which says
//     nothing about the backend; it is not counted;
//   - any other error: the backend failed (dial error, reset, timeout,
//     protocol error, or ErrServerError), counted by its breaker and by
//     outlier ejection.
//
// Done frees b's slot for a request waiting in the pool's queue.
func (b *Backend) Done(err error) {
	b.inflight.Add(-1)
	p := b.pool.Load()
	if p == nil {
		return
	}
	o := outcomeOf(err)
	if o == success {
		b.successes.Add(1)
	}
	b.br.report(b, o)
	p.observe(b, o)
	p.kick()
}

// Successes returns how many requests on b ended with the backend's answer
// since b was made. Comparing two readings tells whether b answered in
// between, as a health check that timed out wants to know.
func (b *Backend) Successes() uint64 { return b.successes.Load() }

// outcome is what Done learned about the backend.
type outcome uint8

const (
	success  outcome = iota // the backend answered
	failure                 // the backend failed
	excluded                // the client went away; no verdict
)

func outcomeOf(err error) outcome {
	switch {
	case err == nil:
		return success
	case errors.Is(err, context.Canceled):
		return excluded
	}
	return failure
}

// attach makes b a backend of p, setting up its breaker and limit, and
// starts slow start at now if ramp is set. It does nothing if b already
// belongs to p, and panics if b belongs to another pool.
func (b *Backend) attach(p *Pool, ramp bool, now int64) {
	if !b.pool.CompareAndSwap(nil, p) {
		if b.pool.Load() != p {
			panic("balancer: backend " + b.addr + " given to pool " + p.name + " belongs to pool " + b.pool.Load().name)
		}
		return
	}
	b.br.init(b, p)
	b.mu.Lock()
	b.limitCfg = int64(p.cfg.MaxConcurrent)
	b.updateLimitLocked()
	b.mu.Unlock()
	if ramp {
		b.startRamp(p, now)
	}
}

// setFlags sets the flags in set and clears those in clear, at once, and
// returns the state before.
func (b *Backend) setFlags(set, clear uint64) uint64 {
	for {
		old := b.state.Load()
		if b.state.CompareAndSwap(old, old&^clear|set) {
			return old
		}
	}
}

// setField sets the field of the state word at shift, of mask bits, to v.
func (b *Backend) setField(shift uint, mask, v uint64) {
	for {
		old := b.state.Load()
		if b.state.CompareAndSwap(old, old&^(mask<<shift)|v<<shift) {
			return
		}
	}
}

// endFlag clears a timed flag whose time, read from v as seen, has passed,
// unless v changed meanwhile: whoever changes v stores it before setting the
// flag, so either endFlag sees the new value or the flag is set after it
// was cleared.
func (b *Backend) endFlag(flag uint64, v *atomic.Int64, seen int64) {
	b.setFlags(0, flag)
	if v.Load() != seen {
		b.setFlags(flag, 0)
	}
}

// take counts a request in flight on b unless b is at its limit.
func (b *Backend) take() bool {
	lim := b.limit.Load()
	if lim <= 0 {
		b.inflight.Add(1)
		return true
	}
	for {
		n := b.inflight.Load()
		if n >= lim {
			return false
		}
		if b.inflight.CompareAndSwap(n, n+1) {
			return true
		}
	}
}
