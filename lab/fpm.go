// fpm.go starts one php-fpm master with a single static pool.

package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// FPMOptions configures one php-fpm master.
type FPMOptions struct {
	// Addr is the listen address, "127.0.0.x:port". Required.
	Addr string
	// DocRoot is the directory the workers chdir to; scripts are named by
	// absolute SCRIPT_FILENAME, so FPM needs no docroot of its own.
	// Required.
	DocRoot string
	// Dir receives php.ini, php-fpm.conf and the log. Required.
	Dir string
	// Templates is the directory holding php-fpm.conf.tmpl and php.ini
	// (see TemplatesDir). Required.
	Templates string
	// MaxChildren is pm.max_children with pm = static. 0 means 8. A worker
	// serves one connection at a time, and all the requests that come on
	// it while it stays open (keep-alive), so a proxy that holds more
	// connections than this makes the rest wait in the accept queue.
	MaxChildren int
	// Env sets environment variables of the workers (env[NAME] = value):
	// the slow-pool scenario makes one pool slow with WORK_MS.
	Env map[string]string
	// CPUs pins the master and its workers to these CPUs, a list as
	// taskset -c takes it ("0", "0-1"). Empty: no pinning, any CPU.
	CPUs string
}

// FPM is a running php-fpm master started by StartFPM.
type FPM struct {
	Addr string // listen address
	Dir  string // holds its configuration and log
	*process
}

// fpmReadyLine is what the master logs at notice level once its pool is up.
const fpmReadyLine = "ready to handle connections"

// StartFPM renders php-fpm.conf.tmpl for o and copies php.ini into o.Dir, starts php-fpm with
// --nodaemonize --allow-to-run-as-root in a process group of its own, and
// returns once the master has logged that it is ready and o.Addr accepts
// connections. ctx bounds only the start; the master runs until Stop.
func StartFPM(ctx context.Context, o FPMOptions) (*FPM, error) {
	if o.MaxChildren <= 0 {
		o.MaxChildren = 8
	}
	if err := checkLoopback(o.Addr); err != nil {
		return nil, fmt.Errorf("start php-fpm: %w", err)
	}
	if o.Dir == "" || o.Templates == "" || o.DocRoot == "" {
		return nil, fmt.Errorf("start php-fpm: Dir, Templates and DocRoot are required")
	}
	bin, err := findBinary("php-fpm8.2", "php-fpm")
	if err != nil {
		return nil, fmt.Errorf("start php-fpm: %w", err)
	}
	ini, conf := filepath.Join(o.Dir, "php.ini"), filepath.Join(o.Dir, "php-fpm.conf")
	if err := copyFile(o.Templates, "php.ini", ini); err != nil {
		return nil, fmt.Errorf("start php-fpm: %w", err)
	}
	// As root, FPM needs user and group (allowed by --allow-to-run-as-root);
	// as another user it ignores them with a notice, so they are left out.
	data := struct {
		FPMOptions
		Root bool
	}{o, os.Geteuid() == 0}
	if err := renderTemplate(o.Templates, "php-fpm.conf.tmpl", conf, data); err != nil {
		return nil, fmt.Errorf("start php-fpm: %w", err)
	}
	p, err := startProcess("php-fpm", filepath.Join(o.Dir, "php-fpm.log"), o.DocRoot, o.CPUs,
		bin, "--nodaemonize", "--allow-to-run-as-root", "-c", ini, "--fpm-config", conf)
	if err != nil {
		return nil, err
	}
	f := &FPM{Addr: o.Addr, Dir: o.Dir, process: p}
	err = p.awaitReady(ctx, startTimeout, func() error {
		if !strings.Contains(p.Log(), fpmReadyLine) {
			return fmt.Errorf("no %q in log yet", fpmReadyLine)
		}
		// Both checks: a connect alone could reach another process.
		return dialCheck(o.Addr)
	})
	if err != nil {
		_ = f.Stop()
		return nil, err
	}
	return f, nil
}

// Stop ends the master and its workers: SIGTERM (FPM's immediate
// shutdown), then SIGKILL to the group. It may be called more than once.
func (f *FPM) Stop() error {
	syscall.Kill(-f.PID(), syscall.SIGCONT) // in case a chaos test paused it
	return f.stop(syscall.SIGTERM, 5*time.Second)
}
