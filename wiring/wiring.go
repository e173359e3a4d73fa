// Package wiring connects a running Gateway to Consul as a config.File
// says: one member source per pool (a discovery.ServiceWatcher for a pool
// with a service, a discovery.Static for a pool that lists its backends)
// feeding gateway.SetBackends and the pool's health prober targets, the
// admin listener with /healthz, and the gateway's own registration in
// Consul.
//
// cmd/fcgigate serve runs it, and so do the end-to-end tests in test/, so
// that the tests exercise what the binary runs. It holds wiring only:
// adapter closures and the goroutines of the loops it starts, each of which
// ends with Close. It may import any package of fcgigate; nothing but cmd
// and tests imports it.
package wiring

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/fcgigate/fcgigate/config"
	"github.com/fcgigate/fcgigate/discovery"
	"github.com/fcgigate/fcgigate/gateway"
)

// Options are what Start wires together.
type Options struct {
	Config  *config.File
	Gateway *gateway.Gateway
	// Log is the process's logger; nil means slog.Default().
	Log *slog.Logger
	// Front is the address the HTTP front listens on (its listener's),
	// which the registration in Consul advertises.
	Front net.Addr
	// Admin is the admin listener ([admin] listen), nil if none. Start
	// serves it until Close, and the registration's check points at it.
	Admin net.Listener
	// OnMembers, if not nil, is called after gateway.SetBackends with each
	// pool's new backend addresses; cmd sets the pool's health prober
	// targets there. It is called from the pool's source goroutine and
	// should return quickly.
	OnMembers func(pool string, addrs []string)
	// GossipAddr is this gateway's cluster member address, if it runs one.
	// With [register], it is published in the registration's metadata
	// (GossipMetaKey), so that gateways find each other through Consul.
	GossipAddr string
	// OnPeers, if not nil and with [register], is called with the cluster
	// member addresses of the other gateways registered in Consul under
	// the same service (passing ones only), whenever they change; cmd
	// makes them the cluster's seeds.
	OnPeers func(addrs []string)
}

// GossipMetaKey is the registration metadata key that holds a gateway's
// cluster member address.
const GossipMetaKey = "fcgigate_gossip"

// Source is a pool's member source: discovery.ServiceWatcher or
// discovery.Static.
type Source interface {
	Run(ctx context.Context) error
}

// Loops are the loops Start started. Close stops them.
type Loops struct {
	stop      context.CancelFunc // ends the sources and the registrar
	wg        sync.WaitGroup     // the loops' goroutines
	admin     *http.Server       // nil without an admin listener
	client    *discovery.Client  // nil if nothing uses Consul
	watchers  map[string]*discovery.ServiceWatcher
	registrar *discovery.Registrar

	closeOnce sync.Once
}

// Start starts, for each pool, its member source, whose every member set
// goes to the gateway's SetBackends and then to OnMembers; the admin
// listener, if any; and, with [register], the registration in Consul.
//
// ctx is the gateway's life: once it is done, /healthz answers 503 and the
// registration is withdrawn, while the sources keep the pools up to date
// for the drain until Close. Consul being down is no error: the watchers
// and the registrar retry until it answers, and static pools need it not.
// Start fails only on a setup error (a token file that cannot be read, a
// Registration that is not valid).
func Start(ctx context.Context, o Options) (*Loops, error) {
	cfg, gw := o.Config, o.Gateway
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	l := &Loops{watchers: map[string]*discovery.ServiceWatcher{}}
	var err error
	if len(cfg.Discover) > 0 || cfg.Register != nil {
		if l.client, err = discovery.NewClient(cfg.Consul); err != nil {
			return nil, err
		}
		log.Info("consul", "config", cfg.Consul)
	}
	var sources []Source
	for _, pc := range cfg.Gateway.Pools {
		pool := pc.Name
		notify := func(ms []discovery.Member) {
			addrs := discovery.Addrs(ms)
			gw.SetBackends(pool, addrs)
			if o.OnMembers != nil {
				o.OnMembers(pool, addrs)
			}
		}
		if pc.Service == "" {
			sources = append(sources, discovery.NewStatic(pc.Backends, notify))
			continue
		}
		q, ok := cfg.Discover[pool]
		if !ok {
			l.closeClient()
			return nil, fmt.Errorf("wiring: pool %q has service %q but no discovery query", pool, pc.Service)
		}
		w, err := discovery.NewServiceWatcher(l.client, q, notify, log.With("pool", pool))
		if err != nil {
			l.closeClient()
			return nil, err
		}
		l.watchers[pool] = w
		sources = append(sources, w)
	}
	if cfg.Register != nil {
		reg := *cfg.Register
		if o.GossipAddr != "" {
			reg.Meta = maps.Clone(reg.Meta)
			if reg.Meta == nil {
				reg.Meta = map[string]string{}
			}
			reg.Meta[GossipMetaKey] = o.GossipAddr
		}
		if l.registrar, err = newRegistrar(l.client, reg, o, log); err != nil {
			l.closeClient()
			return nil, err
		}
		if o.OnPeers != nil {
			name := reg.Name
			if name == "" {
				name = "fcgigate"
			}
			w, err := discovery.NewServiceWatcher(l.client, discovery.Query{Service: name}, func(ms []discovery.Member) {
				o.OnPeers(peerGossipAddrs(ms, o.GossipAddr))
			}, log.With("watch", "cluster peers"))
			if err != nil {
				l.closeClient()
				return nil, err
			}
			sources = append(sources, w)
		}
	}

	runCtx, stop := context.WithCancel(context.Background())
	l.stop = stop
	for _, s := range sources {
		l.wg.Add(1)
		go func() { // ends when runCtx is done: Close
			defer l.wg.Done()
			if err := s.Run(runCtx); err != nil {
				log.Error("member source stopped", "err", err)
			}
		}()
	}
	if o.Admin != nil {
		l.admin = &http.Server{
			Handler:           gw.AdminHandler(func() bool { return ctx.Err() == nil }),
			ReadHeaderTimeout: 5 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
		l.wg.Add(1)
		go func() { // ends when Close closes the server
			defer l.wg.Done()
			if err := l.admin.Serve(o.Admin); !errors.Is(err, http.ErrServerClosed) {
				log.Error("admin listener failed", "err", err)
			}
		}()
		log.Info("admin listener serving", "addr", o.Admin.Addr().String())
	}
	if l.registrar != nil {
		regCtx, cancel := context.WithCancel(ctx)
		context.AfterFunc(runCtx, cancel)
		l.wg.Add(1)
		go func() { // ends when ctx is done or Close is called, once deregistered
			defer l.wg.Done()
			defer cancel()
			l.registrar.Run(regCtx)
		}()
	}
	return l, nil
}

// newRegistrar fills in reg from the listeners: the front's port, its host
// unless reg.Address is set or the front listens on every address (then
// Consul takes the node's address), and the check URL from the admin
// listener.
func newRegistrar(c *discovery.Client, reg discovery.Registration, o Options, log *slog.Logger) (*discovery.Registrar, error) {
	if o.Front == nil || o.Admin == nil {
		return nil, errors.New("wiring: [register] needs the front's address and the admin listener")
	}
	host, port, err := net.SplitHostPort(o.Front.String())
	if err != nil {
		return nil, fmt.Errorf("wiring: front address: %w", err)
	}
	if reg.Port, err = net.LookupPort("tcp", port); err != nil {
		return nil, fmt.Errorf("wiring: front port: %w", err)
	}
	if ip := net.ParseIP(host); reg.Address == "" && (ip == nil || !ip.IsUnspecified()) {
		reg.Address = host
	}
	if reg.CheckURL, err = discovery.CheckURL(o.Admin.Addr().String()); err != nil {
		return nil, fmt.Errorf("wiring: admin address: %w", err)
	}
	return discovery.NewRegistrar(c, reg, log)
}

// Watcher returns the watcher of pool, nil for a pool without a service.
func (l *Loops) Watcher(pool string) *discovery.ServiceWatcher { return l.watchers[pool] }

// Registrar returns the registrar, nil without [register].
func (l *Loops) Registrar() *discovery.Registrar { return l.registrar }

// Close stops the sources, withdraws the registration if ctx has not
// already, closes the admin listener and waits for all of them. It may be
// called more than once.
func (l *Loops) Close() {
	l.closeOnce.Do(func() {
		l.stop()
		if l.admin != nil {
			l.admin.Close()
		}
		l.wg.Wait()
		l.closeClient()
	})
}

func (l *Loops) closeClient() {
	if l.client != nil {
		l.client.Close()
	}
}

// peerGossipAddrs returns the cluster member addresses that the gateways in
// ms publish, but self's.
func peerGossipAddrs(ms []discovery.Member, self string) []string {
	var out []string
	for _, m := range ms {
		if a := m.Meta[GossipMetaKey]; a != "" && a != self && !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	slices.Sort(out)
	return out
}
