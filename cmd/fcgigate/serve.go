// serve.go is "fcgigate serve": load the configuration, listen, and run the
// gateway until SIGINT or SIGTERM, then drain.

package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"runtime"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/fcgigate/fcgigate/config"
	"github.com/fcgigate/fcgigate/gateway"
	"github.com/fcgigate/fcgigate/health"
	"github.com/fcgigate/fcgigate/wiring"
)

const serveHelp = `Usage: fcgigate serve -config FILE

Runs the gateway: the HTTP front on [server] listen and, if [fastcgi]
listen is set, the FastCGI front. SIGINT or SIGTERM stops it: it stops
accepting connections, lets requests in flight finish for up to [server]
drain_timeout, and exits 0. A second signal during the drain ends it at once. SIGHUP is
logged and ignored: reload is not supported yet.

Pools with a service follow its passing instances in Consul ([consul]);
while Consul is down they keep their last members, and static pools need
no Consul. With [admin] listen, /healthz is served there; with [register]
enabled, the gateway registers in Consul with a check on it, and
deregisters as soon as a signal starts the drain.

Flags:
`

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	path := fs.String("config", "", "the configuration `file` (required)")
	if code, ok := parseFlags(fs, serveHelp, args, stdout, stderr); !ok {
		return code
	}
	if *path == "" {
		fmt.Fprintln(stderr, "fcgigate serve: -config is required")
		return 2
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	log := newLogger(stderr, cfg.Log)
	if n, set := cfg.Procs.Resolve(runtime.GOMAXPROCS(0)); set {
		runtime.GOMAXPROCS(n)
	}

	ctx, stop := handleSignals(ctx, log, cfg.DrainTimeout)
	defer stop()

	gw, err := gateway.New(cfg.Gateway, log)
	if err != nil {
		log.Error("cannot start the gateway", "err", err)
		return 1
	}
	defer gw.Close() // on the early returns; Close may be called twice
	// The listeners, closed together on an early return; once serving,
	// each server closes its own.
	var lns []net.Listener
	closeListeners := func() {
		for _, l := range lns {
			l.Close()
		}
	}
	listen := func(addr, key string) (net.Listener, error) {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				err = fmt.Errorf("%w (another process has this port: stop it or change %s in %s)", err, key, *path)
			}
			closeListeners()
			log.Error("cannot listen", "err", err)
			return nil, err
		}
		lns = append(lns, l)
		return l, nil
	}
	ln, err := listen(cfg.Gateway.Listen, "[server] listen")
	if err != nil {
		return 1
	}
	var fln net.Listener // the FastCGI front's, if [fastcgi] listen is set
	if addr := cfg.Gateway.FastCGIListen; addr != "" {
		if fln, err = listen(addr, "[fastcgi] listen"); err != nil {
			return 1
		}
		log.Info("fastcgi front serving", "addr", fln.Addr().String(), "allowed_clients", cfg.Gateway.AllowedClients)
	}
	var aln net.Listener // the admin listener, if [admin] listen is set
	if addr := cfg.Admin.Listen; addr != "" {
		if aln, err = listen(addr, "[admin] listen"); err != nil {
			return 1
		}
	}
	log.Info("fcgigate serving", "addr", ln.Addr().String(), "version", version, "pools", poolsValue(cfg.Gateway.Pools),
		"procs", runtime.GOMAXPROCS(0))

	probeCtx, stopProbes := context.WithCancel(ctx)
	probers := map[string]*health.Prober{}
	probes, cl, err := startProbers(probeCtx, cfg, gw, log, probers)
	if err != nil {
		stopProbes()
		closeListeners()
		log.Error("cannot start the cluster member", "err", err)
		return 1
	}
	// Discovery feeds each pool's members to the gateway and its prober;
	// the registration in Consul is withdrawn as soon as ctx is done.
	wo := wiring.Options{
		Config: cfg, Gateway: gw, Log: log, Front: ln.Addr(), Admin: aln,
		OnMembers: func(pool string, addrs []string) {
			if p := probers[pool]; p != nil {
				p.SetTargets(addrs)
			}
		},
	}
	if cl != nil {
		// With [register], gateways find each other's cluster members
		// through Consul, besides the static seeds.
		wo.GossipAddr = cl.gossip.Addr()
		wo.OnPeers = func(peers []string) {
			seeds := append(slices.Clone(cfg.Cluster.Seeds), peers...)
			cl.gossip.SetSeeds(seeds)
			log.Info("cluster peers from Consul", "peers", peers)
		}
	}
	loops, err := wiring.Start(ctx, wo)
	if err != nil {
		stopProbes()
		probes.Wait()
		closeListeners()
		log.Error("cannot start discovery", "err", err)
		return 1
	}
	// Both fronts drain together on a signal; if one fails, the other
	// stops too.
	serveCtx, stopServing := context.WithCancel(ctx)
	defer stopServing()
	fcgiErr := make(chan error, 1)
	if fln != nil {
		go func() { // returns once serveCtx is done and the drain is over, or fln fails
			err := gw.ServeFastCGI(serveCtx, fln, cfg.DrainTimeout)
			if err != nil {
				stopServing()
			}
			fcgiErr <- err
		}()
	} else {
		fcgiErr <- nil
	}
	err = gw.Serve(serveCtx, ln, cfg.DrainTimeout)
	stopServing()
	err = errors.Join(err, <-fcgiErr)
	loops.Close()
	stopProbes()
	probes.Wait()
	stop() // so that its "stopping" line comes before ours
	if err != nil {
		log.Error("serve", "err", err)
		return 1
	}
	if err := gw.Close(); err != nil {
		log.Error("close", "err", err)
		return 1
	}
	log.Info("stopped")
	return 0
}

// startProbers runs one health prober per pool that has [pool.health]
// enabled, feeding its verdicts to the gateway's balancer. With [cluster],
// it also starts this gateway's cluster member, and the verdicts go through
// the cluster view (cluster.go); the error is one from starting the member.
// They stop when ctx is done; the WaitGroup tells when they have.
// Each prober is added to probers under its pool's name.
func startProbers(ctx context.Context, cfg *config.File, gw *gateway.Gateway, log *slog.Logger, probers map[string]*health.Prober) (*sync.WaitGroup, *clusterLink, error) {
	var wg sync.WaitGroup
	var cl *clusterLink // with [cluster]: probes go through the cluster view (cluster.go)
	if cfg.Cluster != nil {
		var err error
		if cl, err = newClusterLink(cfg, gw, log); err != nil {
			return nil, nil, err
		}
	}
	for _, pc := range cfg.Gateway.Pools {
		hc, ok := cfg.Health[pc.Name]
		if !ok {
			continue
		}
		pool := pc.Name
		hc.Reporter = wiring.ProbeReporter(gw, pool)
		if cl != nil {
			hc.Reporter = cl.reporter(pool)
		}
		p := health.New(hc, log.With("pool", pool))
		p.SetTargets(pc.Backends)
		probers[pool] = p
		if cl != nil {
			cl.addProber(p, pc.Backends)
		}
		wg.Add(1)
		go func() { // ends when ctx is done
			defer wg.Done()
			if err := p.Run(ctx); err != nil {
				log.Error("health prober stopped", "pool", pool, "err", err)
			}
		}()
	}
	if cl != nil {
		wg.Add(1)
		go func() { // ends when ctx is done, once the member has left
			defer wg.Done()
			cl.run(ctx)
		}()
	}
	return &wg, cl, nil
}

// newLogger returns the process's logger, writing to w as configured; the
// config package has checked the level and format.
func newLogger(w io.Writer, c config.Log) *slog.Logger {
	var level slog.Level
	if err := level.UnmarshalText([]byte(c.Level)); err != nil {
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// poolsValue logs each pool as its name and backends, or its service.
func poolsValue(pools []gateway.PoolConfig) slog.Value {
	attrs := make([]slog.Attr, 0, len(pools))
	for _, p := range pools {
		if p.Service != "" {
			attrs = append(attrs, slog.String(p.Name, "service "+p.Service))
			continue
		}
		attrs = append(attrs, slog.Any(p.Name, p.Backends))
	}
	return slog.GroupValue(attrs...)
}

// handleSignals returns a context that is done on SIGINT or SIGTERM (or
// when ctx is). Once it is, the two signals get their default action back,
// so that a second one ends a drain that takes too long. SIGHUP, which would
// end the process, is logged and ignored. The goroutine that does this runs
// until stop is called, and all signal handling ends with it. stop may be
// called more than once.
func handleSignals(ctx context.Context, log *slog.Logger, drain time.Duration) (_ context.Context, stop func()) {
	ctx, stopNotify := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		stopping := ctx.Done()
		noteStop := func() {
			stopping = nil
			stopNotify()
			log.Info("stopping: draining requests in flight", "why", context.Cause(ctx), "timeout", drain)
		}
		for {
			select {
			case <-hup:
				log.Warn("SIGHUP received: reload not supported yet; keeping the running configuration")
			case <-stopping:
				noteStop()
			case <-done:
				if stopping != nil && ctx.Err() != nil {
					noteStop()
				}
				return
			}
		}
	}()
	return ctx, sync.OnceFunc(func() {
		close(done)
		<-finished
		signal.Stop(hup)
		stopNotify()
	})
}
