package fpmtest

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestStartServesAndKill(t *testing.T) {
	Need(t)
	f := Start(t, Options{Addr: FreePort(t, "127.0.0.2"), MaxChildren: 2})

	if out := mustRequest(t, f.Addr, "/fpm-ping", ""); out != "pong" {
		t.Fatalf("ping body = %q, want %q", out, "pong")
	}
	if out := mustRequest(t, f.Addr, "/hello.php", filepath.Join(PHPDir(), "hello.php")); out != "hello" {
		t.Fatalf("hello.php body = %q, want %q", out, "hello")
	}
	if n := len(f.Workers()); n != 2 {
		t.Fatalf("workers = %d, want 2", n)
	}

	f.Kill()
	if !f.Exited() {
		t.Fatal("master still running after Kill")
	}
	if w := f.Workers(); len(w) != 0 {
		t.Fatalf("workers %v still alive after Kill", w)
	}
	if err := dialRefused(f.Addr); err != nil {
		t.Fatal(err)
	}
	f.Kill() // a second Kill is harmless

	// The same address can be used again at once (FPM sets SO_REUSEADDR).
	g := Start(t, f.Options)
	if out := mustRequest(t, g.Addr, "/fpm-ping", ""); out != "pong" {
		t.Fatalf("ping after restart = %q", out)
	}
}

func TestStopIsGraceful(t *testing.T) {
	Need(t)
	f := Start(t, Options{Addr: FreePort(t, "127.0.0.2"), MaxChildren: 2})

	type result struct {
		out string
		err error
	}
	got := make(chan result, 1)
	// Ends when the request does; Stop lets it finish. (SIGQUIT interrupts
	// PHP's usleep, so the script prints "slept" early.)
	go func() {
		out, _, err := request(f.Addr, "/sleep.php", filepath.Join(PHPDir(), "sleep.php"), "s=5", 10*time.Second)
		got <- result{string(out), err}
	}()
	// Stop only once a worker runs the request: the full status page
	// lists it as running. (The count of active processes is not enough:
	// FPM marks a worker idle only after its answer is out, so the
	// previous status request's worker can still count.)
	waitFor(t, func() bool {
		select {
		case r := <-got:
			t.Fatalf("sleep.php returned before Stop: %q, %v", r.out, r.err)
		default:
		}
		return runs(t, f, "/sleep.php")
	})
	f.Stop()

	r := <-got
	if r.err != nil || !strings.HasSuffix(r.out, "slept") {
		t.Fatalf("in-flight request during Stop: %q, %v", r.out, r.err)
	}
	if err := dialRefused(f.Addr); err != nil {
		t.Fatal(err)
	}
}

// runs reports whether f's full status page lists a worker running a
// request for uri.
func runs(t *testing.T, f *FPM, uri string) bool {
	out, _, err := request(f.Addr, "/fpm-status", "", "full", 5*time.Second)
	if err != nil {
		t.Fatalf("%s /fpm-status?full: %v", f.Addr, err)
	}
	for _, proc := range strings.Split(string(out), "*****") {
		running, match := false, false
		for line := range strings.Lines(proc) {
			k, v, _ := strings.Cut(line, ":")
			switch strings.TrimSpace(k) {
			case "state":
				running = strings.TrimSpace(v) == "Running"
			case "request URI":
				match = strings.HasPrefix(strings.TrimSpace(v), uri)
			}
		}
		if running && match {
			return true
		}
	}
	return false
}

func TestPauseResume(t *testing.T) {
	Need(t)
	f := Start(t, Options{Addr: FreePort(t, "127.0.0.2"), MaxChildren: 1})

	f.Pause()
	// A paused master still accepts into its backlog, but nobody answers.
	_, _, err := request(f.Addr, "/fpm-ping", "", "", 300*time.Millisecond)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("request to paused FPM: err = %v, want a timeout", err)
	}
	f.Resume()
	if out := mustRequest(t, f.Addr, "/fpm-ping", ""); out != "pong" {
		t.Fatalf("ping after Resume = %q", out)
	}
}

func TestLogs(t *testing.T) {
	Need(t)
	f := Start(t, Options{Addr: FreePort(t, "127.0.0.2"), MaxChildren: 1})

	stdout, stderr, err := request(f.Addr, "/stderr.php", filepath.Join(PHPDir(), "stderr.php"), "", 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(stdout, []byte("ok")) {
		t.Errorf("stdout = %q", stdout)
	}
	if !bytes.Contains(stderr, []byte("PHP message: stderr.php via error_log")) {
		t.Errorf("FastCGI stderr = %q, want the error_log() line", stderr)
	}
	waitFor(t, func() bool { return strings.Contains(f.Log(), "stderr.php via php://stderr") })
	waitFor(t, func() bool { return strings.Contains(f.AccessLog(), "script="+filepath.Join(PHPDir(), "stderr.php")) })
}

func TestStartHonoursOptions(t *testing.T) {
	Need(t)
	f := Start(t, Options{
		Addr:                    FreePort(t, "127.0.0.3"),
		MaxRequests:             7,
		RequestTerminateTimeout: 1500 * time.Millisecond,
		Extra:                   map[string]string{"php_admin_value[memory_limit]": "32M"},
	})
	conf, err := os.ReadFile(f.files.conf)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"listen = " + f.Addr,
		"pm.max_children = 4",
		"pm.max_requests = 7",
		"request_terminate_timeout = 2",
		"php_admin_value[memory_limit] = 32M",
		"chdir = " + PHPDir(),
	} {
		if !strings.Contains(string(conf), want+"\n") {
			t.Errorf("php-fpm.conf lacks %q:\n%s", want, conf)
		}
	}
	if f.Options.DocRoot != PHPDir() {
		t.Errorf("DocRoot = %q, want %q", f.Options.DocRoot, PHPDir())
	}
}

func TestFreePort(t *testing.T) {
	a, b := FreePort(t, "127.0.0.2"), FreePort(t, "127.0.0.2")
	if !strings.HasPrefix(a, "127.0.0.2:") || a == b {
		t.Fatalf("FreePort gave %q and %q", a, b)
	}
	ln, err := net.Listen("tcp", a)
	if err != nil {
		t.Fatalf("listen on FreePort result: %v", err)
	}
	ln.Close()
}

func TestPHPDir(t *testing.T) {
	for _, name := range []string{"env.php", "hello.php", "uploads/x.jpg", "sub/index.php", "static.txt"} {
		if _, err := os.Stat(filepath.Join(PHPDir(), name)); err != nil {
			t.Error(err)
		}
	}
	if _, err := os.Stat(filepath.Join(RepoRoot(), "go.mod")); err != nil {
		t.Error(err)
	}
}

func TestParseStat(t *testing.T) {
	tests := []struct {
		in    string
		state byte
		pgrp  int
		ok    bool
	}{
		{"123 (php-fpm8.2) S 1 123 123 0 -1", 'S', 123, true},
		{"124 (php-fpm: pool fpmtest) R 123 123 123 0", 'R', 123, true},
		{"125 (a) b) (c) Z 1 99 99", 'Z', 99, true},
		{"126 (x) S 1", 0, 0, false},
		{"garbage", 0, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			state, pgrp, ok := parseStat([]byte(tt.in))
			if state != tt.state || pgrp != tt.pgrp || ok != tt.ok {
				t.Errorf("parseStat = %q %d %v, want %q %d %v", state, pgrp, ok, tt.state, tt.pgrp, tt.ok)
			}
		})
	}
}

func TestCheckAddr(t *testing.T) {
	for _, addr := range []string{"127.0.0.2:9000", "[::1]:9000"} {
		if err := checkAddr(addr); err != nil {
			t.Errorf("checkAddr(%q) = %v", addr, err)
		}
	}
	for _, addr := range []string{"", "127.0.0.2", "127.0.0.2:0", "10.0.0.1:9000", "localhost:9000", "0.0.0.0:9000"} {
		if err := checkAddr(addr); err == nil {
			t.Errorf("checkAddr(%q) = nil, want an error", addr)
		}
	}
}

// waitFor polls cond with capped backoff for up to 10s.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for backoff := time.Millisecond; !cond(); backoff = min(2*backoff, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(backoff)
	}
}

func dialRefused(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err == nil {
		c.Close()
		return errors.New("dial " + addr + " succeeded, want connection refused")
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		return errors.New("dial " + addr + ": " + err.Error() + ", want connection refused")
	}
	return nil
}

func mustRequest(t *testing.T, addr, uri, script string) string {
	t.Helper()
	out, _, err := request(addr, uri, script, "", 5*time.Second)
	if err != nil {
		t.Fatalf("%s %s: %v", addr, uri, err)
	}
	// Drop the CGI response headers.
	if _, body, ok := bytes.Cut(out, []byte("\r\n\r\n")); ok {
		return string(body)
	}
	return string(out)
}

// request is a minimal FastCGI responder client, just enough to test the
// harness without importing fcgigate's own client: one GET with no body.
func request(addr, uri, script, query string, timeout time.Duration) (stdout, stderr []byte, err error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return nil, nil, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))

	if script == "" {
		script = uri
	}
	var params []byte
	for _, kv := range [][2]string{
		{"REQUEST_METHOD", "GET"}, {"SCRIPT_FILENAME", script}, {"SCRIPT_NAME", uri},
		{"REQUEST_URI", uri}, {"QUERY_STRING", query}, {"SERVER_PROTOCOL", "HTTP/1.1"},
		{"GATEWAY_INTERFACE", "CGI/1.1"}, {"REMOTE_ADDR", "127.0.0.1"},
	} {
		params = append(params, byte(len(kv[0])), byte(len(kv[1])))
		params = append(params, kv[0]...)
		params = append(params, kv[1]...)
	}
	w := bufio.NewWriter(c)
	writeRecord(w, 1, []byte{0, 1, 0, 0, 0, 0, 0, 0}) // BEGIN_REQUEST, responder
	writeRecord(w, 4, params)
	writeRecord(w, 4, nil)
	writeRecord(w, 5, nil) // empty STDIN
	if err := w.Flush(); err != nil {
		return nil, nil, err
	}

	r := bufio.NewReader(c)
	for {
		var h [8]byte
		if _, err := io.ReadFull(r, h[:]); err != nil {
			return stdout, stderr, err
		}
		n := int(binary.BigEndian.Uint16(h[4:6])) + int(h[6])
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			return stdout, stderr, err
		}
		body = body[:binary.BigEndian.Uint16(h[4:6])]
		switch h[1] {
		case 6:
			stdout = append(stdout, body...)
		case 7:
			stderr = append(stderr, body...)
		case 3:
			return stdout, stderr, nil
		}
	}
}

func writeRecord(w *bufio.Writer, typ byte, content []byte) {
	h := []byte{1, typ, 0, 1, 0, 0, 0, 0}
	binary.BigEndian.PutUint16(h[4:6], uint16(len(content)))
	w.Write(h)
	w.Write(content)
}
