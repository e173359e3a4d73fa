// Package apachetest starts real Apache httpd 2.4 servers for tests, as
// FastCGI clients of fcgigate's FastCGI front or of php-fpm.
//
// Each call to Start writes its own httpd.conf in t.TempDir() (event MPM,
// mod_proxy_fcgi, one docroot whose *.php go to one FastCGI address), runs
// `apache2 -f httpd.conf -DFOREGROUND` in a process group of its own, waits
// until its address accepts connections, and registers a cleanup that
// stops it and its children. The system's Apache service and /etc/apache2
// are never used.
//
// Invariants:
//   - Apache listens only on the loopback address it is given, with a port
//     from fpmtest.FreePort or the like, never a hardcoded one.
//   - Started as root, its children run as nobody:nogroup (Apache refuses
//     to serve as root); the docroot must be readable by them.
//   - Start and Need call t.Fatal and must run on the test goroutine.
//
// This package imports nothing of fcgigate.
package apachetest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Timeouts of the harness. They bound waits; nothing sleeps for a fixed time.
const (
	startTimeout = 10 * time.Second // Apache up and accepting
	termTimeout  = 5 * time.Second  // SIGTERM before SIGKILL
	killTimeout  = 10 * time.Second // SIGKILL until the group is gone
	maxBackoff   = 50 * time.Millisecond
)

// ModulesDir is where Debian's apache2 keeps its modules.
const ModulesDir = "/usr/lib/apache2/modules"

// ErrNoApache is returned by Binary when no Apache httpd can be found.
var ErrNoApache = errors.New("apachetest: apache2 not found (install apache2: scripts/deps.sh)")

// Binary returns the path of apache2 (Debian's name for httpd), looked up
// in $PATH and then in /usr/sbin.
func Binary() (string, error) {
	for _, name := range []string{"apache2", "httpd"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
		for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
			p := filepath.Join(dir, name)
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
				return p, nil
			}
		}
	}
	return "", ErrNoApache
}

// Need skips the test under -short, since it starts real processes, and when
// apache2 or its proxy_fcgi module is missing, unless the environment
// variable CI is set: under CI a missing Apache fails the test.
func Need(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts Apache; skipped with -short")
	}
	_, err := Binary()
	if err == nil {
		if _, serr := os.Stat(filepath.Join(ModulesDir, "mod_proxy_fcgi.so")); serr != nil {
			err = fmt.Errorf("apachetest: %w (install apache2: scripts/deps.sh)", serr)
		}
	}
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v; CI is set, so this is a failure", err)
		}
		t.Skipf("%v; skipping (set CI=1 to make this a failure)", err)
	}
}

// Mode is how Apache hands *.php to the FastCGI server.
type Mode int

const (
	// SetHandler is the setup of Apache's PHP-FPM guides:
	//	<FilesMatch "\.php$"> SetHandler "proxy:fcgi://backend" </FilesMatch>
	// with a <Proxy "fcgi://backend"> worker that carries enablereuse.
	SetHandler Mode = iota
	// ProxyPassMatch maps the URL to the script without looking at the
	// file system:
	//	ProxyPassMatch "^/(.*\.php(/.*)?)$" "fcgi://backend/docroot/$1" enablereuse=on
	ProxyPassMatch
)

// Options configures one Apache.
type Options struct {
	// Addr is the listen address, "127.0.0.x:port". Required.
	Addr string
	// Backend is the FastCGI server, "127.0.x.y:port". Required.
	Backend string
	// DocRoot is DocumentRoot. Required.
	DocRoot string
	// Mode is how *.php reach Backend. Default SetHandler.
	Mode Mode
	// NoReuse turns enablereuse off: a new FastCGI connection per request.
	NoReuse bool
	// Timeout is the proxy worker's timeout, the wait for the backend.
	// Default 60s.
	Timeout time.Duration
	// Extra holds more configuration lines, appended at the end.
	Extra string
}

// Apache is a running Apache started by Start.
type Apache struct {
	Addr string // listen address
	URL  string // "http://" + Addr
	PID  int    // the parent's PID, which is also its process group id
	Dir  string // holds httpd.conf and error.log

	t    testing.TB
	cmd  *exec.Cmd
	done chan struct{} // closed once the parent has exited and been reaped
}

// Start writes httpd.conf for o into t.TempDir(), checks it with -t, starts
// Apache in the foreground in a new process group and returns once o.Addr
// accepts connections (within 10s). A cleanup registered on t stops it:
// SIGTERM to the parent, then SIGKILL to the group. On any failure Start
// calls t.Fatal with the error log. Without Apache it behaves like Need.
func Start(t testing.TB, o Options) *Apache {
	t.Helper()
	Need(t)
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{o.Addr, o.Backend} {
		if err := checkLoopback(a); err != nil {
			t.Fatalf("apachetest.Start: %v", err)
		}
	}
	if o.DocRoot == "" {
		t.Fatal("apachetest.Start: DocRoot is required")
	}
	if o.Timeout <= 0 {
		o.Timeout = 60 * time.Second
	}
	dir := t.TempDir()
	// The children run as nobody and reach files here (mutexes); the
	// parent writes the logs as root.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "httpd.conf")
	if err := os.WriteFile(conf, []byte(config(dir, o)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-f", conf, "-t").CombinedOutput(); err != nil {
		t.Fatalf("apachetest.Start: %s -t: %v\n%s", bin, err, out)
	}
	errorLog := filepath.Join(dir, "error.log")
	out, err := os.OpenFile(filepath.Join(dir, "stderr.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close() // the child holds its own copy
	cmd := exec.Command(bin, "-f", conf, "-DFOREGROUND")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = out, out
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C"}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true,
		// If the test binary dies without running cleanups, the parent
		// gets SIGTERM, on which Apache stops its children too.
		Pdeathsig: syscall.SIGTERM,
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("apachetest.Start: start %s: %v", bin, err)
	}
	a := &Apache{Addr: o.Addr, URL: "http://" + o.Addr, PID: cmd.Process.Pid, Dir: dir, t: t, cmd: cmd, done: make(chan struct{})}
	go func() { // ends when the parent exits; the cleanup makes sure it does
		cmd.Wait()
		close(a.done)
	}()
	t.Cleanup(a.Stop)
	if err := a.awaitReady(); err != nil {
		a.Stop()
		log, _ := os.ReadFile(errorLog)
		stderr, _ := os.ReadFile(filepath.Join(dir, "stderr.log"))
		t.Fatalf("apachetest.Start: %v\nerror.log:\n%s\nstderr:\n%s", err, log, stderr)
	}
	return a
}

// config renders httpd.conf.
func config(dir string, o Options) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# written by apachetest")
	w("ServerRoot %q", dir)
	w("DefaultRuntimeDir %q", dir)
	w("PidFile %q", filepath.Join(dir, "httpd.pid"))
	w("ErrorLog %q", filepath.Join(dir, "error.log"))
	w("LogLevel warn")
	w("Listen %s", o.Addr)
	w("ServerName %s", o.Addr)
	if os.Geteuid() == 0 {
		w("User nobody")
		w("Group nogroup")
	}
	for _, m := range []string{"mpm_event", "authz_core", "mime", "dir", "env", "proxy", "proxy_fcgi"} {
		w("LoadModule %s_module %s", m, filepath.Join(ModulesDir, "mod_"+m+".so"))
	}
	w("TypesConfig /etc/mime.types")
	// Generous enough for the load tests: 4 children of 32 threads.
	w("StartServers 2")
	w("ThreadsPerChild 32")
	w("MaxRequestWorkers 128")
	w("ServerLimit 4")
	w("KeepAlive On")
	w("MaxKeepAliveRequests 0")
	w("DocumentRoot %q", o.DocRoot)
	w("<Directory %q>", o.DocRoot)
	w("    Require all granted")
	w("    DirectoryIndex index.php")
	w("</Directory>")
	// Without it, mod_proxy_fcgi streams a chunked request body of more
	// than its prefetch without CONTENT_LENGTH, and PHP reads none of it.
	w("SetEnv proxy-sendcl 1")
	reuse := "on"
	if o.NoReuse {
		reuse = "off"
	}
	secs := int(max(1, o.Timeout.Round(time.Second)/time.Second))
	// flushpackets=on passes each piece of the answer on as it comes, so
	// that what PHP flushes reaches the client; Apache's default buffers.
	params := fmt.Sprintf("enablereuse=%s flushpackets=on timeout=%d", reuse, secs)
	switch o.Mode {
	case ProxyPassMatch:
		w(`ProxyPassMatch "^/(.*\.php(/.*)?)$" "fcgi://%s%s/$1" %s`, o.Backend, strings.TrimRight(o.DocRoot, "/"), params)
	default:
		w(`<FilesMatch "\.php$">`)
		w(`    SetHandler "proxy:fcgi://%s"`, o.Backend)
		w("</FilesMatch>")
		w(`<Proxy "fcgi://%s" %s>`, o.Backend, params)
		w("</Proxy>")
	}
	b.WriteString(o.Extra)
	return b.String()
}

// awaitReady polls until Addr accepts a connection and the error log says
// Apache resumed normal operations, or the parent exits, or startTimeout
// passes.
func (a *Apache) awaitReady() error {
	deadline := time.Now().Add(startTimeout)
	for delay := time.Millisecond; ; delay = min(2*delay, maxBackoff) {
		select {
		case <-a.done:
			return fmt.Errorf("apache exited during start: %v", a.cmd.ProcessState)
		default:
		}
		if c, err := net.DialTimeout("tcp", a.Addr, time.Second); err == nil {
			c.Close()
			if strings.Contains(a.ErrorLog(), "resuming normal operations") {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready on %s after %v", a.Addr, startTimeout)
		}
		time.Sleep(delay)
	}
}

// ErrorLog returns Apache's error log so far.
func (a *Apache) ErrorLog() string {
	b, _ := os.ReadFile(filepath.Join(a.Dir, "error.log"))
	return string(b)
}

// Stop stops Apache: SIGTERM to the parent, which stops its children, then
// SIGKILL to the process group if the parent has not exited within 5s. It may be
// called more than once and from any goroutine.
func (a *Apache) Stop() {
	select {
	case <-a.done:
		return
	default:
	}
	// On SIGTERM the parent stops its children and waits for them.
	syscall.Kill(a.PID, syscall.SIGTERM)
	select {
	case <-a.done:
		return
	case <-time.After(termTimeout):
	}
	syscall.Kill(-a.PID, syscall.SIGKILL)
	select {
	case <-a.done:
	case <-time.After(killTimeout):
		a.t.Errorf("apachetest: apache %d did not exit after SIGKILL", a.PID)
	}
}

// checkLoopback insists on a "host:port" whose host is a loopback IP.
func checkLoopback(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() || port == "" || port == "0" {
		return fmt.Errorf("%q is not a loopback IP address with a port", addr)
	}
	return nil
}
