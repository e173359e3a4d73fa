// report.go turns benchmark rounds into medians and ratios, and writes them
// as a table and as JSON.

package lab

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Round is one wrk run against one proxy.
type Round struct {
	Case  string    `json:"case"`
	Proxy string    `json:"proxy"`
	N     int       `json:"round"`
	Wrk   WrkResult `json:"wrk"`
	// CPU is the CPU time the proxy's process tree used during the run;
	// FPMCPU is php-fpm's (master and workers) over the same time.
	CPU    time.Duration `json:"cpu_ns"`
	FPMCPU time.Duration `json:"fpm_cpu_ns"`
	// FPMConnsMax is the most connections to FPM seen open during the run
	// (sampled every 50ms), from either proxy: more than pm.max_children
	// means some waited for a worker that an idle keep-alive connection
	// held. FPMQueueMax is the longest accept queue seen: connections no
	// worker had accepted yet.
	FPMConnsMax int `json:"fpm_conns_max"`
	FPMQueueMax int `json:"fpm_queue_max"`
}

// CPUPer1k is the proxy's CPU milliseconds per 1,000 completed requests.
func (r Round) CPUPer1k() float64 { return per1k(r.CPU, r.Wrk.Requests) }

func per1k(cpu time.Duration, requests int64) float64 {
	if requests == 0 {
		return 0
	}
	return float64(cpu) / float64(time.Millisecond) / float64(requests) * 1000
}

// Env records the setup the numbers were measured with.
type Env struct {
	NumCPU           int    `json:"num_cpu"`
	GOMAXPROCS       int    `json:"gomaxprocs"`              // fcgigate's: the lab's, which it inherits with its environment, 1 with Split, then as GatewayProcs says
	GatewayProcs     string `json:"gateway_procs,omitempty"` // fcgigate's [server] procs
	Nginx            string `json:"nginx"`
	Apache           string `json:"apache,omitempty"` // in the Apache scenario
	NginxWorkers     string `json:"nginx_worker_processes"`
	NginxWorkerCount int    `json:"nginx_workers"`   // as counted under the master
	NginxKeepalive   int    `json:"nginx_keepalive"` // upstream keepalive; 0: fastcgi_keep_conn off
	GatewayBinary    string `json:"gateway_binary,omitempty"`
	FPMChildren      int    `json:"fpm_max_children"`
	Wrk              string `json:"wrk"`
	Rounds           int    `json:"rounds"`
	Warmup           string `json:"warmup"`
	Commit           string `json:"commit,omitempty"`
	// Split is BenchConfig.Split: the application side (wrk, Apache,
	// php-fpm) ran on AppCPUs only and the hop (fcgigate, the relay) on
	// HopCPUs only. False: every process could run on every CPU.
	Split   bool   `json:"cpu_split"`
	AppCPUs string `json:"app_cpus,omitempty"`
	HopCPUs string `json:"hop_cpus,omitempty"`
}

// Summary is one proxy's figures for one case, over its rounds.
type Summary struct {
	Case  string `json:"case"`
	Proxy string `json:"proxy"`
	// Medians over the rounds.
	ReqPerSec float64 `json:"req_per_sec"`
	P50Ms     float64 `json:"p50_ms"`
	P99Ms     float64 `json:"p99_ms"`
	// Spread is (max - min) / median of the rounds' req/s: the noise.
	Spread float64 `json:"req_per_sec_spread"`
	// CPU milliseconds per 1,000 requests over all rounds: the proxy's own,
	// and php-fpm's while this proxy was under load.
	CPUPer1k    float64 `json:"cpu_ms_per_1k"`
	FPMCPUPer1k float64 `json:"fpm_cpu_ms_per_1k"`
	FPMConnsMax int     `json:"fpm_conns_max"` // the most in any round
	FPMQueueMax int     `json:"fpm_queue_max"` // the longest in any round
	Requests    int64   `json:"requests"`
	Errors      int64   `json:"errors"` // socket errors and responses >= 400, all rounds
}

// Ratio is fcgigate's summary divided by nginx's for one case (in the
// Apache scenario: Apache through fcgigate's by Apache alone). Above 1 is
// better for ReqPerSec and worse for the others.
type Ratio struct {
	Case      string  `json:"case"`
	Proxy     string  `json:"proxy"`    // the numerator
	Baseline  string  `json:"baseline"` // the denominator
	ReqPerSec float64 `json:"req_per_sec"`
	P50       float64 `json:"p50"`
	P99       float64 `json:"p99"`
	CPU       float64 `json:"cpu_per_req"`
}

// Report is the result of RunBench.
type Report struct {
	Started   time.Time           `json:"started"`
	Finished  time.Time           `json:"finished"`
	Env       Env                 `json:"env"`
	Summaries []Summary           `json:"summaries"`
	Ratios    []Ratio             `json:"ratios"`
	Rounds    []Round             `json:"rounds"`
	Logs      map[string][]string `json:"logs,omitempty"` // warnings and errors the servers logged
}

// summarize fills r.Summaries and r.Ratios from r.Rounds.
func (r *Report) summarize(cases []Case, proxies []string) {
	r.Summaries, r.Ratios = nil, nil
	for _, c := range cases {
		byProxy := make(map[string]Summary)
		for _, p := range proxies {
			var rate, p50, p99 []float64
			s := Summary{Case: c.Name, Proxy: p}
			var cpu, fpm time.Duration
			for _, rd := range r.Rounds {
				if rd.Case != c.Name || rd.Proxy != p {
					continue
				}
				rate = append(rate, rd.Wrk.ReqPerSec)
				p50 = append(p50, ms(rd.Wrk.P50))
				p99 = append(p99, ms(rd.Wrk.P99))
				s.FPMConnsMax = max(s.FPMConnsMax, rd.FPMConnsMax)
				s.FPMQueueMax = max(s.FPMQueueMax, rd.FPMQueueMax)
				cpu += rd.CPU
				fpm += rd.FPMCPU
				s.Requests += rd.Wrk.Requests
				s.Errors += rd.Wrk.Errors()
			}
			if len(rate) == 0 {
				continue
			}
			s.ReqPerSec, s.P50Ms, s.P99Ms = median(rate), median(p50), median(p99)
			if s.ReqPerSec > 0 {
				s.Spread = (slices.Max(rate) - slices.Min(rate)) / s.ReqPerSec
			}
			s.CPUPer1k, s.FPMCPUPer1k = per1k(cpu, s.Requests), per1k(fpm, s.Requests)
			r.Summaries = append(r.Summaries, s)
			byProxy[p] = s
		}
		for _, pair := range ratioPairs(proxies) {
			num, den := pair[0], pair[1]
			g, gok := byProxy[num]
			n, nok := byProxy[den]
			if gok && nok {
				r.Ratios = append(r.Ratios, Ratio{
					Case:      c.Name,
					Proxy:     num,
					Baseline:  den,
					ReqPerSec: ratio(g.ReqPerSec, n.ReqPerSec),
					P50:       ratio(g.P50Ms, n.P50Ms),
					P99:       ratio(g.P99Ms, n.P99Ms),
					CPU:       ratio(g.CPUPer1k, n.CPUPer1k),
				})
			}
		}
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

// median returns the median of xs, the mean of the middle two for an even
// count; 0 for none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

// WriteTable writes the setup, the summary table, the ratio lines and the
// servers' warnings in plain text.
func (r *Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	e := r.Env
	fmt.Fprintf(&b, "fcgilab bench  %s  (%s)", r.Started.Format(time.RFC3339), r.Finished.Sub(r.Started).Round(time.Second))
	if e.Commit != "" {
		fmt.Fprintf(&b, "  commit %s", e.Commit)
	}
	procs := ""
	if e.GatewayProcs != "" {
		procs = " (procs " + e.GatewayProcs + ")"
	}
	// nginx as the FastCGI proxy, when it was one (the apache scenario has
	// none: its nginx, if any, is the bare relay).
	ngx := ""
	if e.NginxWorkerCount > 0 {
		ngx = fmt.Sprintf("%s worker_processes %s (%d workers), upstream keepalive %d; ",
			e.Nginx, e.NginxWorkers, e.NginxWorkerCount, e.NginxKeepalive)
	}
	fmt.Fprintf(&b, "\nmachine: %d CPUs; fcgigate GOMAXPROCS %d%s; %sphp-fpm pm.max_children %d (static)\n",
		e.NumCPU, e.GOMAXPROCS, procs, ngx, e.FPMChildren)
	if e.Split {
		fmt.Fprintf(&b, "cpus: split: wrk, Apache and php-fpm on CPU %s; the hop (fcgigate, relay) on CPU %s\n", e.AppCPUs, e.HopCPUs)
	}
	if e.Apache != "" {
		fmt.Fprintf(&b, "apache: %s, event MPM, mod_proxy_fcgi with enablereuse=on, to php-fpm or to fcgigate's FastCGI front\n", e.Apache)
	}
	fmt.Fprintf(&b, "load: %s, %d interleaved rounds per case and proxy after a %s warm-up; figures are medians of rounds\n",
		e.Wrk, e.Rounds, e.Warmup)
	fmt.Fprintf(&b, "(latencies are wrk's, which adds synthetic samples for stalls; FPM conns/queue: most connections seen open to\n"+
		"php-fpm / waiting in its accept queue, from either proxy)\n\n")

	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "case\tproxy\treq/s\tspread\tp50 ms\tp99 ms\tCPU ms/1k req\tFPM CPU ms/1k\tFPM conns\tqueue\terrors\t")
	for _, s := range r.Summaries {
		fmt.Fprintf(tw, "%s\t%s\t%.0f\t%.0f%%\t%.2f\t%.2f\t%.1f\t%.1f\t%d\t%d\t%d\t\n",
			s.Case, s.Proxy, s.ReqPerSec, 100*s.Spread, s.P50Ms, s.P99Ms, s.CPUPer1k, s.FPMCPUPer1k, s.FPMConnsMax, s.FPMQueueMax, s.Errors)
	}
	tw.Flush()
	errs := map[string]int64{}
	for _, s := range r.Summaries {
		errs[s.Case] += s.Errors
	}
	// One block per pair, in the order the pairs first appear.
	pairOf := func(q Ratio) [2]string {
		if q.Proxy == "" {
			return [2]string{ProxyFcgigate, ProxyNginx} // a report saved before ratios named them
		}
		return [2]string{q.Proxy, q.Baseline}
	}
	var pairs [][2]string
	for _, q := range r.Ratios {
		if !slices.Contains(pairs, pairOf(q)) {
			pairs = append(pairs, pairOf(q))
		}
	}
	for _, pair := range pairs {
		fmt.Fprintf(&b, "\n%s/%s (req/s: higher is better; p99 and CPU per request: lower is better)\n", pair[0], pair[1])
		for _, q := range r.Ratios {
			if pairOf(q) != pair {
				continue
			}
			fmt.Fprintf(&b, "  %-6s  req/s %.2fx   p50 %.2fx   p99 %.2fx   CPU %.2fx", q.Case, q.ReqPerSec, q.P50, q.P99, q.CPU)
			if n := errs[q.Case]; n > 0 {
				// A fast error page counts as a request to wrk.
				fmt.Fprintf(&b, "   NOT VALID: %d failed requests", n)
			}
			b.WriteString("\n")
		}
	}
	pinned := false
	for _, s := range r.Summaries {
		pinned = pinned || s.FPMConnsMax > e.FPMChildren
	}
	if pinned {
		fmt.Fprintf(&b, "\nWARNING: more connections to php-fpm were open than it has workers (FPM conns > %d). A worker\n"+
			"stays tied to a keep-alive connection until the proxy closes it, so requests on the other\n"+
			"connections waited in FPM's accept queue behind idle ones. Such rounds measure that, not the\n"+
			"proxies, and wrk does not count a request still waiting when its round ends. Raise -fpm-children.\n",
			e.FPMChildren)
	}
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range r.Logs {
			if !yield(k) {
				return
			}
		}
	}) {
		fmt.Fprintf(&b, "\n%s logged:\n", name)
		for _, l := range r.Logs[name] {
			fmt.Fprintf(&b, "  %s\n", l)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Save writes the report to dir/<timestamp>.json and dir/<timestamp>.txt
// (the table), creating dir, and returns the two paths.
func (r *Report) Save(dir string) (jsonPath, txtPath string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", fmt.Errorf("save report: %w", err)
	}
	base := filepath.Join(dir, r.Started.Format("20060102-150405"))
	jsonPath, txtPath = base+".json", base+".txt"
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", "", fmt.Errorf("save report: %w", err)
	}
	if err := os.WriteFile(jsonPath, append(js, '\n'), 0o644); err != nil {
		return "", "", fmt.Errorf("save report: %w", err)
	}
	var txt strings.Builder
	r.WriteTable(&txt)
	if err := os.WriteFile(txtPath, []byte(txt.String()), 0o644); err != nil {
		return "", "", fmt.Errorf("save report: %w", err)
	}
	return jsonPath, txtPath, nil
}
