package balancer

// config.go holds Config, the per-pool settings of breakers, slow start,
// concurrency limits, the wait queue and outlier ejection, with the default
// of each field and the reason for it.

import (
	"errors"
	"fmt"
	"time"
)

// Config configures a Pool. The zero value is valid: every zero field takes
// the default given with it, which DefaultConfig returns filled in. Where a
// rule can be turned off, a negative value turns it off. A Pool copies its
// Config when it is made; changing the Config afterwards has no effect.
type Config struct {
	// BreakerConsecutiveFailures trips a backend's breaker after that many
	// backend failures in a row. Default 5: one failed dial or reset is
	// noise (a worker recycled by pm.max_requests, a connection that FPM
	// closed), five in a row is a backend that is down, and at a few
	// hundred requests a second it trips within milliseconds. Negative: off.
	BreakerConsecutiveFailures int

	// BreakerFailureRatio trips a breaker when at least that share of the
	// requests that ended within BreakerWindow failed, once at least
	// BreakerMinRequests ended in it. Default 0.5: a backend that fails
	// every other request is worse than none, since each failure costs a
	// retry or an error page, while a backend below half is better served
	// by outlier ejection and retries. Negative: off.
	BreakerFailureRatio float64

	// BreakerMinRequests is how many requests must have ended within
	// BreakerWindow before BreakerFailureRatio applies. Default 20: enough
	// that one unlucky second (two failures out of three) does not trip a
	// backend that serves little traffic.
	BreakerMinRequests int

	// BreakerWindow is the rolling window over which the ratio is counted,
	// in ten buckets (gobreaker's Interval and BucketPeriod). Default 10s:
	// long enough to gather BreakerMinRequests on a quiet pool, short enough
	// that a failure burst that is over stops counting soon.
	BreakerWindow time.Duration

	// BreakerOpenTime is how long a tripped breaker sends a backend nothing
	// before it lets trial requests through (half-open). Default 10s: an
	// FPM restart or a network blip is over in that time, and a backend that
	// is still down costs only BreakerHalfOpenRequests failures per period.
	BreakerOpenTime time.Duration

	// BreakerHalfOpenRequests is how many trial requests a half-open breaker
	// lets through at once; that many successes in a row close it, one
	// failure opens it again. Default 3: one success may be luck, three
	// in a row on a backend that just failed five times are not.
	BreakerHalfOpenRequests int

	// Break5xx counts a backend's 5xx answers as failures of the backend
	// (see Pool.StatusErr). Default false: a 5xx from PHP is usually the
	// application's answer (an exception, a database down behind it), which
	// every backend would give alike; taking backends out for it turns one
	// broken page into a whole pool that is unavailable.
	Break5xx bool

	// SlowStart is the time over which a backend that joins the pool or
	// comes back (health up, breaker closed, ejection over) ramps from a
	// tenth of its weight to all of it. Default 0, off: FPM has no JIT
	// warm-up to wait for, but a cold opcache on a freshly started FPM
	// host does benefit from, for example, 30s.
	SlowStart time.Duration

	// MaxConcurrent is how many requests this gateway sends to one backend
	// at once. Default 0: no limit until the prober learns one from FPM
	// (Backend.SetMaxConcurrent); a configured value wins over a learned
	// one. Requests beyond it wait in the pool's queue (Pool.Acquire).
	MaxConcurrent int

	// MaxQueue is how many requests may wait in the pool's queue for a
	// backend below its MaxConcurrent; more fail at once with ErrQueueFull.
	// Default 1024: a burst of a few hundred clients (a page that loads
	// many PHP endpoints at once, a cache stampede) waits its turn rather
	// than failing, while a pool that is overloaded for good still turns
	// excess requests away instead of holding any number of client
	// connections; QueueTimeout bounds the wait either way.
	// Negative: no queue.
	MaxQueue int

	// QueueTimeout is how long a request waits in the queue before it fails
	// with ErrQueueTimeout. Default 5s: longer than a burst lasts, shorter
	// than clients and upstream proxies wait (often 30 to 60s), so the 503
	// reaches them while they still listen.
	QueueTimeout time.Duration

	// Outlier configures the passive ejection of failing backends.
	Outlier OutlierConfig

	// Now returns the current time, for slow start, breaker open times and
	// ejections. Nil means time.Now; tests inject a clock. The breakers'
	// failure window (BreakerWindow) runs on time.Now whatever Now is, since
	// gobreaker reads the clock itself.
	Now func() time.Time

	// OnBreakerChange, if not nil, is called when a backend's breaker
	// changes state, for logs and metrics. It is called with the breaker's
	// locks held: it must be quick and must not call Pick, Acquire or Done.
	OnBreakerChange func(b *Backend, from, to BreakerState)
}

// OutlierConfig configures outlier ejection: a backend that fails requests
// in a row is taken out of the pool for a while, longer each time it is
// taken out again.
type OutlierConfig struct {
	// ConsecutiveFailures ejects a backend after that many backend failures
	// in a row. Default 5, like the breaker: the breaker stops traffic to a
	// backend that is down; ejection keeps a flapping backend out for
	// longer each time. Negative: off.
	ConsecutiveFailures int

	// BaseEjection is how long the first ejection lasts. A backend ejected
	// again within MaxEjection of the end of its last ejection stays out
	// twice as long as the last time, up to MaxEjection; one that went
	// MaxEjection without an ejection starts again from BaseEjection.
	// Default 10s, the breaker's open time.
	BaseEjection time.Duration

	// MaxEjection caps the ejection time. Default 5m: a backend that keeps
	// failing costs a few failures every five minutes, and one that was
	// fixed is back within five minutes without an operator.
	MaxEjection time.Duration

	// MaxEjectedPercent caps the share of the pool's backends ejected at
	// once, so that a failure that hits every backend alike (a database
	// behind them all) does not empty the pool; ejection cannot tell such a
	// failure from bad backends. At least one backend may be ejected in a
	// pool of two or more, whatever the percentage; a pool of one never
	// ejects (its breaker still trips). Default 50: the other half can
	// carry the load of a pool that has headroom.
	MaxEjectedPercent int
}

// DefaultConfig returns the Config with every default filled in.
func DefaultConfig() Config {
	return Config{
		BreakerConsecutiveFailures: 5,
		BreakerFailureRatio:        0.5,
		BreakerMinRequests:         20,
		BreakerWindow:              10 * time.Second,
		BreakerOpenTime:            10 * time.Second,
		BreakerHalfOpenRequests:    3,
		MaxQueue:                   1024,
		QueueTimeout:               5 * time.Second,
		Outlier: OutlierConfig{
			ConsecutiveFailures: 5,
			BaseEjection:        10 * time.Second,
			MaxEjection:         5 * time.Minute,
			MaxEjectedPercent:   50,
		},
	}
}

// MaxWeight is the highest backend weight; the other bounds keep the
// per-backend settings within the integers that Pick and gobreaker use.
const (
	MaxWeight      = 1 << 20
	maxPenalty     = 1 << 20
	maxConcurrency = 1 << 30
	maxHalfOpen    = 1 << 16
)

// Validate reports every field that is out of range, joined.
func (c Config) Validate() error {
	d := c.withDefaults()
	var errs []error
	check := func(bad bool, format string, args ...any) {
		if bad {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	check(d.BreakerFailureRatio > 1, "breaker failure ratio %v is above 1", c.BreakerFailureRatio)
	check(c.BreakerMinRequests < 0 || c.BreakerMinRequests > maxConcurrency, "breaker min requests %d is out of range [0, %d]", c.BreakerMinRequests, maxConcurrency)
	check(c.BreakerWindow < 0, "breaker window %v is negative", c.BreakerWindow)
	check(c.BreakerOpenTime < 0, "breaker open time %v is negative", c.BreakerOpenTime)
	check(c.BreakerHalfOpenRequests < 0 || c.BreakerHalfOpenRequests > maxHalfOpen, "breaker half-open requests %d is out of range [0, %d]", c.BreakerHalfOpenRequests, maxHalfOpen)
	check(d.BreakerWindow > 0 && d.BreakerWindow < breakerBuckets, "breaker window %v is shorter than %dns", c.BreakerWindow, breakerBuckets)
	check(c.SlowStart < 0, "slow start %v is negative", c.SlowStart)
	check(c.MaxConcurrent < 0 || c.MaxConcurrent > maxConcurrency, "max concurrent %d is out of range [0, %d]", c.MaxConcurrent, maxConcurrency)
	check(c.QueueTimeout < 0, "queue timeout %v is negative", c.QueueTimeout)
	check(c.Outlier.BaseEjection < 0, "outlier base ejection %v is negative", c.Outlier.BaseEjection)
	check(c.Outlier.MaxEjection < 0, "outlier max ejection %v is negative", c.Outlier.MaxEjection)
	check(d.Outlier.MaxEjection < d.Outlier.BaseEjection, "outlier max ejection %v is shorter than base ejection %v", d.Outlier.MaxEjection, d.Outlier.BaseEjection)
	check(c.Outlier.MaxEjectedPercent < 0 || c.Outlier.MaxEjectedPercent > 100, "outlier max ejected percent %d is out of range [0, 100]", c.Outlier.MaxEjectedPercent)
	if len(errs) > 0 {
		return fmt.Errorf("balancer: %w", errors.Join(errs...))
	}
	return nil
}

// withDefaults returns c with its zero fields, Now included, set to their
// defaults.
func (c Config) withDefaults() Config {
	c = c.Defaults()
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Defaults returns c with its zero fields set to their defaults, but for
// Now and the hooks, which stay as they are: a config file shows its
// defaults this way.
func (c Config) Defaults() Config {
	d := DefaultConfig()
	set := func(v *int, def int) {
		if *v == 0 {
			*v = def
		}
	}
	setD := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	set(&c.BreakerConsecutiveFailures, d.BreakerConsecutiveFailures)
	if c.BreakerFailureRatio == 0 {
		c.BreakerFailureRatio = d.BreakerFailureRatio
	}
	set(&c.BreakerMinRequests, d.BreakerMinRequests)
	setD(&c.BreakerWindow, d.BreakerWindow)
	setD(&c.BreakerOpenTime, d.BreakerOpenTime)
	set(&c.BreakerHalfOpenRequests, d.BreakerHalfOpenRequests)
	set(&c.MaxQueue, d.MaxQueue)
	setD(&c.QueueTimeout, d.QueueTimeout)
	set(&c.Outlier.ConsecutiveFailures, d.Outlier.ConsecutiveFailures)
	setD(&c.Outlier.BaseEjection, d.Outlier.BaseEjection)
	setD(&c.Outlier.MaxEjection, d.Outlier.MaxEjection)
	set(&c.Outlier.MaxEjectedPercent, d.Outlier.MaxEjectedPercent)
	return c
}
