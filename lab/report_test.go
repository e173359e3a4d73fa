package lab

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	tests := []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	}
	for _, tt := range tests {
		if got := median(tt.in); got != tt.want {
			t.Errorf("median(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func round(c, p string, n int, rate float64, p99 time.Duration, reqs int64, cpu time.Duration, conns int) Round {
	return Round{Case: c, Proxy: p, N: n, CPU: cpu, FPMCPU: cpu / 2, FPMConnsMax: conns,
		Wrk: WrkResult{ReqPerSec: rate, P50: p99 / 4, P99: p99, Requests: reqs, Timeouts: int64(n - 1)}}
}

func TestSummarize(t *testing.T) {
	r := &Report{Env: Env{FPMChildren: 96}, Rounds: []Round{
		round("tiny", ProxyNginx, 1, 1000, 4*time.Millisecond, 10000, 200*time.Millisecond, 40),
		round("tiny", ProxyFcgigate, 1, 500, 8*time.Millisecond, 5000, 250*time.Millisecond, 40),
		round("tiny", ProxyNginx, 2, 1200, 2*time.Millisecond, 12000, 240*time.Millisecond, 40),
		round("tiny", ProxyFcgigate, 2, 600, 6*time.Millisecond, 6000, 300*time.Millisecond, 40),
		round("tiny", ProxyNginx, 3, 800, 3*time.Millisecond, 8000, 160*time.Millisecond, 40),
		round("tiny", ProxyFcgigate, 3, 700, 7*time.Millisecond, 7000, 350*time.Millisecond, 40),
	}}
	r.summarize(DefaultCases, []string{ProxyNginx, ProxyFcgigate})

	if len(r.Summaries) != 2 {
		t.Fatalf("summaries = %+v, want 2 (no rounds for 64KiB)", r.Summaries)
	}
	n, g := r.Summaries[0], r.Summaries[1]
	want := Summary{Case: "tiny", Proxy: ProxyNginx, ReqPerSec: 1000, P50Ms: 0.75, P99Ms: 3,
		Spread: 0.4, CPUPer1k: 20, FPMCPUPer1k: 10, FPMConnsMax: 40, Requests: 30000, Errors: 3}
	if !near(n, want) {
		t.Errorf("nginx summary = %+v, want %+v", n, want)
	}
	if g.ReqPerSec != 600 || g.P99Ms != 7 || g.CPUPer1k != 50 {
		t.Errorf("fcgigate summary = %+v", g)
	}
	if len(r.Ratios) != 1 {
		t.Fatalf("ratios = %+v", r.Ratios)
	}
	q := r.Ratios[0]
	if q.Case != "tiny" || q.ReqPerSec != 0.6 || math.Abs(q.P99-7.0/3) > 1e-9 || q.CPU != 2.5 {
		t.Errorf("ratio = %+v, want req/s 0.6, p99 2.33, CPU 2.5", q)
	}

	var b strings.Builder
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"fcgigate/nginx", "req/s 0.60x", "p99 2.33x", "CPU 2.50x",
		fmt.Sprintf("NOT VALID: %d failed requests", n.Errors+g.Errors)} {
		if !strings.Contains(b.String(), w) {
			t.Errorf("table lacks %q:\n%s", w, b.String())
		}
	}
	if strings.Contains(b.String(), "WARNING") {
		t.Errorf("table warns with 40 connections and 96 workers:\n%s", b.String())
	}
	r.Env.FPMChildren = 8
	b.Reset()
	r.WriteTable(&b)
	if !strings.Contains(b.String(), "WARNING: more connections to php-fpm were open than it has workers (FPM conns > 8)") {
		t.Errorf("table does not warn with 40 connections and 8 workers:\n%s", b.String())
	}
}

// near compares summaries allowing for float rounding.
func near(a, b Summary) bool {
	f := func(x, y float64) bool { return math.Abs(x-y) < 1e-9 }
	ok := f(a.ReqPerSec, b.ReqPerSec) && f(a.P50Ms, b.P50Ms) && f(a.P99Ms, b.P99Ms) && f(a.Spread, b.Spread) &&
		f(a.CPUPer1k, b.CPUPer1k) && f(a.FPMCPUPer1k, b.FPMCPUPer1k)
	a.ReqPerSec, a.P50Ms, a.P99Ms, a.Spread, a.CPUPer1k, a.FPMCPUPer1k = 0, 0, 0, 0, 0, 0
	b.ReqPerSec, b.P50Ms, b.P99Ms, b.Spread, b.CPUPer1k, b.FPMCPUPer1k = 0, 0, 0, 0, 0, 0
	return ok && a == b
}

func TestReportSplit(t *testing.T) {
	r := &Report{Env: Env{NumCPU: 2, GOMAXPROCS: 1, Split: true, AppCPUs: "0", HopCPUs: "1"}}
	var b strings.Builder
	if err := r.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	if w := "\ncpus: split: wrk, Apache and php-fpm on CPU 0; the hop (fcgigate, relay) on CPU 1\n"; !strings.Contains(b.String(), w) {
		t.Errorf("table lacks %q:\n%s", w, b.String())
	}
	js, err := json.Marshal(r.Env)
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{`"cpu_split":true`, `"app_cpus":"0"`, `"hop_cpus":"1"`} {
		if !strings.Contains(string(js), w) {
			t.Errorf("JSON lacks %s: %s", w, js)
		}
	}

	// Shared CPUs: no cpus line, and the JSON says so.
	r.Env = Env{NumCPU: 2, GOMAXPROCS: 2}
	b.Reset()
	r.WriteTable(&b)
	if strings.Contains(b.String(), "cpus:") {
		t.Errorf("table of a shared run has a cpus line:\n%s", b.String())
	}
	js, _ = json.Marshal(r.Env)
	if !strings.Contains(string(js), `"cpu_split":false`) || strings.Contains(string(js), "_cpus") {
		t.Errorf("JSON of a shared run: %s", js)
	}
}

// TestMachineLine: the machine line gives nginx's workers when nginx was
// the FastCGI proxy measured, and fcgigate's procs setting.
func TestMachineLine(t *testing.T) {
	line := func(e Env) string {
		var b strings.Builder
		if err := (&Report{Env: e}).WriteTable(&b); err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(b.String(), "\n") {
			if strings.HasPrefix(l, "machine:") {
				return l
			}
		}
		t.Fatalf("no machine line in\n%s", b.String())
		return ""
	}
	e := Env{NumCPU: 2, GOMAXPROCS: 3, GatewayProcs: "auto+1", Nginx: "nginx/1.22.1", NginxWorkers: "auto",
		NginxWorkerCount: 2, NginxKeepalive: 32, FPMChildren: 128}
	want := "machine: 2 CPUs; fcgigate GOMAXPROCS 3 (procs auto+1); nginx/1.22.1 worker_processes auto (2 workers), upstream keepalive 32; php-fpm pm.max_children 128 (static)"
	if got := line(e); got != want {
		t.Errorf("with nginx:\n got %s\nwant %s", got, want)
	}
	e.NginxWorkerCount, e.GOMAXPROCS, e.GatewayProcs = 0, 2, "auto"
	want = "machine: 2 CPUs; fcgigate GOMAXPROCS 2 (procs auto); php-fpm pm.max_children 128 (static)"
	if got := line(e); got != want {
		t.Errorf("without nginx as the proxy (apache scenario):\n got %s\nwant %s", got, want)
	}
}
