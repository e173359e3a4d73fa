// fpm.go starts, stops, pauses and kills one php-fpm master.

package fpmtest

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
	startTimeout = 10 * time.Second // master up and accepting
	stopTimeout  = 15 * time.Second // Stop: SIGQUIT, more than process_control_timeout
	termTimeout  = 5 * time.Second  // cleanup: SIGTERM before SIGKILL
	killTimeout  = 10 * time.Second // SIGKILL until the group is gone
	maxBackoff   = 50 * time.Millisecond
)

// readyLine is what the master logs at notice level once its pool is up.
const readyLine = "ready to handle connections"

// FPM is a running php-fpm master started by Start. Its fields do not change
// after Start returns. To bring a killed or stopped backend back on the same
// address, call Start again with f.Options.
type FPM struct {
	Addr    string  // listen address, "127.0.0.x:port"
	PID     int     // the master's PID, which is also its process group id
	Dir     string  // temp dir holding php.ini, php-fpm.conf and the logs
	Options Options // the options it was started with, defaults filled in

	t     testing.TB
	files files
	cmd   *exec.Cmd
	done  chan struct{} // closed once the master has exited and been reaped

	logShown bool // Start has put the log in its t.Fatal; cleanup skips it
}

// Start writes the configuration for o into t.TempDir(), starts php-fpm with
// --nodaemonize --allow-to-run-as-root in a new process group and returns
// once the master has logged that it is ready and o.Addr accepts TCP
// connections (within 10s). A cleanup registered on t stops it: SIGTERM to
// the master, then SIGKILL to the process group. On any failure Start calls
// t.Fatal with the FPM error log. Without php-fpm it behaves like Need.
func Start(t testing.TB, o Options) *FPM {
	t.Helper()
	Need(t)
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	o = o.withDefaults()
	if err := checkAddr(o.Addr); err != nil {
		t.Fatalf("fpmtest.Start: %v", err)
	}
	if fi, err := os.Stat(o.DocRoot); err != nil || !fi.IsDir() {
		t.Fatalf("fpmtest.Start: docroot %q is not a directory (err=%v)", o.DocRoot, err)
	}
	if abs, err := filepath.Abs(o.DocRoot); err == nil {
		o.DocRoot = abs
	}

	fs := newFiles(t.TempDir())
	if err := fs.write(o); err != nil {
		t.Fatalf("fpmtest.Start: %v", err)
	}
	// FPM writes its error log itself; its stdout and stderr (where it
	// reports errors from before the log is open) go to the same file.
	out, err := os.OpenFile(fs.errorLog, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatalf("fpmtest.Start: %v", err)
	}
	defer out.Close() // the child holds its own copy

	cmd := exec.Command(bin, "--nodaemonize", "--allow-to-run-as-root",
		"-c", fs.ini, "--fpm-config", fs.conf)
	cmd.Dir = o.DocRoot
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true,
		// If the test binary dies without running cleanups (-timeout),
		// the master gets SIGTERM, on which FPM ends its workers too.
		// Not SIGKILL: workers outlive a SIGKILLed master and keep
		// serving on its socket. (Go sends this when the OS thread that
		// started the master exits, which only happens to threads of
		// goroutines that exit while locked with runtime.LockOSThread.)
		Pdeathsig: syscall.SIGTERM,
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("fpmtest.Start: start %s: %v", bin, err)
	}
	f := &FPM{
		Addr:    o.Addr,
		PID:     cmd.Process.Pid,
		Dir:     fs.dir,
		Options: o,
		t:       t,
		files:   fs,
		cmd:     cmd,
		done:    make(chan struct{}),
	}
	// This goroutine ends when the master exits; the cleanup below makes
	// sure it does.
	go func() {
		_ = cmd.Wait()
		close(f.done)
	}()
	t.Cleanup(f.cleanup)

	if err := f.awaitReady(startTimeout); err != nil {
		f.terminate()
		f.logShown = true
		t.Fatalf("fpmtest.Start: php-fpm on %s: %v\n--- php-fpm log %s ---\n%s", o.Addr, err, fs.errorLog, f.Log())
	}
	return f
}

// checkAddr insists on "ip:port" with a loopback IP and a non-zero port.
func checkAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("addr %q: %w", addr, err)
	}
	ip := net.ParseIP(host)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("addr %q: host must be a loopback IP such as 127.0.0.2", addr)
	}
	if port == "" || port == "0" {
		return fmt.Errorf("addr %q: need a port (use FreePort)", addr)
	}
	return nil
}

// awaitReady polls with capped backoff until the master has logged
// readyLine and Addr accepts a TCP connection, or the master exits, or
// the timeout passes. Both are required: a connect alone could reach some
// other process already listening on the address.
func (f *FPM) awaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	backoff := time.Millisecond
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-f.done:
			return fmt.Errorf("master exited during startup: %v", f.cmd.ProcessState)
		case <-timer.C:
		}
		if strings.Contains(f.Log(), readyLine) {
			c, err := net.DialTimeout("tcp", f.Addr, 200*time.Millisecond)
			if err == nil {
				c.Close()
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v", timeout)
		}
		backoff = min(2*backoff, maxBackoff)
		timer.Reset(backoff)
	}
}

// Log returns the master's error log: its own messages, the workers' stdout
// and stderr (catch_workers_output), and anything php-fpm printed before
// the log was open.
func (f *FPM) Log() string {
	b, err := os.ReadFile(f.files.errorLog)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", f.files.errorLog, err)
	}
	return string(b)
}

// AccessLog returns FPM's access log, one line per finished request:
//
//	"<remote> <method> <uri><?query> <status> <ms>ms script=<SCRIPT_FILENAME>"
//
// FPM writes the line after it has sent the response, so a test that counts
// lines must poll until the count it expects appears. Ping and status
// requests are logged too.
func (f *FPM) AccessLog() string {
	b, err := os.ReadFile(f.files.accessLog)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Sprintf("(cannot read %s: %v)", f.files.accessLog, err)
	}
	return string(b)
}

// Exited reports whether the master has exited.
func (f *FPM) Exited() bool {
	select {
	case <-f.done:
		return true
	default:
		return false
	}
}

// Done returns a channel that is closed when the master has exited.
func (f *FPM) Done() <-chan struct{} { return f.done }

// Kill sends SIGKILL to the master and all its workers and waits until they
// are gone: a crash of the whole backend. Connections in flight are reset.
// Kill may be called more than once and after Stop.
func (f *FPM) Kill() {
	f.signalGroup(syscall.SIGKILL)
	f.awaitGone(killTimeout)
}

// Stop stops the master gracefully with SIGQUIT: workers finish the requests
// they are running (for up to process_control_timeout, 10s) and exit.
// A paused master is resumed first. If it has not exited after 15s the
// group is killed. Stop blocks until the master and workers are gone.
func (f *FPM) Stop() {
	f.signalGroup(syscall.SIGCONT)
	f.signalMaster(syscall.SIGQUIT)
	if !f.awaitMaster(stopTimeout) {
		f.t.Errorf("fpmtest: php-fpm %s (pid %d) ignored SIGQUIT for %v; killing it", f.Addr, f.PID, stopTimeout)
	}
	f.Kill()
}

// Pause sends SIGSTOP to the master and its workers: the listen socket still
// accepts connections into its backlog, but nothing answers. Resume undoes it.
func (f *FPM) Pause() { f.signalGroup(syscall.SIGSTOP) }

// Resume sends SIGCONT to the master and its workers.
func (f *FPM) Resume() { f.signalGroup(syscall.SIGCONT) }

// Workers returns the PIDs of the master's live workers (the other members
// of its process group), for tests that kill or stop a single worker.
func (f *FPM) Workers() []int {
	procs, err := groupMembers(f.PID)
	if err != nil {
		f.t.Errorf("fpmtest: %v", err)
		return nil
	}
	var pids []int
	for _, pid := range procs {
		if pid != f.PID {
			pids = append(pids, pid)
		}
	}
	return pids
}

// cleanup stops the master at the end of the test and, if the test failed,
// logs what FPM wrote.
func (f *FPM) cleanup() {
	f.terminate()
	if f.t.Failed() && !f.logShown {
		f.t.Logf("--- php-fpm %s log (%s) ---\n%s", f.Addr, f.files.errorLog, tail(f.Log(), 8<<10))
	}
}

// terminate ends the master quickly: SIGTERM (FPM's immediate shutdown,
// which also ends the workers), then SIGKILL to the whole group.
func (f *FPM) terminate() {
	f.signalGroup(syscall.SIGCONT)
	f.signalMaster(syscall.SIGTERM)
	f.awaitMaster(termTimeout)
	f.Kill()
}

// signalMaster signals the master only. A master that has already exited is
// not an error.
func (f *FPM) signalMaster(sig syscall.Signal) {
	if f.Exited() {
		return
	}
	if err := syscall.Kill(f.PID, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		f.t.Errorf("fpmtest: signal %v to php-fpm pid %d: %v", sig, f.PID, err)
	}
}

// signalGroup signals the master's process group: master and workers. An
// empty group is not an error.
func (f *FPM) signalGroup(sig syscall.Signal) {
	if err := syscall.Kill(-f.PID, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		f.t.Errorf("fpmtest: signal %v to php-fpm group %d: %v", sig, f.PID, err)
	}
}

// awaitMaster waits up to timeout for the master to exit and be reaped.
func (f *FPM) awaitMaster(timeout time.Duration) bool {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-f.done:
		return true
	case <-timer.C:
		return false
	}
}

// awaitGone waits until the master has been reaped and no live process is
// left in its group. Workers are reaped by init, not by us, so a worker
// that is a zombie counts as gone: it holds no sockets any more.
func (f *FPM) awaitGone(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	if !f.awaitMaster(timeout) {
		f.t.Errorf("fpmtest: php-fpm master %d still running %v after SIGKILL", f.PID, timeout)
		return
	}
	backoff := time.Millisecond
	for {
		procs, err := groupMembers(f.PID)
		if err != nil {
			f.t.Errorf("fpmtest: %v", err)
			return
		}
		if len(procs) == 0 {
			return
		}
		if time.Now().After(deadline) {
			f.t.Errorf("fpmtest: php-fpm group %d still has processes %v after %v", f.PID, procs, timeout)
			return
		}
		// The group may have gained a member we did not signal (a worker
		// forked as the master died); signal again.
		_ = syscall.Kill(-f.PID, syscall.SIGKILL)
		time.Sleep(backoff) // polling a condition no event reports
		backoff = min(2*backoff, maxBackoff)
	}
}

// tail returns the last n bytes of s, starting at a line boundary.
func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	s = s[len(s)-n:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return "...\n" + s
}
