// nginx.go starts nginx as a FastCGI proxy in front of one php-fpm.

package lab

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// NginxOptions configures one nginx instance with a single server that
// passes *.php to a FastCGI upstream.
type NginxOptions struct {
	// Listen is the HTTP address, "127.0.0.x:port". Required.
	Listen string
	// Upstream is the FastCGI backend, "127.0.0.x:port". Required unless
	// Upstreams is set.
	Upstream string
	// Upstreams, if set, are several backends instead of Upstream,
	// balanced by least_conn.
	Upstreams []string
	// DocRoot is $document_root, as the FPM host sees it. Required.
	DocRoot string
	// Dir receives nginx.conf, the pid file, the error log and the temp
	// directories. Required.
	Dir string
	// Workers is worker_processes. Empty means "auto": one worker per
	// core, the same core budget as a Go program's default GOMAXPROCS.
	Workers string
	// Templates is the directory holding nginx.conf.tmpl (see
	// TemplatesDir). Required.
	Templates string
	// Keepalive is the upstream's keepalive: idle connections to FPM kept
	// per worker, with fastcgi_keep_conn on. 0 turns keep-alive off: a new
	// connection per request, which FPM closes after answering.
	Keepalive int
	// CPUs pins the master and its workers to these CPUs, a list as
	// taskset -c takes it ("0", "0-1"). Empty: no pinning, any CPU.
	CPUs string
}

// Servers returns the upstream's servers: Upstreams, or Upstream alone.
func (o NginxOptions) Servers() []string {
	if len(o.Upstreams) > 0 {
		return o.Upstreams
	}
	return []string{o.Upstream}
}

// Nginx is a running nginx master started by StartNginx.
type Nginx struct {
	Listen string
	Dir    string
	*process
}

// NginxBinary returns the path of nginx: /usr/sbin/nginx or the first in
// $PATH.
func NginxBinary() (string, error) { return findBinary("nginx") }

// NginxVersion returns what `nginx -v` prints, for reports.
func NginxVersion(bin string) string {
	out, err := exec.Command(bin, "-v").CombinedOutput()
	if err != nil {
		return fmt.Sprintf("unknown (%v)", err)
	}
	return strings.TrimSpace(strings.TrimPrefix(string(out), "nginx version: "))
}

// StartNginx renders nginx.conf.tmpl for o into o.Dir as nginx.conf, checks it with nginx -t,
// starts `nginx -p Dir -c nginx.conf -e error.log` in the foreground
// (daemon off) in a process group of its own, and returns once o.Listen
// accepts connections. ctx bounds only the start.
func StartNginx(ctx context.Context, o NginxOptions) (*Nginx, error) {
	if o.Workers == "" {
		o.Workers = "auto"
	}
	for _, a := range append([]string{o.Listen}, o.Servers()...) {
		if err := checkLoopback(a); err != nil {
			return nil, fmt.Errorf("start nginx: %w", err)
		}
	}
	if o.Dir == "" || o.Templates == "" || o.DocRoot == "" {
		return nil, fmt.Errorf("start nginx: Dir, Templates and DocRoot are required")
	}
	bin, err := NginxBinary()
	if err != nil {
		return nil, fmt.Errorf("start nginx: %w", err)
	}
	conf := filepath.Join(o.Dir, "nginx.conf")
	if err := renderTemplate(o.Templates, "nginx.conf.tmpl", conf, o); err != nil {
		return nil, fmt.Errorf("start nginx: %w", err)
	}
	return startNginxConf(ctx, bin, o.Dir, conf, o.Listen, o.CPUs)
}

// startNginxConf checks conf with nginx -t, starts nginx with it in the
// foreground in a process group of its own, on the CPUs in cpus (empty:
// any), and waits until listen accepts connections.
func startNginxConf(ctx context.Context, bin, dir, conf, listen, cpus string) (*Nginx, error) {
	errorLog := filepath.Join(dir, "error.log")
	args := []string{"-p", dir + "/", "-c", conf, "-e", errorLog}
	if out, err := exec.CommandContext(ctx, bin, append(args, "-t", "-q")...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("start nginx: %s -t: %w\n%s", bin, err, out)
	}
	p, err := startProcess("nginx", errorLog, dir, cpus, bin, args...)
	if err != nil {
		return nil, err
	}
	n := &Nginx{Listen: listen, Dir: dir, process: p}
	if err := p.awaitReady(ctx, startTimeout, func() error { return dialCheck(listen) }); err != nil {
		_ = n.Stop()
		return nil, err
	}
	return n, nil
}

// Stop ends nginx: SIGTERM (fast shutdown) to the master, then SIGKILL to
// its group. It may be called more than once.
func (n *Nginx) Stop() error {
	return n.stop(syscall.SIGTERM, 5*time.Second)
}
