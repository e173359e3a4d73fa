package health

// fpm_test.go runs the Prober against real php-fpm masters started by
// fpmtest.

import (
	"context"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fcgigate/fcgigate/fastcgi"
	"github.com/fcgigate/fcgigate/test/fpmtest"
)

// fastConfig probes every 100ms, so that the timing bounds below are short.
func fastConfig() Config {
	cfg := DefaultConfig()
	cfg.Interval = 100 * time.Millisecond
	cfg.Timeout = 100 * time.Millisecond
	return cfg
}

// slack is what the detection bounds allow beyond the ideal, for a loaded
// machine running the race detector (a CI runner running every package's
// php-fpm tests at once stalls a test binary for a second or more), so they
// only catch gross errors. The exact counts are checked by checkFell and
// checkRose.
const slack = 3 * time.Second

func TestFPMPingAndStatus(t *testing.T) {
	fpmtest.Need(t)
	f := fpmtest.Start(t, fpmtest.Options{Addr: fpmtest.FreePort(t, "127.0.0.2"), MaxChildren: 4})
	started := time.Now()
	cfg := manualConfig()
	h := startProber(t, cfg, f.Addr)
	// FPM says it is ready before every worker has registered, and marks a
	// worker idle only after it has answered, so the workers of the probes
	// before may still count as active: poll until the pool has settled.
	var r Result
	waitFor(t, "four workers, the probe's the only active one", func() bool {
		r = h.step(t, f.Addr)
		if !r.OK() || !r.Up || r.StatusErr != nil || r.Status == nil {
			t.Fatalf("probe of a fresh FPM: %+v (status error %v)", r, r.StatusErr)
		}
		return r.Status.TotalProcesses == 4 && r.Status.ActiveProcesses == 1
	})
	s := *r.Status
	if s.Pool != "fpmtest" || s.ProcessManager != "static" || s.TotalProcesses != 4 {
		t.Errorf("pool %q, pm %q, total %d; want fpmtest, static, 4", s.Pool, s.ProcessManager, s.TotalProcesses)
	}
	if s.IdleProcesses != 3 || s.ListenQueue != 0 {
		t.Errorf("idle %d, queue %d; want 3, 0", s.IdleProcesses, s.ListenQueue)
	}
	if s.ListenQueueLen <= 0 || s.AcceptedConn < 2 || s.MaxActiveProcesses < 1 {
		t.Errorf("implausible counters: %+v", s)
	}
	if d := s.StartTime.Sub(started); d < -time.Minute || d > time.Minute {
		t.Errorf("start time %v, test started %v", s.StartTime, started)
	}
	if s.Busy() != 0 || s.Penalty() != 0 || s.MaxConcurrent() != 4 {
		t.Errorf("busy %d, penalty %d, max concurrent %d; want 0, 0, 4", s.Busy(), s.Penalty(), s.MaxConcurrent())
	}
	// Both probe requests are in FPM's access log, as the prober's.
	waitFor(t, "the probes in the access log", func() bool {
		log := f.AccessLog()
		return strings.Contains(log, "GET /fpm-ping 200") && strings.Contains(log, "GET /fpm-status?json 200")
	})
}

func TestFPMDynamicPool(t *testing.T) {
	fpmtest.Need(t)
	f := fpmtest.Start(t, fpmtest.Options{Addr: fpmtest.FreePort(t, "127.0.0.2"), MaxChildren: 4, Extra: map[string]string{
		"pm": "dynamic", "pm.start_servers": "1", "pm.min_spare_servers": "1", "pm.max_spare_servers": "2",
	}})
	cfg := manualConfig()
	h := startProber(t, cfg, f.Addr)
	r := h.step(t, f.Addr)
	if r.Status == nil || r.Status.ProcessManager != "dynamic" || r.Status.MaxConcurrent() != 0 {
		t.Fatalf("status of a dynamic pool: %+v, %v", r.Status, r.StatusErr)
	}
}

func TestFPMKillAndRestart(t *testing.T) {
	fpmtest.Need(t)
	f := fpmtest.Start(t, fpmtest.Options{Addr: fpmtest.FreePort(t, "127.0.0.2"), MaxChildren: 2})
	cfg := fastConfig()
	h := startProber(t, cfg, f.Addr)
	waitFor(t, "a good probe", func() bool { return h.state(t, f.Addr).ConsecOK > 0 })

	f.Kill()
	killed := time.Now()
	waitFor(t, "down after Kill", func() bool { return !h.state(t, f.Addr).Up })
	took := time.Since(killed)
	if limit := time.Duration(cfg.Fall)*cfg.Interval + cfg.Timeout + slack; took > limit {
		t.Errorf("down %v after Kill, want within %v", took, limit)
	}
	// Usually "dial: connection refused"; a loaded machine may time out.
	if s := h.state(t, f.Addr); !strings.HasPrefix(s.LastError, "dial: ") {
		t.Errorf("after Kill: last error %q, want a dial error", s.LastError)
	}
	checkFell(t, h, f.Addr, killed, cfg.Fall)

	g := fpmtest.Start(t, f.Options)
	restarted := time.Now()
	waitFor(t, "up after restart", func() bool { return h.state(t, g.Addr).Up })
	took = time.Since(restarted)
	if limit := time.Duration(cfg.Rise)*cfg.Interval + slack; took > limit {
		t.Errorf("up %v after restart, want within %v", took, limit)
	}
	checkRose(t, h, g.Addr, cfg.Rise)
}

// checkFell checks that every probe of addr started after the fault failed,
// and that addr went down on its fall-th failure in a row (a probe started
// before the fault may have been the first).
func checkFell(t *testing.T, h *harness, addr string, fault time.Time, fall int) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	fails := 0
	for _, r := range h.results {
		if r.Addr != addr {
			continue
		}
		if !r.At.Before(fault) && r.OK() {
			t.Fatalf("a probe of %s started %v after the fault succeeded", addr, r.At.Sub(fault))
		}
		if r.OK() {
			fails = 0
			continue
		}
		fails++
		if r.Changed {
			if r.Up || fails != fall {
				t.Fatalf("%s changed to up=%v on failure %d in a row, want down on failure %d", addr, r.Up, fails, fall)
			}
			return
		}
	}
	t.Fatalf("%s never went down", addr)
}

// checkRose checks that the last change of addr's state was to up, after
// exactly rise good probes in a row.
func checkRose(t *testing.T, h *harness, addr string, rise int) {
	t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	var rs []Result
	for _, r := range h.results {
		if r.Addr == addr {
			rs = append(rs, r)
		}
	}
	for i := len(rs) - 1; i >= 0; i-- {
		if !rs[i].Changed {
			continue
		}
		if !rs[i].Up {
			t.Fatalf("last change of %s was to down", addr)
		}
		if i < rise || rs[i-rise].OK() {
			t.Fatalf("%s came up after more or fewer than %d good probes", addr, rise)
		}
		for _, r := range rs[i-rise+1 : i+1] {
			if !r.OK() {
				t.Fatalf("%s came up with a failed probe among the last %d", addr, rise)
			}
		}
		return
	}
	t.Fatalf("%s never changed state", addr)
}

func TestFPMPauseResume(t *testing.T) {
	fpmtest.Need(t)
	f := fpmtest.Start(t, fpmtest.Options{Addr: fpmtest.FreePort(t, "127.0.0.2"), MaxChildren: 2})
	t.Cleanup(f.Resume) // the test may fail while it is paused
	cfg := fastConfig()
	h := startProber(t, cfg, f.Addr)
	waitFor(t, "a good probe", func() bool { return h.state(t, f.Addr).ConsecOK > 0 })

	f.Pause()
	paused := time.Now()
	waitFor(t, "down after Pause", func() bool { return !h.state(t, f.Addr).Up })
	took := time.Since(paused)
	// A probe under way when the backend stopped may still have been answered.
	if limit := time.Duration(cfg.Fall+1)*max(cfg.Interval, cfg.Timeout) + slack; took > limit {
		t.Errorf("down %v after Pause, want within %v", took, limit)
	}
	if s := h.state(t, f.Addr); s.LastError != "timeout" {
		t.Errorf("after Pause: last error %q, want timeout", s.LastError)
	}
	checkFell(t, h, f.Addr, paused, cfg.Fall)

	f.Resume()
	resumed := time.Now()
	waitFor(t, "up after Resume", func() bool { return h.state(t, f.Addr).Up })
	// The first probe after Resume may still time out behind the backlog of
	// abandoned probes.
	if limit := time.Duration(cfg.Rise+1)*cfg.Interval + cfg.Timeout + slack; time.Since(resumed) > limit {
		t.Errorf("up %v after Resume, want within %v", time.Since(resumed), limit)
	}
	checkRose(t, h, f.Addr, cfg.Rise)
}

// TestFPMProbeDoesNotHoldWorker guards the reason the probes keep no
// connection open: FPM gives a kept-alive connection a worker until the
// client closes it, so with a single worker, a kept-alive probe connection
// would leave none for requests.
func TestFPMProbeDoesNotHoldWorker(t *testing.T) {
	fpmtest.Need(t)
	f := fpmtest.Start(t, fpmtest.Options{Addr: fpmtest.FreePort(t, "127.0.0.2"), MaxChildren: 1})
	cfg := DefaultConfig()
	cfg.Interval, cfg.Timeout = 20*time.Millisecond, 20*time.Millisecond
	h := startProber(t, cfg, f.Addr)
	waitFor(t, "a good probe", func() bool { return h.state(t, f.Addr).ConsecOK > 0 })

	serving := fastcgi.NewPool(fastcgi.PoolConfig{Addr: f.Addr, MaxIdle: -1})
	defer serving.Close()
	script := filepath.Join(fpmtest.PHPDir(), "hello.php")
	for i := range 20 {
		body, err := get(serving, script, 2*time.Second)
		if err != nil || body != "hello" {
			t.Fatalf("request %d beside the probes: %q, %v", i, body, err)
		}
	}
	// The probes go on beside the requests. (A probe may have waited
	// behind a request for longer than its 20ms, so the backend may be
	// down for now.)
	n := h.count(f.Addr)
	waitFor(t, "another good probe", func() bool { return h.count(f.Addr) > n && h.state(t, f.Addr).ConsecOK > 0 })
}

// TestFPMBusy checks that the status page shows the load of a backend
// whose workers are busy: the penalty rises once no worker is idle.
func TestFPMBusy(t *testing.T) {
	fpmtest.Need(t)
	f := fpmtest.Start(t, fpmtest.Options{Addr: fpmtest.FreePort(t, "127.0.0.2"), MaxChildren: 3})
	cfg := manualConfig()
	h := startProber(t, cfg, f.Addr)

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel() // ends the sleeping requests (the workers sleep on)
	serving := fastcgi.NewPool(fastcgi.PoolConfig{Addr: f.Addr, MaxIdle: -1})
	defer serving.Close()
	script := filepath.Join(fpmtest.PHPDir(), "sleep.php")
	for range 2 {
		wg.Add(1)
		go func() { // ends when the script does or cancel closes the connection
			defer wg.Done()
			resp, err := serving.Do(ctx, &fastcgi.Request{Params: scriptParams(script, "s=30")})
			if err == nil {
				io.Copy(io.Discard, resp)
				resp.Close()
			}
		}()
	}
	var st *FPMStatus
	waitFor(t, "two busy workers in the status page", func() bool {
		st = h.step(t, f.Addr).Status
		return st != nil && st.Busy() == 2 && st.TotalProcesses == 3
	})
	if st.IdleProcesses != 0 || st.Penalty() != 0 || st.MaxConcurrent() != 0 {
		t.Fatalf("status of a busy backend: %+v (penalty %d)", *st, st.Penalty())
	}
}

// get runs script on p and returns its body, without the CGI header.
func get(p *fastcgi.Pool, script string, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	resp, err := p.Do(ctx, &fastcgi.Request{Params: scriptParams(script, "")})
	if err != nil {
		return "", err
	}
	defer resp.Close()
	b, err := io.ReadAll(resp)
	if err != nil {
		return "", err
	}
	_, body, _ := strings.Cut(string(b), "\r\n\r\n")
	return body, nil
}

func scriptParams(script, query string) []fastcgi.Param {
	name := "/" + filepath.Base(script)
	return []fastcgi.Param{
		{Name: "GATEWAY_INTERFACE", Value: "CGI/1.1"},
		{Name: "SERVER_PROTOCOL", Value: "HTTP/1.1"},
		{Name: "REQUEST_METHOD", Value: "GET"},
		{Name: "SCRIPT_FILENAME", Value: script},
		{Name: "SCRIPT_NAME", Value: name},
		{Name: "REQUEST_URI", Value: name + "?" + query},
		{Name: "QUERY_STRING", Value: query},
	}
}
