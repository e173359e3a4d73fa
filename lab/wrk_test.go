package lab

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// Reports printed by wrk 4.1 (Debian 4.1.0-3) on the benchmark machine.
const (
	wrkClean = `Running 5s test @ http://127.0.0.1:40995/hello.php
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   230.18ms  363.05ms   1.62s    81.67%
    Req/Sec    11.26k     6.76k   27.14k    60.82%
  Latency Distribution
     50%  402.00us
     75%  403.23ms
     90%  841.59ms
     99%    1.33s 
  108799 requests in 5.01s, 19.19MB read
Requests/sec:  21711.74
Transfer/sec:      3.83MB
`
	wrkErrors = `Running 3s test @ http://127.0.1.1:41234/size.php?bytes=65536
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     5.57ms   12.70ms  87.92ms   91.38%
    Req/Sec     1.22k   401.33     2.01k    66.67%
  Latency Distribution
     50%  838.00us
     75%    1.05ms
     90%   29.22ms
     99%   47.72ms
  7302 requests in 3.01s, 458.31MB read
  Socket errors: connect 0, read 2, write 1, timeout 4
  Non-2xx or 3xx responses: 17
Requests/sec:   2422.81
Transfer/sec:    152.26MB
`
	// Constructed from wrk's printf formats: a run in which no request
	// completed (connections refused after the first connect succeeded).
	wrkNothing = `Running 2s test @ http://127.0.0.1:9/
  2 threads and 2 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     0.00us    0.00us   0.00us    -nan%
    Req/Sec     0.00      0.00     0.00      -nan%
  Latency Distribution
     50%    0.00us
     75%    0.00us
     90%    0.00us
     99%    0.00us
  0 requests in 2.00s, 0.00B read
  Socket errors: connect 2, read 0, write 0, timeout 0
Requests/sec:      0.00
Transfer/sec:       0.00B
`
)

func TestParseWrk(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want WrkResult
	}{
		{
			name: "clean",
			in:   wrkClean,
			want: WrkResult{
				Requests: 108799, Elapsed: 5010 * time.Millisecond, BytesRead: 20122173, ReqPerSec: 21711.74,
				LatencyAvg: 230180 * time.Microsecond, LatencyMax: 1620 * time.Millisecond,
				P50: 402 * time.Microsecond, P75: 403230 * time.Microsecond, P90: 841590 * time.Microsecond, P99: 1330 * time.Millisecond,
			},
		},
		{
			name: "errors",
			in:   wrkErrors,
			want: WrkResult{
				Requests: 7302, Elapsed: 3010 * time.Millisecond, BytesRead: 480572866, ReqPerSec: 2422.81,
				LatencyAvg: 5570 * time.Microsecond, LatencyMax: 87920 * time.Microsecond,
				P50: 838 * time.Microsecond, P75: 1050 * time.Microsecond, P90: 29220 * time.Microsecond, P99: 47720 * time.Microsecond,
				ReadErrors: 2, WriteErrors: 1, Timeouts: 4, HTTPErrors: 17,
			},
		},
		{
			name: "nothing completed",
			in:   wrkNothing,
			want: WrkResult{Elapsed: 2 * time.Second, ConnectErrors: 2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseWrk(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if !closeResult(got, tt.want) {
				t.Fatalf("ParseWrk =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
	r, _ := ParseWrk(wrkErrors)
	if got := r.Errors(); got != 24 {
		t.Errorf("Errors() = %d, want 24", got)
	}
}

// closeResult compares two results, allowing for float rounding in the
// durations and sizes that wrk prints with two decimals.
func closeResult(a, b WrkResult) bool {
	near := func(x, y int64) bool { return x-y <= 1 && y-x <= 1 }
	durs := func(r WrkResult) []int64 {
		return []int64{int64(r.Elapsed), int64(r.LatencyAvg), int64(r.LatencyMax), int64(r.P50), int64(r.P75), int64(r.P90), int64(r.P99), r.BytesRead}
	}
	da, db := durs(a), durs(b)
	for i := range da {
		if !near(da[i]/1000, db[i]/1000) && !near(da[i], db[i]) {
			return false
		}
	}
	a.Elapsed, a.LatencyAvg, a.LatencyMax, a.P50, a.P75, a.P90, a.P99, a.BytesRead = 0, 0, 0, 0, 0, 0, 0, 0
	b.Elapsed, b.LatencyAvg, b.LatencyMax, b.P50, b.P75, b.P90, b.P99, b.BytesRead = 0, 0, 0, 0, 0, 0, 0, 0
	return a == b
}

func TestParseWrkRejects(t *testing.T) {
	tests := map[string]string{
		"empty":              "",
		"connect failure":    "unable to connect to 127.0.0.1:9 Connection refused\n",
		"no latency flag":    "  10 requests in 1.00s, 1.00KB read\nRequests/sec: 10.00\n",
		"no rate":            "  10 requests in 1.00s, 1.00KB read\n     99%    1.00ms\n",
		"bad latency unit":   "  10 requests in 1.00s, 1.00KB read\n     99%    1.00ns\nRequests/sec: 10.00\n",
		"bad byte unit":      "  10 requests in 1.00s, 1.00XB read\n     99%    1.00ms\nRequests/sec: 10.00\n",
		"bad requests count": "  99999999999999999999 requests in 1.00s, 1.00KB read\n     99%    1.00ms\nRequests/sec: 10.00\n",
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			if r, err := ParseWrk(in); !errors.Is(err, ErrWrkOutput) {
				t.Fatalf("ParseWrk = %+v, %v; want ErrWrkOutput", r, err)
			}
		})
	}
}

func TestParseWrkUnits(t *testing.T) {
	times := []struct {
		in   string
		want time.Duration
	}{
		{"17.00us", 17 * time.Microsecond},
		{"1.50ms", 1500 * time.Microsecond},
		{"1.33s", 1330 * time.Millisecond},
		{"1.00m", time.Minute},
		{"2.00h", 2 * time.Hour},
		// Exact, although the float products are a hair under (2.09 ×
		// 1e6 = 2089999.9999999998): the progress lines print them.
		{"2.09ms", 2090 * time.Microsecond},
		{"8.11ms", 8110 * time.Microsecond},
		{"403.23ms", 403230 * time.Microsecond},
	}
	for _, tt := range times {
		if got, err := parseWrkTime(tt.in); err != nil || got != tt.want {
			t.Errorf("parseWrkTime(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "ms", "1.0", "-1.00ms", "1.00ns"} {
		if _, err := parseWrkTime(bad); err == nil {
			t.Errorf("parseWrkTime(%q) succeeded", bad)
		}
	}
	sizes := []struct {
		in   string
		want int64
	}{
		{"0.00B", 0},
		{"512.00B", 512},
		{"1.50KB", 1536},
		{"2.00MB", 2 << 20},
		{"1.00GB", 1 << 30},
	}
	for _, tt := range sizes {
		if got, err := parseWrkBytes(tt.in); err != nil || got != tt.want {
			t.Errorf("parseWrkBytes(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{"", "12", "KB", "1.0XB"} {
		if _, err := parseWrkBytes(bad); err == nil {
			t.Errorf("parseWrkBytes(%q) succeeded", bad)
		}
	}
}

func TestWrkArgs(t *testing.T) {
	got := WrkOptions{URL: "http://127.0.0.1:1/x", Duration: 1500 * time.Millisecond}.Args()
	want := []string{"-t2", "-c32", "-d2s", "--latency", "http://127.0.0.1:1/x"}
	if !slices.Equal(got, want) {
		t.Fatalf("Args = %q, want %q", got, want)
	}
	got = WrkOptions{URL: "http://127.0.0.1:1/x", Script: "/tmp/p.lua"}.Args()
	want = []string{"-t2", "-c32", "-d10s", "--latency", "-s", "/tmp/p.lua", "http://127.0.0.1:1/x"}
	if !slices.Equal(got, want) {
		t.Fatalf("Args with a script = %q, want %q", got, want)
	}
}

// A paced run with the real wrk: each connection pauses before each
// request, so two connections pausing 100 ms make at most about 20
// requests a second between them, where without the pause they make
// thousands.
func TestPaceScriptWithWrk(t *testing.T) {
	if _, err := WrkBinary(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	var served atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		io.WriteString(w, "hello")
	}))
	defer srv.Close()
	script, err := PaceScript(t.TempDir(), 100)
	if err != nil {
		t.Fatal(err)
	}
	r, out, err := RunWrk(context.Background(), WrkOptions{URL: srv.URL + "/", Threads: 1, Conns: 2, Duration: 2 * time.Second, Script: script})
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if r.Requests < 10 || r.Requests > 60 || r.Errors() != 0 {
		t.Fatalf("paced wrk made %d requests (%d errors) in 2 s on 2 connections; want about 40 and none failed\n%s", r.Requests, r.Errors(), out)
	}
	if n := served.Load(); n < r.Requests {
		t.Fatalf("server saw %d requests, wrk reported %d", n, r.Requests)
	}
}
