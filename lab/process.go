// process.go runs one server process in its own process group and stops it
// by its PID.

package lab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Timeouts shared by the servers the lab starts.
const (
	startTimeout = 15 * time.Second // a server up and accepting
	killTimeout  = 5 * time.Second  // SIGKILL until the group is gone
	maxBackoff   = 50 * time.Millisecond
)

// process is one server started by the lab: the leader of a process group
// of its own, so that its workers can be found and stopped with it.
// Its methods may be called from any goroutine.
type process struct {
	name    string // for errors: "nginx", "php-fpm", "fcgigate"
	logPath string // where its stdout and stderr go
	cmd     *exec.Cmd
	done    chan struct{} // closed once the leader has exited and been reaped

	stopOnce sync.Once
	stopErr  error // set by the first Stop
}

// startProcess starts bin with args in a new process group, with stdout and
// stderr appended to logPath, on the CPUs in cpus (empty: any; see
// pinnedCommand).
func startProcess(name, logPath, dir, cpus, bin string, args ...string) (*process, error) {
	bin, args, err := pinnedCommand(cpus, bin, args...)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	out, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	defer out.Close() // the child holds its own copy

	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout = out
	cmd.Stderr = out
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true,
		// A backstop for when the lab dies without running its cleanup
		// (SIGKILL, a crash): the leader gets SIGKILL, and nginx's and
		// FPM's workers exit once they find their master gone.
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, logPath: logPath, cmd: cmd, done: make(chan struct{})}
	// Ends when the leader exits; stop makes sure it does.
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// PID is the leader's PID, which is also its process group id.
func (p *process) PID() int { return p.cmd.Process.Pid }

// exited reports whether the leader has exited.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Log returns what the process wrote to its log file.
func (p *process) Log() string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", p.logPath, err)
	}
	return string(b)
}

// awaitReady polls until ready returns nil, the leader exits, ctx is done
// or timeout passes. The error of a failed start carries the tail of the
// process's log.
func (p *process) awaitReady(ctx context.Context, timeout time.Duration, ready func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	backoff := time.Millisecond
	timer := time.NewTimer(0)
	defer timer.Stop()
	var last error
	for {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited during startup (%v); log %s:\n%s", p.name, p.cmd.ProcessState, p.logPath, tail(p.Log(), 4<<10))
		case <-ctx.Done():
			return fmt.Errorf("%s not ready: %w (last check: %v); log %s:\n%s", p.name, ctx.Err(), last, p.logPath, tail(p.Log(), 4<<10))
		case <-timer.C:
		}
		if last = ready(); last == nil {
			return nil
		}
		backoff = min(2*backoff, maxBackoff)
		timer.Reset(backoff)
	}
}

// stop signals the leader with sig (the server's own shutdown signal), waits
// up to grace for it to exit, then sends SIGKILL to its process group and
// waits until no member of the group is left. Only the first call acts;
// later ones return its result.
func (p *process) stop(sig syscall.Signal, grace time.Duration) error {
	p.stopOnce.Do(func() { p.stopErr = p.doStop(sig, grace) })
	return p.stopErr
}

func (p *process) doStop(sig syscall.Signal, grace time.Duration) error {
	pid := p.PID()
	if !p.exited() {
		if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("stop %s: signal %v to pid %d: %w", p.name, sig, pid, err)
		}
		timer := time.NewTimer(grace)
		select {
		case <-p.done:
		case <-timer.C:
		}
		timer.Stop()
	}
	// Whatever is left of the group (workers the master did not take down,
	// or a master that ignored sig) gets SIGKILL.
	deadline := time.Now().Add(killTimeout)
	for backoff := time.Millisecond; ; backoff = min(2*backoff, maxBackoff) {
		members, err := groupMembers(pid)
		if err != nil {
			return fmt.Errorf("stop %s: %w", p.name, err)
		}
		if len(members) == 0 && p.exited() {
			return nil
		}
		if err := syscall.Kill(-pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("stop %s: SIGKILL to group %d: %w", p.name, pid, err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("stop %s: group %d still has %v after SIGKILL", p.name, pid, members)
		}
		time.Sleep(backoff) // polling a condition no event reports
	}
}

// dialCheck returns nil once addr accepts a TCP connection.
func dialCheck(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return err
	}
	return c.Close()
}

// freePort returns "host:port" for a TCP port that was free on host a
// moment ago. host must be a loopback IP; every address in 127.0.0.0/8 is
// usable on Linux without configuration.
func freePort(host string) (string, error) {
	if err := checkLoopback(net.JoinHostPort(host, "1")); err != nil {
		return "", err
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", fmt.Errorf("free port on %s: %w", host, err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		return "", fmt.Errorf("free port on %s: %w", host, err)
	}
	return addr, nil
}

// checkLoopback insists on "ip:port" with a loopback IP and a port.
func checkLoopback(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("address %q: host must be a loopback IP (127.0.0.0/8)", addr)
	}
	if port == "" || port == "0" {
		return fmt.Errorf("address %q: needs a port", addr)
	}
	return nil
}

// findBinary returns the first of names found in $PATH or, failing that, in
// the sbin directories, which a non-root user's $PATH often lacks.
func findBinary(names ...string) (string, error) {
	for _, name := range names {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
		for _, name := range names {
			if p, err := exec.LookPath(dir + "/" + name); err == nil {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("none of %s found (install them with scripts/deps.sh)", strings.Join(names, ", "))
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
