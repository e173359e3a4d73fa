// wrk.go runs wrk against a loopback URL and parses its report.

package lab

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// WrkOptions is one wrk run: `wrk -t Threads -c Conns -d Duration
// --latency URL`.
type WrkOptions struct {
	// URL is the target; its host must be a loopback IP. Required.
	URL string
	// Threads is -t. 0 means 2, one per core of the benchmark machine.
	Threads int
	// Conns is -c, the connections kept open (and so requests in flight).
	// 0 means 32.
	Conns int
	// Duration is -d; wrk stops by itself after it. 0 means 10s.
	Duration time.Duration
	// CPUs pins wrk and its threads to these CPUs, a list as taskset -c
	// takes it ("0", "0-1"). Empty: no pinning, any CPU.
	CPUs string
	// Script is a Lua file for wrk -s (see PaceScript). Empty: none.
	Script string
}

func (o *WrkOptions) setDefaults() {
	if o.Threads <= 0 {
		o.Threads = 2
	}
	if o.Conns <= 0 {
		o.Conns = 32
	}
	if o.Duration <= 0 {
		o.Duration = 10 * time.Second
	}
}

// Args returns wrk's command-line arguments for o.
func (o WrkOptions) Args() []string {
	o.setDefaults()
	args := []string{
		"-t" + strconv.Itoa(o.Threads),
		"-c" + strconv.Itoa(o.Conns),
		"-d" + strconv.FormatInt(int64((o.Duration+time.Second-1)/time.Second), 10) + "s",
		"--latency",
	}
	if o.Script != "" {
		args = append(args, "-s", o.Script)
	}
	return append(args, o.URL)
}

// PaceScript writes into dir a wrk script whose delay() hook makes each
// connection pause ms milliseconds before each request, and returns its
// path. The connections then offer a moderate load, about Conns / (ms +
// latency) requests a second, which both proxies carry at nearly the same
// rate, so their latencies compare at equal load rather than at
// saturation, where the slower proxy's queue lengthens its every latency.
func PaceScript(dir string, ms int) (string, error) {
	path := filepath.Join(dir, fmt.Sprintf("pace-%dms.lua", ms))
	script := fmt.Sprintf("-- written by fcgilab: pause before each request\nfunction delay()\n  return %d\nend\n", ms)
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		return "", fmt.Errorf("wrk pace script: %w", err)
	}
	return path, nil
}

// WrkResult is what one wrk run reported.
type WrkResult struct {
	Requests  int64         `json:"requests"`   // completed requests
	Elapsed   time.Duration `json:"elapsed_ns"` // the run's length as wrk measured it
	BytesRead int64         `json:"bytes_read"` // approximate: wrk prints it with two decimals and a unit
	ReqPerSec float64       `json:"req_per_sec"`

	// Latencies as wrk reports them. wrk 4 corrects its histogram for
	// coordinated omission: for every response slower than twice the mean
	// interval between requests on a connection, it adds synthetic samples,
	// so one stall weighs on the percentiles as if requests had kept coming
	// at the mean rate. The percentiles come from --latency.
	LatencyAvg time.Duration `json:"latency_avg_ns"`
	LatencyMax time.Duration `json:"latency_max_ns"`
	P50        time.Duration `json:"p50_ns"`
	P75        time.Duration `json:"p75_ns"`
	P90        time.Duration `json:"p90_ns"`
	P99        time.Duration `json:"p99_ns"`

	// Socket errors: connect, read, write and timeout (a response that
	// came after wrk's --timeout, 2s by default; a request still unanswered
	// when the run ends is not counted anywhere).
	ConnectErrors int64 `json:"connect_errors"`
	ReadErrors    int64 `json:"read_errors"`
	WriteErrors   int64 `json:"write_errors"`
	Timeouts      int64 `json:"timeouts"`
	// HTTPErrors is wrk's "Non-2xx or 3xx responses", which counts the
	// responses with a status of 400 or more.
	HTTPErrors int64 `json:"http_errors"`
}

// Errors is the number of requests that failed in any way.
func (r WrkResult) Errors() int64 {
	return r.ConnectErrors + r.ReadErrors + r.WriteErrors + r.Timeouts + r.HTTPErrors
}

// ErrWrkOutput is returned when wrk's output lacks what a result needs.
var ErrWrkOutput = errors.New("lab: unexpected wrk output")

var (
	reLatency   = regexp.MustCompile(`^Latency\s+(\S+)\s+(\S+)\s+(\S+)\s+\S+%$`)
	rePercent   = regexp.MustCompile(`^(\d+)%\s+(\S+)$`)
	reRequests  = regexp.MustCompile(`^(\d+) requests in (\S+), (\S+) read$`)
	reSocketErr = regexp.MustCompile(`^Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)$`)
	reNon2xx    = regexp.MustCompile(`^Non-2xx or 3xx responses: (\d+)$`)
	reReqPerSec = regexp.MustCompile(`^Requests/sec:\s+([0-9.]+)$`)
)

// ParseWrk parses the report wrk 4.x prints with --latency.
func ParseWrk(out string) (WrkResult, error) {
	var r WrkResult
	var haveRequests, haveRate, haveP99 bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		var err error
		switch {
		case reLatency.MatchString(line):
			m := reLatency.FindStringSubmatch(line)
			r.LatencyAvg, err = parseWrkTime(m[1])
			if err == nil {
				r.LatencyMax, err = parseWrkTime(m[3])
			}
		case rePercent.MatchString(line):
			m := rePercent.FindStringSubmatch(line)
			var d time.Duration
			if d, err = parseWrkTime(m[2]); err != nil {
				break
			}
			switch m[1] {
			case "50":
				r.P50 = d
			case "75":
				r.P75 = d
			case "90":
				r.P90 = d
			case "99":
				r.P99, haveP99 = d, true
			}
		case reRequests.MatchString(line):
			m := reRequests.FindStringSubmatch(line)
			r.Requests, err = strconv.ParseInt(m[1], 10, 64)
			if err == nil {
				r.Elapsed, err = parseWrkTime(m[2])
			}
			if err == nil {
				r.BytesRead, err = parseWrkBytes(m[3])
			}
			haveRequests = err == nil
		case reSocketErr.MatchString(line):
			m := reSocketErr.FindStringSubmatch(line)
			for i, p := range []*int64{&r.ConnectErrors, &r.ReadErrors, &r.WriteErrors, &r.Timeouts} {
				if err == nil {
					*p, err = strconv.ParseInt(m[1+i], 10, 64)
				}
			}
		case reNon2xx.MatchString(line):
			r.HTTPErrors, err = strconv.ParseInt(reNon2xx.FindStringSubmatch(line)[1], 10, 64)
		case reReqPerSec.MatchString(line):
			r.ReqPerSec, err = strconv.ParseFloat(reReqPerSec.FindStringSubmatch(line)[1], 64)
			haveRate = err == nil
		}
		if err != nil {
			return WrkResult{}, fmt.Errorf("%w: %q: %w", ErrWrkOutput, line, err)
		}
	}
	switch {
	case !haveRequests:
		return WrkResult{}, fmt.Errorf("%w: no \"N requests in T, B read\" line", ErrWrkOutput)
	case !haveRate:
		return WrkResult{}, fmt.Errorf("%w: no Requests/sec line", ErrWrkOutput)
	case !haveP99 && r.Requests > 0:
		return WrkResult{}, fmt.Errorf("%w: no latency distribution (run with --latency)", ErrWrkOutput)
	}
	return r, nil
}

// wrkTimeUnits are the units of wrk's format_time and format_time_s.
var wrkTimeUnits = []struct {
	suffix string
	unit   time.Duration
}{
	// "us" and "ms" before "s", which they end with.
	{"us", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second},
	{"m", time.Minute}, {"h", time.Hour},
}

// parseWrkTime parses a time as wrk prints it: "812.00us", "1.23ms",
// "10.00s", "1.00m". The product is rounded, not truncated: 2.09 × 1e6 is
// 2089999.9999999998 in floating point, and "2.09ms" must come out as
// 2.09ms, not as 2.089999ms in the progress lines and the JSON.
func parseWrkTime(s string) (time.Duration, error) {
	for _, u := range wrkTimeUnits {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(num, 64)
			if err != nil || f < 0 {
				return 0, fmt.Errorf("time %q: bad number", s)
			}
			return time.Duration(math.Round(f * float64(u.unit))), nil
		}
	}
	return 0, fmt.Errorf("time %q: unknown unit", s)
}

// parseWrkBytes parses a size as wrk prints it, in powers of 1024:
// "512.00B", "30.52MB", "1.20GB".
func parseWrkBytes(s string) (int64, error) {
	num, ok := strings.CutSuffix(s, "B")
	if !ok {
		return 0, fmt.Errorf("size %q: no B", s)
	}
	mult := 1.0
	if n := len(num); n > 0 {
		if i := strings.IndexByte("KMGTP", num[n-1]); i >= 0 {
			num = num[:n-1]
			for range i + 1 {
				mult *= 1024
			}
		}
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 {
		return 0, fmt.Errorf("size %q: bad number", s)
	}
	return int64(f * mult), nil
}

// WrkBinary returns the path of wrk.
func WrkBinary() (string, error) { return findBinary("wrk") }

// RunWrk runs wrk with o, in a process group of its own, and returns its
// parsed report and its raw output. wrk stops by itself after o.Duration;
// if it has not exited 30s after that, or ctx is done, it is killed by its
// PID.
func RunWrk(ctx context.Context, o WrkOptions) (WrkResult, string, error) {
	o.setDefaults()
	u, err := url.Parse(o.URL)
	if err != nil {
		return WrkResult{}, "", fmt.Errorf("wrk: %w", err)
	}
	if ip := net.ParseIP(u.Hostname()); ip == nil || !ip.IsLoopback() {
		return WrkResult{}, "", fmt.Errorf("wrk: %s: load goes only to loopback IPs", o.URL)
	}
	if o.Threads > o.Conns {
		return WrkResult{}, "", fmt.Errorf("wrk: %d threads > %d connections", o.Threads, o.Conns)
	}
	bin, err := WrkBinary()
	if err != nil {
		return WrkResult{}, "", fmt.Errorf("wrk: %w", err)
	}
	bin, args, err := pinnedCommand(o.CPUs, bin, o.Args()...)
	if err != nil {
		return WrkResult{}, "", fmt.Errorf("wrk: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, o.Duration+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		return WrkResult{}, string(out), fmt.Errorf("wrk %s: %w", o.URL, context.Cause(ctx))
	}
	if err != nil {
		return WrkResult{}, string(out), fmt.Errorf("wrk %s: %w\n%s", o.URL, err, out)
	}
	r, err := ParseWrk(string(out))
	if err != nil {
		return WrkResult{}, string(out), fmt.Errorf("wrk %s: %w\n%s", o.URL, err, out)
	}
	return r, string(out), nil
}
