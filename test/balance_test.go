package test

// balance_test.go: the balancer against three real php-fpm pools on
// 127.0.0.2-4: a backend killed or paused under load, a slow pool, weights,
// and the per-backend limit with the gateway's wait queue.

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fcgigate/fcgigate/balancer"
	"github.com/fcgigate/fcgigate/gateway"
	"github.com/fcgigate/fcgigate/health"
	"github.com/fcgigate/fcgigate/lab"
	"github.com/fcgigate/fcgigate/test/fpmtest"
	"github.com/fcgigate/fcgigate/wiring"
)

// cluster is three FPM pools behind one in-process gateway with a prober.
type cluster struct {
	fpms []*fpmtest.FPM
	gw   *testGateway
	g    *gateway.Gateway
}

// startCluster starts one FPM per option on 127.0.0.2, .3, .4 (each named
// b1, b2, b3 in its FPM_NAME env), a gateway with pool pc (its backends
// filled in), and a health prober with hc feeding it, as cmd wires them.
func startCluster(t *testing.T, opts []fpmtest.Options, pc gateway.PoolConfig, hc health.Config) *cluster {
	t.Helper()
	fpmtest.Need(t)
	if pc.ReadTimeout == 0 {
		pc.ReadTimeout = 5 * time.Second // a stuck request shows in the log
	}
	c := &cluster{}
	for i, o := range opts {
		o.Addr = fpmtest.FreePort(t, fmt.Sprintf("127.0.0.%d", i+2))
		if o.Extra == nil {
			o.Extra = map[string]string{}
		}
		o.Extra["env[FPM_NAME]"] = fmt.Sprintf("b%d", i+1)
		c.fpms = append(c.fpms, fpmtest.Start(t, o))
		pc.Backends = append(pc.Backends, c.fpms[i].Addr)
	}
	if pc.Weights != nil {
		w := map[string]int{}
		for i, f := range c.fpms {
			if x, ok := pc.Weights[fmt.Sprintf("b%d", i+1)]; ok {
				w[f.Addr] = x
			}
		}
		pc.Weights = w
	}
	c.gw, c.g = startGatewayG(t, "127.0.1.1", withPool(pc))
	hc.Reporter = wiring.ProbeReporter(c.g, pc.Name)
	p := health.New(hc, nil)
	p.SetTargets(pc.Backends)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); p.Run(ctx) }() // ends with the test
	t.Cleanup(func() { cancel(); <-done })
	// As a gateway that starts before its traffic does, learn each pool's
	// size from FPM's status page at rest.
	if hc.StatusPath == "" {
		return c
	}
	waitFor(t, "the backends' limits learned from FPM", 5*time.Second, func() bool {
		for i := range c.fpms {
			if c.stats(i).MaxConcurrent == 0 {
				return false
			}
		}
		return true
	})
	return c
}

// stats returns the balancer's view of backend i.
func (c *cluster) stats(i int) balancer.BackendStats {
	for _, st := range c.g.PoolStats() {
		for _, b := range st {
			if b.Addr == c.fpms[i].Addr {
				return b
			}
		}
	}
	return balancer.BackendStats{}
}

// result is one request of a load run.
type result struct {
	start, end time.Time
	method     string
	status     int // -1: transport error
	backend    string
	err        string
}

// send makes one request of a load run: a POST carries a small body; the
// answer's body names the backend (whoami.php).
func send(ctx context.Context, c *http.Client, method, url string) result {
	var body io.Reader
	if method == "POST" {
		body = strings.NewReader("payload")
	}
	req, _ := http.NewRequestWithContext(ctx, method, url, body)
	r := result{start: time.Now(), method: method}
	resp, err := c.Do(req)
	if err != nil {
		r.status, r.err = -1, err.Error()
	} else {
		b, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		r.status, r.backend = resp.StatusCode, string(b)
		if rerr != nil {
			r.status, r.err = -1, rerr.Error()
		}
	}
	r.end = time.Now()
	return r
}

// load sends requests from workers goroutines until ctx is done or each has
// sent max requests; pick chooses each worker's method and path.
func load(ctx context.Context, t *testing.T, url string, workers, max int, pick func(worker int) (method, path string)) []result {
	c := client(t)
	var mu sync.Mutex
	var out []result
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() { // ends when ctx is done or after max requests
			defer wg.Done()
			for i := 0; i < max && ctx.Err() == nil; i++ {
				method, path := pick(w)
				r := send(context.Background(), c, method, url+path)
				mu.Lock()
				out = append(out, r)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return out
}

func fastHealth() health.Config {
	hc := health.DefaultConfig()
	hc.Interval, hc.Timeout, hc.Rise, hc.Fall = 250*time.Millisecond, 250*time.Millisecond, 1, 2
	return hc
}

func threeFPMs(o fpmtest.Options) []fpmtest.Options { return []fpmtest.Options{o, o, o} }

func TestKillBackendUnderLoad(t *testing.T) {
	pc := phpPool()
	pc.StaticRoot = ""
	c := startCluster(t, threeFPMs(fpmtest.Options{MaxChildren: 4}), pc, fastHealth())
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	var killedAt time.Time
	go func() { // kills b2 one second into the load
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return
		}
		killedAt = time.Now()
		c.fpms[1].Kill()
	}()
	res := load(ctx, t, c.gw.URL, 12, 100000, func(w int) (string, string) {
		if w%3 == 0 {
			return "POST", "/whoami.php?ms=10"
		}
		return "GET", "/whoami.php?ms=10"
	})
	var gets, posts, failedGets, failedPosts, afterKill int
	for _, r := range res {
		if r.method == "GET" {
			gets++
		} else {
			posts++
		}
		if r.status != 200 {
			if r.method == "GET" {
				failedGets++
				t.Errorf("GET failed: %d %s %s", r.status, r.backend, r.err)
			} else {
				failedPosts++
			}
		}
		if r.status == 200 && r.backend == "b2" && r.start.After(killedAt) {
			afterKill++
		}
	}
	// Failed POSTs: only those in flight on b2 when it died (4 workers
	// send POSTs, so at most 4).
	t.Logf("%d GETs (%d failed), %d POSTs (%d failed), b2 answered %d after the kill", gets, failedGets, posts, failedPosts, afterKill)
	if failedPosts > 4 {
		t.Errorf("%d POSTs failed; at most the 4 in flight on b2 may", failedPosts)
	}
	// No attempt on b2 later than a second after the kill.
	last := lastAttempt(c.gw.Logs.String(), c.fpms[1].Addr)
	if d := last.Sub(killedAt); !last.IsZero() && d > time.Second {
		t.Errorf("last attempt on the dead backend %v after the kill", d)
	}
	t.Logf("last failed attempt on the dead backend %v after the kill", last.Sub(killedAt))
}

// lastAttempt returns the time of the last log line that names a failed
// attempt on addr.
func lastAttempt(logs, addr string) time.Time {
	var last time.Time
	for _, line := range strings.Split(logs, "\n") {
		if !strings.Contains(line, "backend="+addr) || !strings.Contains(line, "err=") {
			continue
		}
		ts, _, _ := strings.Cut(strings.TrimPrefix(line, "time="), " ")
		if tm, err := time.Parse(time.RFC3339Nano, ts); err == nil && tm.After(last) {
			last = tm
		}
	}
	return last
}

func TestPausedBackend(t *testing.T) {
	pc := phpPool()
	pc.StaticRoot = ""
	pc.TryTimeout = 300 * time.Millisecond
	pc.Balancer.BreakerOpenTime = 2 * time.Second
	hc := fastHealth()
	c := startCluster(t, threeFPMs(fpmtest.Options{MaxChildren: 4}), pc, hc)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer cancel()
	var pausedAt, resumedAt time.Time
	var openedAt time.Time
	go func() { // pauses b2 at 1 s, resumes it at 3 s
		time.Sleep(time.Second)
		pausedAt = time.Now()
		c.fpms[1].Pause()
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			if openedAt.IsZero() && c.stats(1).Breaker == balancer.BreakerOpen {
				openedAt = time.Now()
			}
			time.Sleep(10 * time.Millisecond)
		}
		resumedAt = time.Now()
		c.fpms[1].Resume()
	}()
	res := load(ctx, t, c.gw.URL, 8, 100000, func(int) (string, string) { return "GET", "/whoami.php?ms=5" })
	var failed int
	var back time.Time
	for _, r := range res {
		if r.status != 200 {
			failed++
		}
		if r.backend == "b2" && !resumedAt.IsZero() && r.start.After(resumedAt) && (back.IsZero() || r.end.Before(back)) {
			back = r.end
		}
	}
	t.Logf("%d requests, %d failed; breaker open %v after the pause; b2 back %v after SIGCONT",
		len(res), failed, openedAt.Sub(pausedAt), back.Sub(resumedAt))
	if openedAt.IsZero() {
		t.Errorf("b2's breaker never opened while it was paused")
	}
	if failed > 0 {
		t.Errorf("%d GETs failed; each should have been retried on another backend", failed)
	}
	if back.IsZero() {
		t.Fatalf("b2 never served again after SIGCONT")
	}
	// Within the open time plus one probe interval, with a second's slack
	// for a loaded machine.
	if limit := pc.Balancer.BreakerOpenTime + hc.Interval + time.Second; back.Sub(resumedAt) > limit {
		t.Errorf("b2 back after %v, want within %v", back.Sub(resumedAt), limit)
	}
}

func TestSlowPool(t *testing.T) {
	pc := phpPool()
	pc.StaticRoot = ""
	opts := threeFPMs(fpmtest.Options{MaxChildren: 4})
	opts[2] = fpmtest.Options{MaxChildren: 1, Extra: map[string]string{"env[WORK_MS]": "100"}}
	c := startCluster(t, opts, pc, fastHealth())
	waitFor(t, "the slow pool's limit to be learned from FPM", 5*time.Second, func() bool { return c.stats(2).MaxConcurrent == 1 })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	res := load(ctx, t, c.gw.URL, 12, 100000, func(int) (string, string) { return "GET", "/whoami.php?ms=2" })
	var fast, all []time.Duration
	share := map[string]int{}
	for _, r := range res {
		if r.status != 200 {
			t.Errorf("request failed: %d %s", r.status, r.err)
			continue
		}
		d := r.end.Sub(r.start)
		all = append(all, d)
		share[r.backend]++
		if r.backend != "b3" {
			fast = append(fast, d)
		}
	}
	slowShare := float64(share["b3"]) / float64(len(all))
	p99all, p99fast := p99(all), p99(fast)
	t.Logf("%d requests: shares %v (slow pool %.2f%%); p99 all %v, fast pools %v", len(all), share, 100*slowShare, p99all, p99fast)
	if slowShare >= 0.2 {
		t.Errorf("the slow pool took %.1f%% of the traffic, want clearly less than a third", 100*slowShare)
	}
	if p99all > 2*p99fast+20*time.Millisecond {
		t.Errorf("p99 %v, fast pools' p99 %v: the slow pool drags the tail", p99all, p99fast)
	}
}

func p99(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[len(ds)*99/100]
}

func TestWeights(t *testing.T) {
	pc := phpPool()
	pc.StaticRoot = ""
	pc.Weights = map[string]int{"b1": 1, "b2": 2, "b3": 3}
	// Weights alone: no status probe, whose listen-queue penalty would
	// move shares on a loaded machine.
	hc := fastHealth()
	hc.StatusPath = ""
	c := startCluster(t, threeFPMs(fpmtest.Options{MaxChildren: 4}), pc, hc)
	// One request at a time, as a canary at low traffic sees it (every
	// pick finds the backends idle), and six at a time (least connections
	// keeps in-flight counts in proportion to weight).
	for _, workers := range []int{1, 6} {
		res := load(context.Background(), t, c.gw.URL, workers, 10000/workers, func(int) (string, string) { return "GET", "/whoami.php" })
		share := map[string]int{}
		for _, r := range res {
			if r.status != 200 {
				t.Fatalf("request failed: %d %s", r.status, r.err)
			}
			share[r.backend]++
		}
		for i, name := range []string{"b1", "b2", "b3"} {
			got := 100 * float64(share[name]) / float64(len(res))
			want := 100 * float64(i+1) / 6
			t.Logf("%d at a time: %s %.1f%% (want %.1f%%)", workers, name, got, want)
			// Under concurrency the shares also follow each pool's speed
			// on this shared machine (least connections is meant to):
			// only the in-flight proportions are the balancer's; the
			// figures are logged, the strict check is one at a time.
			if workers == 1 && (got < want-2 || got > want+2) {
				t.Errorf("%d at a time: %s got %.1f%% of %d requests, want %.1f%% ± 2", workers, name, got, len(res), want)
			}
		}
	}
}

// TestQueue: a backend at its limit makes requests wait in the gateway's
// queue, not in FPM's listen backlog; past the queue timeout, or with the
// queue full, they get 503.
func TestQueue(t *testing.T) {
	fpmtest.Need(t)
	fpm := fpmtest.Start(t, fpmtest.Options{Addr: fpmtest.FreePort(t, "127.0.0.2"), MaxChildren: 2})
	pc := phpPool(fpm.Addr)
	pc.StaticRoot = ""
	pc.MaxConns = 2
	pc.Balancer.MaxQueue = 3
	pc.Balancer.QueueTimeout = 1500 * time.Millisecond
	gw, g := startGatewayG(t, "127.0.1.1", withPool(pc))
	c := client(t)
	get := func(path string) chan int {
		ch := make(chan int, 1)
		go func() {
			resp, err := c.Get(gw.URL + path)
			if err != nil {
				ch <- -1
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			ch <- resp.StatusCode
		}()
		return ch
	}
	// Two long requests take both workers; three more wait in the queue.
	busy := []chan int{get("/sleep.php?s=3"), get("/sleep.php?s=3")}
	waitFor(t, "both workers busy", 5*time.Second, func() bool { return inFlight(g) == 2 })
	queued := []chan int{get("/hello.php"), get("/hello.php"), get("/hello.php")}
	waitFor(t, "three requests queued in the gateway", 5*time.Second, func() bool { return g.Queued() == 3 })
	if ls, err := lab.ReadListenerStats(fpm.Addr); err != nil || ls.AcceptQueue != 0 {
		t.Errorf("FPM's listen backlog: %+v, %v; want the requests waiting in the gateway", ls, err)
	}
	// The queue is full: the next request is refused at once.
	if code := <-get("/hello.php"); code != 503 {
		t.Errorf("request past a full queue: %d, want 503", code)
	}
	// The queued ones time out before a worker frees up.
	for _, ch := range queued {
		if code := <-ch; code != 503 {
			t.Errorf("queued request: %d, want 503 after the queue timeout", code)
		}
	}
	for _, ch := range busy {
		if code := <-ch; code != 200 {
			t.Errorf("long request: %d", code)
		}
	}
	// With a free worker, a queued request is served.
	first, second, third := get("/sleep.php?s=1"), get("/sleep.php?s=1"), get("/hello.php")
	for _, ch := range []chan int{first, second, third} {
		if code := <-ch; code != 200 {
			t.Errorf("request with a slot freed in time: %d, want 200", code)
		}
	}
}

func inFlight(g *gateway.Gateway) int64 {
	var n int64
	for _, st := range g.PoolStats() {
		for _, b := range st {
			n += b.InFlight
		}
	}
	return n
}

// TestIdleConnsDoNotFailChecks: a small FPM pool whose every worker is
// bound to this gateway's idle keep-alive connections, after a burst of
// requests, must not be taken down by its health checks, which queue in
// FPM's accept backlog behind those connections. A check that times out
// while the gateway sent the backend nothing makes the gateway close its
// idle connections to it, which frees the workers.
func TestIdleConnsDoNotFailChecks(t *testing.T) {
	pc := phpPool()
	pc.StaticRoot = ""
	// Fall 3: one check more after the close, for a loaded machine.
	hc := fastHealth()
	hc.Fall = 3
	c := startCluster(t, []fpmtest.Options{{MaxChildren: 2}}, pc, hc)
	if got := c.stats(0).MaxConcurrent; got != 2 {
		t.Fatalf("limit learned from FPM = %d, want 2", got)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A burst that takes both workers, each on a keep-alive connection
	// that stays idle in the gateway's pool afterwards.
	for _, r := range load(ctx, t, c.gw.URL, 4, 5, func(int) (string, string) { return "GET", "/whoami.php?ms=20" }) {
		if r.status != 200 {
			t.Fatalf("burst: %s %d %s", r.method, r.status, r.err)
		}
	}
	// Quiet for eight check intervals: three checks stuck in the backlog
	// would have taken the backend down.
	deadline := time.Now().Add(8 * hc.Interval)
	for time.Now().Before(deadline) {
		if !c.stats(0).Healthy {
			t.Fatalf("the backend went down while the gateway was idle: its checks waited behind the gateway's own idle connections\n%s", c.gw.Logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if r := send(ctx, client(t), "GET", c.gw.URL+"/whoami.php"); r.status != 200 {
		t.Fatalf("after the quiet spell: %d %s", r.status, r.err)
	}
	if logs := c.gw.Logs.String(); !strings.Contains(logs, "closed them, freeing FPM workers") {
		t.Errorf("no log line of the idle connections closed for a timed-out check:\n%s", logs)
	}
}
