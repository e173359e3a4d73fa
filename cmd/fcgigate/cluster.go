// cluster.go wires the gateway cluster ([cluster]) between the probers,
// the gossip member and the gateway: each probe becomes this gateway's
// verdict, gossiped; the merged cluster view decides each backend's state
// here and feeds the other gateways' load into least-conn-cluster pools;
// a peer's failure report makes the prober probe that backend at once.

package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/fcgigate/fcgigate/config"
	"github.com/fcgigate/fcgigate/gateway"
	"github.com/fcgigate/fcgigate/health"
	"github.com/fcgigate/fcgigate/wiring"
)

// clusterLink connects one gateway to its cluster.
type clusterLink struct {
	gw     *gateway.Gateway
	gossip *health.Gossip
	log    *slog.Logger
	every  time.Duration
	wake   chan struct{} // cap 1: the view changed, decisions may have

	clusterPools map[string]bool // pools that balance least-conn-cluster

	mu      sync.Mutex // protects probers and last
	probers map[string][]*health.Prober
	last    map[poolBackend]*linkState // backends of the config, and those probed since
}

type poolBackend struct{ pool, addr string }

// linkState is what the link knows of one backend of one pool.
type linkState struct {
	cluster bool                 // the pool balances least-conn-cluster
	probe   gateway.BackendState // the last probe's findings; Up true before one
	applied bool                 // SetBackendState has been called
	up      bool                 // the Up last applied
	reason  string               // why the cluster took it out, if it did
}

// newClusterLink starts this gateway's gossip member (bound, not yet
// joined) for cfg's pools.
func newClusterLink(cfg *config.File, gw *gateway.Gateway, log *slog.Logger) (*clusterLink, error) {
	cl := &clusterLink{
		gw:      gw,
		log:     log.With("component", "cluster"),
		every:   health.DefaultLoadInterval,
		wake:    make(chan struct{}, 1),
		probers: map[string][]*health.Prober{},
		last:    map[poolBackend]*linkState{},

		clusterPools: map[string]bool{},
	}
	for _, pc := range cfg.Gateway.Pools {
		cl.clusterPools[pc.Name] = pc.Balance == gateway.BalanceLeastConnCluster
		for _, addr := range pc.Backends {
			cl.last[poolBackend{pc.Name, addr}] = cl.newState(pc.Name)
		}
	}
	gc := *cfg.Cluster
	gc.OnPeerFailure = cl.probeNow
	gc.OnChange = cl.changed
	gc.Load = cl.inFlight
	g, err := health.NewGossip(gc, log)
	if err != nil {
		return nil, err
	}
	cl.gossip = g
	sum := sha256.Sum256([]byte(fmt.Sprintf("%+v", cfg.Gateway.Pools)))
	g.SetConfigVersion(hex.EncodeToString(sum[:6]))
	return cl, nil
}

func (cl *clusterLink) newState(pool string) *linkState {
	return &linkState{cluster: cl.clusterPools[pool], probe: gateway.BackendState{Up: true}, up: true}
}

// addProber lets peer failure reports on pool's backends reach p.
func (cl *clusterLink) addProber(p *health.Prober, backends []string) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	for _, addr := range backends {
		cl.probers[addr] = append(cl.probers[addr], p)
	}
}

// reporter returns the prober reporter of pool: the probe becomes this
// gateway's verdict, and the cluster's decision is applied.
func (cl *clusterLink) reporter(pool string) health.Reporter {
	return health.ReporterFunc(func(r health.Result) {
		state, reason := verdictOf(r)
		cl.gossip.Publish(r.Addr, state, reason)
		st := wiring.BackendState(r)
		k := poolBackend{pool, r.Addr}
		cl.mu.Lock()
		ls := cl.last[k]
		if ls == nil { // a backend that discovery added
			ls = cl.newState(pool)
			cl.last[k] = ls
		}
		ls.probe = st
		cl.mu.Unlock()
		cl.apply(k, true)
	})
}

// verdictOf turns a probe into this gateway's verdict. A backend whose
// probes only timed out is suspect, not down: a saturated backend times
// out too, and each gateway judges that with its own traffic.
func verdictOf(r health.Result) (health.VerdictState, string) {
	switch {
	case !r.Up && !r.TimedOut():
		return health.StateDown, r.Err.Error()
	case r.Err != nil:
		return health.StateSuspect, r.Err.Error()
	}
	return health.StateUp, ""
}

// apply applies the cluster's decision on k: with the probe's findings
// after a probe (probed) or when the decision changed, else only the load
// penalty of a least-conn-cluster pool.
func (cl *clusterLink) apply(k poolBackend, probed bool) {
	d := cl.gossip.Cluster().Decide(k.addr)
	peers := 0
	cl.mu.Lock()
	ls := cl.last[k]
	if ls.cluster {
		peers = cl.gossip.Cluster().PeerInFlight(k.addr)
	}
	st := ls.probe
	st.Penalty += peers
	if !d.Up {
		// Taken out by the cluster's evidence: not a saturated backend
		// to keep up because it still answers.
		st.Up, st.TimedOut = false, false
	}
	changed := !ls.applied || st.Up != ls.up
	clusterOut := !d.Up && d.Reason != "own probes"
	logIt := changed && (clusterOut || ls.reason != "")
	was := ls.reason
	if probed || changed {
		ls.applied, ls.up = true, st.Up
		ls.reason = ""
		if clusterOut {
			ls.reason = d.Reason
		}
	}
	cl.mu.Unlock()
	switch {
	case probed || changed:
		cl.gw.SetBackendState(k.pool, k.addr, st)
	case ls.cluster:
		cl.gw.SetLoadPenalty(k.pool, k.addr, st.Penalty)
	}
	if logIt {
		if clusterOut {
			cl.log.Warn("backend taken out on the cluster's evidence", "pool", k.pool, "backend", k.addr,
				"reason", d.Reason, "down_votes", d.DownVotes, "live", d.Live, "quorum", d.Quorum)
		} else {
			cl.log.Info("backend back in: the cluster no longer reports it down", "pool", k.pool, "backend", k.addr, "was", was)
		}
	}
}

// run runs the gossip member, and re-applies the cluster's decisions and
// peers' load every LoadInterval and whenever the view changes, until ctx
// is done; then the member leaves.
func (cl *clusterLink) run(ctx context.Context) {
	done := make(chan struct{})
	go func() { // ends when ctx is done: Run leaves and returns
		defer close(done)
		if err := cl.gossip.Run(ctx); err != nil {
			cl.log.Error("gossip stopped", "err", err)
		}
	}()
	defer func() { <-done }()
	tick := time.NewTicker(cl.every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-cl.wake:
		}
		cl.mu.Lock()
		keys := make([]poolBackend, 0, len(cl.last))
		for k := range cl.last {
			keys = append(keys, k)
		}
		cl.mu.Unlock()
		for _, k := range keys {
			cl.apply(k, false)
		}
	}
}

// probeNow asks the probers of addr for a probe at once. It does not block.
func (cl *clusterLink) probeNow(addr string) {
	cl.mu.Lock()
	ps := cl.probers[addr]
	cl.mu.Unlock()
	for _, p := range ps {
		p.ProbeNow(addr)
	}
}

// changed wakes run. It does not block.
func (cl *clusterLink) changed() {
	select {
	case cl.wake <- struct{}{}:
	default:
	}
}

// inFlight returns this gateway's requests in flight by backend, over all
// pools.
func (cl *clusterLink) inFlight() map[string]int {
	m := map[string]int{}
	for _, stats := range cl.gw.PoolStats() {
		for _, b := range stats {
			m[b.Addr] += int(b.InFlight)
		}
	}
	return m
}
