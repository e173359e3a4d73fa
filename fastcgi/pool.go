package fastcgi

// pool.go keeps idle keep-alive connections to one backend address and hands
// them out, checking before each reuse that the backend has not closed them.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"time"
)

// PoolConfig configures a Pool. The zero value of each field but Addr has a
// working default.
type PoolConfig struct {
	// Addr is the backend's address: "host:port" for TCP, or a socket path
	// when Network is "unix".
	Addr string
	// Network is "tcp" (the default) or "unix".
	Network string

	// DialTimeout bounds connecting. Default 2s: a LAN backend that needs
	// longer to accept is as good as down.
	DialTimeout time.Duration

	// MaxIdle is how many idle connections are kept. Default 64: a busy
	// gateway keeps as many requests in flight to one backend, and every
	// connection closed for want of room is one redialled a moment later.
	// Negative keeps none (a connection per request).
	MaxIdle int

	// IdleTimeout closes connections idle for longer. Default 30s.
	IdleTimeout time.Duration

	// MaxRequestsPerConn closes a connection after this many requests.
	// Zero means no limit; FPM itself closes a connection when its worker
	// reaches pm.max_requests, which the check before reuse notices.
	MaxRequestsPerConn int

	// MaxConns caps the connections open at once, idle or in use; a request
	// that finds them all busy waits for one, up to MaxWait. Zero means no
	// cap. PHP-FPM binds a worker to each keep-alive connection for as long
	// as the connection lives, so more connections than pm.max_children
	// leave requests stuck in its listen backlog behind idle connections:
	// set it to pm.max_children (SetMaxConns changes it while running).
	MaxConns int

	// MaxWait bounds the wait for a connection under MaxConns. Default 5s,
	// then Do fails with ErrPoolBusy.
	MaxWait time.Duration

	// Dial, if not nil, makes connections instead of a net.Dialer. It lets
	// a caller bind a source address.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	// Now, if not nil, replaces time.Now for idle accounting in tests.
	Now func() time.Time
}

func (c *PoolConfig) setDefaults() {
	if c.Network == "" {
		c.Network = "tcp"
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = 2 * time.Second
	}
	if c.MaxIdle == 0 {
		c.MaxIdle = 64
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 30 * time.Second
	}
	if c.MaxWait <= 0 {
		c.MaxWait = 5 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Dial == nil {
		d := &net.Dialer{KeepAlive: 30 * time.Second}
		c.Dial = d.DialContext
	}
}

// Pool is a set of keep-alive connections to one backend. It starts no
// goroutines: idle connections past their timeout are closed when the pool
// is next used, and all of them by Close.
type Pool struct {
	cfg PoolConfig

	mu       sync.Mutex // protects the fields below
	idle     []*Conn    // most recently used last
	open     int        // connections dialled, or being dialled, and not yet closed
	maxConns int        // cap on open; 0: none
	// fresh holds when each new connection whose first request has no
	// answer yet sent it. While one has waited stuckAfter, a connection
	// handed back is closed, not kept idle: FPM binds a worker to each
	// keep-alive connection, so an idle one can hold the worker that the
	// new connection waits for in FPM's listen backlog. That breaks the
	// deadlock of more connections than workers even before MaxConns is
	// known.
	fresh   []time.Time
	waiters []chan struct{}
	closed  bool
}

// NewPool returns a Pool for cfg.Addr.
func NewPool(cfg PoolConfig) *Pool {
	cfg.setDefaults()
	return &Pool{cfg: cfg, maxConns: max(cfg.MaxConns, 0)}
}

// SetMaxConns changes the cap on open connections; 0 removes it. Waiting
// requests are woken if the cap grew.
func (p *Pool) SetMaxConns(n int) {
	p.mu.Lock()
	p.maxConns = max(n, 0)
	p.wakeLocked()
	p.mu.Unlock()
}

// wakeLocked wakes the first waiter, if a connection may now be had.
func (p *Pool) wakeLocked() {
	for len(p.waiters) > 0 && (p.maxConns == 0 || p.open < p.maxConns || len(p.idle) > 0) {
		close(p.waiters[0])
		p.waiters = p.waiters[1:]
		if len(p.idle) == 0 && p.maxConns != 0 {
			return // one slot, one waiter
		}
	}
}

// Addr returns the backend address of the pool.
func (p *Pool) Addr() string { return p.cfg.Addr }

// PoolStats is a snapshot of a Pool.
type PoolStats struct {
	Fresh   int // new connections waiting for their first answer
	Open    int // connections open, idle or in use
	Idle    int // idle connections
	Waiting int // requests waiting for a connection under MaxConns
	Max     int // MaxConns in force; 0: no cap
}

// Stats returns the pool's counts.
func (p *Pool) Stats() PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return PoolStats{Fresh: len(p.fresh), Open: p.open, Idle: len(p.idle), Waiting: len(p.waiters), Max: p.maxConns}
}

// Do sends req on an idle connection, or a new one. If a reused connection
// turns out to have been closed by the backend before it answered (FPM
// closes a connection when its worker reaches pm.max_requests, and the close
// can cross the next request), Do sends the request again on another
// connection, provided the body is empty or was small enough to keep
// (up to 64 KiB); otherwise it returns ErrStaleConn and the caller decides.
// A failure to connect is a *DialError; waiting too long for a connection
// under MaxConns is ErrPoolBusy.
func (p *Pool) Do(ctx context.Context, req *Request) (*Response, error) {
	for {
		c, err := p.get(ctx, req.Body != nil)
		if err != nil {
			return nil, err
		}
		first := c.requests == 0
		var since time.Time
		var stuck *time.Timer
		if first {
			since = p.cfg.Now()
			p.mu.Lock()
			p.fresh = append(p.fresh, since)
			p.mu.Unlock()
			// Runs once, on its own goroutine, unless stopped first.
			stuck = time.AfterFunc(stuckAfter, p.CloseIdle)
		}
		resp, err := c.Do(ctx, req)
		if first {
			stuck.Stop()
			p.mu.Lock()
			if i := slices.Index(p.fresh, since); i >= 0 {
				p.fresh = slices.Delete(p.fresh, i, i+1)
			}
			p.mu.Unlock()
		}
		if err != nil && errors.Is(err, ErrStaleConn) {
			var se *staleError
			if req.Body == nil {
				continue // that connection is gone; the next is idle or new
			}
			if errors.As(err, &se) && se.untouched {
				continue
			}
			if se != nil && se.replay != nil {
				r := *req
				r.Body = bytes.NewReader(se.replay)
				req = &r
				continue
			}
		}
		return resp, err
	}
}

// recentUse is how recently an idle connection must have carried a request
// for get to reuse it without looking at its socket first.
const recentUse = time.Second

// get returns a live idle connection, or dials a new one, waiting under
// MaxConns for one to be free.
//
// An idle connection is checked for a close by the backend before reuse,
// which costs a system call, unless it carried a request less than
// recentUse ago and the request to send has no body (hasBody false): a
// busy gateway reuses each connection many times a second, and the rare
// one that FPM closed in between (pm.max_requests) fails before PHP sees
// the request, which Do then sends again on another connection. A request
// with a body is always checked, since its body cannot always be sent
// again.
func (p *Pool) get(ctx context.Context, hasBody bool) (*Conn, error) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		now := p.cfg.Now()
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, ErrPoolClosed
		}
		var stale []*Conn
		// The oldest idle connections sit at the front; drop the expired ones.
		for len(p.idle) > 0 && now.Sub(p.idle[0].lastUsed) >= p.cfg.IdleTimeout {
			stale = append(stale, p.idle[0])
			p.idle = p.idle[1:]
		}
		var c *Conn
		if n := len(p.idle); n > 0 {
			c = p.idle[n-1]
			p.idle = p.idle[:n-1]
		}
		var wait chan struct{}
		if c == nil {
			if p.maxConns == 0 || p.open < p.maxConns {
				p.open++ // counted now, so that concurrent dials respect the cap
			} else {
				wait = make(chan struct{})
				p.waiters = append(p.waiters, wait)
			}
		}
		p.mu.Unlock()
		for _, s := range stale {
			s.Close()
		}
		switch {
		case c != nil:
			if c.alive(hasBody || now.Sub(c.lastUsed) >= recentUse) {
				return c, nil
			}
			c.Close()
			continue // the next idle one, or a dial
		case wait == nil:
			return p.dial(ctx)
		}
		if timer == nil {
			timer = time.NewTimer(p.cfg.MaxWait)
		}
		select {
		case <-wait:
		case <-ctx.Done():
			p.dropWaiter(wait)
			return nil, ctx.Err()
		case <-timer.C:
			p.dropWaiter(wait)
			return nil, fmt.Errorf("%w: %d connections to %s in use for %v", ErrPoolBusy, p.Stats().Max, p.cfg.Addr, p.cfg.MaxWait)
		}
	}
}

// dropWaiter removes a waiter that gave up; if it had been woken already, it
// passes the wake-up on.
func (p *Pool) dropWaiter(w chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, x := range p.waiters {
		if x == w {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			return
		}
	}
	p.wakeLocked()
}

// dial makes a new connection; the caller has already counted it in open.
func (p *Pool) dial(ctx context.Context) (*Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, p.cfg.DialTimeout)
	defer cancel()
	nc, err := p.cfg.Dial(dctx, p.cfg.Network, p.cfg.Addr)
	if err != nil {
		p.closedOne()
		return nil, &DialError{Addr: p.cfg.Addr, Err: err}
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	c := NewConn(nc, p.cfg.MaxIdle > 0)
	c.onClose = p.closedOne
	c.release = p.put
	return c, nil
}

// closedOne is called once when a pooled connection closes.
func (p *Pool) closedOne() {
	p.mu.Lock()
	p.open--
	p.wakeLocked()
	p.mu.Unlock()
}

// stuckAfter is how long a new connection waits for its first answer
// before the pool takes it for stuck in FPM's listen backlog behind idle
// connections (see Pool.fresh): then the idle connections are closed, and
// those handed back until it has its answer. FPM answers a new connection in well under
// a millisecond when a worker is free; a shorter wait would have a busy
// gateway close the connections it hands back whenever it opens one more
// to keep up, which opens more, and so on: a connection per request.
const stuckAfter = 20 * time.Millisecond

// stuckLocked reports whether a new connection has waited stuckAfter for
// its first answer.
func (p *Pool) stuckLocked(now time.Time) bool {
	for _, t := range p.fresh {
		if now.Sub(t) >= stuckAfter {
			return true
		}
	}
	return false
}

// put takes back a connection whose response is closed.
func (p *Pool) put(c *Conn) {
	if !c.Reusable() || (p.cfg.MaxRequestsPerConn > 0 && c.requests >= p.cfg.MaxRequestsPerConn) {
		c.Close()
		return
	}
	now := p.cfg.Now()
	c.lastUsed = now
	p.mu.Lock()
	// Over MaxConns (lowered while it was in use), a connection is closed
	// rather than kept: idle, it would still hold an FPM worker.
	if p.closed || len(p.idle) >= p.cfg.MaxIdle || p.maxConns > 0 && p.open > p.maxConns || p.stuckLocked(now) {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.idle = append(p.idle, c)
	p.wakeLocked()
	p.mu.Unlock()
}

// CloseIdle closes the idle connections; connections in use are closed when
// their responses are.
func (p *Pool) CloseIdle() {
	p.mu.Lock()
	idle := p.idle
	p.idle = nil
	p.mu.Unlock()
	for _, c := range idle {
		c.Close()
	}
}

// Close closes idle connections and makes Get fail; connections in use are
// closed when their responses are. It is safe to call more than once.
func (p *Pool) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.CloseIdle()
	return nil
}
