// bench.go is the system benchmark: fcgigate and nginx side by side in
// front of one php-fpm master, measured in interleaved wrk rounds.

package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fcgigate/fcgigate/config"
)

// Proxy names, as used by BenchConfig.Proxies and in reports.
const (
	ProxyNginx    = "nginx"
	ProxyFcgigate = "fcgigate"
)

// Case is one request the benchmark measures.
type Case struct {
	Name string `json:"name"`
	Path string `json:"path"` // path and query, under test/php
	// Bytes is the exact body length a correct response has; each target
	// is checked once with it before any load.
	Bytes int `json:"bytes"`
	// PauseMs, when not 0, makes each wrk connection pause this long
	// before each request (see PaceScript): a moderate load at which the
	// proxies' latencies compare at the same rate.
	PauseMs int `json:"pause_ms,omitempty"`
}

// DefaultCases are a tiny response, where per-request overhead shows, a
// 64 KiB one, where copying and buffering show, and the tiny one again at a
// moderate load (each connection pausing 3 ms before each request, about a
// third of what the machine carries), where the latencies compare at equal
// rate: wrk's -c connections keep that many requests in flight, so at
// saturation a proxy with less throughput has longer latencies by that
// alone.
var DefaultCases = []Case{
	{Name: "tiny", Path: "/hello.php", Bytes: len("hello")},
	{Name: "64KiB", Path: "/size.php?bytes=65536", Bytes: 65536},
	{Name: "paced", Path: "/hello.php", Bytes: len("hello"), PauseMs: 3},
}

// ScenarioSlowPool puts three php-fpm pools behind each proxy, one of them
// ten times slower than the others (20 ms a request against 2 ms), to
// compare fcgigate's balancing with nginx's least_conn.
const ScenarioSlowPool = "slowpool"

// SlowPoolCase is the request of the slow-pool scenario: whoami.php sleeps
// 2 ms, plus the pool's WORK_MS, and prints "unnamed".
var SlowPoolCase = Case{Name: "slowpool", Path: "/whoami.php?ms=2", Bytes: len("unnamed")}

// scenarioCases returns the cases scenario measures by default.
func scenarioCases(scenario string) []Case {
	if scenario == ScenarioSlowPool {
		return []Case{SlowPoolCase}
	}
	return DefaultCases
}

// SelectCases returns the cases of scenario named in names, a comma-separated
// list ("tiny,paced"), in the scenario's order; an empty list selects them all.
func SelectCases(scenario, names string) ([]Case, error) {
	all := scenarioCases(scenario)
	if strings.TrimSpace(names) == "" {
		return all, nil
	}
	want := map[string]bool{}
	for _, n := range strings.Split(names, ",") {
		want[strings.TrimSpace(n)] = true
	}
	var known []string
	var out []Case
	for _, c := range all {
		known = append(known, c.Name)
		if want[c.Name] {
			out = append(out, c)
			delete(want, c.Name)
		}
	}
	if len(want) > 0 {
		var unknown []string
		for n := range want {
			unknown = append(unknown, strconv.Quote(n))
		}
		slices.Sort(unknown)
		return nil, fmt.Errorf("bench: no case %s in this scenario; it has %s", strings.Join(unknown, ", "), strings.Join(known, ", "))
	}
	return out, nil
}

// BenchConfig configures RunBench. Zero fields take the defaults given.
type BenchConfig struct {
	// Scenario is "" (one pool), ScenarioSlowPool or ScenarioApache.
	Scenario string
	// Repo is the repository root; the docroot is Repo/test/php. Required.
	Repo string
	// Gateway is the fcgigate binary. Empty: see GatewayBinary.
	Gateway string
	// Proxies are the proxies to measure, in the order each round runs
	// them. Empty means nginx then fcgigate.
	Proxies []string
	// Cases are the requests measured. Empty means DefaultCases.
	Cases []Case
	// Rounds per case and proxy. 0 means 3: a median of three shrugs off
	// one round spoiled by a noisy neighbour.
	Rounds int
	// Warmup is a wrk run per case and proxy before the rounds, which fills
	// keep-alive pools, page caches and opcache. 0 means 2s; negative: none.
	Warmup time.Duration
	// Wrk holds the load: threads, connections and the length of a round.
	// Its URL is set per case.
	Wrk WrkOptions
	// FPMChildren is pm.max_children. 0 means 3 × Wrk.Conns (at least 8),
	// a worker for every FastCGI connection the proxies may hold open at
	// once: nginx's workers each keep their own idle connections (with two
	// workers, up to twice the client connections between them) and
	// fcgigate one per request in flight. php-fpm ties a worker to a
	// keep-alive connection until the proxy closes it, so with fewer
	// workers new connections wait in FPM's accept queue behind idle ones
	// (a proxy's idle connections from its previous round included), and
	// the benchmark would measure that rather than the proxies. The FPM
	// queue column shows when it happens.
	FPMChildren int
	// NginxWorkers is worker_processes. Empty means "auto" (one per core),
	// the same core budget fcgigate gets from its default GOMAXPROCS.
	NginxWorkers string
	// GatewayProcs is fcgigate's [server] procs. Empty means "auto+1" in
	// the default scenario, where the gateway's HTTP front shares the
	// cores with php-fpm and wrk flat out (as the README advises for such
	// a host: a Go thread the kernel preempts mid-request holds up the
	// goroutines queued on it, and one more thread than cores carries
	// them on), and "auto" in the others, where it measured no better:
	// the slow pool, which does not saturate the cores, and behind
	// Apache, shared or split.
	GatewayProcs string
	// NginxKeepalive is the upstream's keepalive (idle FastCGI connections
	// kept per worker, with fastcgi_keep_conn on). 0 means 32; negative
	// turns keep-alive off: a new connection to FPM per request.
	NginxKeepalive int
	// Split pins the application side (wrk, Apache and php-fpm, with all
	// their children) to CPU 0 and the hop (fcgigate, the relay's nginx
	// and its workers) to CPU 1, in every proxy's rounds: the gateway as
	// if on a one-core host of its own, taking no CPU from Apache and
	// php-fpm, while the baseline gets the same CPU 0 (CPU 1 idles in its
	// rounds). fcgigate's Go runtime sees one CPU, so GOMAXPROCS is 1.
	// Without it every process shares every core, the hop's worst case.
	// Only with ScenarioApache, on a machine of at least 2 CPUs.
	Split bool
	// Dir receives the servers' configurations and logs. Empty: a new temp
	// dir, removed afterwards unless Keep is set or the run failed.
	Dir  string
	Keep bool
	// Progress, if not nil, receives a line per step and round.
	Progress io.Writer
}

func (c *BenchConfig) setDefaults() {
	if len(c.Proxies) == 0 {
		c.Proxies = []string{ProxyNginx, ProxyFcgigate}
		if c.Scenario == ScenarioApache {
			c.Proxies = apacheProxies
		}
	}
	if len(c.Cases) == 0 {
		c.Cases = scenarioCases(c.Scenario)
	}
	if c.Rounds <= 0 {
		c.Rounds = 3
	}
	if c.Warmup == 0 {
		c.Warmup = 2 * time.Second
	}
	c.Wrk.setDefaults()
	if c.Split {
		c.Wrk.CPUs = splitAppCPUs
	}
	if c.FPMChildren <= 0 {
		// Every FastCGI connection a proxy keeps open holds a worker. nginx
		// keeps up to its upstream keepalive per worker process (two
		// workers: 2 x 32) besides those in use, fcgigate its pool, and in
		// the apache scenario each of the three Apaches one per wrk
		// connection for good. 3 x conns was once seen short by 14 (110
		// open), which queued requests behind idle connections.
		c.FPMChildren = max(8, 4*c.Wrk.Conns)
	}
	if c.NginxWorkers == "" {
		c.NginxWorkers = "auto"
	}
	if c.GatewayProcs == "" {
		c.GatewayProcs = "auto"
		if c.Scenario == "" {
			c.GatewayProcs = "auto+1"
		}
	}
	if c.NginxKeepalive == 0 {
		c.NginxKeepalive = 32
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
}

// validate checks c, with its defaults set, for a machine of numCPU CPUs.
func (c *BenchConfig) validate(numCPU int) error {
	if c.Repo == "" {
		return errors.New("bench: Repo is required")
	}
	if c.Split {
		if c.Scenario != ScenarioApache {
			scenario := fmt.Sprintf("scenario %q", c.Scenario)
			if c.Scenario == "" {
				scenario = "the default scenario"
			}
			return fmt.Errorf("bench: split CPUs (-split) need the apache scenario (-scenario apache), where the hop in front of php-fpm can have a core of its own; not %s", scenario)
		}
		if numCPU < 2 {
			return fmt.Errorf("bench: split CPUs (-split) need 2 CPUs, CPU %s for wrk, Apache and php-fpm and CPU %s for the hop; this machine has %d", splitAppCPUs, splitHopCPUs, numCPU)
		}
	}
	return nil
}

// appCPUs and hopCPUs are the CPUs the application side (wrk, Apache,
// php-fpm) and the hop (fcgigate, the relay) run on: empty (any) unless
// c.Split.
func (c *BenchConfig) appCPUs() string {
	if c.Split {
		return splitAppCPUs
	}
	return ""
}

func (c *BenchConfig) hopCPUs() string {
	if c.Split {
		return splitHopCPUs
	}
	return ""
}

// Target is one proxy under load: where to send requests, and which process
// tree to charge CPU time to.
type Target struct {
	Name string
	URL  string // "http://127.0.0.x:port"
	PID  int    // root of the process tree whose CPU time is measured
	Also []int  // more process trees charged to it (the gateway behind Apache)
	// Log returns the target's log, filtered to its warnings and errors.
	Log func() []string
}

// RunBench starts php-fpm and the proxies in cfg.Proxies, checks that each
// answers every case correctly, and measures the cases in interleaved
// rounds. Everything it started is stopped before it returns, also when ctx
// is cancelled.
func RunBench(ctx context.Context, cfg BenchConfig) (rep *Report, err error) {
	cfg.setDefaults()
	if err := cfg.validate(runtime.NumCPU()); err != nil {
		return nil, err
	}
	docroot := filepath.Join(cfg.Repo, "test", "php")
	if _, err := os.Stat(filepath.Join(docroot, "hello.php")); err != nil {
		return nil, fmt.Errorf("bench: docroot: %w", err)
	}
	// Missing programs fail the run before anything is started.
	if _, err := WrkBinary(); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if slices.Contains(cfg.Proxies, ProxyNginx) {
		if _, err := NginxBinary(); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
	}
	if cfg.Split {
		if _, err := TasksetBinary(); err != nil {
			return nil, fmt.Errorf("bench: -split: %w", err)
		}
	}
	logf := func(format string, args ...any) { fmt.Fprintf(cfg.Progress, format+"\n", args...) }

	if cfg.Dir == "" {
		if cfg.Dir, err = os.MkdirTemp("", "fcgilab-bench-"); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		defer func() {
			if err != nil || cfg.Keep {
				logf("configs and logs kept in %s", cfg.Dir)
				return
			}
			os.RemoveAll(cfg.Dir)
		}()
	}
	// Stops run in reverse order of starting, whatever happens.
	var stops []func() error
	defer func() {
		for i := len(stops) - 1; i >= 0; i-- {
			if serr := stops[i](); serr != nil {
				logf("cleanup: %v", serr)
				if err == nil {
					err = serr
				}
			}
		}
	}()

	rep = &Report{Started: time.Now(), Env: benchEnv(cfg)}
	// One pool, or with ScenarioSlowPool three on 127.0.0.2-4, the last
	// ten times slower.
	pools := []map[string]string{nil}
	if cfg.Scenario == ScenarioSlowPool {
		pools = []map[string]string{nil, nil, {"WORK_MS": "18"}}
	}
	var fpms []*FPM
	var backends []string
	for i, env := range pools {
		fpmDir, err := subDir(cfg.Dir, fmt.Sprintf("php-fpm%d", i+1))
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		fpmAddr, err := freePort(fmt.Sprintf("127.0.0.%d", i+2))
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		f, err := StartFPM(ctx, FPMOptions{Addr: fpmAddr, DocRoot: docroot, Dir: fpmDir,
			Templates: TemplatesDir(cfg.Repo), MaxChildren: cfg.FPMChildren, Env: env, CPUs: cfg.appCPUs()})
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		stops = append(stops, f.Stop)
		fpms = append(fpms, f)
		backends = append(backends, f.Addr)
		logf("php-fpm %s pid %d, pm.max_children %d, env %v", f.Addr, f.PID(), cfg.FPMChildren, env)
	}
	fpm := fpms[0]

	var targets []Target
	for _, name := range cfg.Proxies {
		dir, err := subDir(cfg.Dir, name)
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		t, stop, err := startProxy(ctx, name, cfg, dir, backends, docroot, rep)
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		stops = append(stops, stop)
		targets = append(targets, t)
		if len(t.Also) > 0 {
			logf("%s %s pid %d, behind it pid %v", name, t.URL, t.PID, t.Also)
		} else {
			logf("%s %s pid %d", name, t.URL, t.PID)
		}
	}
	for _, t := range targets {
		for _, c := range cfg.Cases {
			if err := checkCase(ctx, t, c); err != nil {
				return nil, fmt.Errorf("bench: %w", err)
			}
		}
	}
	if cfg.Split {
		// All children are up now: Apache's, php-fpm's and nginx's workers.
		if err := checkSplitCPUs(fpms, targets); err != nil {
			return nil, fmt.Errorf("bench: -split: %w", err)
		}
		logf("cpus: php-fpm and Apache with all their children on CPU %s, the hops on CPU %s (checked in /proc); wrk runs on CPU %s",
			splitAppCPUs, splitHopCPUs, splitAppCPUs)
	}

	fpmTarget := Target{Name: "php-fpm", URL: fpm.Addr, PID: fpm.PID(), Log: func() []string { return logLines(fpm.Log(), "WARNING", "ERROR", "ALERT") }}
	rounds, err := measure(ctx, cfg, targets, fpmTarget, logf)
	rep.Rounds = rounds
	rep.Finished = time.Now()
	rep.Logs = make(map[string][]string)
	for _, t := range append(targets, fpmTarget) {
		if lines := t.Log(); len(lines) > 0 {
			rep.Logs[t.Name] = lines
		}
	}
	if err != nil {
		return rep, fmt.Errorf("bench: %w", err)
	}
	rep.summarize(cfg.Cases, cfg.Proxies)
	return rep, nil
}

// startProxy starts the proxy called name in front of fpmAddr and returns
// it as a Target with the function that stops it.
func startProxy(ctx context.Context, name string, cfg BenchConfig, dir string, backends []string, docroot string, rep *Report) (Target, func() error, error) {
	switch name {
	case ProxyNginx:
		listen, err := freePort("127.0.0.1")
		if err != nil {
			return Target{}, nil, err
		}
		n, err := StartNginx(ctx, NginxOptions{Listen: listen, Upstreams: backends, DocRoot: docroot, Dir: dir, Templates: TemplatesDir(cfg.Repo),
			Workers: cfg.NginxWorkers, Keepalive: max(cfg.NginxKeepalive, 0)})
		if err != nil {
			return Target{}, nil, err
		}
		if _, procs, err := TreeCPU(n.PID()); err == nil {
			rep.Env.NginxWorkerCount = procs - 1
		}
		log := func() []string { return logLines(n.Log(), "[warn]", "[error]", "[crit]", "[alert]", "[emerg]") }
		return Target{Name: name, URL: "http://" + listen, PID: n.PID(), Log: log}, n.Stop, nil
	case ProxyFcgigate:
		bin := cfg.Gateway
		if bin == "" {
			var err error
			if bin, err = GatewayBinary(ctx, cfg.Repo, dir); err != nil {
				return Target{}, nil, err
			}
		}
		rep.Env.GatewayBinary = bin
		listen, err := freePort("127.0.1.1")
		if err != nil {
			return Target{}, nil, err
		}
		g, err := StartGateway(ctx, GatewayOptions{Binary: bin, Listen: listen, Backends: backends, DocRoot: docroot,
			Dir: dir, Templates: TemplatesDir(cfg.Repo), Procs: cfg.GatewayProcs})
		if err != nil {
			return Target{}, nil, err
		}
		// At log level warn every line is worth reading.
		log := func() []string { return logLines(g.Log()) }
		return Target{Name: name, URL: "http://" + listen, PID: g.PID(), Log: log}, g.Stop, nil
	}
	if t, stop, ok, err := startApacheProxy(ctx, name, cfg, dir, backends, docroot, rep); ok {
		return t, stop, err
	}
	return Target{}, nil, fmt.Errorf("unknown proxy %q (want %s, %s, %s, %s or %s)", name, ProxyNginx, ProxyFcgigate, ProxyApache, ProxyApacheFcgigate, ProxyApacheRelay)
}

// checkCase sends c once to t and insists on a 200 with c.Bytes of body, so
// that the benchmark never measures how fast a proxy returns errors.
func checkCase(ctx context.Context, t Target, c Case) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", t.URL+c.Path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("check %s %s: %w", t.Name, c.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("check %s %s: %w", t.Name, c.Path, err)
	}
	if resp.StatusCode != http.StatusOK || len(body) != c.Bytes {
		return fmt.Errorf("check %s %s: status %d, %d bytes of body (want 200, %d bytes): %.200q\nlog: %s",
			t.Name, c.Path, resp.StatusCode, len(body), c.Bytes, body, strings.Join(t.Log(), "\n"))
	}
	return nil
}

// subDir makes the directory name under parent, for one server's
// configuration and logs.
func subDir(parent, name string) (string, error) {
	d := filepath.Join(parent, name)
	return d, os.MkdirAll(d, 0o755)
}

// measure runs, for each case, a warm-up per target, then cfg.Rounds rounds
// in which each target in turn gets the same wrk load. CPU time is read from
// /proc before and after each run, for the target and for FPM.
func measure(ctx context.Context, cfg BenchConfig, targets []Target, fpm Target, logf func(string, ...any)) ([]Round, error) {
	var rounds []Round
	width := 8 // of the proxy names, so that the lines' columns align
	for _, t := range targets {
		width = max(width, len(t.Name))
	}
	for _, c := range cfg.Cases {
		wrk := cfg.Wrk
		if c.PauseMs > 0 {
			script, err := PaceScript(cfg.Dir, c.PauseMs)
			if err != nil {
				return rounds, err
			}
			wrk.Script = script
		}
		if cfg.Warmup > 0 {
			for _, t := range targets {
				o := wrk
				o.URL, o.Duration = t.URL+c.Path, cfg.Warmup
				r, _, err := RunWrk(ctx, o)
				if err != nil {
					return rounds, fmt.Errorf("warm-up %s %s: %w", c.Name, t.Name, err)
				}
				logf("warm-up %-6s %-*s %9.0f req/s, %d errors", c.Name, width, t.Name, r.ReqPerSec, r.Errors())
			}
		}
		for n := 1; n <= cfg.Rounds; n++ {
			for _, t := range targets {
				o := wrk
				o.URL = t.URL + c.Path
				cpu0, err := targetCPU(t)
				if err != nil {
					return rounds, fmt.Errorf("%s: %w", t.Name, err)
				}
				fpm0, _, err := TreeCPU(fpm.PID)
				if err != nil {
					return rounds, fmt.Errorf("php-fpm: %w", err)
				}
				var r WrkResult
				peak := sampleListener(fpm.URL, func() { r, _, err = RunWrk(ctx, o) })
				if err != nil {
					return rounds, fmt.Errorf("round %d %s %s: %w", n, c.Name, t.Name, err)
				}
				cpu1, err := targetCPU(t)
				if err != nil {
					return rounds, fmt.Errorf("%s after round %d: %w", t.Name, n, err)
				}
				fpm1, _, err := TreeCPU(fpm.PID)
				if err != nil {
					return rounds, fmt.Errorf("php-fpm after round %d: %w", n, err)
				}
				rd := Round{Case: c.Name, Proxy: t.Name, N: n, Wrk: r, CPU: cpu1 - cpu0, FPMCPU: fpm1 - fpm0,
					FPMConnsMax: peak.Conns, FPMQueueMax: peak.AcceptQueue}
				rounds = append(rounds, rd)
				logf("round %d %-6s %-*s %9.0f req/s  p50 %-9v p99 %-9v cpu %6.1f ms/1k  fpm conns %3d queue %3d  errors %d",
					n, c.Name, width, t.Name, r.ReqPerSec, r.P50, r.P99, rd.CPUPer1k(), peak.Conns, peak.AcceptQueue, r.Errors())
			}
		}
	}
	return rounds, nil
}

// sampleListener runs load and, while it runs, reads the stats of the
// listener on addr every 50ms. It returns the largest figures seen (-1 if
// they could not be read).
func sampleListener(addr string, load func()) ListenerStats {
	done := make(chan struct{})
	result := make(chan ListenerStats, 1)
	// Ends when load returns and closes done.
	go func() {
		peak := ListenerStats{Conns: -1, AcceptQueue: -1}
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			if st, err := ReadListenerStats(addr); err == nil {
				peak.Conns = max(peak.Conns, st.Conns)
				peak.AcceptQueue = max(peak.AcceptQueue, st.AcceptQueue)
			}
			select {
			case <-done:
				result <- peak
				return
			case <-tick.C:
			}
		}
	}()
	load()
	close(done)
	return <-result
}

// logLines returns the lines of log that contain any of marks, or all its
// non-empty lines if marks is empty, at most maxLogLines of them (the first
// ones, where a problem usually starts) and a count of the rest.
func logLines(log string, marks ...string) []string {
	const maxLogLines = 40
	var out []string
	more := 0
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			continue
		}
		match := len(marks) == 0
		for _, m := range marks {
			if strings.Contains(line, m) {
				match = true
				break
			}
		}
		if !match {
			continue
		}
		if len(out) < maxLogLines {
			out = append(out, line)
		} else {
			more++
		}
	}
	if more > 0 {
		out = append(out, fmt.Sprintf("... and %d more lines", more))
	}
	return out
}

// benchEnv records what the numbers depend on.
func benchEnv(cfg BenchConfig) Env {
	e := Env{
		NumCPU:         runtime.NumCPU(),
		GOMAXPROCS:     runtime.GOMAXPROCS(0),
		FPMChildren:    cfg.FPMChildren,
		NginxWorkers:   cfg.NginxWorkers,
		NginxKeepalive: max(cfg.NginxKeepalive, 0),
		Rounds:         cfg.Rounds,
		Warmup:         cfg.Warmup.String(),
		Wrk:            "wrk " + strings.Join(cfg.Wrk.Args()[:4], " ") + " URL",
		Split:          cfg.Split,
		AppCPUs:        cfg.appCPUs(),
		HopCPUs:        cfg.hopCPUs(),
	}
	if cfg.Split && os.Getenv("GOMAXPROCS") == "" {
		// Go sizes GOMAXPROCS by the CPUs the process may run on: the
		// gateway's one. (A GOMAXPROCS in the environment, which fcgigate
		// inherits, would win over that.)
		e.GOMAXPROCS = 1
	}
	e.GatewayProcs = cfg.GatewayProcs
	if p, err := config.ParseProcs(cfg.GatewayProcs); err == nil {
		// A value fcgigate refuses fails the run when it starts.
		e.GOMAXPROCS, _ = p.Resolve(e.GOMAXPROCS)
	}
	if bin, err := NginxBinary(); err == nil {
		e.Nginx = NginxVersion(bin)
	}
	if out, err := exec.Command("git", "-C", cfg.Repo, "describe", "--always", "--dirty").Output(); err == nil {
		e.Commit = strings.TrimSpace(string(out))
	}
	return e
}

// FindRepo returns the root of the fcgigate repository that dir is in: the
// nearest directory upwards holding a go.mod of module
// github.com/fcgigate/fcgigate.
func FindRepo(dir string) (string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && strings.HasPrefix(string(b), "module github.com/fcgigate/fcgigate\n") {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no fcgigate repository above %s", dir)
		}
	}
}
