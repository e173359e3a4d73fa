package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/fcgi"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/fcgigate/fcgigate/fastcgi"
)

// wait bounds every wait for something that should happen promptly.
const wait = 20 * time.Second

func TestRunUsage(t *testing.T) {
	good := writeConfig(t, "127.0.0.1:0", "127.0.0.2:9000", "")
	tests := []struct {
		name        string
		args        []string
		code        int
		out, errOut string // substrings expected in stdout and stderr
	}{
		{"no command", nil, 2, "", "Usage:"},
		{"unknown command", []string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{"help", []string{"help"}, 0, "fcgigate serve -config FILE", ""},
		{"-h", []string{"-h"}, 0, "fcgigate validate -config FILE", ""},
		{"serve -h", []string{"serve", "-h"}, 0, "Usage: fcgigate serve -config FILE", ""},
		{"validate -h", []string{"validate", "-h"}, 0, "-config file", ""},
		{"version -h", []string{"version", "-h"}, 0, "Usage: fcgigate version", ""},
		{"bad flag", []string{"serve", "-bogus"}, 2, "", "flag provided but not defined: -bogus"},
		{"extra argument", []string{"validate", "-config", good, "more"}, 2, "", `unexpected argument "more"`},
		{"serve without config", []string{"serve"}, 2, "", "-config is required"},
		{"validate without config", []string{"validate"}, 2, "", "-config is required"},
		{"version", []string{"version"}, 0, "fcgigate dev go", ""},
		{"validate good", []string{"validate", "-config", good}, 0, good + ": ok\n", ""},
		{"serve bad config", []string{"serve", "-config", filepath.Join(t.TempDir(), "missing.toml")}, 1, "", "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := run(context.Background(), tt.args, &out, &errOut)
			if code != tt.code || !strings.Contains(out.String(), tt.out) || !strings.Contains(errOut.String(), tt.errOut) {
				t.Errorf("run(%q) = %d\nstdout: %s\nstderr: %s\nwant %d, stdout with %q, stderr with %q",
					tt.args, code, out.String(), errOut.String(), tt.code, tt.out, tt.errOut)
			}
		})
	}
}

func TestServeListenInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := writeConfig(t, ln.Addr().String(), "127.0.0.2:9000", "")
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"serve", "-config", cfg}, &out, &errOut); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	if !strings.Contains(errOut.String(), "address already in use (another process has this port") {
		t.Errorf("stderr does not explain the port is taken:\n%s", errOut.String())
	}
}

// TestServe runs serve in-process, where the race detector sees it: a GET
// goes through to the backend, and cancelling the context stops it cleanly.
func TestServe(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	be := startBackend(t)
	cfg := writeConfig(t, "127.0.0.1:0", be.addr, "")
	logs := newLineLog()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	code := make(chan int, 1)
	go func() { code <- run(ctx, []string{"serve", "-config", cfg}, io.Discard, logs) }() // ends when ctx is cancelled

	addr := servingAddr(t, logs)
	if status, body, err := get("http://" + addr + "/hello"); err != nil || status != 200 || body != "hello from /hello" {
		t.Errorf("GET /hello: %d %q %v", status, body, err)
	}
	cancel()
	awaitCleanExit(t, code, logs)
	be.stop()
}

// TestServeFastCGIFront: with [fastcgi] listen set, serve runs the FastCGI
// front beside the HTTP one, and both stop on cancel.
func TestServeFastCGIFront(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	be := startBackend(t)
	cfg := writeConfig(t, "127.0.0.1:0", be.addr, "[fastcgi]\nlisten = \"127.0.0.1:0\"\n")
	logs := newLineLog()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	code := make(chan int, 1)
	go func() { code <- run(ctx, []string{"serve", "-config", cfg}, io.Discard, logs) }() // ends when ctx is cancelled

	var rec struct{ Addr string }
	if line := logs.wait(t, `"msg":"fastcgi front serving"`); json.Unmarshal([]byte(line), &rec) != nil || rec.Addr == "" {
		t.Fatalf("startup line %q", line)
	}
	servingAddr(t, logs)
	nc, err := net.Dial("tcp", rec.Addr)
	if err != nil {
		t.Fatal(err)
	}
	c := fastcgi.NewConn(nc, false)
	resp, err := c.Do(ctx, &fastcgi.Request{ReadTimeout: wait, Params: []fastcgi.Param{
		{Name: "REQUEST_METHOD", Value: "GET"}, {Name: "REQUEST_URI", Value: "/hello"},
		{Name: "SERVER_PROTOCOL", Value: "HTTP/1.1"}, {Name: "SCRIPT_FILENAME", Value: "/srv/test/hello"},
	}})
	if err != nil {
		t.Fatalf("FastCGI request: %v\n%s", err, logs)
	}
	out, err := io.ReadAll(resp)
	resp.Close()
	c.Close()
	if err != nil || !strings.HasSuffix(string(out), "\r\n\r\nhello from /hello") {
		t.Errorf("FastCGI answer %q, %v", out, err)
	}
	cancel()
	awaitCleanExit(t, code, logs)
	be.stop()
}

// TestBinary builds fcgigate and runs it as users do.
func TestBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "fcgigate")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	t.Run("validate", func(t *testing.T) {
		good := writeConfig(t, "127.0.0.1:0", "127.0.0.2:9000", "")
		out, err := exec.Command(bin, "validate", "-config", good).CombinedOutput()
		if err != nil || string(out) != good+": ok\n" {
			t.Errorf("validate good file: %v\n%s", err, out)
		}

		bad := writeConfig(t, "127.0.0.1:0", "127.0.0.2:9000", "read_timeout = \"5x\"\n")
		out, err = exec.Command(bin, "validate", "-config", bad).CombinedOutput()
		want := bad + `:10: pool.read_timeout: "5x" is not a duration (use e.g. "30s")` + "\n"
		if code := exitCode(err); code != 1 || string(out) != want {
			t.Errorf("validate bad file: exit %d, output\n%s\nwant exit 1, output\n%s", code, out, want)
		}
	})

	t.Run("serve applies procs", func(t *testing.T) {
		be := startBackend(t)
		cfg := writeConfig(t, "127.0.0.1:0", be.addr, "")
		text, err := os.ReadFile(cfg)
		if err != nil {
			t.Fatal(err)
		}
		text = bytes.Replace(text, []byte("[server]\n"), []byte("[server]\nprocs = \"auto+2\"\n"), 1)
		if err := os.WriteFile(cfg, text, 0o644); err != nil {
			t.Fatal(err)
		}
		logs := newLineLog()
		cmd := exec.Command(bin, "serve", "-config", cfg)
		// auto is then 1, whatever the machine.
		cmd.Env = append(os.Environ(), "GOMAXPROCS=1")
		cmd.Stderr = logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			cmd.Process.Kill()
			cmd.Wait()
			be.stop()
		}()
		line := logs.wait(t, `"msg":"fcgigate serving"`)
		if !strings.Contains(line, `"procs":3`) {
			t.Errorf("with procs = \"auto+2\" and GOMAXPROCS=1: %s, want procs 3", line)
		}
	})

	t.Run("serve drains on SIGTERM", func(t *testing.T) {
		be := startBackend(t)
		cfg := writeConfig(t, "127.0.0.1:0", be.addr, "")
		logs := newLineLog()
		cmd := exec.Command(bin, "serve", "-config", cfg)
		cmd.Stderr = logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan struct{}) // closed when waitErr is set
		var waitErr error
		go func() { // ends when the process does
			waitErr = cmd.Wait()
			close(exited)
		}()
		t.Cleanup(func() {
			cmd.Process.Kill() // fails harmlessly if it has exited
			<-exited
		})

		addr := servingAddr(t, logs)
		if status, body, err := get("http://" + addr + "/hello"); err != nil || status != 200 || body != "hello from /hello" {
			t.Fatalf("GET /hello: %d %q %v\n%s", status, body, err, logs)
		}

		// SIGHUP is logged and otherwise ignored.
		if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		logs.wait(t, "reload not supported yet")
		if status, _, err := get("http://" + addr + "/hello"); err != nil || status != 200 {
			t.Fatalf("GET after SIGHUP: %d %v\n%s", status, err, logs)
		}

		// A slow request is in flight when SIGTERM comes.
		type result struct {
			status int
			body   string
			err    error
		}
		slow := make(chan result, 1)
		go func() { // ends when the gateway answers or fails
			status, body, err := get("http://" + addr + "/slow")
			slow <- result{status, body, err}
		}()
		select {
		case <-be.started:
		case <-time.After(wait):
			t.Fatalf("the slow request did not reach the backend\n%s", logs)
		}
		if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}

		// New connections are refused while the slow request drains.
		poll := time.NewTicker(10 * time.Millisecond)
		defer poll.Stop()
		deadline := time.NewTimer(wait)
		defer deadline.Stop()
		for refused := false; !refused; {
			c, err := net.Dial("tcp", addr)
			if refused = err != nil; !refused {
				c.Close()
				select {
				case <-poll.C:
				case <-deadline.C:
					t.Fatalf("still accepting connections after SIGTERM\n%s", logs)
				}
			}
		}
		select {
		case <-exited:
			t.Fatalf("exited before the slow request finished: %v\n%s", waitErr, logs)
		default:
		}

		be.release()
		select {
		case r := <-slow:
			if r.err != nil || r.status != 200 || r.body != "slow done" {
				t.Errorf("slow request: %d %q %v\n%s", r.status, r.body, r.err, logs)
			}
		case <-time.After(wait):
			t.Fatalf("the slow request did not complete\n%s", logs)
		}
		select {
		case <-exited:
			if waitErr != nil {
				t.Errorf("exit: %v, want code 0\n%s", waitErr, logs)
			}
		case <-time.After(wait):
			t.Fatalf("did not exit after draining\n%s", logs)
		}
	})
}

// backend is a stand-in FastCGI server: the standard library's responder.
type backend struct {
	addr    string
	started chan struct{} // receives when a /slow request arrives
	release func()        // lets /slow requests answer
	stop    func()        // releases and closes the listener
}

func startBackend(t *testing.T) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	released := make(chan struct{})
	var once sync.Once
	be := &backend{
		addr:    ln.Addr().String(),
		started: make(chan struct{}, 1),
		release: func() { once.Do(func() { close(released) }) },
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			be.started <- struct{}{}
			<-released
			io.WriteString(w, "slow done")
			return
		}
		fmt.Fprintf(w, "hello from %s", r.URL.Path)
	})
	served := make(chan struct{})
	go func() { // ends when ln is closed
		defer close(served)
		fcgi.Serve(ln, handler)
	}()
	be.stop = func() {
		be.release()
		ln.Close()
		<-served
	}
	t.Cleanup(be.stop)
	return be
}

// writeConfig writes a config with one pool and returns its path. extra
// goes at the end of the [[pool]] table.
func writeConfig(t *testing.T, listen, backend, extra string) string {
	t.Helper()
	text := fmt.Sprintf(`[server]
listen = %q
drain_timeout = "20s"
[log]
format = "json"
[[pool]]
name = "test"
backends = [%q]
document_root = "/srv/test"
`, listen, backend) + extra
	path := filepath.Join(t.TempDir(), "fcgigate.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// servingAddr waits for the startup line and returns the address it gives.
func servingAddr(t *testing.T, logs *lineLog) string {
	t.Helper()
	line := logs.wait(t, `"msg":"fcgigate serving"`)
	var rec struct{ Addr string }
	if err := json.Unmarshal([]byte(line), &rec); err != nil || rec.Addr == "" {
		t.Fatalf("startup line %q: %v", line, err)
	}
	return rec.Addr
}

// get fetches url on a new connection.
func get(url string) (status int, body string, err error) {
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: wait}
	resp, err := client.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func exitCode(err error) int {
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// lineLog collects what a process writes to stderr, line by line, and lets
// the test wait for a line. Writes never block.
type lineLog struct {
	mu      sync.Mutex // guards partial and lines
	partial []byte
	lines   []string
	added   chan struct{} // cap 1: signalled after lines grows
}

func newLineLog() *lineLog { return &lineLog{added: make(chan struct{}, 1)} }

func (l *lineLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.partial = append(l.partial, p...)
	for {
		i := bytes.IndexByte(l.partial, '\n')
		if i < 0 {
			break
		}
		l.lines = append(l.lines, string(l.partial[:i]))
		l.partial = l.partial[i+1:]
	}
	l.mu.Unlock()
	select {
	case l.added <- struct{}{}:
	default:
	}
	return len(p), nil
}

func (l *lineLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n") + string(l.partial)
}

// wait returns the first line containing substr, waiting for it if need be.
func (l *lineLog) wait(t *testing.T, substr string) string {
	t.Helper()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		l.mu.Lock()
		for _, line := range l.lines {
			if strings.Contains(line, substr) {
				l.mu.Unlock()
				return line
			}
		}
		l.mu.Unlock()
		select {
		case <-l.added:
		case <-timer.C:
			t.Fatalf("no log line with %q after %v:\n%s", substr, wait, l)
		}
	}
}

// awaitCleanExit waits for the exit code of a serve run whose context has
// been cancelled, and fails the test unless it is 0 within wait.
func awaitCleanExit(t *testing.T, code <-chan int, logs fmt.Stringer) {
	t.Helper()
	select {
	case c := <-code:
		if c != 0 {
			t.Errorf("exit code %d, want 0\n%s", c, logs)
		}
	case <-time.After(wait):
		t.Fatalf("serve did not return after cancel\n%s", logs)
	}
}

func TestSetGCPercent(t *testing.T) {
	old := debug.SetGCPercent(100)
	defer debug.SetGCPercent(old)

	if got := setGCPercent(func(string) string { return "" }); got != gcPercent {
		t.Errorf("without GOGC: %d, want %d", got, gcPercent)
	}
	if now := debug.SetGCPercent(250); now != gcPercent {
		t.Errorf("without GOGC the collector runs at %d, want %d", now, gcPercent)
	}
	// With GOGC set, the runtime has applied it (here: 250, as if GOGC=250)
	// and it stays.
	if got := setGCPercent(func(k string) string { return map[string]string{"GOGC": "250"}[k] }); got != 250 {
		t.Errorf("with GOGC=250: %d, want 250 kept", got)
	}
	if now := debug.SetGCPercent(100); now != 250 {
		t.Errorf("with GOGC=250 the collector runs at %d, want 250", now)
	}
}
