// Command fcgilab is fcgigate's lab. Its subcommands start real servers on
// loopback addresses and drive load at them:
//
//	fcgilab bench [flags]   fcgigate and nginx side by side in front of one
//	                        php-fpm, as ratios (make bench)
//
// main only parses flags and wires them into package lab.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/fcgigate/fcgigate/lab"
)

const usage = `usage: fcgilab <command> [flags]

commands:
  bench   benchmark fcgigate against nginx in front of one php-fpm

Run "fcgilab <command> -h" for the flags of a command.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	// Ctrl-C or SIGTERM cancel ctx; every server started is then stopped
	// before fcgilab exits.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var err error
	switch os.Args[1] {
	case "bench":
		err = bench(ctx, os.Args[2:])
	case "-h", "-help", "--help", "help":
		fmt.Fprint(os.Stdout, usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "fcgilab: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "fcgilab: %v\n", err)
		os.Exit(1)
	}
}

func bench(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	var (
		duration = fs.Duration("duration", 10*time.Second, "length of one wrk round (wrk -d, whole seconds)")
		conns    = fs.Int("conns", 32, "connections wrk keeps open (wrk -c)")
		threads  = fs.Int("threads", 2, "wrk threads (wrk -t)")
		rounds   = fs.Int("rounds", 3, "rounds per case and proxy, interleaved")
		warmup   = fs.Duration("warmup", 2*time.Second, "warm-up per case and proxy before the rounds; 0 for none")
		only     = fs.String("only", "", "measure only this proxy: nginx or fcgigate (apache or apache+fcgigate with -scenario apache; default both)")
		gateway  = fs.String("gateway", "", "fcgigate binary (default bin/fcgigate, else a fresh go build)")
		children = fs.Int("fpm-children", 0, "php-fpm pm.max_children (pm = static); 0: 4 x -conns, at least 8, so every FastCGI connection the proxies hold open has a worker")
		workers  = fs.String("nginx-workers", "auto", "nginx worker_processes")
		procs    = fs.String("gateway-procs", "", `fcgigate's [server] procs; default "auto+1" in the default scenario (its HTTP front sharing the cores with php-fpm and wrk flat out), "auto" in the others`)
		ngxKeep  = fs.Int("nginx-keepalive", 32, "nginx upstream keepalive (with fastcgi_keep_conn on); 0: a new FastCGI connection per request")
		out      = fs.String("out", "bench-results", "directory for <timestamp>.json and .txt, relative to the repository root")
		keep     = fs.Bool("keep", false, "keep the servers' configurations and logs (their temp dir is printed)")
		split    = fs.Bool("split", false, "with -scenario apache: pin wrk, Apache and php-fpm (with all their children) to CPU 0 and the hop (fcgigate, the relay's nginx) to CPU 1, in every path's rounds, as if the gateway ran on a one-core host of its own (fcgigate's GOMAXPROCS is then 1); the direct path gets the same CPU 0. Needs 2 CPUs and taskset (util-linux). Without it all share all cores, the hop's worst case")
		cases    = fs.String("cases", "", "comma-separated cases to measure (tiny, 64KiB, paced; slowpool in -scenario slowpool); default all of the scenario's")
		scenario = fs.String("scenario", "", `"" for one php-fpm pool (tiny and 64 KiB answers), "slowpool": three pools, one ten times slower, nginx least_conn against fcgigate, or "apache": Apache to php-fpm directly against Apache through fcgigate's FastCGI front`)
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bench: unexpected arguments %q", fs.Args())
	}
	wd, err := os.Getwd()
	if err != nil {
		return err
	}
	repo, err := lab.FindRepo(wd)
	if err != nil {
		return err
	}
	selected, err := lab.SelectCases(*scenario, *cases)
	if err != nil {
		return err
	}
	cfg := lab.BenchConfig{
		Repo:           repo,
		Cases:          selected,
		Scenario:       *scenario,
		Split:          *split,
		Gateway:        *gateway,
		Rounds:         *rounds,
		Warmup:         *warmup,
		Wrk:            lab.WrkOptions{Threads: *threads, Conns: *conns, Duration: *duration},
		FPMChildren:    *children,
		NginxWorkers:   *workers,
		GatewayProcs:   *procs,
		NginxKeepalive: *ngxKeep,
		Keep:           *keep,
		Progress:       os.Stderr,
	}
	if *warmup == 0 {
		cfg.Warmup = -1
	}
	if *ngxKeep == 0 {
		cfg.NginxKeepalive = -1
	}
	switch strings.TrimSpace(*only) {
	case "":
	case lab.ProxyNginx, lab.ProxyFcgigate, lab.ProxyApache, lab.ProxyApacheFcgigate, lab.ProxyApacheRelay:
		cfg.Proxies = []string{*only}
	default:
		return fmt.Errorf("bench: -only %q: want %s, %s, %s, %s or %s", *only, lab.ProxyNginx, lab.ProxyFcgigate, lab.ProxyApache, lab.ProxyApacheFcgigate, lab.ProxyApacheRelay)
	}

	rep, err := lab.RunBench(ctx, cfg)
	if err != nil {
		if rep != nil && len(rep.Logs) > 0 {
			rep.WriteTable(os.Stderr) // what the servers logged before the failure
		}
		return err
	}
	if err := rep.WriteTable(os.Stdout); err != nil {
		return err
	}
	dir := *out
	if !filepath.IsAbs(dir) {
		dir = filepath.Join(repo, dir)
	}
	jsonPath, txtPath, err := rep.Save(dir)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s and %s\n", jsonPath, txtPath)
	return nil
}
