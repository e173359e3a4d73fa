package gateway

// backends.go holds the changing membership of a pool: SetBackends, which
// discovery calls with each new member set, the making of a backend with
// its connection pool, and the retiring of backends that left, whose
// connection pools close once their last request is done.

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/fcgigate/fcgigate/balancer"
	"github.com/fcgigate/fcgigate/fastcgi"
)

// retireCheck is how often a backend that left its pool is looked at until
// its last request is done. The first look waits this long too, for the
// requests that picked the backend just before it left.
const retireCheck = 100 * time.Millisecond

// members is what a pool needs to change its backend set.
type members struct {
	dial dialFunc // for the backends' connections; nil: fastcgi's default

	mu       sync.Mutex          // serializes SetBackends and close; protects the fields below
	retiring map[string]*retiree // backends that left, by address, until their requests are done
	closed   bool                // the Gateway is closed: no more changes
}

// retiree is a backend that left its pool while requests may still run on
// it.
type retiree struct {
	b     *balancer.Backend
	timer *time.Timer // runs check every retireCheck
}

// newBackend returns a backend for addr with a connection pool set up from
// p's config, and its configured weight, if any.
func (p *pool) newBackend(addr string) *balancer.Backend {
	pc := &p.cfg
	b := balancer.NewBackend(addr)
	b.Value = fastcgi.NewPool(fastcgi.PoolConfig{
		Addr:               addr,
		DialTimeout:        pc.DialTimeout,
		MaxIdle:            pc.MaxIdleConns,
		IdleTimeout:        pc.IdleConnTimeout,
		MaxRequestsPerConn: pc.MaxRequestsPerConn,
		MaxConns:           pc.MaxConns,
		MaxWait:            pc.ConnWaitTimeout,
		Dial:               p.members.dial,
	})
	if w, ok := pc.Weights[addr]; ok {
		b.SetWeight(w)
	}
	return b
}

// SetBackends makes addrs ("host:port"; empty and duplicate entries are
// ignored) the backends of the pool named pool, as discovery finds them.
// It reports false if there is no such pool.
//
// A backend whose address stays keeps its *balancer.Backend, so its health,
// breaker, load and connections survive the change. A new address gets a
// new backend, which ramps up under the pool's slow start. A backend whose
// address is gone gets no new request from the moment SetBackends returns;
// the requests already on it finish, and its connections are closed once
// the last has. An address that comes back before then gets its old backend
// back. A pool left with no backend answers 503 until some arrive.
//
// SetBackends is safe for concurrent use; calls for one pool are applied in
// turn. After Close it does nothing.
func (g *Gateway) SetBackends(pool string, addrs []string) bool {
	p := g.poolNamed(pool)
	if p == nil {
		return false
	}
	m := &p.members
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return true
	}
	cur := p.bal.Backends()
	have := make(map[string]*balancer.Backend, len(cur))
	for _, b := range cur {
		have[b.Addr()] = b
	}
	next := make([]*balancer.Backend, 0, len(addrs))
	kept := make(map[string]bool, len(addrs))
	var added, back []string
	for _, a := range addrs {
		if a == "" || kept[a] {
			continue
		}
		kept[a] = true
		b := have[a]
		switch r := m.retiring[a]; {
		case b != nil:
		case r != nil:
			r.timer.Stop() // its check sees it is no longer retiring
			delete(m.retiring, a)
			b = r.b
			back = append(back, a)
		default:
			b = p.newBackend(a)
			added = append(added, a)
		}
		next = append(next, b)
	}
	var removed []string
	for _, b := range cur {
		if !kept[b.Addr()] {
			removed = append(removed, b.Addr())
			m.retire(p, b)
		}
	}
	if len(added) == 0 && len(back) == 0 && len(removed) == 0 && slices.Equal(cur, next) {
		return true
	}
	p.bal.Set(next)
	g.log.LogAttrs(context.Background(), slog.LevelInfo, "pool backends changed",
		slog.String("pool", pool),
		slog.Any("added", append(added, back...)),
		slog.Any("removed", removed),
		slog.Int("backends", len(next)))
	return true
}

// poolNamed returns the pool named name, or nil.
func (g *Gateway) poolNamed(name string) *pool {
	for _, p := range g.pools {
		if p.cfg.Name == name {
			return p
		}
	}
	return nil
}

// retire starts watching b, which has just left p, until its requests are
// done. The caller holds m.mu. Each check is a timer's goroutine that ends
// at once; the last one closes b's connection pool, unless b came back or
// the Gateway was closed first.
func (m *members) retire(p *pool, b *balancer.Backend) {
	if m.retiring == nil {
		m.retiring = map[string]*retiree{}
	}
	r := &retiree{b: b}
	r.timer = time.AfterFunc(retireCheck, func() { m.check(p, r) })
	m.retiring[b.Addr()] = r
}

// check closes r's connections if its last request is done, and looks again
// later if not.
func (m *members) check(p *pool, r *retiree) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || m.retiring[r.b.Addr()] != r {
		return // closed with the Gateway, or back in the pool
	}
	if r.b.InFlight() > 0 {
		r.timer.Reset(retireCheck)
		return
	}
	delete(m.retiring, r.b.Addr())
	r.b.Value.(*fastcgi.Pool).Close()
	p.checkMu.Lock()
	delete(p.checked, r.b)
	p.checkMu.Unlock()
}

// close stops the changes and closes the connection pools of the backends
// still retiring; their connections in use close when their requests end.
func (m *members) close() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	for addr, r := range m.retiring {
		r.timer.Stop()
		r.b.Value.(*fastcgi.Pool).Close()
		delete(m.retiring, addr)
	}
}

// Backends returns the addresses of the backends of the pool named pool, in
// the balancer's order, and false if there is no such pool.
func (g *Gateway) Backends(pool string) ([]string, bool) {
	p := g.poolNamed(pool)
	if p == nil {
		return nil, false
	}
	bs := p.bal.Backends()
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.Addr()
	}
	return out, true
}
