package discovery

// watcher.go holds ServiceWatcher: the blocking-query loop that keeps one
// pool's members in step with the passing instances of a Consul service.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
)

// ErrRunning is returned by Run when the watcher or Registrar is already
// running.
var ErrRunning = errors.New("discovery: already running")

// errNoIndex is the error of an answer that is not used, since it cannot
// come from Consul; the last members stay in force.
var errNoIndex = errors.New("discovery: answer without X-Consul-Index: not a Consul health listing")

// Query selects the backends of a pool: the passing instances of a service.
type Query struct {
	// Service is the Consul service name. Required.
	Service string
	// Tags filter the instances: an instance must have every one.
	Tags []string
	// NodeMeta filters the nodes: a node's meta must hold every key with
	// its value.
	NodeMeta map[string]string
}

// Validate reports the first thing wrong with q, starting with the key of
// the pool table that holds it.
func (q Query) Validate() error {
	if q.Service == "" {
		return errors.New("service: a name is required")
	}
	if strings.ContainsAny(q.Service, "/?#% \t\r\n") {
		return fmt.Errorf("service: %q is not a Consul service name", q.Service)
	}
	for _, t := range q.Tags {
		if t == "" {
			return errors.New("tags: a tag must not be empty")
		}
	}
	for k := range q.NodeMeta {
		if k == "" || strings.Contains(k, ":") {
			return fmt.Errorf("node_meta: %q is not a node meta key", k)
		}
	}
	return nil
}

// LogValue logs q as Consul would name the query.
func (q Query) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("service", q.Service)}
	if len(q.Tags) > 0 {
		attrs = append(attrs, slog.Any("tags", q.Tags))
	}
	if len(q.NodeMeta) > 0 {
		attrs = append(attrs, slog.Any("node_meta", q.NodeMeta))
	}
	return slog.GroupValue(attrs...)
}

// ServiceWatcher keeps the member set of one pool: the passing instances of
// a Consul service that match its Query. Its Run owns the one goroutine
// that queries Consul and calls the callback.
type ServiceWatcher struct {
	c      *Client
	cfg    Config
	q      Query
	notify func([]Member)
	log    *slog.Logger
	clk    clock

	running atomic.Bool

	mu      sync.Mutex // protects members and synced
	members []Member   // the set last delivered
	synced  bool       // a set has been delivered
}

// NewServiceWatcher returns a watcher of q through c. notify is called from
// Run's goroutine with each new member set, in order, sorted by address;
// it may keep the slice. It should return quickly: the next query waits
// for it. A nil log means slog.Default().
func NewServiceWatcher(c *Client, q Query, notify func([]Member), log *slog.Logger) (*ServiceWatcher, error) {
	if err := q.Validate(); err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	if notify == nil {
		return nil, errors.New("discovery: NewServiceWatcher: nil notify")
	}
	if log == nil {
		log = slog.Default()
	}
	return &ServiceWatcher{
		c:      c,
		cfg:    c.cfg,
		q:      q,
		notify: notify,
		log:    log.With("component", "discovery.watcher", "service", q.Service),
		clk:    realClock{},
	}, nil
}

// Members returns the member set last delivered, and whether one has been.
func (w *ServiceWatcher) Members() ([]Member, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.members), w.synced
}

// watchState is what Run carries from one query to the next.
type watchState struct {
	index     uint64    // X-Consul-Index to block on; 0 reads at once
	started   time.Time // when the last query started
	failures  int       // failed queries in a row
	downSince time.Time // when the first of them started
	bad       map[string]bool
	heldEmpty bool // an empty answer is being ignored (AllowEmpty off)
}

// Run queries Consul until ctx is done, delivering each change of the
// member set to notify, and returns nil then. The first set is delivered as
// soon as Consul first answers, even if it is empty. While Consul fails,
// nothing is delivered and Run retries with backoff. It returns ErrRunning
// at once if it is already running.
func (w *ServiceWatcher) Run(ctx context.Context) error {
	if !w.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer w.running.Store(false)
	w.log.Debug("watching", "query", w.q, "consul", w.cfg)
	var s watchState
	for {
		if !s.started.IsZero() {
			if w.clk.Sleep(ctx, w.cfg.MinInterval-w.clk.Now().Sub(s.started)) != nil {
				return nil
			}
		}
		s.started = w.clk.Now()
		entries, meta, err := w.query(ctx, s.index)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			err = w.check(meta)
		}
		if err != nil {
			w.failed(&s, err)
			// The Consul that answers next may not be the one that
			// gave the index (an agent restarted without its data):
			// blocking on an index it has not reached would hide the
			// state it has until the wait ends. Read afresh.
			s.index = 0
			if w.clk.Sleep(ctx, backoff(s.failures, w.cfg.RetryMin, w.cfg.RetryMax, w.clk.Rand())) != nil {
				return nil
			}
			continue
		}
		if s.failures > 0 {
			w.log.Info("Consul answers again", "after", w.clk.Now().Sub(s.downSince).Round(time.Millisecond), "failed_queries", s.failures)
			s.failures = 0
		}
		switch {
		case meta.LastIndex == s.index:
			continue // the wait ended with no change
		case meta.LastIndex < s.index:
			// Consul's docs: reset the index when it goes backwards,
			// so that the next query reads afresh rather than block
			// on an index that this Consul may never reach.
			w.log.Info("Consul's index went backwards (it restarted without its data, or a server behind the others answered): reading afresh",
				"from", s.index, "to", meta.LastIndex)
			s.index = 0
		default:
			s.index = meta.LastIndex
		}
		w.apply(&s, entries)
	}
}

// query runs one blocking query for the instances of w.q that pass their
// checks, waiting for a change past index.
func (w *ServiceWatcher) query(ctx context.Context, index uint64) ([]*api.ServiceEntry, *api.QueryMeta, error) {
	wait := w.cfg.WaitTime
	// Consul adds up to wait/16 to spread the returns; past that and a
	// margin, the connection is taken for dead.
	qctx, cancel := context.WithTimeout(ctx, wait+wait/16+5*time.Second)
	defer cancel()
	q := &api.QueryOptions{
		WaitIndex:  index,
		WaitTime:   wait,
		AllowStale: w.cfg.AllowStale,
		NodeMeta:   w.q.NodeMeta,
	}
	entries, meta, err := w.c.api.Health().ServiceMultipleTags(w.q.Service, w.q.Tags, true, q.WithContext(qctx))
	if err != nil {
		return nil, nil, fmt.Errorf("query %s: %w", w.q.Service, err)
	}
	return entries, meta, nil
}

// check turns an answer that must not be used into an error.
//
// X-Consul-KnownLeader is not looked at: the streaming backend, which
// answers blocking health queries from Consul 1.10 on, always sets it to
// false (hashicorp/consul#9776), and its maintainers hold that clients
// should not take that for an error.
func (w *ServiceWatcher) check(meta *api.QueryMeta) error {
	if meta.LastIndex == 0 {
		return errNoIndex
	}
	return nil
}

// failed logs a failed query: the first of a series as a warning, the
// others at debug level, so that an outage is one line, not one a second.
func (w *ServiceWatcher) failed(s *watchState, err error) {
	s.failures++
	if s.failures > 1 {
		w.log.Debug("Consul query failed again", "failures", s.failures, "err", err)
		return
	}
	s.downSince = s.started
	w.mu.Lock()
	n := len(w.members)
	w.mu.Unlock()
	w.log.Warn("Consul query failed: keeping the last members and retrying", "members", n, "err", err)
}

// apply delivers the members that entries list, if they differ from the
// set last delivered and may be applied.
func (w *ServiceWatcher) apply(s *watchState, entries []*api.ServiceEntry) {
	members, bad := membersOf(entries)
	seen := make(map[string]bool, len(bad))
	for _, b := range bad {
		k := b.key()
		seen[k] = true
		if !s.bad[k] {
			w.log.Warn("ignoring a Consul service entry", "node", b.node, "id", b.id, "addr", b.addr, "reason", b.reason)
		}
	}
	s.bad = seen

	w.mu.Lock()
	last, synced := w.members, w.synced
	w.mu.Unlock()
	if synced && reflect.DeepEqual(members, last) {
		s.heldEmpty = false
		return
	}
	if len(members) == 0 && len(last) > 0 && !w.cfg.AllowEmpty {
		if !s.heldEmpty {
			w.log.Warn("Consul lists no passing instance: keeping the last members (allow_empty is off)",
				"members", Addrs(last))
			s.heldEmpty = true
		}
		return
	}
	s.heldEmpty = false
	w.mu.Lock()
	w.members, w.synced = members, true
	w.mu.Unlock()
	w.notify(slices.Clone(members))
}
