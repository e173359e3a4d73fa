// gateway.go builds and starts fcgigate processes.

package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"time"
)

// GatewayOptions configures one fcgigate process with one pool.
type GatewayOptions struct {
	// Binary is the fcgigate executable (see GatewayBinary). Required.
	Binary string
	// Listen is the HTTP front's address, "127.0.1.x:port". Required.
	Listen string
	// FastCGIListen is the FastCGI front's address, "127.0.1.x:port".
	// Empty: no FastCGI front.
	FastCGIListen string
	// Pool names the pool. Empty means "lab".
	Pool string
	// Backends are the FPM addresses. At least one.
	Backends []string
	// DocRoot is document_root, as the FPM hosts see it. Required.
	DocRoot string
	// LogLevel is [log] level. Empty means "warn": quiet while all is well,
	// and every line it does write is worth reading after a run.
	LogLevel string
	// Dir receives fcgigate.toml and the log (the gateway's stderr).
	// Required.
	Dir string
	// Templates is the directory holding fcgigate.toml.tmpl (see
	// TemplatesDir). Required.
	Templates string
	// Procs is [server] procs ("auto+1", "3"). Empty: left out, "auto".
	Procs string
	// CPUs pins the gateway to these CPUs, a list as taskset -c takes it
	// ("1", "0-1"); its Go runtime then sizes GOMAXPROCS to their number.
	// Empty: no pinning, any CPU.
	CPUs string
}

// Gateway is a running fcgigate started by StartGateway.
type Gateway struct {
	Listen string
	Dir    string
	Config string // path of the generated fcgigate.toml
	*process
}

// GatewayBinary returns the fcgigate executable to benchmark: repo/bin/
// fcgigate if `make build` made one, else a fresh `go build` of
// ./cmd/fcgigate into dir.
func GatewayBinary(ctx context.Context, repo, dir string) (string, error) {
	p := filepath.Join(repo, "bin", "fcgigate")
	if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
		return p, nil
	}
	p = filepath.Join(dir, "fcgigate")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", p, "./cmd/fcgigate")
	cmd.Dir = repo
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/fcgigate: %w\n%s", err, out)
	}
	return p, nil
}

// StartGateway renders fcgigate.toml.tmpl for o into o.Dir, starts `fcgigate
// serve -config fcgigate.toml` in a process group of its own with its
// stderr in o.Dir/fcgigate.log, and returns once o.Listen (and
// o.FastCGIListen, if set) accepts connections. ctx bounds only the start.
func StartGateway(ctx context.Context, o GatewayOptions) (*Gateway, error) {
	if o.Pool == "" {
		o.Pool = "lab"
	}
	if o.LogLevel == "" {
		o.LogLevel = "warn"
	}
	if o.Binary == "" || o.Dir == "" || o.Templates == "" || o.DocRoot == "" || len(o.Backends) == 0 {
		return nil, fmt.Errorf("start fcgigate: Binary, Dir, Templates, DocRoot and Backends are required")
	}
	addrs := append([]string{o.Listen}, o.Backends...)
	if o.FastCGIListen != "" {
		addrs = append(addrs, o.FastCGIListen)
	}
	for _, a := range addrs {
		if err := checkLoopback(a); err != nil {
			return nil, fmt.Errorf("start fcgigate: %w", err)
		}
	}
	conf := filepath.Join(o.Dir, "fcgigate.toml")
	if err := renderTemplate(o.Templates, "fcgigate.toml.tmpl", conf, o); err != nil {
		return nil, fmt.Errorf("start fcgigate: %w", err)
	}
	p, err := startProcess("fcgigate", filepath.Join(o.Dir, "fcgigate.log"), o.Dir, o.CPUs,
		o.Binary, "serve", "-config", conf)
	if err != nil {
		return nil, err
	}
	g := &Gateway{Listen: o.Listen, Dir: o.Dir, Config: conf, process: p}
	ready := func() error {
		if o.FastCGIListen != "" {
			if err := dialCheck(o.FastCGIListen); err != nil {
				return err
			}
		}
		return dialCheck(o.Listen)
	}
	if err := p.awaitReady(ctx, startTimeout, ready); err != nil {
		_ = g.Stop()
		return nil, err
	}
	return g, nil
}

// Stop ends the gateway: SIGTERM (drain, at most drain_timeout), then
// SIGKILL. It may be called more than once.
func (g *Gateway) Stop() error {
	return g.stop(syscall.SIGTERM, 5*time.Second)
}
