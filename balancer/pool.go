package balancer

// pool.go holds Pool, the set of backends of one route target, and Backend,
// the per-backend state that the hot path touches.

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
)

// ErrNoBackend is returned by Pick when no backend can take a request.
var ErrNoBackend = errors.New("balancer: no backend available")

// Backend is one FastCGI backend. Its counters are atomics; Backend values
// must not be copied.
type Backend struct {
	addr     string
	inflight atomic.Int64
	// Value is free for the caller: the gateway keeps the backend's
	// connection pool there. It is set before the backend is published.
	Value any
}

// NewBackend returns a backend for addr.
func NewBackend(addr string) *Backend { return &Backend{addr: addr} }

// Addr returns the backend's address.
func (b *Backend) Addr() string { return b.addr }

// InFlight returns the number of requests in flight on b.
func (b *Backend) InFlight() int64 { return b.inflight.Load() }

// Pool is a set of backends. The zero value is an empty pool; Set publishes
// a new list.
type Pool struct {
	name     string
	backends atomic.Pointer[[]*Backend]
}

// NewPool returns a pool named name with the given backends.
func NewPool(name string, backends []*Backend) *Pool {
	p := &Pool{name: name}
	p.Set(backends)
	return p
}

// Name returns the pool's name.
func (p *Pool) Name() string { return p.name }

// Set publishes a new backend list. Requests in flight on a removed backend
// finish normally.
func (p *Pool) Set(backends []*Backend) {
	bs := append([]*Backend(nil), backends...)
	p.backends.Store(&bs)
}

// Backends returns the current backend list. It must not be modified.
func (p *Pool) Backends() []*Backend {
	if bs := p.backends.Load(); bs != nil {
		return *bs
	}
	return nil
}

// Pick chooses the backend with the fewest requests in flight, skipping
// those in avoid (the ones a retried request already failed on), and counts
// a request in flight on it. The caller must call Done on it exactly once
// when the request ends. If every backend is avoided, Pick falls back to
// them rather than fail, so a pool of one can still retry.
func (p *Pool) Pick(avoid []*Backend) (*Backend, error) {
	bs := p.Backends()
	if len(bs) == 0 {
		return nil, fmt.Errorf("pool %q: %w", p.name, ErrNoBackend)
	}
	b := leastInFlight(bs, avoid)
	if b == nil {
		b = leastInFlight(bs, nil)
	}
	b.inflight.Add(1)
	return b, nil
}

// Done ends a request that Pick counted on b. err is the backend failure
// that ended it (a dial error, a reset, a timeout), or nil when the backend
// answered, whatever the answer.
func (b *Backend) Done(err error) {
	b.inflight.Add(-1)
}

// leastInFlight returns the backend with the fewest in flight that is not in
// avoid, choosing at random among ties (reservoir sampling), or nil.
func leastInFlight(bs, avoid []*Backend) *Backend {
	var best *Backend
	var bestN int64
	ties := 0
	for _, b := range bs {
		if contains(avoid, b) {
			continue
		}
		n := b.inflight.Load()
		switch {
		case best == nil || n < bestN:
			best, bestN, ties = b, n, 1
		case n == bestN:
			ties++
			if rand.IntN(ties) == 0 {
				best = b
			}
		}
	}
	return best
}

func contains(bs []*Backend, b *Backend) bool {
	for _, x := range bs {
		if x == b {
			return true
		}
	}
	return false
}
