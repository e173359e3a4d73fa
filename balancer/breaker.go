package balancer

// breaker.go wraps each backend's gobreaker circuit breaker: it mirrors the
// breaker's state into the backend's flags for Pick, counts trial requests
// while the breaker is half-open, and reports the outcome of each request
// when it ends.
//
// How it uses gobreaker, and why:
//
//   - It is a gobreaker.CircuitBreaker fed through Execute when a request
//     ends, with a function that returns the outcome at once, rather than a
//     TwoStepCircuitBreaker whose Allow is called when a request starts.
//     Allow allocates its done closure (48 bytes) and takes the breaker's
//     mutex on every pick, and Done(err) carries no request identity to
//     find that closure again. Counting requests when they end also keeps
//     requests still in flight out of the failure ratio.
//   - The breaker's Timeout is 1ns, and the open time is kept here, from
//     Config.Now: the mirror holds the breaker open until openUntil, and
//     nothing calls into the breaker while it is open; the first trial
//     request after openUntil calls State, which moves the breaker to
//     half-open. So the open time follows the injected clock, and tests
//     need no sleeps. Every call into the breaker is made under
//     breaker.mu, so the mirror never lags behind the breaker.
//   - While half-open, Pick lets BreakerHalfOpenRequests trial requests
//     through (trialsLeft), and the outcomes of the next requests to end,
//     as many as there are trials out, are reported as the trials'. Done
//     cannot tell a trial from a request sent before the breaker opened
//     that ends late; such a straggler counts as a trial, which is a fair
//     verdict on the backend, and the half-open period always ends after
//     as many outcomes as trials were started.

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
)

// BreakerState is the state of a backend's circuit breaker.
type BreakerState int32

const (
	// BreakerClosed: requests flow; failures are counted.
	BreakerClosed BreakerState = iota
	// BreakerHalfOpen: a few trial requests flow; their outcome decides.
	BreakerHalfOpen
	// BreakerOpen: no requests flow until the open time is over.
	BreakerOpen
)

func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerHalfOpen:
		return "half-open"
	case BreakerOpen:
		return "open"
	}
	return "unknown"
}

// ErrServerError is what Pool.StatusErr returns for a 5xx answer when
// Config.Break5xx is set; passed to Done, it counts as a backend failure.
var ErrServerError = errors.New("balancer: backend answered with a 5xx status")

// StatusErr returns the error to pass to Done for a request that the
// backend answered with status: ErrServerError for a 5xx when the pool's
// Config.Break5xx is set, else nil.
func (p *Pool) StatusErr(status int) error {
	if p.cfg.Break5xx && status >= 500 && status <= 599 {
		return ErrServerError
	}
	return nil
}

// breakerBuckets is how many buckets the rolling failure window has.
const breakerBuckets = 10

// errFailed is the failure reported to gobreaker; the real error is of no
// use to it.
var errFailed = errors.New("balancer: backend failed")

// Outcome functions for Execute. They capture nothing, so passing them
// allocates nothing.
func reportSuccess() (struct{}, error) { return struct{}{}, nil }
func reportFailure() (struct{}, error) { return struct{}{}, errFailed }

type breaker struct {
	mu         sync.Mutex // serializes calls into cb and the state changes they cause; guards trialsOut
	cb         *gobreaker.CircuitBreaker[struct{}]
	openUntil  atomic.Int64 // Unix ns until which an open breaker admits no trial
	trialsLeft atomic.Int32 // trial requests a half-open breaker may still start; written under mu
	trialsOut  int          // trials started in this half-open period and not yet reported
}

// init sets up b's breaker from p's Config.
func (br *breaker) init(b *Backend, p *Pool) {
	c := p.cfg
	consecutive := uint32(max(c.BreakerConsecutiveFailures, 0))
	ratio := c.BreakerFailureRatio
	minRequests := uint32(c.BreakerMinRequests)
	br.cb = gobreaker.NewCircuitBreaker[struct{}](gobreaker.Settings{
		Name:         b.addr,
		MaxRequests:  uint32(c.BreakerHalfOpenRequests),
		Interval:     c.BreakerWindow,
		BucketPeriod: c.BreakerWindow / breakerBuckets,
		Timeout:      time.Nanosecond, // the open time is kept by openUntil
		ReadyToTrip: func(n gobreaker.Counts) bool {
			if consecutive > 0 && n.ConsecutiveFailures >= consecutive {
				return true
			}
			return ratio > 0 && n.Requests >= minRequests &&
				float64(n.TotalFailures) >= ratio*float64(n.Requests)
		},
		OnStateChange: func(_ string, from, to gobreaker.State) {
			b.onBreakerChange(p, from, to)
		},
	})
}

// onBreakerChange mirrors a state change of b's breaker. gobreaker calls it
// with its mutex held, within a call made under br.mu.
func (b *Backend) onBreakerChange(p *Pool, from, to gobreaker.State) {
	br := &b.br
	now := p.nowNano()
	switch to {
	case gobreaker.StateOpen:
		br.openUntil.Store(now + int64(p.cfg.BreakerOpenTime))
		br.trialsLeft.Store(0)
		br.trialsOut = 0
		b.setFlags(flagOpen, flagHalfOpen)
	case gobreaker.StateHalfOpen:
		br.trialsLeft.Store(int32(p.cfg.BreakerHalfOpenRequests))
		br.trialsOut = 0
		b.setFlags(flagHalfOpen, flagOpen)
	case gobreaker.StateClosed:
		b.setFlags(0, flagOpen|flagHalfOpen)
		b.startRamp(p, now)
	}
	if h := p.cfg.OnBreakerChange; h != nil {
		h(b, stateOf(from), stateOf(to))
	}
}

func stateOf(s gobreaker.State) BreakerState {
	switch s {
	case gobreaker.StateHalfOpen:
		return BreakerHalfOpen
	case gobreaker.StateOpen:
		return BreakerOpen
	}
	return BreakerClosed
}

// state returns b's breaker state as Pick sees it.
func (b *Backend) breakerState() BreakerState {
	f := b.state.Load()
	switch {
	case f&flagOpen != 0:
		return BreakerOpen
	case f&flagHalfOpen != 0:
		return BreakerHalfOpen
	}
	return BreakerClosed
}

// admits reports whether b's breaker, open or half-open as f says, may
// take a trial request at now. Pick calls it without a lock; claimTrial
// decides.
func (br *breaker) admits(f uint64, now int64) bool {
	if f&flagOpen != 0 {
		return now >= br.openUntil.Load()
	}
	return br.trialsLeft.Load() > 0
}

// claimTrial counts a request in flight on b, whose breaker was open or
// half-open when Pick looked, if the breaker admits it as a trial. full
// reports a refusal because b is at its concurrency limit.
func (br *breaker) claimTrial(b *Backend, now int64) (ok, full bool) {
	br.mu.Lock()
	defer br.mu.Unlock()
	f := b.state.Load()
	if f&flagOpen != 0 {
		if now < br.openUntil.Load() {
			return false, false
		}
		br.cb.State() // the open timeout (1ns) is over: the breaker goes half-open
		f = b.state.Load()
	}
	switch {
	case f&(flagOpen|flagHalfOpen) == 0: // closed meanwhile: an ordinary request
		ok = b.take()
		return ok, !ok
	case f&flagHalfOpen == 0 || br.trialsLeft.Load() <= 0:
		return false, false
	case !b.take():
		return false, true
	}
	br.trialsLeft.Add(-1)
	br.trialsOut++
	return true, false
}

// report tells b's breaker how a request ended.
func (br *breaker) report(b *Backend, o outcome) {
	f := b.state.Load()
	if f&flagOpen != 0 || o == excluded && f&flagHalfOpen == 0 {
		return // nothing to count; see the file comment for the races
	}
	br.mu.Lock()
	defer br.mu.Unlock()
	f = b.state.Load()
	switch {
	case f&flagOpen != 0:
		// A request sent before the breaker opened; the breaker is not
		// called while open.
		return
	case f&flagHalfOpen != 0:
		if br.trialsOut == 0 {
			return // a straggler, and every trial is reported
		}
		br.trialsOut--
		if o == excluded {
			br.trialsLeft.Add(1) // the trial said nothing: another may go
			return
		}
	case o == excluded:
		return
	}
	if o == success {
		br.cb.Execute(reportSuccess)
	} else {
		br.cb.Execute(reportFailure)
	}
}
