// Package consultest starts real Consul agents for tests: the agent built
// from tools/consul (Consul v1.14.11) into bin/consul by `make consul`, run
// as `consul agent -dev` bound to 127.0.0.1.
//
// Each agent gets free ports of its own for its HTTP API, serf LAN and
// server RPC, and has DNS, serf WAN, gRPC and HTTPS turned off; its
// configuration and log live in t.TempDir(); -dev keeps its state in
// memory only (no data_dir, which would make it persist the services
// registered with it and load them again on a restart). Start waits until the
// agent has elected itself leader. A cleanup kills it by its PID; Kill and
// Restart let a test take it away under load and bring it back on the same
// ports (in -dev mode its catalog starts empty again, as a Consul that lost
// its state).
//
// Start, Restart and Need call t.Fatal and must run on the test goroutine;
// the other methods report problems with t.Errorf and may be called from
// any goroutine. This package imports nothing else of fcgigate.
package consultest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// ErrNoConsul is returned by Binary when bin/consul is missing.
var ErrNoConsul = errors.New("consultest: bin/consul not found (build it with `make consul`)")

// Timeouts of the harness; they bound waits, nothing sleeps for a set time.
const (
	startTimeout = 30 * time.Second // up and leader
	killTimeout  = 10 * time.Second // SIGKILL until reaped
	maxBackoff   = 50 * time.Millisecond
)

// Binary returns the path of the consul binary: $FCGIGATE_CONSUL if set,
// else bin/consul in the repository.
func Binary() (string, error) {
	p := os.Getenv("FCGIGATE_CONSUL")
	if p == "" {
		_, file, _, ok := runtime.Caller(0)
		if !ok {
			return "", errors.New("consultest: runtime.Caller failed")
		}
		p = filepath.Join(filepath.Dir(file), "..", "..", "bin", "consul")
	}
	if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() || fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%w: %s", ErrNoConsul, p)
	}
	return p, nil
}

// Need skips the test under -short, since it starts real processes, and
// when bin/consul is missing, unless the environment variable CI is set:
// under CI a missing Consul fails the test.
func Need(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a Consul agent; skipped with -short")
	}
	if _, err := Binary(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v; CI is set, so this is a failure", err)
		}
		t.Skipf("%v; skipping (set CI=1 to make this a failure)", err)
	}
}

// Agent is a Consul agent in -dev mode started by Start.
type Agent struct {
	// HTTPAddr is the HTTP API's address, "127.0.0.1:port".
	HTTPAddr string
	// Node is the agent's node name.
	Node string

	t       testing.TB
	bin     string
	dir     string
	logPath string
	client  *api.Client

	mu   sync.Mutex // protects cmd and done
	cmd  *exec.Cmd
	done chan struct{} // closed once cmd has exited and been reaped
}

// Start starts an agent and returns once it is the leader of its one-node
// cluster. A cleanup registered on t kills it.
func Start(t testing.TB) *Agent {
	t.Helper()
	Need(t)
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	a := &Agent{
		t:       t,
		bin:     bin,
		dir:     dir,
		logPath: filepath.Join(dir, "consul.log"),
		Node:    "consultest-" + filepath.Base(dir),
	}
	httpPort, serf, server := freePort(t), freePort(t), freePort(t)
	a.HTTPAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(httpPort))
	conf := fmt.Sprintf(`# written by consultest
node_name = %q
disable_update_check = true
log_level = "debug"
ports {
  http = %d
  serf_lan = %d
  server = %d
  dns = -1
  serf_wan = -1
  grpc = -1
  grpc_tls = -1
  https = -1
}
`, a.Node, httpPort, serf, server)
	if err := os.WriteFile(filepath.Join(dir, "agent.hcl"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	a.client, err = api.NewClient(&api.Config{Address: a.HTTPAddr, HttpClient: &noKeepAlive})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a.Kill()
		if t.Failed() {
			t.Logf("--- consul log %s (last 16KiB) ---\n%s", a.logPath, tail(a.Log(), 16<<10))
		}
	})
	a.start()
	return a
}

// noKeepAlive is the harness's own HTTP client: no keep-alive, so that a
// killed agent leaves no connection behind in the test process.
var noKeepAlive = http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}

// start runs the agent and waits until it leads. The caller is the test
// goroutine.
func (a *Agent) start() {
	t := a.t
	t.Helper()
	out, err := os.OpenFile(a.logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close() // the child holds its own copy
	fmt.Fprintf(out, "==> consultest: starting %s at %s\n", a.bin, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(a.bin, "agent", "-dev", "-bind", "127.0.0.1", "-client", "127.0.0.1",
		"-config-file", filepath.Join(a.dir, "agent.hcl"))
	cmd.Dir = a.dir
	cmd.Stdout, cmd.Stderr = out, out
	// A test binary that dies without its cleanups takes the agent along.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("consultest: start %s: %v", a.bin, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }() // ends when the agent exits; Kill makes sure it does
	a.mu.Lock()
	a.cmd, a.done = cmd, done
	a.mu.Unlock()
	if err := a.awaitLeader(done); err != nil {
		a.Kill()
		t.Fatalf("consultest: consul agent on %s: %v\n--- consul log ---\n%s", a.HTTPAddr, err, tail(a.Log(), 16<<10))
	}
}

// awaitLeader polls /v1/status/leader with capped backoff until it names a
// leader, the agent exits, or startTimeout passes.
func (a *Agent) awaitLeader(done <-chan struct{}) error {
	deadline := time.Now().Add(startTimeout)
	backoff := time.Millisecond
	for {
		select {
		case <-done:
			return errors.New("the agent exited during startup")
		default:
		}
		if leader, err := a.client.Status().Leader(); err == nil && leader != "" {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no leader after %v", startTimeout)
		}
		time.Sleep(backoff) // polling a condition no event reports
		backoff = min(2*backoff, maxBackoff)
	}
}

// Kill kills the agent with SIGKILL, as a crash would, and waits until it
// is gone. It does nothing if the agent is not running.
func (a *Agent) Kill() {
	a.mu.Lock()
	cmd, done := a.cmd, a.done
	a.mu.Unlock()
	if cmd == nil {
		return
	}
	if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		a.t.Errorf("consultest: kill consul pid %d: %v", cmd.Process.Pid, err)
	}
	select {
	case <-done:
	case <-time.After(killTimeout):
		a.t.Errorf("consultest: consul pid %d still running %v after SIGKILL", cmd.Process.Pid, killTimeout)
	}
}

// Restart starts the agent again, on the same ports and configuration,
// after Kill, and returns once it leads. Its catalog starts empty.
func (a *Agent) Restart() {
	a.t.Helper()
	a.mu.Lock()
	done := a.done
	a.mu.Unlock()
	select {
	case <-done:
	default:
		a.t.Fatalf("consultest: Restart of a running agent; Kill it first")
	}
	a.start()
}

// Running reports whether the agent process is running.
func (a *Agent) Running() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	select {
	case <-a.done:
		return false
	default:
		return true
	}
}

// Log returns what the agent has logged.
func (a *Agent) Log() string {
	b, _ := os.ReadFile(a.logPath)
	return string(b)
}

// Client returns an API client of the agent.
func (a *Agent) Client() *api.Client { return a.client }

// Register registers a service with the agent, as a node's own agent would.
func (a *Agent) Register(reg *api.AgentServiceRegistration) {
	if err := a.client.Agent().ServiceRegister(reg); err != nil {
		a.t.Errorf("consultest: register %s: %v", reg.ID, err)
	}
}

// Deregister removes the service id from the agent.
func (a *Agent) Deregister(id string) {
	if err := a.client.Agent().ServiceDeregister(id); err != nil {
		a.t.Errorf("consultest: deregister %s: %v", id, err)
	}
}

// CatalogRegister registers an entry in the catalog directly, as for an
// external node.
func (a *Agent) CatalogRegister(reg *api.CatalogRegistration) {
	if _, err := a.client.Catalog().Register(reg, nil); err != nil {
		a.t.Errorf("consultest: catalog register %s/%s: %v", reg.Node, reg.Service.ID, err)
	}
}

// SetTTL sets the TTL check id to status ("passing", "warning",
// "critical") with the note output.
func (a *Agent) SetTTL(id, status, output string) {
	if err := a.client.Agent().UpdateTTL(id, output, status); err != nil {
		a.t.Errorf("consultest: TTL check %s to %s: %v", id, status, err)
	}
}

// Passing returns the passing instances of service, as Consul's health
// endpoint lists them.
func (a *Agent) Passing(ctx context.Context, service string) ([]*api.ServiceEntry, error) {
	entries, _, err := a.client.Health().Service(service, "", true, (&api.QueryOptions{}).WithContext(ctx))
	return entries, err
}

// freePort returns a TCP port that was free on 127.0.0.1 a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("consultest: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// tail returns the last n bytes of s, from a line boundary.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}
