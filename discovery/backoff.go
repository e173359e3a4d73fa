package discovery

// backoff.go holds the retry delays of the watchers and the Registrar, and
// the clock they wait on, which tests replace.

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff returns the wait after the n-th failure in a row (n >= 1): lo,
// doubled with each further failure up to hi, of which a random share from
// a half to all is taken ("equal jitter"), so that gateways that lost
// Consul together do not come back in step. r is in [0, 1).
func backoff(n int, lo, hi time.Duration, r float64) time.Duration {
	d := lo
	for i := 1; i < n && d < hi; i++ {
		d *= 2
	}
	d = min(d, hi)
	return d/2 + time.Duration(r*float64(d/2))
}

// clock is what the loops wait on. The real one sleeps; tests record the
// waits and return at once.
type clock interface {
	Now() time.Time
	// Sleep waits d, or until ctx is done, and returns ctx.Err() then.
	Sleep(ctx context.Context, d time.Duration) error
	// Rand returns a number in [0, 1) for jitter.
	Rand() float64
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (realClock) Rand() float64 { return rand.Float64() }
