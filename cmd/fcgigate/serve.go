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
	"sync"
	"syscall"
	"time"

	"github.com/fcgigate/fcgigate/config"
	"github.com/fcgigate/fcgigate/gateway"
	"github.com/fcgigate/fcgigate/health"
)

const serveHelp = `Usage: fcgigate serve -config FILE

Runs the gateway. SIGINT or SIGTERM stops it: it stops accepting
connections, lets requests in flight finish for up to [server] drain_timeout,
and exits 0. A second signal during the drain ends it at once. SIGHUP is
logged and ignored: reload is not supported yet.

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

	ctx, stop := handleSignals(ctx, log, cfg.DrainTimeout)
	defer stop()

	gw, err := gateway.New(cfg.Gateway, log)
	if err != nil {
		log.Error("cannot start the gateway", "err", err)
		return 1
	}
	defer gw.Close() // on the early returns; Close may be called twice
	ln, err := net.Listen("tcp", cfg.Gateway.Listen)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			err = fmt.Errorf("%w (another process has this port: stop it or change [server] listen in %s)", err, *path)
		}
		log.Error("cannot listen", "err", err)
		return 1
	}
	log.Info("fcgigate serving", "addr", ln.Addr().String(), "version", version, "pools", poolsValue(cfg.Gateway.Pools))

	probeCtx, stopProbes := context.WithCancel(ctx)
	probes := startProbers(probeCtx, cfg, gw, log)
	err = gw.Serve(ctx, ln, cfg.DrainTimeout)
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
// enabled, feeding its verdicts to the gateway's balancer. They stop when ctx
// is done; the WaitGroup tells when they have.
func startProbers(ctx context.Context, cfg *config.File, gw *gateway.Gateway, log *slog.Logger) *sync.WaitGroup {
	var wg sync.WaitGroup
	for _, pc := range cfg.Gateway.Pools {
		hc, ok := cfg.Health[pc.Name]
		if !ok {
			continue
		}
		pool := pc.Name
		hc.Reporter = health.ReporterFunc(func(r health.Result) {
			st := gateway.BackendState{Up: r.Up, TimedOut: r.TimedOut()}
			if r.Status != nil {
				st.Penalty = r.Status.Penalty()
				st.MaxConcurrent = r.Status.MaxConcurrent()
				st.Started = r.Status.StartTime
			}
			gw.SetBackendState(pool, r.Addr, st)
		})
		p := health.New(hc, log.With("pool", pool))
		p.SetTargets(pc.Backends)
		wg.Add(1)
		go func() { // ends when ctx is done
			defer wg.Done()
			if err := p.Run(ctx); err != nil {
				log.Error("health prober stopped", "pool", pool, "err", err)
			}
		}()
	}
	return &wg
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

// poolsValue logs each pool as its name and backends.
func poolsValue(pools []gateway.PoolConfig) slog.Value {
	attrs := make([]slog.Attr, 0, len(pools))
	for _, p := range pools {
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
