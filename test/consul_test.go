package test

// consul_test.go: discovery and self-registration against a real Consul
// agent (bin/consul, -dev, on 127.0.0.1) and real php-fpm pools on
// 127.0.0.2 and up: backends that join, leave and fail their checks under
// load, the agent killed under load, service entries without a usable
// address, and the fcgigate binary's own registration.

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/goleak"

	"github.com/fcgigate/fcgigate/balancer"
	"github.com/fcgigate/fcgigate/config"
	"github.com/fcgigate/fcgigate/discovery"
	"github.com/fcgigate/fcgigate/gateway"
	"github.com/fcgigate/fcgigate/health"
	"github.com/fcgigate/fcgigate/test/consultest"
	"github.com/fcgigate/fcgigate/test/fpmtest"
	"github.com/fcgigate/fcgigate/wiring"
)

// phpService is the Consul service of the FPM nodes.
const phpService = "php-app"

// consulCluster is a Consul agent, php-fpm pools b1, b2, ... on 127.0.0.2
// and up, and an in-process gateway whose pool "php" follows the passing
// instances of phpService through the same wiring as `fcgigate serve`,
// with a health prober fed as cmd feeds it.
type consulCluster struct {
	agent *consultest.Agent
	fpms  []*fpmtest.FPM
	gw    *testGateway
	g     *gateway.Gateway
}

// startConsulCluster starts n FPMs, registers the first registered of them
// in Consul, and returns once the gateway's pool holds those.
func startConsulCluster(t *testing.T, n, registered int) *consulCluster {
	t.Helper()
	c := newConsulCluster(t, n)
	for i := range registered {
		c.register(i)
	}
	c.startGateway(t)
	want := make([]string, registered)
	for i := range registered {
		want[i] = c.fpms[i].Addr
	}
	c.awaitBackends(t, "the registered backends in the pool", want, time.Now(), 10*time.Second)
	return c
}

// newConsulCluster starts the agent and n FPMs, without a gateway.
func newConsulCluster(t *testing.T, n int) *consulCluster {
	t.Helper()
	fpmtest.Need(t)
	consultest.Need(t)
	c := &consulCluster{agent: consultest.Start(t)}
	for i := range n {
		c.fpms = append(c.fpms, fpmtest.Start(t, fpmtest.Options{
			Addr:  fpmtest.FreePort(t, fmt.Sprintf("127.0.0.%d", i+2)),
			Extra: map[string]string{"env[FPM_NAME]": fmt.Sprintf("b%d", i+1)},
		}))
	}
	return c
}

// startGateway starts the gateway, its prober and the wiring to Consul.
func (c *consulCluster) startGateway(t *testing.T) {
	t.Helper()
	pc := phpPool()
	pc.StaticRoot = ""
	pc.Service = phpService
	pc.ReadTimeout = 5 * time.Second // a stuck request shows in the log
	cfg := withPool(pc)
	c.gw, c.g = startGatewayG(t, "127.0.1.1", cfg)
	log := slog.New(slog.NewTextHandler(c.gw.Logs, &slog.HandlerOptions{Level: slog.LevelDebug}))

	hc := fastHealth()
	hc.Reporter = wiring.ProbeReporter(c.g, pc.Name)
	prober := health.New(hc, log)
	file := &config.File{
		Gateway:  cfg.Defaults(),
		Consul:   discovery.Config{Address: c.agent.HTTPAddr},
		Discover: map[string]discovery.Query{pc.Name: {Service: phpService}},
	}
	ctx, cancel := context.WithCancel(context.Background())
	loops, err := wiring.Start(ctx, wiring.Options{
		Config: file, Gateway: c.g, Log: log,
		OnMembers: func(_ string, addrs []string) { prober.SetTargets(addrs) },
	})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	probed := make(chan struct{})
	go func() { defer close(probed); prober.Run(ctx) }() // ends with the test
	t.Cleanup(func() {
		cancel()
		loops.Close()
		<-probed
	})
}

func (c *consulCluster) id(i int) string      { return fmt.Sprintf("fpm-b%d", i+1) }
func (c *consulCluster) checkID(i int) string { return c.id(i) + "-ttl" }

// register registers FPM i in Consul as its node's agent would, with a
// TTL check that passes until the test says otherwise.
func (c *consulCluster) register(i int) {
	host, port := splitAddr(c.fpms[i].Addr)
	c.agent.Register(&api.AgentServiceRegistration{
		ID: c.id(i), Name: phpService, Address: host, Port: port,
		Meta:  map[string]string{"fpm": fmt.Sprintf("b%d", i+1)},
		Check: &api.AgentServiceCheck{CheckID: c.checkID(i), TTL: "10m", Status: api.HealthPassing},
	})
}

func splitAddr(addr string) (string, int) {
	host, port, _ := net.SplitHostPort(addr)
	n, _ := strconv.Atoi(port)
	return host, n
}

// addrs returns the addresses of the FPMs numbered (from 0) in is.
func (c *consulCluster) addrs(is ...int) []string {
	out := make([]string, len(is))
	for j, i := range is {
		out[j] = c.fpms[i].Addr
	}
	return out
}

// awaitBackends polls, every millisecond, until the pool's backends are
// want (in any order), and returns the time since since.
func (c *consulCluster) awaitBackends(t *testing.T, what string, want []string, since time.Time, timeout time.Duration) time.Duration {
	t.Helper()
	want = slices.Sorted(slices.Values(want))
	deadline := time.Now().Add(timeout)
	for {
		got, _ := c.g.Backends("php")
		if slices.Equal(slices.Sorted(slices.Values(got)), want) {
			return time.Since(since)
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: backends %v, want %v", timeout, what, got, want)
		}
		time.Sleep(time.Millisecond) // polling a condition no event reports
	}
}

// stats returns the balancer's view of FPM i.
func (c *consulCluster) stats(i int) balancer.BackendStats {
	for _, b := range c.g.PoolStats()["php"] {
		if b.Addr == c.fpms[i].Addr {
			return b
		}
	}
	return balancer.BackendStats{}
}

// liveLoad sends requests from workers goroutines until stopped, keeping
// the results where the test can look at them meanwhile.
type liveLoad struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex // protects res
	res    []result
}

// startLoad starts workers that each send GETs of path to the gateway, one
// after the other (POSTs from every third worker if post is set).
func startLoad(t *testing.T, c *consulCluster, workers int, path string, post bool) *liveLoad {
	cl := client(t)
	ctx, cancel := context.WithCancel(context.Background())
	l := &liveLoad{cancel: cancel}
	t.Cleanup(func() { l.stop() })
	for w := range workers {
		l.wg.Add(1)
		go func() { // ends when stop cancels ctx
			defer l.wg.Done()
			method := "GET"
			if post && w%3 == 0 {
				method = "POST"
			}
			for ctx.Err() == nil {
				r := send(ctx, cl, method, c.gw.URL+path)
				if ctx.Err() != nil && r.status == -1 {
					return // cut off by stop, not by the gateway
				}
				l.mu.Lock()
				l.res = append(l.res, r)
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// stop ends the load and returns its results. It may be called again.
func (l *liveLoad) stop() []result {
	l.cancel()
	l.wg.Wait()
	return l.results()
}

func (l *liveLoad) results() []result {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.res)
}

// ranPast reports whether a request that started after tm has ended.
func (l *liveLoad) ranPast(tm time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.res {
		if r.start.After(tm) {
			return true
		}
	}
	return false
}

// failures returns the requests that did not get a 200.
func failures(res []result) []result {
	var out []result
	for _, r := range res {
		if r.status != 200 {
			out = append(out, r)
		}
	}
	return out
}

// consulLeakCheck makes the test fail if it leaves goroutines behind. Call
// it first, so that its check runs after every other cleanup.
func consulLeakCheck(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

// TestConsulJoin: a fourth FPM registered in Consul gets requests within
// a second.
func TestConsulJoin(t *testing.T) {
	consulLeakCheck(t)
	c := startConsulCluster(t, 4, 3)
	l := startLoad(t, c, 6, "/whoami.php?ms=5", false)
	waitFor(t, "the load to run", 5*time.Second, func() bool { return len(l.results()) > 0 })

	t0 := time.Now()
	c.register(3)
	inPool := c.awaitBackends(t, "b4 in the pool", c.addrs(0, 1, 2, 3), t0, 5*time.Second)
	var first time.Duration
	waitFor(t, "a request answered by b4", 5*time.Second, func() bool {
		for _, r := range l.results() {
			if r.backend == "b4" {
				first = r.start.Sub(t0)
				return true
			}
		}
		return false
	})
	res := l.stop()
	t.Logf("b4 in the pool %v after its registration; its first request started %v after it; %d requests", inPool, first, len(res))
	if first > time.Second {
		t.Errorf("b4's first request started %v after its registration, want within 1s", first)
	}
	for _, r := range failures(res) {
		t.Errorf("request failed: %d %s", r.status, r.err)
	}
}

// TestConsulLeave: an FPM deregistered from Consul gets no new request
// within a second, while the requests it has in flight finish.
func TestConsulLeave(t *testing.T) {
	consulLeakCheck(t)
	c := startConsulCluster(t, 3, 3)
	l := startLoad(t, c, 9, "/whoami.php?ms=300", false)
	waitFor(t, "requests in flight on b2", 10*time.Second, func() bool { return c.stats(1).InFlight > 0 })

	t0 := time.Now()
	c.agent.Deregister(c.id(1))
	gone := c.awaitBackends(t, "b2 out of the pool", c.addrs(0, 2), t0, 5*time.Second)
	waitFor(t, "the load to run 1.5s past the deregistration", 10*time.Second, func() bool { return l.ranPast(t0.Add(1500 * time.Millisecond)) })
	res := l.stop()

	var finished int
	lastStart := -time.Hour
	for _, r := range res {
		if r.backend != "b2" {
			continue
		}
		if r.start.Before(t0) && r.end.After(t0) {
			finished++
		}
		lastStart = max(lastStart, r.start.Sub(t0))
	}
	t.Logf("b2 out of the pool %v after its deregistration; %d of its requests in flight then finished; its last request started %v from it; %d requests",
		gone, finished, lastStart, len(res))
	if finished == 0 {
		t.Errorf("no request in flight on b2 at the deregistration finished with its answer")
	}
	if lastStart > time.Second {
		t.Errorf("b2 got a request %v after its deregistration, want none after 1s", lastStart)
	}
	for _, r := range failures(res) {
		t.Errorf("request failed: %d %s (backend %q)", r.status, r.err, r.backend)
	}
}

// TestConsulCriticalCheck: an FPM whose Consul check turns critical leaves
// the pool within a second, though it still answers, and comes back when
// the check passes again.
func TestConsulCriticalCheck(t *testing.T) {
	consulLeakCheck(t)
	c := startConsulCluster(t, 3, 3)
	l := startLoad(t, c, 6, "/whoami.php?ms=5", false)
	waitFor(t, "the load to run", 5*time.Second, func() bool { return len(l.results()) > 0 })

	t0 := time.Now()
	c.agent.SetTTL(c.checkID(2), api.HealthCritical, "failed by the test")
	gone := c.awaitBackends(t, "b3 out of the pool", c.addrs(0, 1), t0, 5*time.Second)
	waitFor(t, "the load to run 1.2s past the failure", 10*time.Second, func() bool { return l.ranPast(t0.Add(1200 * time.Millisecond)) })
	t1 := time.Now()
	c.agent.SetTTL(c.checkID(2), api.HealthPassing, "passing again")
	back := c.awaitBackends(t, "b3 back in the pool", c.addrs(0, 1, 2), t1, 5*time.Second)
	res := l.stop()

	var lastStart time.Duration
	for _, r := range res {
		if r.backend == "b3" && r.start.After(t0) && r.start.Before(t1) {
			lastStart = max(lastStart, r.start.Sub(t0))
		}
	}
	t.Logf("b3 out of the pool %v after its check failed, last request on it %v after; back %v after it passed; %d requests",
		gone, lastStart, back, len(res))
	if gone > time.Second || lastStart > time.Second {
		t.Errorf("b3 left the pool %v after its check failed (last request %v after), want within 1s", gone, lastStart)
	}
	for _, r := range failures(res) {
		t.Errorf("request failed: %d %s", r.status, r.err)
	}
}

// TestConsulAgentKilled: with the Consul agent killed under load, no
// request fails for 30 s; once it is back, the changes made are picked up
// within 2 s.
func TestConsulAgentKilled(t *testing.T) {
	consulLeakCheck(t)
	const (
		loadFor = 30 * time.Second
		downFor = 20 * time.Second
	)
	c := startConsulCluster(t, 4, 3)
	start := time.Now()
	l := startLoad(t, c, 6, "/whoami.php?ms=5", true)
	waitFor(t, "the load to run", 5*time.Second, func() bool { return len(l.results()) > 0 })

	killed := time.Now()
	c.agent.Kill()
	// While Consul is away the pool keeps its members.
	for time.Since(killed) < downFor {
		if got, _ := c.g.Backends("php"); len(got) != 3 {
			t.Fatalf("backends %v while Consul is down; want the last three", got)
		}
		time.Sleep(50 * time.Millisecond) // the length of the outage, not a synchronisation
	}
	c.agent.Restart()
	back := time.Now()
	// Consul lost its state (-dev): the FPM nodes' agents would register
	// them again. b3 does not come back, and b4 joins.
	for _, i := range []int{0, 1, 3} {
		c.register(i)
	}
	registered := time.Now()
	picked := c.awaitBackends(t, "b1, b2 and b4 after Consul's return", c.addrs(0, 1, 3), registered, 10*time.Second)
	waitFor(t, "b4 to answer", 5*time.Second, func() bool {
		return slices.ContainsFunc(l.results(), func(r result) bool { return r.backend == "b4" })
	})
	for time.Since(start) < loadFor {
		time.Sleep(50 * time.Millisecond) // the length of the load, not a synchronisation
	}
	res := l.stop()
	t.Logf("%d requests in %v, %d failed; Consul down %v (killed, then restarted and leading again); the new members in the pool %v after their registration (%v after the agent's return)",
		len(res), time.Since(start).Round(time.Millisecond), len(failures(res)), back.Sub(killed).Round(time.Millisecond),
		picked, picked+registered.Sub(back))
	if picked > 2*time.Second {
		t.Errorf("changes picked up %v after Consul's return, want within 2s", picked)
	}
	for _, r := range failures(res) {
		t.Errorf("%s failed: %d %s", r.method, r.status, r.err)
	}
	if n := strings.Count(c.gw.Logs.String(), "Consul query failed: keeping the last members"); n != 1 {
		t.Errorf("%d warnings about the outage, want 1", n)
	}
}

// TestConsulDownAtStart: a gateway started while Consul is down serves 503
// for its discovered pool, keeps retrying, and fills the pool once Consul
// answers.
func TestConsulDownAtStart(t *testing.T) {
	consulLeakCheck(t)
	c := newConsulCluster(t, 1)
	c.agent.Kill()
	c.startGateway(t)
	cl := client(t)
	get := func() int {
		resp, err := cl.Get(c.gw.URL + "/whoami.php")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(); code != 503 {
		t.Errorf("with Consul down and no member yet: %d, want 503", code)
	}
	waitFor(t, "the watcher to log that Consul is down", 5*time.Second, func() bool {
		return strings.Contains(c.gw.Logs.String(), "Consul query failed")
	})
	c.agent.Restart()
	c.register(0)
	t0 := time.Now()
	in := c.awaitBackends(t, "b1 in the pool once Consul is up", c.addrs(0), t0, 5*time.Second)
	t.Logf("b1 in the pool %v after its registration with the agent back", in)
	if in > 2*time.Second {
		t.Errorf("b1 in the pool %v after its registration, want within 2s", in)
	}
	if code := get(); code != 200 {
		t.Errorf("once b1 is in: %d, want 200", code)
	}
}

// TestConsulBadEntries: service entries with an empty address, port 0 or
// an address another entry has are left out, with one log line each.
func TestConsulBadEntries(t *testing.T) {
	consulLeakCheck(t)
	c := startConsulCluster(t, 2, 1)
	host, port := splitAddr(c.fpms[0].Addr)
	ttl := &api.AgentServiceCheck{TTL: "10m", Status: api.HealthPassing}
	c.agent.Register(&api.AgentServiceRegistration{ID: "bad-port0", Name: phpService, Address: "127.0.0.9", Port: 0, Check: ttl})
	c.agent.Register(&api.AgentServiceRegistration{ID: "zz-dup-of-b1", Name: phpService, Address: host, Port: port, Check: ttl})
	// An external node whose address is blank, and a service without one.
	c.agent.CatalogRegister(&api.CatalogRegistration{
		Node: "ext-blank", Address: " ",
		Service: &api.AgentService{ID: "bad-empty", Service: phpService, Port: 9000},
	})
	if err := waitLog(c.gw.Logs, 5*time.Second, "bad-port0", "zz-dup-of-b1", "bad-empty"); err != nil {
		t.Fatal(err)
	}
	// More answers from Consul, with the bad entries still listed: b2
	// joins, leaves and joins again.
	c.register(1)
	c.awaitBackends(t, "b2 in the pool", c.addrs(0, 1), time.Now(), 5*time.Second)
	c.agent.Deregister(c.id(1))
	c.awaitBackends(t, "b2 out of the pool", c.addrs(0), time.Now(), 5*time.Second)
	c.register(1)
	c.awaitBackends(t, "b2 back in the pool", c.addrs(0, 1), time.Now(), 5*time.Second)

	logs := c.gw.Logs.String()
	for id, reason := range map[string]string{
		"bad-port0":    `reason="port 0"`,
		"zz-dup-of-b1": `reason="duplicate address (also `,
		"bad-empty":    `reason="empty address"`,
	} {
		var lines []string
		for _, line := range strings.Split(logs, "\n") {
			if strings.Contains(line, "ignoring a Consul service entry") && strings.Contains(line, "id="+id+" ") {
				lines = append(lines, line)
			}
		}
		if len(lines) != 1 || !strings.Contains(lines[0], reason) {
			t.Errorf("%s: %d log lines, want 1 with %s:\n%s", id, len(lines), reason, strings.Join(lines, "\n"))
		}
	}
	if got, _ := c.g.Backends("php"); len(got) != 2 {
		t.Errorf("backends %v, want b1 and b2 only", got)
	}
}

// waitLog polls until logs hold a line about each of the bad entries ids.
func waitLog(logs *syncBuffer, timeout time.Duration, ids ...string) error {
	deadline := time.Now().Add(timeout)
	for {
		s := logs.String()
		if !slices.ContainsFunc(ids, func(id string) bool { return !strings.Contains(s, "id="+id+" ") }) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no log line about each of %v after %v:\n%s", ids, timeout, s)
		}
		time.Sleep(5 * time.Millisecond) // polling a condition no event reports
	}
}

// TestGatewayRegistersInConsul runs the fcgigate binary with [register]:
// it appears in Consul's catalog, passing its check on the admin
// listener's /healthz, and is gone once SIGTERM has stopped it.
func TestGatewayRegistersInConsul(t *testing.T) {
	consulLeakCheck(t)
	agent := consultest.Start(t)
	bin := filepath.Join(t.TempDir(), "fcgigate")
	build := exec.Command("go", "build", "-o", bin, "./cmd/fcgigate")
	build.Dir = fpmtest.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	front, admin := fpmtest.FreePort(t, "127.0.1.3"), fpmtest.FreePort(t, "127.0.1.3")
	_, frontPort := splitAddr(front)
	conf := filepath.Join(t.TempDir(), "fcgigate.toml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`
[server]
listen = %q
drain_timeout = "5s"

[admin]
listen = %q

[consul]
address = %q

[register]
enabled = true
check_interval = "1s"
tags = ["test"]

[[pool]]
name = "php"
backends = ["127.0.0.2:9"]
document_root = "/srv/app"
health = { enabled = false }
`, front, admin, agent.HTTPAddr)), 0o644); err != nil {
		t.Fatal(err)
	}
	var out syncBuffer
	cmd := exec.Command(bin, "serve", "-config", conf)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }() // ends when the gateway exits
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("fcgigate output:\n%s", out.String())
		}
	})

	id := "fcgigate-127.0.1.3-" + strconv.Itoa(frontPort)
	started := time.Now()
	var passing time.Duration
	waitFor(t, "the gateway registered in Consul, passing its check", 20*time.Second, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		es, err := agent.Passing(ctx, "fcgigate")
		ok := err == nil && len(es) == 1 && es[0].Service.ID == id && es[0].Service.Address == "127.0.1.3" &&
			es[0].Service.Port == frontPort && slices.Equal(es[0].Service.Tags, []string{"test"})
		if ok {
			passing = time.Since(started)
		}
		return ok
	})
	resp, err := http.Get("http://" + admin + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok\n" {
		t.Errorf("GET /healthz: %d %q", resp.StatusCode, body)
	}

	term := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("fcgigate exited with %v after SIGTERM, want 0", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("fcgigate still running 20s after SIGTERM")
	}
	stopped := time.Since(term)
	svcs, err := agent.Client().Agent().Services()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := svcs[id]; ok {
		t.Errorf("%s still registered with the agent after the gateway exited", id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if entries, _, err := agent.Client().Catalog().Service("fcgigate", "", (&api.QueryOptions{}).WithContext(ctx)); err != nil || len(entries) != 0 {
		t.Errorf("catalog lists %d fcgigate instances after SIGTERM (%v), want none", len(entries), err)
	}
	if !bytes.Contains([]byte(out.String()), []byte("deregistered from Consul")) {
		t.Errorf("no deregistration in the log")
	}
	t.Logf("registered and passing %v after start; exited and deregistered %v after SIGTERM", passing.Round(time.Millisecond), stopped.Round(time.Millisecond))
}
