package health

// prober.go holds the Prober: the set of targets, one probing goroutine per
// target, the up/down state machine with its rise and fall counts, and the
// reports and snapshots of what it found.

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"
)

// ErrRunning is returned by Run when the Prober is already running.
var ErrRunning = errors.New("health: prober already running")

// Reporter receives the result of every probe. cmd implements it with a
// small adapter that sets the matching balancer backend's health and load.
//
// Report is called from the probing goroutine of r.Addr after each probe,
// in order for one target; calls for different targets may run at the same
// time, so Report must be safe for concurrent use. It should return quickly,
// since it delays the target's next probe, and it must not call SetTargets
// or Run (ProbeNow and Snapshot are fine). After SetTargets has removed a
// target, no more reports for it are made.
type Reporter interface {
	Report(r Result)
}

// ReporterFunc adapts a function to Reporter.
type ReporterFunc func(r Result)

// Report calls f(r).
func (f ReporterFunc) Report(r Result) { f(r) }

// Result is the outcome of one probe of one target.
type Result struct {
	Addr    string
	At      time.Time     // when the probe started
	Latency time.Duration // how long the probe took, both requests, failed or not

	// Err is nil when the probe succeeded. Otherwise it is a *ProbeError
	// whose message is a short reason: "dial: connection refused",
	// "timeout", "status 404", `ping answered "x"`, "protocol error: ...".
	Err error

	// Up is the target's state after this probe, and Changed reports
	// that this probe changed it.
	Up      bool
	Changed bool

	// Status is what the status page said, nil when StatusPath is empty,
	// the probe failed, or the status page was not as expected. A caller
	// that feeds load should take nil as no information: no penalty.
	Status *FPMStatus
	// StatusErr says why a status page that answered could not be used
	// ("status 404", "malformed FPM status: ..."; a *ProbeError), nil
	// otherwise. It does not make the probe fail.
	StatusErr error
}

// OK reports whether the probe succeeded.
func (r Result) OK() bool { return r.Err == nil }

// TimedOut reports a probe that connected but got no answer in time. FPM
// queues a probe behind busy workers like any request, so this is what a
// saturated but working backend looks like as much as a hung one: a caller
// with live traffic of its own can tell the two apart.
func (r Result) TimedOut() bool {
	var pe *ProbeError
	return errors.As(r.Err, &pe) && pe.Reason == "timeout"
}

// TargetState is what the Prober knows of one target.
type TargetState struct {
	Addr string
	Up   bool

	LastProbe   time.Time // start of the last counted probe; zero before the first
	LastLatency time.Duration
	ConsecOK    int // consecutive good probes, 0 after a failure
	ConsecFail  int // consecutive failed probes, 0 after a success

	// LastError is the reason of the most recent failed probe, kept after
	// the target recovers, and LastErrorAt its time; empty if none failed.
	LastError   string
	LastErrorAt time.Time

	// Status is the last status page read, and StatusAt when; nil before
	// the first. It is kept when a later probe fails, as the last known
	// load. StatusError is why the last attempt to read it failed, empty
	// if it succeeded.
	Status      *FPMStatus
	StatusAt    time.Time
	StatusError string
}

// Prober probes a set of FPM backends. Its methods are safe for concurrent
// use.
type Prober struct {
	cfg Config
	log *slog.Logger
	rep Reporter

	mu      sync.Mutex // protects targets, running, runCtx and each target's stop and done
	targets map[string]*target
	running bool            // from Run's start until it returns
	runCtx  context.Context // Run's context while goroutines may start; nil otherwise
	wg      sync.WaitGroup  // probing goroutines started by Run or SetTargets
}

// target is one probed address.
type target struct {
	addr string
	kick chan struct{} // capacity 1: a pending ProbeNow

	// Set while a goroutine probes the target; guarded by Prober.mu.
	stop context.CancelFunc
	done chan struct{}

	mu    sync.Mutex // protects state
	state TargetState
}

// New returns a Prober for cfg, with no targets. A nil log means
// slog.Default(). An invalid cfg (see Config.Validate) makes Run fail.
func New(cfg Config, log *slog.Logger) *Prober {
	if log == nil {
		log = slog.Default()
	}
	cfg = cfg.withDefaults()
	rep := cfg.Reporter
	if rep == nil {
		rep = ReporterFunc(func(Result) {})
	}
	return &Prober{
		cfg:     cfg,
		log:     log.With("component", "health.prober"),
		rep:     rep,
		targets: map[string]*target{},
	}
}

// Run probes every target each Interval until ctx is done, then stops all
// probing goroutines and returns nil. The first probe of each target comes
// after a random delay within one Interval, so that the targets (and the
// gateways that share them) do not probe in step. Run returns at once an
// error from Config.Validate, or ErrRunning if it is already running; it may
// be called again after it has returned.
func (p *Prober) Run(ctx context.Context) error {
	if err := p.cfg.Validate(); err != nil {
		return err
	}
	p.mu.Lock()
	if p.running {
		p.mu.Unlock()
		return ErrRunning
	}
	p.running = true
	p.runCtx = ctx
	for _, t := range p.targets {
		p.start(t)
	}
	p.mu.Unlock()

	<-ctx.Done()

	p.mu.Lock()
	p.runCtx = nil // no more goroutines start
	for _, t := range p.targets {
		t.stop() // already done through ctx; releases the child context
		t.stop, t.done = nil, nil
	}
	p.mu.Unlock()
	p.wg.Wait()
	p.mu.Lock()
	p.running = false
	p.mu.Unlock()
	return nil
}

// start starts t's probing goroutine. The caller holds p.mu and p.runCtx
// is set.
func (p *Prober) start(t *target) {
	ctx, cancel := context.WithCancel(p.runCtx)
	t.stop, t.done = cancel, make(chan struct{})
	p.wg.Add(1)
	go p.loop(ctx, t, t.done) // stops when ctx is done: Run ends or the target is removed
}

// SetTargets replaces the set of probed addresses. New addresses start up
// and are probed from now on (once Run runs); addresses no longer listed
// stop being probed, and their state is forgotten, before SetTargets
// returns. Addresses listed before keep their state. Empty and duplicate
// entries are ignored.
func (p *Prober) SetTargets(addrs []string) {
	want := make(map[string]bool, len(addrs))
	for _, a := range addrs {
		if a != "" {
			want[a] = true
		}
	}
	var stopped []chan struct{}
	p.mu.Lock()
	for addr, t := range p.targets {
		if want[addr] {
			continue
		}
		delete(p.targets, addr)
		if t.stop != nil {
			t.stop()
			stopped = append(stopped, t.done)
		}
	}
	for addr := range want {
		if _, ok := p.targets[addr]; ok {
			continue
		}
		t := &target{addr: addr, kick: make(chan struct{}, 1), state: TargetState{Addr: addr, Up: true}}
		p.targets[addr] = t
		if p.runCtx != nil {
			p.start(t)
		}
	}
	p.mu.Unlock()
	for _, done := range stopped {
		<-done
	}
}

// ProbeNow asks for a probe of addr at once, without waiting for it; the
// schedule then restarts from that probe. If a probe is running, another
// follows it. A request made while one is already pending is merged with
// it. ProbeNow reports whether addr is a target.
func (p *Prober) ProbeNow(addr string) bool {
	p.mu.Lock()
	t := p.targets[addr]
	p.mu.Unlock()
	if t == nil {
		return false
	}
	select {
	case t.kick <- struct{}{}:
	default:
	}
	return true
}

// Snapshot returns the state of every target, sorted by address.
func (p *Prober) Snapshot() []TargetState {
	p.mu.Lock()
	ts := make([]*target, 0, len(p.targets))
	for _, t := range p.targets {
		ts = append(ts, t)
	}
	p.mu.Unlock()
	out := make([]TargetState, 0, len(ts))
	for _, t := range ts {
		t.mu.Lock()
		st := t.state
		t.mu.Unlock()
		if st.Status != nil {
			s := *st.Status
			st.Status = &s
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b TargetState) int { return strings.Compare(a.Addr, b.Addr) })
	return out
}

// loop probes t until ctx is done, then closes done.
func (p *Prober) loop(ctx context.Context, t *target, done chan struct{}) {
	defer p.wg.Done()
	defer close(done)
	c := newChecker(t.addr, p.cfg)
	defer c.close()

	timer := time.NewTimer(rand.N(p.cfg.Interval))
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-t.kick:
		}
		start := time.Now()
		p.probe(ctx, t, c)
		// Keep the cadence: a slow probe is not followed by a full
		// Interval of silence.
		timer.Reset(max(p.cfg.Interval-time.Since(start), 0))
	}
}

// probe runs one check of t, updates its state and reports the result,
// unless ctx ended meanwhile.
func (p *Prober) probe(ctx context.Context, t *target, c *checker) {
	at := p.cfg.Now()
	out := c.check(ctx)
	if ctx.Err() != nil {
		return // stopping: the probe says nothing about the backend
	}
	r := Result{Addr: t.addr, At: at, Latency: out.latency, Err: out.err, Status: out.status, StatusErr: out.statusErr}

	t.mu.Lock()
	st := &t.state
	wasUp := st.Up
	st.LastProbe, st.LastLatency = at, out.latency
	if r.Err == nil {
		st.ConsecOK++
		st.ConsecFail = 0
		if !st.Up && st.ConsecOK >= p.cfg.Rise {
			st.Up = true
		}
	} else {
		st.ConsecFail++
		st.ConsecOK = 0
		st.LastError, st.LastErrorAt = r.Err.Error(), at
		if st.Up && st.ConsecFail >= p.cfg.Fall {
			st.Up = false
		}
	}
	prevStatusErr := st.StatusError
	if r.Status != nil {
		s := *r.Status
		st.Status, st.StatusAt, st.StatusError = &s, at, ""
	} else if r.StatusErr != nil {
		st.StatusError = r.StatusErr.Error()
	}
	r.Up = st.Up
	r.Changed = st.Up != wasUp
	consecFail, consecOK := st.ConsecFail, st.ConsecOK
	t.mu.Unlock()

	switch {
	case r.Changed && r.Up:
		p.log.Info("backend up", "addr", t.addr, "good_probes", consecOK)
	case r.Changed:
		p.log.Warn("backend down", "addr", t.addr, "reason", r.Err, "failed_probes", consecFail)
	case r.Err != nil:
		p.log.Debug("probe failed", "addr", t.addr, "reason", r.Err, "failed_probes", consecFail, "up", r.Up)
	}
	// Status page trouble is logged when it changes, not every Interval.
	switch {
	case r.StatusErr != nil && r.StatusErr.Error() != prevStatusErr:
		p.log.Warn("cannot read FPM status page", "addr", t.addr, "path", p.cfg.StatusPath, "reason", r.StatusErr, "detail", errors.Unwrap(r.StatusErr))
	case r.Status != nil && prevStatusErr != "":
		p.log.Info("FPM status page readable again", "addr", t.addr)
	}
	p.rep.Report(r)
}
