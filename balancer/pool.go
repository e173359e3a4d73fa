package balancer

// pool.go holds Pool, the set of backends of one route target, its errors
// and its status snapshot.

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// ErrNoBackend is returned by Pick and Acquire when no backend can take a
// request. The errors of a full or timed-out queue match it too, so that a
// caller that only maps ErrNoBackend to 503 covers them.
var ErrNoBackend = errors.New("balancer: no backend available")

// Pool is a set of backends, with their breakers, slow start, limits, wait
// queue and outlier ejection. Make one with NewPool or NewPoolConfig. Its
// methods are safe for concurrent use.
type Pool struct {
	name     string
	cfg      Config // with defaults; frozen
	backends atomic.Pointer[[]*Backend]

	setMu   sync.Mutex // serializes Set
	ejectMu sync.Mutex // serializes ejections, so that the ejected share holds
	q       waitQueue
	samples atomic.Uint64 // ObserveLatency calls, for relevel

	// Errors built once, so that failing allocates nothing.
	errNone, errBusy, errFull, errTimeout error
}

// NewPool returns a pool named name with the given backends and the
// default Config.
func NewPool(name string, backends []*Backend) *Pool {
	p, err := NewPoolConfig(name, Config{}, backends)
	if err != nil {
		panic(err) // the zero Config is valid
	}
	return p
}

// NewPoolConfig returns a pool named name with the given backends and
// Config, or the error of cfg.Validate.
func NewPoolConfig(name string, cfg Config, backends []*Backend) (*Pool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("pool %q: %w", name, err)
	}
	p := &Pool{name: name, cfg: cfg.withDefaults()}
	p.errNone = fmt.Errorf("pool %q: %w", name, ErrNoBackend)
	p.errBusy = fmt.Errorf("pool %q: every backend is at its concurrency limit: %w", name, ErrNoBackend)
	p.errFull = fmt.Errorf("pool %q: %w (%w)", name, ErrQueueFull, ErrNoBackend)
	p.errTimeout = fmt.Errorf("pool %q: %w after %v (%w)", name, ErrQueueTimeout, p.cfg.QueueTimeout, ErrNoBackend)
	p.Set(backends)
	return p, nil
}

// Name returns the pool's name.
func (p *Pool) Name() string { return p.name }

// Config returns the pool's Config, with its defaults filled in.
func (p *Pool) Config() Config { return p.cfg }

// Set publishes a new backend list. Backends that were in the list keep
// their state (keep passing the same *Backend for the same address);
// backends new to the pool start slow start, except those a pool is made
// with. Requests in flight on a removed backend finish normally.
func (p *Pool) Set(backends []*Backend) {
	p.setMu.Lock()
	defer p.setMu.Unlock()
	ramp := p.backends.Load() != nil
	now := p.nowNano()
	for _, b := range backends {
		b.attach(p, ramp, now)
	}
	bs := slices.Clone(backends)
	p.backends.Store(&bs)
	p.kick()
}

// Backends returns the current backend list. It must not be modified.
func (p *Pool) Backends() []*Backend {
	if bs := p.backends.Load(); bs != nil {
		return *bs
	}
	return nil
}

func (p *Pool) nowNano() int64 { return p.cfg.Now().UnixNano() }

// BackendStats is a snapshot of one backend, for status pages and metrics.
type BackendStats struct {
	Addr     string
	InFlight int64
	// Weight is the configured weight; EffectiveWeight is what Pick uses
	// now: the weight scaled by slow start.
	Weight          int
	EffectiveWeight float64
	LoadPenalty     int
	Healthy         bool
	Breaker         BreakerState
	// OpenUntil is when an open breaker admits trials; zero unless open.
	OpenUntil time.Time
	// EjectedUntil is when the current ejection ends; zero unless ejected.
	EjectedUntil time.Time
	// Ejections counts the backend's ejections so far.
	Ejections int64
	// ConsecutiveFailures counts its backend failures in a row.
	ConsecutiveFailures int
	// MaxConcurrent is its concurrency limit in force; 0 means none.
	MaxConcurrent int
}

// Stats returns a snapshot of each backend, in the order of Backends. The
// pool's queue length is Queued.
func (p *Pool) Stats() []BackendStats {
	bs := p.Backends()
	now := p.nowNano()
	out := make([]BackendStats, len(bs))
	for i, b := range bs {
		f := b.state.Load()
		w := weightOf(f)
		s := BackendStats{
			Addr:                b.addr,
			InFlight:            b.inflight.Load(),
			Weight:              int(w),
			EffectiveWeight:     float64(w),
			LoadPenalty:         int(penaltyOf(f)),
			Healthy:             f&flagDown == 0,
			Breaker:             b.breakerState(),
			Ejections:           b.out.ejections.Load(),
			ConsecutiveFailures: int(b.out.consecutive.Load()),
			MaxConcurrent:       int(b.limit.Load()),
		}
		if f&flagRamp != 0 {
			s.EffectiveWeight = float64(w) * float64(b.ramp(p, now)) / float64(rampOne)
		}
		if s.Breaker == BreakerOpen {
			s.OpenUntil = time.Unix(0, b.br.openUntil.Load())
		}
		if until := b.out.until.Load(); until > now {
			s.EjectedUntil = time.Unix(0, until)
		}
		out[i] = s
	}
	return out
}
