package lab

import (
	"context"
	"os"
	"runtime"
	"strings"
	"testing"
)

func TestBenchConfigValidate(t *testing.T) {
	tests := []struct {
		name   string
		cfg    BenchConfig
		numCPU int
		err    string // a part of the error; empty: none
	}{
		{"shared default", BenchConfig{Repo: "/r"}, 1, ""},
		{"shared apache", BenchConfig{Repo: "/r", Scenario: ScenarioApache}, 1, ""},
		{"split apache", BenchConfig{Repo: "/r", Scenario: ScenarioApache, Split: true}, 2, ""},
		{"split apache, 4 CPUs", BenchConfig{Repo: "/r", Scenario: ScenarioApache, Split: true}, 4, ""},
		{"split apache, 1 CPU", BenchConfig{Repo: "/r", Scenario: ScenarioApache, Split: true}, 1,
			"split CPUs (-split) need 2 CPUs, CPU 0 for wrk, Apache and php-fpm and CPU 1 for the hop; this machine has 1"},
		{"split default", BenchConfig{Repo: "/r", Split: true}, 2,
			"split CPUs (-split) need the apache scenario (-scenario apache), where the hop in front of php-fpm can have a core of its own; not the default scenario"},
		{"split slowpool", BenchConfig{Repo: "/r", Scenario: ScenarioSlowPool, Split: true}, 2,
			`not scenario "slowpool"`},
		{"no repo", BenchConfig{Scenario: ScenarioApache}, 2, "Repo is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.setDefaults()
			err := tt.cfg.validate(tt.numCPU)
			switch {
			case tt.err == "" && err != nil:
				t.Fatalf("validate: %v", err)
			case tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)):
				t.Fatalf("validate: %v, want an error with %q", err, tt.err)
			}
		})
	}
}

// TestRunBenchSplitRejected checks that RunBench refuses a split run of
// another scenario before it starts anything: ctx is cancelled already, so
// that a run which got past the check would fail at once too.
func TestRunBenchSplitRejected(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	dir := t.TempDir()
	rep, err := RunBench(ctx, BenchConfig{Repo: "/nonexistent", Scenario: ScenarioSlowPool, Split: true, Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "-scenario apache") || rep != nil {
		t.Fatalf("RunBench = %v, %v; want the split error", rep, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) > 0 {
		t.Errorf("RunBench wrote %d entries to %s before refusing", len(entries), dir)
	}
}

func TestBenchSplitCPUs(t *testing.T) {
	cfg := BenchConfig{Repo: t.TempDir(), Scenario: ScenarioApache, Split: true}
	cfg.setDefaults()
	if cfg.Wrk.CPUs != "0" || cfg.appCPUs() != "0" || cfg.hopCPUs() != "1" {
		t.Errorf("split: wrk on %q, application on %q, hop on %q; want 0, 0, 1", cfg.Wrk.CPUs, cfg.appCPUs(), cfg.hopCPUs())
	}
	e := benchEnv(cfg)
	if !e.Split || e.AppCPUs != "0" || e.HopCPUs != "1" {
		t.Errorf("split env: %+v", e)
	}
	if os.Getenv("GOMAXPROCS") == "" && e.GOMAXPROCS != 1 {
		t.Errorf("split env: fcgigate GOMAXPROCS %d, want 1 (one CPU)", e.GOMAXPROCS)
	}
	if cfg.GatewayProcs != "auto" || e.GatewayProcs != "auto" {
		t.Errorf("split: fcgigate procs %q (env %q), want auto: the gateway has a core of its own", cfg.GatewayProcs, e.GatewayProcs)
	}

	cfg = BenchConfig{Repo: cfg.Repo, Scenario: ScenarioApache}
	cfg.setDefaults()
	if cfg.Wrk.CPUs != "" || cfg.appCPUs() != "" || cfg.hopCPUs() != "" {
		t.Errorf("shared: wrk on %q, application on %q, hop on %q; want no pinning", cfg.Wrk.CPUs, cfg.appCPUs(), cfg.hopCPUs())
	}
	if e := benchEnv(cfg); e.Split || e.AppCPUs != "" || e.HopCPUs != "" {
		t.Errorf("shared env: %+v", e)
	}
	if e := benchEnv(cfg); cfg.GatewayProcs != "auto" || e.GOMAXPROCS != runtime.GOMAXPROCS(0) {
		t.Errorf("shared, behind Apache: fcgigate procs %q, GOMAXPROCS %d; want auto, %d", cfg.GatewayProcs, e.GOMAXPROCS, runtime.GOMAXPROCS(0))
	}
	// In the default scenario, sharing the cores with php-fpm and wrk flat
	// out, fcgigate gets one thread more than Go would give it.
	cfg = BenchConfig{Repo: cfg.Repo}
	cfg.setDefaults()
	if e := benchEnv(cfg); cfg.GatewayProcs != "auto+1" || e.GOMAXPROCS != runtime.GOMAXPROCS(0)+1 {
		t.Errorf("default scenario: fcgigate procs %q, GOMAXPROCS %d; want auto+1, %d", cfg.GatewayProcs, e.GOMAXPROCS, runtime.GOMAXPROCS(0)+1)
	}
	auto := runtime.GOMAXPROCS(0)
	for p, want := range map[string]int{"auto": auto, "auto+1": auto + 1, "auto+3": auto + 3, "4": 4, "x": auto, "auto+x": auto} {
		cfg.GatewayProcs = p
		if got := benchEnv(cfg).GOMAXPROCS; got != want {
			t.Errorf("procs %q: GOMAXPROCS %d, want %d", p, got, want)
		}
	}
}

func TestSelectCases(t *testing.T) {
	all, err := SelectCases("", "")
	if err != nil || len(all) != len(DefaultCases) {
		t.Fatalf("SelectCases(\"\", \"\") = %d cases, %v; want all %d", len(all), err, len(DefaultCases))
	}
	got, err := SelectCases("", "paced, tiny")
	if err != nil || len(got) != 2 || got[0].Name != "tiny" || got[1].Name != "paced" {
		t.Fatalf("SelectCases(paced, tiny) = %v, %v; want tiny then paced", got, err)
	}
	sp, err := SelectCases(ScenarioSlowPool, "slowpool")
	if err != nil || len(sp) != 1 || sp[0].Name != "slowpool" {
		t.Fatalf("SelectCases(slowpool) = %v, %v", sp, err)
	}
	_, err = SelectCases("", "tiny,huge")
	if err == nil || !strings.Contains(err.Error(), `no case "huge"`) || !strings.Contains(err.Error(), "tiny, 64KiB, paced") {
		t.Fatalf("SelectCases(tiny,huge) error = %v; want one naming \"huge\" and the known cases", err)
	}
}
