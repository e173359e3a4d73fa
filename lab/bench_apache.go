// bench_apache.go is the benchmark's Apache scenario: Apache sending PHP to
// php-fpm directly, against the same Apache sending it through fcgigate's
// FastCGI front to the same pool, which prices the gateway's hop.

package lab

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// ScenarioApache measures Apache (mod_proxy_fcgi, enablereuse) in front of
// php-fpm directly (ProxyApache) and in front of fcgigate's FastCGI front
// (ProxyApacheFcgigate), one pool behind either.
const ScenarioApache = "apache"

// The proxies of ScenarioApache. ProxyApacheRelay sends Apache's FastCGI
// through a bare TCP relay (nginx's stream module) to php-fpm: the cost of
// a hop that parses nothing, the floor under any FastCGI proxy's.
const (
	ProxyApache         = "apache"
	ProxyApacheFcgigate = "apache+fcgigate"
	ProxyApacheRelay    = "apache+relay"
)

// apacheProxies are ScenarioApache's proxies, the baseline first.
var apacheProxies = []string{ProxyApache, ProxyApacheFcgigate, ProxyApacheRelay}

// ratioPairs returns the proxies whose figures the report divides, each
// [proxy, baseline]: fcgigate by nginx, or in the Apache scenario Apache
// through fcgigate, then Apache through the relay, by Apache alone.
func ratioPairs(proxies []string) [][2]string {
	for _, p := range proxies {
		if slices.Contains(apacheProxies, p) {
			return [][2]string{{ProxyApacheFcgigate, ProxyApache}, {ProxyApacheRelay, ProxyApache}}
		}
	}
	return [][2]string{{ProxyFcgigate, ProxyNginx}}
}

// startApacheProxy starts the proxy called name if it is one of the Apache
// scenario's; ok is false for any other name.
func startApacheProxy(ctx context.Context, name string, cfg BenchConfig, dir string, backends []string, docroot string, rep *Report) (t Target, stop func() error, ok bool, err error) {
	if !slices.Contains(apacheProxies, name) {
		return Target{}, nil, false, nil
	}
	if bin, err := ApacheBinary(); err == nil {
		rep.Env.Apache = ApacheVersion(bin)
	}
	listen, err := freePort("127.0.0.1")
	if err != nil {
		return Target{}, nil, true, err
	}
	if name == ProxyApache {
		a, err := StartApache(ctx, ApacheOptions{Listen: listen, Backend: backends[0], DocRoot: docroot, Dir: dir, Templates: TemplatesDir(cfg.Repo),
			CPUs: cfg.appCPUs()})
		if err != nil {
			return Target{}, nil, true, err
		}
		return Target{Name: name, URL: "http://" + listen, PID: a.PID(), Log: apacheLog(a)}, a.Stop, true, nil
	}
	if name == ProxyApacheRelay {
		rdir, err := subDir(dir, "relay")
		if err != nil {
			return Target{}, nil, true, err
		}
		relayAddr, err := freePort("127.0.1.3")
		if err != nil {
			return Target{}, nil, true, err
		}
		r, err := StartRelay(ctx, RelayOptions{Listen: relayAddr, Backend: backends[0], Dir: rdir, Templates: TemplatesDir(cfg.Repo),
			CPUs: cfg.hopCPUs()})
		if err != nil {
			return Target{}, nil, true, err
		}
		a, err := StartApache(ctx, ApacheOptions{Listen: listen, Backend: relayAddr, DocRoot: docroot, Dir: dir, Templates: TemplatesDir(cfg.Repo),
			CPUs: cfg.appCPUs()})
		if err != nil {
			return Target{}, nil, true, errors.Join(err, r.Stop())
		}
		stop = func() error { return errors.Join(a.Stop(), r.Stop()) }
		return Target{Name: name, URL: "http://" + listen, PID: a.PID(), Also: []int{r.PID()}, Log: apacheLog(a)}, stop, true, nil
	}

	bin := cfg.Gateway
	if bin == "" {
		if bin, err = GatewayBinary(ctx, cfg.Repo, dir); err != nil {
			return Target{}, nil, true, err
		}
	}
	rep.Env.GatewayBinary = bin
	gdir, err := subDir(dir, "fcgigate")
	if err != nil {
		return Target{}, nil, true, err
	}
	httpAddr, err := freePort("127.0.1.1")
	if err != nil {
		return Target{}, nil, true, err
	}
	front, err := freePort("127.0.1.1")
	if err != nil {
		return Target{}, nil, true, err
	}
	g, err := StartGateway(ctx, GatewayOptions{Binary: bin, Listen: httpAddr, FastCGIListen: front, Backends: backends,
		DocRoot: docroot, Dir: gdir, Templates: TemplatesDir(cfg.Repo), CPUs: cfg.hopCPUs()})
	if err != nil {
		return Target{}, nil, true, err
	}
	a, err := StartApache(ctx, ApacheOptions{Listen: listen, Backend: front, DocRoot: docroot, Dir: dir, Templates: TemplatesDir(cfg.Repo),
		CPUs: cfg.appCPUs()})
	if err != nil {
		return Target{}, nil, true, errors.Join(err, g.Stop())
	}
	log := func() []string { return append(apacheLog(a)(), logLines(g.Log())...) }
	// Apache first: it stops sending before the gateway drains.
	stop = func() error { return errors.Join(a.Stop(), g.Stop()) }
	return Target{Name: name, URL: "http://" + listen, PID: a.PID(), Also: []int{g.PID()}, Log: log}, stop, true, nil
}

// checkSplitCPUs checks, for BenchConfig.Split, that every process of the
// php-fpm masters and of each target's Apache (children included) may run
// on the application's CPU only, and every process of the hops behind an
// Apache (Target.Also: fcgigate, the relay's nginx) on the hop's only.
func checkSplitCPUs(fpms []*FPM, targets []Target) error {
	for _, f := range fpms {
		if err := checkTreeCPUs(f.PID(), splitAppCPUs); err != nil {
			return fmt.Errorf("php-fpm: %w", err)
		}
	}
	for _, t := range targets {
		if err := checkTreeCPUs(t.PID, splitAppCPUs); err != nil {
			return fmt.Errorf("%s: %w", t.Name, err)
		}
		for _, pid := range t.Also {
			if err := checkTreeCPUs(pid, splitHopCPUs); err != nil {
				return fmt.Errorf("%s, the hop: %w", t.Name, err)
			}
		}
	}
	return nil
}

// apacheLog returns a function that reads Apache's warnings and errors.
func apacheLog(a *Apache) func() []string {
	return func() []string { return logLines(a.ErrorLog(), ":warn]", ":error]", ":crit]", ":alert]", ":emerg]") }
}

// targetCPU is the CPU time used so far by t's process trees.
func targetCPU(t Target) (time.Duration, error) {
	var sum time.Duration
	for _, pid := range append([]int{t.PID}, t.Also...) {
		cpu, _, err := TreeCPU(pid)
		if err != nil {
			return 0, err
		}
		sum += cpu
	}
	return sum, nil
}
