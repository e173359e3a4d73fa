// apache.go starts Apache httpd 2.4 as a FastCGI client, in front of
// php-fpm or of fcgigate's FastCGI front.

package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// ApacheModules is where Debian's apache2 keeps its modules.
const ApacheModules = "/usr/lib/apache2/modules"

// ApacheOptions configures one Apache with a single docroot whose *.php go
// to one FastCGI address (SetHandler "proxy:fcgi://..." with enablereuse).
type ApacheOptions struct {
	// Listen is the HTTP address, "127.0.0.x:port". Required.
	Listen string
	// Backend is the FastCGI address, "127.0.x.y:port". Required.
	Backend string
	// DocRoot is DocumentRoot. Required.
	DocRoot string
	// Dir receives httpd.conf, the pid file and the error log. Required.
	Dir string
	// Templates is the directory holding apache.conf.tmpl (see
	// TemplatesDir). Required.
	Templates string
	// Processes and Threads are the event MPM's children and threads per
	// child. 0 means 1 and 64: more threads than the benchmark's
	// connections, so that no request waits for one, in one child, so
	// that Apache holds at most as many FastCGI connections as it has
	// requests in flight. mod_proxy keeps a connection pool per child (up
	// to Threads connections, each tying a php-fpm worker until Apache
	// closes it, which with enablereuse and no ttl is never): with two
	// children the pools grow over a run to twice the benchmark's
	// connections, and together with fcgigate's own pool they outgrow
	// php-fpm's workers (see BenchConfig.FPMChildren).
	Processes, Threads int
	// CPUs pins Apache and its children to these CPUs, a list as taskset -c
	// takes it ("0", "0-1"). Empty: no pinning, any CPU.
	CPUs string
}

// Apache is a running Apache started by StartApache.
type Apache struct {
	Listen string
	Dir    string
	*process
}

// ApacheBinary returns the path of apache2 (or httpd).
func ApacheBinary() (string, error) { return findBinary("apache2", "httpd") }

// ApacheVersion returns what `apache2 -v` says, for reports.
func ApacheVersion(bin string) string {
	out, err := exec.Command(bin, "-v").Output()
	if err != nil {
		return fmt.Sprintf("unknown (%v)", err)
	}
	first, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(strings.TrimPrefix(first, "Server version: "))
}

// StartApache renders apache.conf.tmpl for o into o.Dir as httpd.conf,
// checks it with -t, starts `apache2 -f httpd.conf -DFOREGROUND` in a
// process group of its own, and returns once o.Listen accepts connections
// and Apache has logged that it runs. ctx bounds only the start.
func StartApache(ctx context.Context, o ApacheOptions) (*Apache, error) {
	if o.Processes <= 0 {
		o.Processes = 1
	}
	if o.Threads <= 0 {
		o.Threads = 64
	}
	for _, a := range []string{o.Listen, o.Backend} {
		if err := checkLoopback(a); err != nil {
			return nil, fmt.Errorf("start apache: %w", err)
		}
	}
	if o.Dir == "" || o.Templates == "" || o.DocRoot == "" {
		return nil, fmt.Errorf("start apache: Dir, Templates and DocRoot are required")
	}
	bin, err := ApacheBinary()
	if err != nil {
		return nil, fmt.Errorf("start apache: %w", err)
	}
	// Apache's children run as nobody when it is started as root, and
	// reach the mutex files in Dir.
	if err := os.Chmod(o.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("start apache: %w", err)
	}
	conf := filepath.Join(o.Dir, "httpd.conf")
	data := struct {
		ApacheOptions
		Modules string
		Root    bool
		Workers int
	}{o, ApacheModules, os.Geteuid() == 0, o.Processes * o.Threads}
	if err := renderTemplate(o.Templates, "apache.conf.tmpl", conf, data); err != nil {
		return nil, fmt.Errorf("start apache: %w", err)
	}
	if out, err := exec.CommandContext(ctx, bin, "-f", conf, "-t").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("start apache: %s -t: %w\n%s", bin, err, out)
	}
	errorLog := filepath.Join(o.Dir, "error.log")
	p, err := startProcess("apache", filepath.Join(o.Dir, "stderr.log"), o.Dir, o.CPUs, bin, "-f", conf, "-DFOREGROUND")
	if err != nil {
		return nil, err
	}
	a := &Apache{Listen: o.Listen, Dir: o.Dir, process: p}
	err = p.awaitReady(ctx, startTimeout, func() error {
		if err := dialCheck(o.Listen); err != nil {
			return err
		}
		if b, _ := os.ReadFile(errorLog); !strings.Contains(string(b), "resuming normal operations") {
			return fmt.Errorf("no %q in %s yet", "resuming normal operations", errorLog)
		}
		return nil
	})
	if err != nil {
		_ = a.Stop()
		return nil, err
	}
	return a, nil
}

// ErrorLog returns Apache's error log.
func (a *Apache) ErrorLog() string {
	b, err := os.ReadFile(filepath.Join(a.Dir, "error.log"))
	if err != nil {
		return fmt.Sprintf("(cannot read the error log: %v)", err)
	}
	return string(b)
}

// Stop ends Apache: SIGTERM to the parent, which stops its children, then
// SIGKILL to its group. It may be called more than once.
func (a *Apache) Stop() error {
	return a.stop(syscall.SIGTERM, 5*time.Second)
}
