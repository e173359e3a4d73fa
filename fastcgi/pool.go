package fastcgi

// pool.go keeps idle keep-alive connections to one backend address and hands
// them out, checking before each reuse that the backend has not closed them.

import (
	"context"
	"errors"
	"net"
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

	// MaxIdle is how many idle connections are kept. Default 16, more than
	// a typical FPM pool's pm.max_children = 5 so that a busy pool never
	// redials. Negative keeps none (a connection per request).
	MaxIdle int

	// IdleTimeout closes connections idle for longer. Default 30s.
	IdleTimeout time.Duration

	// MaxRequestsPerConn closes a connection after this many requests.
	// Zero means no limit; FPM itself closes a connection when its worker
	// reaches pm.max_requests, which the check before reuse notices.
	MaxRequestsPerConn int

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
		c.MaxIdle = 16
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 30 * time.Second
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

	mu     sync.Mutex // protects idle, open, closed
	idle   []*Conn    // most recently used last
	open   int        // connections dialled and not yet closed
	closed bool
}

// NewPool returns a Pool for cfg.Addr.
func NewPool(cfg PoolConfig) *Pool {
	cfg.setDefaults()
	return &Pool{cfg: cfg}
}

// Addr returns the backend address of the pool.
func (p *Pool) Addr() string { return p.cfg.Addr }

// PoolStats is a snapshot of a Pool.
type PoolStats struct {
	Open int // connections open, idle or in use
	Idle int // idle connections
}

// Stats returns the pool's counts.
func (p *Pool) Stats() PoolStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	return PoolStats{Open: p.open, Idle: len(p.idle)}
}

// Do sends req on an idle connection, or a new one. If a reused connection
// turns out to have been closed by the backend before it answered, and the
// request has no body to resend, Do tries again on a new connection; with a
// body it returns ErrStaleConn and leaves the choice to the caller.
// A failure to connect is a *DialError.
func (p *Pool) Do(ctx context.Context, req *Request) (*Response, error) {
	for {
		c, err := p.get(ctx)
		if err != nil {
			return nil, err
		}
		resp, err := c.Do(ctx, req)
		if err != nil && errors.Is(err, ErrStaleConn) && req.Body == nil {
			continue // that connection is gone; the next is idle or new
		}
		return resp, err
	}
}

// get returns a live idle connection, or dials a new one.
func (p *Pool) get(ctx context.Context) (*Conn, error) {
	now := p.cfg.Now()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, ErrPoolClosed
	}
	var stale []*Conn
	var c *Conn
	for len(p.idle) > 0 {
		last := p.idle[len(p.idle)-1]
		p.idle = p.idle[:len(p.idle)-1]
		if now.Sub(last.lastUsed) < p.cfg.IdleTimeout {
			c = last
			break
		}
		stale = append(stale, last)
	}
	// The oldest idle connections sit at the front; drop the expired ones.
	for len(p.idle) > 0 && now.Sub(p.idle[0].lastUsed) >= p.cfg.IdleTimeout {
		stale = append(stale, p.idle[0])
		p.idle = p.idle[1:]
	}
	p.mu.Unlock()
	for _, s := range stale {
		s.Close()
	}
	if c != nil {
		if c.alive() {
			return c, nil
		}
		c.Close()
		// Try the next idle one, or dial.
		return p.get(ctx)
	}
	return p.dial(ctx)
}

func (p *Pool) dial(ctx context.Context) (*Conn, error) {
	dctx, cancel := context.WithTimeout(ctx, p.cfg.DialTimeout)
	defer cancel()
	nc, err := p.cfg.Dial(dctx, p.cfg.Network, p.cfg.Addr)
	if err != nil {
		return nil, &DialError{Addr: p.cfg.Addr, Err: err}
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	c := NewConn(nc, p.cfg.MaxIdle > 0)
	c.onClose = p.closedOne
	c.release = p.put
	p.mu.Lock()
	p.open++
	p.mu.Unlock()
	return c, nil
}

// closedOne is called once when a pooled connection closes.
func (p *Pool) closedOne() {
	p.mu.Lock()
	p.open--
	p.mu.Unlock()
}

// put takes back a connection whose response is closed.
func (p *Pool) put(c *Conn) {
	if !c.Reusable() || (p.cfg.MaxRequestsPerConn > 0 && c.requests >= p.cfg.MaxRequestsPerConn) {
		c.Close()
		return
	}
	c.lastUsed = p.cfg.Now()
	p.mu.Lock()
	if p.closed || len(p.idle) >= p.cfg.MaxIdle {
		p.mu.Unlock()
		c.Close()
		return
	}
	p.idle = append(p.idle, c)
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
