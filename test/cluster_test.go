package test

// cluster_test.go: three fcgigate processes on 127.0.1.1-3, gossiping over
// memberlist, in front of three real php-fpm pools on 127.0.0.2-4: a
// backend killed, a gateway cut off from a backend or from its peers
// (iptables), a gateway killed and restarted, a wrong encryption key, and
// cluster-aware least-connections against local least-connections.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fcgigate/fcgigate/test/fpmtest"
)

// buildFcgigate builds the gateway binary into a temporary directory.
func buildFcgigate(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "fcgigate")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/fcgigate")
	cmd.Dir = fpmtest.RepoRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// jsonLog collects a process's JSON log lines.
type jsonLog struct {
	mu      sync.Mutex // protects partial, records, raw
	partial []byte
	records []map[string]any
	raw     []string
}

func (l *jsonLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		line := string(l.partial[:i])
		l.partial = l.partial[i+1:]
		l.raw = append(l.raw, line)
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil {
			l.records = append(l.records, rec)
		}
	}
	return len(p), nil
}

func (l *jsonLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.raw, "\n")
}

// matching returns the records with message msg and the given attributes
// (compared as strings), in the order they were logged.
func (l *jsonLog) matching(msg string, attrs ...string) []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
next:
	for _, r := range l.records {
		if r["msg"] != msg {
			continue
		}
		for i := 0; i+1 < len(attrs); i += 2 {
			if fmt.Sprint(r[attrs[i]]) != attrs[i+1] {
				continue next
			}
		}
		out = append(out, r)
	}
	return out
}

// find returns the time of the first record with message msg and the
// given attributes, if any.
func (l *jsonLog) find(msg string, attrs ...string) (time.Time, bool) {
	rs := l.matching(msg, attrs...)
	if len(rs) == 0 {
		return time.Time{}, false
	}
	ts, _ := time.Parse(time.RFC3339Nano, fmt.Sprint(rs[0]["time"]))
	return ts, true
}

// count returns how many records have message msg and the attributes.
func (l *jsonLog) count(msg string, attrs ...string) int { return len(l.matching(msg, attrs...)) }

// gwProc is one fcgigate process.
type gwProc struct {
	n       int
	name    string
	host    string // 127.0.1.n
	gossip  string // host:port of its member
	cfgPath string
	bin     string
	url     string
	log     *jsonLog
	cmd     *exec.Cmd
	exited  chan struct{}
}

// gwOptions is what varies between the gateways of a test.
type gwOptions struct {
	interval string // probe interval
	balance  string
	keyring  string   // keyring file, "" for none
	noSeeds  bool     // no static seeds: find the others another way
	extra    string   // more TOML, appended
	backends []string // the pool's backends, all of the setup's if nil
}

// clusterSetup is three FPMs and the gateways in front of them.
type clusterSetup struct {
	bin      string
	fpms     []*fpmtest.FPM
	backends []string
	seeds    []string
	gws      []*gwProc
}

// needRoot skips a test that needs iptables unless it runs as root, or
// fails it under CI.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		if _, err := exec.LookPath("iptables"); err == nil {
			return
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("iptables as root is needed for the partition tests; CI is set, so this is a failure")
	}
	t.Skip("needs iptables and root; skipping (set CI=1 to make this a failure)")
}

// newClusterSetup starts three FPMs (workers each) and reserves three
// gossip addresses; gateways are started with start.
func newClusterSetup(t *testing.T, workers int) *clusterSetup {
	t.Helper()
	fpmtest.Need(t)
	cs := &clusterSetup{bin: buildFcgigate(t)}
	for i := range 3 {
		f := fpmtest.Start(t, fpmtest.Options{
			Addr:        fpmtest.FreePort(t, fmt.Sprintf("127.0.0.%d", i+2)),
			MaxChildren: workers,
			Extra:       map[string]string{"env[FPM_NAME]": fmt.Sprintf("b%d", i+1)},
		})
		cs.fpms = append(cs.fpms, f)
		cs.backends = append(cs.backends, f.Addr)
	}
	for i := range 3 {
		cs.seeds = append(cs.seeds, freeTCPUDP(t, fmt.Sprintf("127.0.1.%d", i+1)))
	}
	return cs
}

// freeTCPUDP returns host:port with the port free for both TCP and UDP.
func freeTCPUDP(t *testing.T, host string) string {
	t.Helper()
	for range 20 {
		addr := fpmtest.FreePort(t, host)
		if c, err := net.ListenPacket("udp", addr); err == nil {
			c.Close()
			return addr
		}
	}
	t.Fatalf("no free TCP and UDP port on %s", host)
	return ""
}

// start starts gateway n (1-3) with o; its seeds are all three.
func (cs *clusterSetup) start(t *testing.T, n int, o gwOptions) *gwProc {
	t.Helper()
	g := &gwProc{n: n, name: fmt.Sprintf("gw%d", n), host: fmt.Sprintf("127.0.1.%d", n), bin: cs.bin}
	if n <= len(cs.seeds) {
		g.gossip = cs.seeds[n-1]
	} else {
		g.gossip = freeTCPUDP(t, g.host)
	}
	if o.balance == "" {
		o.balance = "least-conn"
	}
	if o.interval == "" {
		o.interval = "250ms"
	}
	backends := cs.backends
	if o.backends != nil {
		backends = o.backends
	}
	seeds := cs.seeds
	if o.noSeeds {
		seeds = nil
	}
	quote := func(ss []string) string {
		q := make([]string, len(ss))
		for i, s := range ss {
			q[i] = strconv.Quote(s)
		}
		return strings.Join(q, ", ")
	}
	text := fmt.Sprintf(`[server]
listen = "%s:0"
drain_timeout = "2s"
[log]
level = "debug"
format = "json"
[cluster]
enabled = true
name = %q
bind = %q
seeds = [%s]
keyring_file = %q
[[pool]]
name = "php"
backends = [%s]
document_root = %q
source_address = %q
balance = %q
read_timeout = "10s"
max_requests_per_conn = 1
[pool.health]
interval = %q
timeout = "250ms"
rise = 1
fall = 2
`, g.host, g.name, g.gossip, quote(seeds), o.keyring, quote(backends), fpmtest.PHPDir(), g.host, o.balance, o.interval) + o.extra
	g.cfgPath = filepath.Join(t.TempDir(), g.name+".toml")
	if err := os.WriteFile(g.cfgPath, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	g.run(t)
	cs.gws = append(cs.gws, g)
	return g
}

// run starts g's process and waits until it serves.
func (g *gwProc) run(t *testing.T) {
	t.Helper()
	g.log = &jsonLog{}
	g.cmd = exec.Command(g.bin, "serve", "-config", g.cfgPath)
	g.cmd.Stderr = g.log
	if err := g.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	g.exited = exited
	cmd, log := g.cmd, g.log
	go func() { // ends when the process does
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM) // fails harmlessly if it has exited
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("%s log (tail):\n%s", g.name, tailLines(log.String(), 60))
		}
	})
	waitFor(t, g.name+" serving", 10*time.Second, func() bool {
		_, ok := g.log.find("fcgigate serving")
		return ok
	})
	g.log.mu.Lock()
	for _, r := range g.log.records {
		if r["msg"] == "fcgigate serving" {
			g.url = "http://" + fmt.Sprint(r["addr"])
		}
	}
	g.log.mu.Unlock()
}

// kill9 kills g's process with SIGKILL and waits for it to exit.
func (g *gwProc) kill9(t *testing.T) time.Time {
	t.Helper()
	at := time.Now()
	if err := g.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-g.exited
	return at
}

func tailLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	var keep []string
	for _, l := range lines {
		if !strings.Contains(l, `"level":"DEBUG"`) {
			keep = append(keep, l)
		}
	}
	if len(keep) > n {
		keep = keep[len(keep)-n:]
	}
	return strings.Join(keep, "\n")
}

// members returns the gateways g currently sees joined and not gone, from
// its log.
func (g *gwProc) members() map[string]bool {
	g.log.mu.Lock()
	defer g.log.mu.Unlock()
	m := map[string]bool{}
	for _, r := range g.log.records {
		switch r["msg"] {
		case "gateway joined":
			m[fmt.Sprint(r["name"])] = true
		case "gateway gone: dead or left":
			delete(m, fmt.Sprint(r["name"]))
		}
	}
	return m
}

// waitMembers waits until every gateway of gws sees all the others.
func waitMembers(t *testing.T, gws []*gwProc, timeout time.Duration) {
	t.Helper()
	waitFor(t, "every gateway to see the others", timeout, func() bool {
		for _, g := range gws {
			m := g.members()
			for _, o := range gws {
				if o != g && !m[o.name] {
					return false
				}
			}
		}
		return true
	})
}

// getFrom sends n GETs of path to g and returns the backends that answered
// (the body of whoami.php) and the failures.
func getFrom(t *testing.T, g *gwProc, n int, path string) (by map[string]int, failed []string) {
	c := client(t)
	by = map[string]int{}
	for range n {
		resp, err := c.Get(g.url + path)
		if err != nil {
			failed = append(failed, err.Error())
			continue
		}
		b, err := readAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			failed = append(failed, fmt.Sprintf("%d %s %v", resp.StatusCode, b, err))
			continue
		}
		by[b]++
	}
	return by, failed
}

func readAll(resp interface {
	Read([]byte) (int, error)
}) (string, error) {
	var b bytes.Buffer
	_, err := b.ReadFrom(resp)
	return b.String(), err
}

// TestClusterKillBackend: a backend killed while only gateway 1 sends it
// traffic and probes it often; gateways 2 and 3, which probe every 30s,
// stop routing to it within a second of gateway 1's finding.
func TestClusterKillBackend(t *testing.T) {
	cs := newClusterSetup(t, 4)
	g1 := cs.start(t, 1, gwOptions{interval: "250ms"})
	g2 := cs.start(t, 2, gwOptions{interval: "30s"})
	g3 := cs.start(t, 3, gwOptions{interval: "30s"})
	waitMembers(t, cs.gws, 10*time.Second)

	ctx, cancel := context.WithCancel(context.Background())
	loadDone := make(chan []result, 1)
	go func() { // ends when cancel is called
		loadDone <- load(ctx, t, g1.url, 4, 1<<30, func(int) (string, string) { return "GET", "/whoami.php?ms=5" })
	}()
	time.Sleep(500 * time.Millisecond) // let traffic flow before the kill; not synchronisation
	cs.fpms[1].Kill()
	b2 := cs.backends[1]
	var detected time.Time
	waitFor(t, "gateway 1 to find b2 down", 5*time.Second, func() bool {
		var ok bool
		detected, ok = g1.log.find("backend down", "addr", b2)
		return ok
	})
	for _, g := range []*gwProc{g2, g3} {
		var out time.Time
		waitFor(t, g.name+" to take b2 out", 5*time.Second, func() bool {
			var ok bool
			out, ok = takenOut(g, b2)
			return ok
		})
		d := out.Sub(detected)
		t.Logf("%s took b2 out %v after gateway 1 found it down", g.name, d.Round(time.Millisecond))
		if d > 1500*time.Millisecond { // 1s, with slack for a loaded machine
			t.Errorf("%s took %v to follow gateway 1, want within 1s", g.name, d)
		}
		by, failed := getFrom(t, g, 12, "/whoami.php")
		if by["b2"] > 0 || len(failed) > 0 {
			t.Errorf("%s after: answered by %v, failures %v", g.name, by, failed)
		}
	}
	cancel()
	<-loadDone
}

// takenOut returns when g took backend out: on the cluster's evidence, or
// on its own probes (which a peer's report makes it run at once).
func takenOut(g *gwProc, backend string) (time.Time, bool) {
	t1, ok1 := g.log.find("backend taken out on the cluster's evidence", "backend", backend)
	t2, ok2 := g.log.find("backend down", "addr", backend)
	switch {
	case ok1 && ok2:
		if t2.Before(t1) {
			return t2, true
		}
		return t1, true
	case ok1:
		return t1, true
	}
	return t2, ok2
}

// iptables runs iptables with args and, on success, removes the rule in
// t.Cleanup (only the rules this test added).
func iptables(t *testing.T, chain string, rule ...string) (remove func()) {
	t.Helper()
	args := append([]string{"-w", "-I", chain}, rule...)
	if out, err := exec.Command("iptables", args...).CombinedOutput(); err != nil {
		t.Fatalf("iptables %v: %v\n%s", args, err, out)
	}
	var once sync.Once
	remove = func() {
		once.Do(func() {
			del := append([]string{"-w", "-D", chain}, rule...)
			if out, err := exec.Command("iptables", del...).CombinedOutput(); err != nil {
				t.Errorf("iptables %v: %v\n%s", del, err, out)
			}
		})
	}
	t.Cleanup(remove)
	return remove
}

// TestClusterPartitionBackend: gateway 1 cut off from backend 2 stops
// using it; gateways 2 and 3 keep using it without an error; once the
// rule is gone gateway 1 uses it again.
func TestClusterPartitionBackend(t *testing.T) {
	needRoot(t)
	cs := newClusterSetup(t, 4)
	for i := 1; i <= 3; i++ {
		cs.start(t, i, gwOptions{interval: "250ms"})
	}
	g1, g2, g3 := cs.gws[0], cs.gws[1], cs.gws[2]
	waitMembers(t, cs.gws, 10*time.Second)
	b2 := cs.backends[1]
	_, port, _ := net.SplitHostPort(b2)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type run struct {
		g   *gwProc
		res chan []result
	}
	var runs []run
	for _, g := range cs.gws {
		r := run{g, make(chan []result, 1)}
		runs = append(runs, r)
		go func() { // ends when cancel is called
			r.res <- load(ctx, t, g.url, 2, 1<<30, func(int) (string, string) { return "GET", "/whoami.php?ms=5" })
		}()
	}
	time.Sleep(300 * time.Millisecond) // traffic before the cut; not synchronisation
	cutAt := time.Now()
	remove := iptables(t, "OUTPUT", "-s", "127.0.1.1", "-d", "127.0.0.3", "-p", "tcp", "--dport", port, "-j", "REJECT")
	var down time.Time
	waitFor(t, "gateway 1 to find b2 down", 5*time.Second, func() bool {
		var ok bool
		down, ok = g1.log.find("backend down", "addr", b2)
		return ok
	})
	t.Logf("gateway 1 found b2 down %v after the cut", down.Sub(cutAt).Round(time.Millisecond))
	time.Sleep(2 * time.Second) // a stretch of traffic with the cut in place
	healAt := time.Now()
	remove()
	waitFor(t, "gateway 1 to find b2 up again", 5*time.Second, func() bool {
		return g1.log.count("backend up", "addr", b2) > 0
	})
	// Its breaker, opened by the requests refused before the probes
	// caught up, may keep b2 out for its open_time (10s) more.
	waitFor(t, "gateway 1 to use b2 again", 20*time.Second, func() bool {
		by, _ := getFrom(t, g1, 6, "/whoami.php")
		return by["b2"] > 0
	})
	t.Logf("gateway 1 uses b2 again %v after the heal", time.Since(healAt).Round(time.Millisecond))
	cancel()

	for _, r := range runs {
		res := <-r.res
		var failed, b2During, b2After int
		for _, x := range res {
			if x.status != 200 {
				failed++
				continue
			}
			if x.backend == "b2" && x.start.After(down.Add(500*time.Millisecond)) && x.end.Before(healAt) {
				b2During++
			}
			if x.backend == "b2" && x.start.After(healAt) {
				b2After++
			}
		}
		t.Logf("%s: %d requests, %d failed, b2 answered %d during the cut, %d after", r.g.name, len(res), failed, b2During, b2After)
		switch r.g {
		case g1:
			if b2During > 0 {
				t.Errorf("gateway 1 used b2 %d times while cut off from it", b2During)
			}
		case g2, g3:
			if failed > 0 {
				t.Errorf("%s: %d requests failed", r.g.name, failed)
			}
			if b2During == 0 {
				t.Errorf("%s stopped using b2 though only gateway 1 was cut off", r.g.name)
			}
			if _, ok := r.g.log.find("backend taken out on the cluster's evidence", "backend", b2); ok {
				t.Errorf("%s took b2 out on gateway 1's report", r.g.name)
			}
		}
	}
}

// TestClusterGossipPartition: gateway 3 cut off from the others' gossip
// keeps serving on its own evidence, and rejoins within 10s of the heal.
func TestClusterGossipPartition(t *testing.T) {
	needRoot(t)
	cs := newClusterSetup(t, 4)
	for i := 1; i <= 3; i++ {
		cs.start(t, i, gwOptions{interval: "250ms"})
	}
	g1, g2, g3 := cs.gws[0], cs.gws[1], cs.gws[2]
	waitMembers(t, cs.gws, 10*time.Second)

	var removes []func()
	for _, peer := range []*gwProc{g1, g2} {
		_, pport, _ := net.SplitHostPort(peer.gossip)
		_, port3, _ := net.SplitHostPort(g3.gossip)
		for _, proto := range []string{"tcp", "udp"} {
			removes = append(removes,
				iptables(t, "OUTPUT", "-s", g3.host, "-d", peer.host, "-p", proto, "--dport", pport, "-j", "DROP"),
				iptables(t, "OUTPUT", "-s", peer.host, "-d", g3.host, "-p", proto, "--dport", port3, "-j", "DROP"))
		}
	}
	cutAt := time.Now()
	waitFor(t, "gateway 3 to see both peers gone", 15*time.Second, func() bool { return len(g3.members()) == 0 })
	t.Logf("gateway 3 alone %v after the cut", time.Since(cutAt).Round(time.Millisecond))
	by, failed := getFrom(t, g3, 12, "/whoami.php")
	if len(failed) > 0 || len(by) == 0 {
		t.Errorf("gateway 3 while cut off: %v, failures %v", by, failed)
	}
	healAt := time.Now()
	for _, r := range removes {
		r()
	}
	waitFor(t, "the cluster to heal", 20*time.Second, func() bool {
		return len(g3.members()) == 2 && g1.members()[g3.name] && g2.members()[g3.name]
	})
	d := time.Since(healAt)
	t.Logf("whole again %v after the heal", d.Round(time.Millisecond))
	if d > 10*time.Second {
		t.Errorf("rejoin took %v, want within 10s", d)
	}
}

// TestClusterMembership: encrypted gossip; a gateway killed with SIGKILL is
// seen gone within 5s; restarted, it rejoins and has the verdicts at once;
// a gateway with another key cannot join and says why.
func TestClusterMembership(t *testing.T) {
	cs := newClusterSetup(t, 4)
	keys := filepath.Join(t.TempDir(), "gossip.keys")
	writeKey(t, keys, 32)
	g1 := cs.start(t, 1, gwOptions{interval: "250ms", keyring: keys})
	g2 := cs.start(t, 2, gwOptions{interval: "250ms", keyring: keys})
	g3 := cs.start(t, 3, gwOptions{interval: "30s", keyring: keys})
	waitMembers(t, cs.gws, 10*time.Second)

	// b3 dies: gateways 1 and 2 find it down; that is a quorum.
	cs.fpms[2].Kill()
	b3 := cs.backends[2]
	waitFor(t, "b3 out on gateway 3", 5*time.Second, func() bool {
		_, ok := takenOut(g3, b3)
		return ok
	})

	killedAt := g3.kill9(t)
	for _, g := range []*gwProc{g1, g2} {
		var gone time.Time
		waitFor(t, g.name+" to see gateway 3 gone", 10*time.Second, func() bool {
			var ok bool
			gone, ok = g.log.find("gateway gone: dead or left", "name", "gw3")
			return ok
		})
		d := gone.Sub(killedAt)
		t.Logf("%s saw gateway 3 gone %v after kill -9", g.name, d.Round(time.Millisecond))
		if d > 5*time.Second {
			t.Errorf("%s took %v, want within 5s", g.name, d)
		}
	}

	// Restarted, with probes every 30s: it learns that b3 is down from
	// the others at once.
	startAt := time.Now()
	g3.run(t)
	var got, out time.Time
	waitFor(t, "gateway 3 to receive the verdicts", 10*time.Second, func() bool {
		var ok bool
		got, ok = g3.log.find("received the cluster's verdicts")
		return ok
	})
	waitFor(t, "gateway 3 to take b3 out again", 5*time.Second, func() bool {
		var ok bool
		out, ok = takenOut(g3, b3)
		return ok
	})
	t.Logf("restarted gateway 3: verdicts %v after start, b3 out %v after start", got.Sub(startAt).Round(time.Millisecond), out.Sub(startAt).Round(time.Millisecond))
	if d := out.Sub(startAt); d > 5*time.Second {
		t.Errorf("restarted gateway 3 took %v to take b3 out, want at once", d)
	}

	// Another key: cannot join, and says why.
	other := filepath.Join(t.TempDir(), "other.keys")
	writeKey(t, other, 32)
	g4 := cs.start(t, 4, gwOptions{interval: "1s", keyring: other})
	waitFor(t, "gateway 4 to log why it cannot join", 10*time.Second, func() bool {
		g4.log.mu.Lock()
		defer g4.log.mu.Unlock()
		for _, r := range g4.log.records {
			if r["msg"] == "cannot join some seeds" && strings.Contains(fmt.Sprint(r["err"]), "keyring_file") {
				return true
			}
		}
		return false
	})
	if g1.members()["gw4"] || g2.members()["gw4"] {
		t.Errorf("gateway 4 joined with the wrong key")
	}
}

func writeKey(t *testing.T, path string, n int) {
	t.Helper()
	k := make([]byte, n)
	for i := range k {
		k[i] = byte(rand.N(256))
	}
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(k)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestClusterBalance: gateway 1 has 6 clients and a pool of b1 and b2
// only (a gateway whose config still lists the old hosts, say); gateways 2
// and 3 have 2 clients each and all three backends. With least-conn,
// gateways 2 and 3 see none of gateway 1's load and send a third of their
// requests to each backend, b3 included; with least-conn-cluster they see
// b1 and b2 busy and send most of theirs to b3, so that every backend
// carries about the same. The share of gateways 2 and 3's requests that
// b3 answered is the test's figure: structural, not a fine margin that a
// noisy machine could reverse. Each backend's concurrent requests are
// also sampled from /proc/net/tcp (connections are not kept alive, so an
// established connection to FPM is a request there, running or in its
// backlog) and logged.
func TestClusterBalance(t *testing.T) {
	if _, err := os.Stat("/proc/net/tcp"); err != nil {
		t.Skip("needs /proc/net/tcp")
	}
	type figures struct {
		peak      []int
		imbalance float64 // mean over samples of max/mean concurrency
		onB3      float64 // share of gateways 2 and 3's requests that b3 answered
		requests  int
		errors    int
	}
	measure := func(t *testing.T, balance string) figures {
		// 6 workers each: 10 clients never fill a backend, so no probe
		// times out behind a full FPM.
		cs := newClusterSetup(t, 6)
		cs.start(t, 1, gwOptions{interval: "500ms", balance: balance, backends: cs.backends[:2]})
		for i := 2; i <= 3; i++ {
			cs.start(t, i, gwOptions{interval: "500ms", balance: balance})
		}
		waitMembers(t, cs.gws, 10*time.Second)
		time.Sleep(time.Second) // limits learned from FPM, digests flowing; not synchronisation
		// 12 s: long enough that the shares settle.
		ctx, cancel := context.WithTimeout(context.Background(), 12*time.Second)
		defer cancel()
		var wg sync.WaitGroup
		var mu sync.Mutex
		f := figures{peak: make([]int, 3)}
		others, othersOnB3 := 0, 0
		for i, clients := range []int{6, 2, 2} {
			g := cs.gws[i]
			wg.Add(1)
			go func() { // ends with ctx
				defer wg.Done()
				res := load(ctx, t, g.url, clients, 1<<30, func(int) (string, string) {
					return "GET", fmt.Sprintf("/whoami.php?ms=%d", 100+rand.N(200))
				})
				mu.Lock()
				defer mu.Unlock()
				f.requests += len(res)
				for _, r := range res {
					if r.status != 200 {
						f.errors++
						continue
					}
					if i > 0 {
						others++
						if r.backend == "b3" {
							othersOnB3++
						}
					}
				}
			}()
		}
		var sum float64
		samples := 0
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		warm := time.Now().Add(time.Second)
	sample:
		for {
			select {
			case <-ctx.Done():
				break sample
			case <-tick.C:
			}
			if time.Now().Before(warm) {
				continue
			}
			c := establishedTo(t, cs.backends)
			n, mx := 0, 0
			for i, x := range c {
				f.peak[i] = max(f.peak[i], x)
				n += x
				mx = max(mx, x)
			}
			if n > 0 {
				sum += float64(mx) / (float64(n) / 3)
				samples++
			}
		}
		wg.Wait()
		if samples > 0 {
			f.imbalance = sum / float64(samples)
		}
		if others > 0 {
			f.onB3 = float64(othersOnB3) / float64(others)
		}
		return f
	}
	var local, cluster figures
	t.Run("least-conn", func(t *testing.T) { local = measure(t, "least-conn") })
	t.Run("least-conn-cluster", func(t *testing.T) { cluster = measure(t, "least-conn-cluster") })
	t.Logf("6 clients on gateway 1 (pool b1 b2), 2 on each of gateways 2 and 3 (pool b1 b2 b3):")
	t.Logf("  least-conn:         b3 answered %.0f%% of gateways 2 and 3's requests; peak concurrency (b1 b2 b3) %v, mean of max/mean per sample %.3f (%d requests, %d errors)",
		100*local.onB3, local.peak, local.imbalance, local.requests, local.errors)
	t.Logf("  least-conn-cluster: b3 answered %.0f%% of gateways 2 and 3's requests; peak concurrency (b1 b2 b3) %v, mean of max/mean per sample %.3f (%d requests, %d errors)",
		100*cluster.onB3, cluster.peak, cluster.imbalance, cluster.requests, cluster.errors)
	if t.Failed() {
		return
	}
	if local.errors+cluster.errors > 0 {
		t.Errorf("%d and %d requests failed", local.errors, cluster.errors)
	}
	// Expected: about 1/3 with least-conn, most with least-conn-cluster.
	if cluster.onB3 < local.onB3+0.2 {
		t.Errorf("least-conn-cluster sent %.0f%% of gateways 2 and 3's requests to b3, least-conn %.0f%%: want at least 20 points more",
			100*cluster.onB3, 100*local.onB3)
	}
	if cluster.imbalance >= local.imbalance {
		t.Errorf("least-conn-cluster max/mean %.3f is not lower than least-conn's %.3f", cluster.imbalance, local.imbalance)
	}
}

// establishedTo counts the established TCP connections to each of addrs,
// from /proc/net/tcp.
func establishedTo(t *testing.T, addrs []string) []int {
	want := map[string]int{}
	for i, a := range addrs {
		host, port, _ := net.SplitHostPort(a)
		ip := net.ParseIP(host).To4()
		p, _ := strconv.Atoi(port)
		// /proc/net/tcp writes the IPv4 address as a little-endian word.
		key := strings.ToUpper(hex.EncodeToString([]byte{ip[3], ip[2], ip[1], ip[0]})) + fmt.Sprintf(":%04X", p)
		want[key] = i
	}
	out := make([]int, len(addrs))
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		t.Errorf("read /proc/net/tcp: %v", err)
		return out
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || fields[3] != "01" {
			continue
		}
		if i, ok := want[fields[1]]; ok {
			out[i]++
		}
	}
	return out
}
