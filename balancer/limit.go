package balancer

// limit.go holds the pool's wait queue: Acquire waits, in a bounded FIFO,
// for a backend below its concurrency limit (Config.MaxConcurrent or the
// limit learned from FPM), like HAProxy's maxconn and maxqueue. Waiters are
// handed a backend by whatever frees a slot or adds capacity (Done,
// SetMaxConcurrent, SetHealthy, SetWeight, Set); the queue runs no
// goroutine and polls nothing.

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

var (
	// ErrQueueFull is returned by Acquire when every backend is at its
	// limit and Config.MaxQueue requests already wait.
	ErrQueueFull = errors.New("balancer: wait queue full")
	// ErrQueueTimeout is returned by Acquire when no backend had a free
	// slot within Config.QueueTimeout.
	ErrQueueTimeout = errors.New("balancer: timed out waiting for a backend")
)

// waitQueue is the pool's queue of Acquire calls waiting for a slot.
type waitQueue struct {
	mu      sync.Mutex   // guards waiters and the answer fields of each waiter in it
	waiters []*waiter    // oldest first
	n       atomic.Int32 // len(waiters), for Done to test without the lock
}

// waiter is one Acquire call in the queue.
type waiter struct {
	avoid    []*Backend
	ready    chan struct{} // gets one value when answered
	answered bool
	b        *Backend // the backend picked for it, or
	err      error    // why none can be
}

// Acquire is Pick, but when every backend that could take the request is
// at its concurrency limit it waits for a slot, in FIFO order with the other
// waiters, up to Config.QueueTimeout. It returns ErrQueueFull at once when
// Config.MaxQueue requests already wait, ErrQueueTimeout when the time is
// up, ctx.Err() when ctx is done, and ErrNoBackend at once when no backend
// can take a request whatever its load (all down, open or ejected), or
// when that becomes so while it waits. ErrQueueFull and ErrQueueTimeout
// errors also match ErrNoBackend. The caller must call Done on the backend
// returned, exactly once.
func (p *Pool) Acquire(ctx context.Context, avoid []*Backend) (*Backend, error) {
	if p.q.n.Load() == 0 { // nobody waits: no one to overtake
		switch b, st := p.pick(avoid); st {
		case picked:
			return b, nil
		case none:
			return nil, p.errNone
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if p.cfg.MaxQueue < 0 {
		return nil, p.errFull
	}
	w := &waiter{avoid: avoid, ready: make(chan struct{}, 1)}
	p.q.mu.Lock()
	if len(p.q.waiters) >= p.cfg.MaxQueue {
		p.q.mu.Unlock()
		return nil, p.errFull
	}
	p.q.waiters = append(p.q.waiters, w)
	p.q.n.Add(1)
	// A slot may have been freed since the pick above, or the waiters
	// ahead may want none of the backends this one may use.
	p.dispatchLocked()
	answered := w.answered
	p.q.mu.Unlock()
	if answered {
		return w.b, w.err
	}

	t := time.NewTimer(p.cfg.QueueTimeout)
	defer t.Stop()
	var err error
	select {
	case <-w.ready:
		return w.b, w.err
	case <-t.C:
		err = p.errTimeout
	case <-ctx.Done():
		err = ctx.Err()
	}
	p.q.mu.Lock()
	answered = w.answered
	if !answered {
		p.q.remove(w)
	}
	p.q.mu.Unlock()
	switch {
	case !answered:
		return nil, err
	case w.err != nil:
		return nil, w.err
	case ctx.Err() != nil: // handed a backend as ctx ended: give it back
		w.b.Done(context.Canceled)
		return nil, ctx.Err()
	}
	return w.b, nil // handed a backend as the time ran out: take it
}

// Queued returns the number of requests waiting in the pool's queue.
func (p *Pool) Queued() int { return int(p.q.n.Load()) }

// kick hands free slots to waiting requests, if any wait.
func (p *Pool) kick() {
	if p.q.n.Load() == 0 {
		return
	}
	p.q.mu.Lock()
	p.dispatchLocked()
	p.q.mu.Unlock()
}

// dispatchLocked answers the waiters that can be answered, oldest first: it
// picks a backend for each, or fails it when no backend can take a request
// at all. A waiter that finds every backend it may use at its limit stays;
// one behind it that may use other backends (one with a different avoid
// list) can still be answered. p.q.mu must be held.
func (p *Pool) dispatchLocked() {
	q := &p.q
	for i := 0; i < len(q.waiters); {
		w := q.waiters[i]
		b, st := p.pick(w.avoid)
		if st == busy {
			if len(w.avoid) == 0 {
				return // every backend is at its limit: so for those behind
			}
			i++
			continue
		}
		if st == none {
			w.err = p.errNone
		} else {
			w.b = b
		}
		w.answered = true
		w.ready <- struct{}{}
		q.waiters = slices.Delete(q.waiters, i, i+1)
		q.n.Add(-1)
	}
}

// remove takes w, which has not been answered, out of the queue.
// q.mu must be held.
func (q *waitQueue) remove(w *waiter) {
	if i := slices.Index(q.waiters, w); i >= 0 {
		q.waiters = slices.Delete(q.waiters, i, i+1)
		q.n.Add(-1)
	}
}
