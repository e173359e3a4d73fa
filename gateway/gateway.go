package gateway

// gateway.go holds Gateway: its construction from a Config, the HTTP
// handler that sends each request where it resolves to, Serve with its
// graceful drain, and Close.

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fcgigate/fcgigate/balancer"
	"github.com/fcgigate/fcgigate/fastcgi"
)

// Gateway is the HTTP front: an http.Handler that answers each request from
// a pool of FastCGI backends or, for static files, itself. ServeFastCGI
// serves its FastCGI front, in front of the same pools.
type Gateway struct {
	cfg   Config
	log   *slog.Logger
	pools []*pool
	front fcgiFront // the FastCGI front's counters (fcgifront.go)

	closeOnce sync.Once
}

// pool is one configured pool: its balancer, with each backend's
// fastcgi.Pool in Backend.Value, and what is derived once from its config.
type pool struct {
	cfg     PoolConfig
	bal     *balancer.Pool
	docRoot string          // DocumentRoot without a trailing slash
	extra   []fastcgi.Param // cfg.Params, sorted by name

	checkMu sync.Mutex // protects checked
	checked map[*balancer.Backend]*checkState

	members members // the dial for new backends, and those leaving (backends.go)
}

// dialFunc makes a backend connection; tests replace net.Dialer with one.
type dialFunc = func(ctx context.Context, network, addr string) (net.Conn, error)

// New returns a Gateway for cfg, with its defaults applied, once cfg is
// valid. A nil log means slog.Default(). The caller must Close it.
func New(cfg Config, log *slog.Logger) (*Gateway, error) {
	return newGateway(cfg, log, nil)
}

func newGateway(cfg Config, log *slog.Logger, dial dialFunc) (*Gateway, error) {
	if log == nil {
		log = slog.Default()
	}
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("gateway: %w", err)
	}
	g := &Gateway{cfg: cfg, log: log}
	for _, pc := range cfg.Pools {
		if pc.StaticRoot != "" {
			if fi, err := os.Stat(pc.StaticRoot); err != nil || !fi.IsDir() {
				return nil, fmt.Errorf("gateway: pool %q: static_root %q is not a directory", pc.Name, pc.StaticRoot)
			}
		}
		p := &pool{cfg: pc, docRoot: strings.TrimRight(pc.DocumentRoot, "/")}
		for name, value := range pc.Params {
			p.extra = append(p.extra, fastcgi.Param{Name: name, Value: value})
		}
		slices.SortFunc(p.extra, func(a, b fastcgi.Param) int { return strings.Compare(a.Name, b.Name) })
		p.members.dial = poolDial(pc, dial)
		backends := make([]*balancer.Backend, len(pc.Backends))
		for i, addr := range pc.Backends {
			backends[i] = p.newBackend(addr)
		}
		bal, err := balancer.NewPoolConfig(pc.Name, pc.Balancer, backends)
		if err != nil {
			return nil, fmt.Errorf("gateway: pool %q: %w", pc.Name, err)
		}
		p.bal = bal
		g.pools = append(g.pools, p)
	}
	return g, nil
}

// poolDial returns the dial function for pc's backends: dial if not nil
// (tests), else one from pc.SourceAddress if set, else nil (fastcgi's
// default dialer).
func poolDial(pc PoolConfig, dial dialFunc) dialFunc {
	if dial != nil || pc.SourceAddress == "" {
		return dial
	}
	d := &net.Dialer{KeepAlive: 30 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(pc.SourceAddress)}}
	return d.DialContext
}

// Close closes the backends' idle connections and makes further requests
// fail with 503; connections in use close when their requests end. It is
// safe to call more than once.
func (g *Gateway) Close() error {
	g.closeOnce.Do(func() {
		for _, p := range g.pools {
			p.members.close()
			for _, b := range p.bal.Backends() {
				b.Value.(*fastcgi.Pool).Close()
			}
		}
	})
	return nil
}

// BackendState is what a health check learned of one backend.
type BackendState struct {
	Up bool
	// TimedOut says the check connected but got no answer in time. FPM
	// queues a check behind busy workers, so a backend that answered this
	// gateway's own requests since the last check is saturated, not down:
	// SetBackendState then keeps it up.
	TimedOut bool
	// Penalty is load the backend carries beyond this gateway's requests
	// (FPM's listen queue, no idle worker), in requests.
	Penalty int
	// MaxConcurrent is how many requests the backend serves at once (FPM's
	// total processes under pm = static); 0: unknown. Unless the pool's
	// max_conns is set, it caps both the requests and the connections sent
	// to the backend, so that requests wait in the gateway rather than in
	// FPM's listen backlog. FPM's count can run high under load (its
	// scoreboard counts some workers twice), never low: the lowest value
	// seen since the backend last started is the one used.
	MaxConcurrent int
	// Started is when the backend's FPM started, if known; a new start
	// time forgets the limit learned before.
	Started time.Time
}

// SetBackendState applies a health verdict to the backend addr of pool. It
// reports false if there is no such backend.
func (g *Gateway) SetBackendState(pool, addr string, st BackendState) bool {
	for _, p := range g.pools {
		if p.cfg.Name != pool {
			continue
		}
		for _, b := range p.bal.Backends() {
			if b.Addr() != addr {
				continue
			}
			answered, limit := p.learn(b, st)
			fp := b.Value.(*fastcgi.Pool)
			if st.TimedOut && !answered {
				if idle := fp.Stats().Idle; idle > 0 {
					// FPM binds a worker to each kept-alive connection
					// until the client closes it: with nothing answered
					// since the last check, the workers the check waited
					// for may be held by this gateway's idle
					// connections. Closing them frees the workers for
					// the next check and for other clients; a request
					// dials afresh.
					fp.CloseIdle()
					g.log.Info("health check timed out while this gateway held idle connections to the backend: closed them, freeing FPM workers",
						"pool", pool, "backend", addr, "idle_closed", idle)
				}
			}
			if !st.Up && st.TimedOut && answered {
				g.log.Debug("health check timed out, but the backend answers requests: saturated, kept up",
					"pool", pool, "backend", addr)
				st.Up = true
			}
			b.SetHealthy(st.Up)
			b.SetLoadPenalty(st.Penalty)
			if limit > 0 && p.cfg.MaxConns == 0 {
				b.SetMaxConcurrent(limit)
				fp.SetMaxConns(limit)
			}
			return true
		}
	}
	return false
}

// SetLoadPenalty sets the load penalty of the backend addr of pool (see
// balancer.Backend.SetLoadPenalty), between health reports: the cluster
// view feeds the other gateways' load through it. It reports false if
// there is no such backend.
func (g *Gateway) SetLoadPenalty(pool, addr string, n int) bool {
	for _, p := range g.pools {
		if p.cfg.Name != pool {
			continue
		}
		for _, b := range p.bal.Backends() {
			if b.Addr() == addr {
				b.SetLoadPenalty(n)
				return true
			}
		}
	}
	return false
}

// checkState is what the health reports so far said of one backend.
type checkState struct {
	successes uint64    // b.Successes() at the last report
	started   time.Time // the FPM start time last reported
	limit     int       // lowest MaxConcurrent reported since then
}

// learn records a health report on b. It returns whether b answered a
// request since the previous report, and the concurrency limit learned.
func (p *pool) learn(b *balancer.Backend, st BackendState) (answered bool, limit int) {
	n := b.Successes()
	p.checkMu.Lock()
	defer p.checkMu.Unlock()
	if p.checked == nil {
		p.checked = map[*balancer.Backend]*checkState{}
	}
	cs, seen := p.checked[b]
	if !seen {
		cs = &checkState{}
		p.checked[b] = cs
	}
	answered = seen && n > cs.successes
	cs.successes = n
	if !st.Started.IsZero() && !st.Started.Equal(cs.started) {
		cs.started, cs.limit = st.Started, 0 // restarted: learn afresh
	}
	if st.MaxConcurrent > 0 && (cs.limit == 0 || st.MaxConcurrent < cs.limit) {
		cs.limit = st.MaxConcurrent
	}
	return answered, cs.limit
}

// Queued returns the number of requests waiting in the pools' queues.
func (g *Gateway) Queued() int {
	n := 0
	for _, p := range g.pools {
		n += p.bal.Queued()
	}
	return n
}

// PoolStats returns a snapshot of each pool's backends, by pool name.
func (g *Gateway) PoolStats() map[string][]balancer.BackendStats {
	m := make(map[string][]balancer.BackendStats, len(g.pools))
	for _, p := range g.pools {
		m[p.cfg.Name] = p.bal.Stats()
	}
	return m
}

// ServeHTTP answers r. Until routing exists, every request goes to the
// first pool.
func (g *Gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := newRequestID()
	w.Header()["X-Request-Id"] = []string{id}
	p := g.pools[0]
	t := p.resolve(r)
	switch t.kind {
	case targetScript:
		g.serveFastCGI(w, r, p, &t, id)
	case targetStatic:
		g.serveStatic(w, r, p, t.file)
	case targetRedirect:
		u := url.URL{Path: t.file, RawQuery: r.URL.RawQuery}
		w.Header()["Location"] = []string{u.RequestURI()}
		writeError(w, http.StatusMovedPermanently)
	case targetBadRequest:
		g.log.LogAttrs(r.Context(), slog.LevelDebug, "path rejected",
			slog.String("request_id", id), slog.String("uri", r.RequestURI))
		writeError(w, http.StatusBadRequest)
	default:
		writeError(w, http.StatusNotFound)
	}
}

// serveFastCGI runs the script t on a backend of p and relays its answer.
func (g *Gateway) serveFastCGI(w http.ResponseWriter, r *http.Request, p *pool, t *target, id string) {
	body, err := p.readBody(r)
	if err != nil {
		code := http.StatusBadRequest
		level := slog.LevelDebug
		if errors.Is(err, errTooLarge) {
			// The rest of the body is not read: the connection
			// cannot carry another request.
			code, level = http.StatusRequestEntityTooLarge, slog.LevelInfo
			w.Header()["Connection"] = []string{"close"}
		}
		g.log.LogAttrs(r.Context(), level, "request body refused",
			slog.String("request_id", id), slog.Int("status", code), slog.Any("err", err))
		writeError(w, code)
		return
	}
	defer body.close()

	rc := http.NewResponseController(w)
	ctx := r.Context()
	if body != nil && body.stream != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		body.stream.cancel = cancel
		// roundTrip turns on full duplex when it hands the body to a
		// backend: the backend reads it while the response comes back.
	}

	ex := getExchange(g.log, id)
	defer putExchange(ex)
	ex.params, ex.scriptFilename = p.appendParams(ex.params[:0], r, &cgiRequest{
		target:        t,
		id:            id,
		contentLength: body.contentLength(r),
		software:      g.cfg.ServerSoftware,
	})
	ex.req.Params = ex.params
	ex.req.ReadTimeout = p.cfg.ReadTimeout
	ex.req.WriteTimeout = p.cfg.WriteTimeout
	ex.req.Stderr = ex.stderr

	resp, b, head, bud, err := g.roundTrip(ctx, p, ex, body, w.Header(), rc, r.Method)
	if err != nil {
		if body.streaming() {
			// Part of the body is still unread: the connection cannot
			// carry another request.
			w.Header()["Connection"] = []string{"close"}
		}
		g.failed(w, r, p, ex, err)
		return
	}
	defer bud.release()
	if head.hasStatus && head.status == http.StatusNotFound && fpmNotFound(ex.br) {
		g.log.LogAttrs(ctx, slog.LevelWarn, "FPM does not find the script: is document_root the docroot of the FPM hosts?",
			slog.String("request_id", id),
			slog.String("pool", p.cfg.Name),
			slog.String("backend", ex.backend),
			slog.String("script_filename", ex.scriptFilename))
	}
	backendErr, clientErr := g.relay(w, r, rc, ex, resp, head)
	body.abandon(rc)
	resp.Close()
	if g.settle(ctx, p, b, ex, "", head.status, backendErr, clientErr) {
		// The status is gone; only cutting the response short tells the
		// client that it is not whole.
		panic(http.ErrAbortHandler)
	}
}

// settle ends a request that a backend answered, once its answer has been
// relayed: it gives the balancer the backend's verdict and logs how the
// relay ended. It reports whether the client got the answer incomplete,
// which the front must make plain to it by cutting the response short.
// front names the front in the log lines ("fastcgi"), empty for HTTP.
func (g *Gateway) settle(ctx context.Context, p *pool, b *balancer.Backend, ex *exchange, front string, status int, backendErr, clientErr error) (incomplete bool) {
	attrs := []slog.Attr{slog.String("request_id", ex.id)}
	if front != "" {
		attrs = append(attrs, slog.String("front", front))
	}
	switch {
	case backendErr == nil && clientErr == nil:
		b.Done(p.bal.StatusErr(status))
		return false
	case clientErr != nil || errors.Is(backendErr, context.Canceled):
		b.Done(backendErr) // nil or context.Canceled: the backend did its part
		g.log.LogAttrs(ctx, slog.LevelDebug, "client went away", append(attrs,
			slog.Int("status", statusClientClosed),
			slog.Any("err", errors.Join(backendErr, clientErr)))...)
		return backendErr != nil
	default:
		b.Done(backendErr)
		g.log.LogAttrs(ctx, slog.LevelWarn, "response cut short by the backend", append(attrs,
			slog.String("pool", p.cfg.Name),
			slog.String("backend", ex.backend),
			slog.Any("err", backendErr))...)
		return true
	}
}

// failed answers a request that no backend answered, and logs why.
func (g *Gateway) failed(w http.ResponseWriter, r *http.Request, p *pool, ex *exchange, err error) {
	code := errorStatus(err)
	level := slog.LevelWarn
	if code == statusClientClosed {
		level = slog.LevelDebug
		if r.Context().Err() == nil {
			// Not the client's context but the gateway's own cancel:
			// reading the request body failed, the client may still
			// be there to read why.
			code = http.StatusBadRequest
		}
	}
	g.log.LogAttrs(r.Context(), level, "request failed",
		slog.String("request_id", ex.id),
		slog.String("pool", p.cfg.Name),
		slog.String("backend", ex.backend),
		slog.String("method", r.Method),
		slog.String("uri", r.RequestURI),
		slog.Int("status", code),
		slog.Any("err", err))
	if code != statusClientClosed {
		writeError(w, code)
	}
}

// newRequestID returns a short random id that ties a request's log lines,
// its REQUEST_ID param and its X-Request-Id header together.
func newRequestID() string {
	var b [8]byte
	x := rand.Uint64()
	for i := range b {
		b[i] = byte(x >> (8 * i))
	}
	var s [16]byte
	hex.Encode(s[:], b[:])
	return string(s[:])
}

// Serve serves HTTP/1.x on ln (h1.go) until ctx is done, then stops
// accepting, closes idle connections, waits up to drain for the requests in
// flight to finish, cuts off the rest, and returns nil. A failure of ln is
// returned. ln is closed on return.
func (g *Gateway) Serve(ctx context.Context, ln net.Listener, drain time.Duration) error {
	// Requests run under base, not ctx: ctx ending starts the drain,
	// base ending (when the drain times out) cancels what is left.
	base, cutOff := context.WithCancel(context.WithoutCancel(ctx))
	defer cutOff()
	srv := &h1Server{
		handler:           g,
		log:               g.log,
		base:              base,
		readHeaderTimeout: g.cfg.ReadHeaderTimeout,
		idleTimeout:       g.cfg.IdleTimeout,
		maxHeaderBytes:    g.cfg.MaxHeaderBytes,
	}
	served := make(chan error, 1)
	go func() { served <- srv.serve(ln) }() // returns once ln is closed or fails

	select {
	case err := <-served:
		srv.startShutdown()
		ln.Close()
		cutOff()
		srv.closeAll()
		<-srv.wait()
		return fmt.Errorf("gateway: serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	srv.startShutdown()
	ln.Close()
	<-served
	done := srv.wait()
	t := time.NewTimer(drain)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		g.log.Warn("drain timed out: cutting off the requests left", "timeout", drain)
		cutOff()
		srv.closeAll()
		<-done
	}
	return nil
}
