package discovery

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// watchRun is a ServiceWatcher running against a fake Consul on a fake
// clock.
type watchRun struct {
	w    *ServiceWatcher
	clk  *fakeClock
	got  chan []Member
	logs *logBuffer
}

func startWatcher(t *testing.T, f *fakeConsul, cfg Config, q Query) *watchRun {
	t.Helper()
	cfg.Address = f.addr()
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	log, logs := newLog()
	got := make(chan []Member, 100)
	w, err := NewServiceWatcher(c, q, func(ms []Member) { got <- ms }, log)
	if err != nil {
		t.Fatal(err)
	}
	clk := newFakeClock()
	w.clk = clk
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }() // ends when ctx is cancelled
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(wait):
			t.Errorf("Run did not return within %v of its context's end", wait)
		}
		if t.Failed() {
			t.Logf("watcher log:\n%s", logs.String())
		}
	})
	return &watchRun{w: w, clk: clk, got: got, logs: logs}
}

// delivered returns the next member set delivered, failing if none comes.
func (r *watchRun) delivered(t *testing.T) []string {
	t.Helper()
	select {
	case ms := <-r.got:
		return Addrs(ms)
	case <-time.After(wait):
		t.Fatalf("nothing delivered within %v", wait)
	}
	return nil
}

// none fails if a member set was delivered. Called once the watcher's next
// query has arrived, it covers the answer before: notify runs before the
// next query starts.
func (r *watchRun) none(t *testing.T) {
	t.Helper()
	select {
	case ms := <-r.got:
		t.Errorf("delivered %v; want no change", Addrs(ms))
	default:
	}
}

func TestWatcherQuery(t *testing.T) {
	f := newFakeConsul(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("s3cret-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Datacenter: "dc9", TokenFile: tokenFile, WaitTime: 7 * time.Second, AllowStale: true}
	q := Query{Service: "php", Tags: []string{"blue", "green"}, NodeMeta: map[string]string{"rack": "r1"}}
	r := startWatcher(t, f, cfg, q)

	req := f.next(t)
	if req.Path != "/v1/health/service/php" || req.Token != "s3cret-token" {
		t.Errorf("request %s with token %q", req.Path, req.Token)
	}
	want := map[string][]string{
		"passing": {"1"}, "tag": {"blue", "green"}, "node-meta": {"rack:r1"},
		"dc": {"dc9"}, "stale": {""}, "wait": {"7000ms"},
	}
	for k, v := range want {
		if got := req.Query[k]; !slices.Equal(got, v) {
			t.Errorf("query %s = %q, want %q (query %v)", k, got, v, req.Query)
		}
	}
	if req.Query.Has("index") {
		t.Errorf("first query blocks on index %q; want none", req.Query.Get("index"))
	}
	f.answer(t, response{index: 5, body: list(
		entry("n2", "10.0.0.2", "s2", "10.1.0.2", 9001),
		entry("n1", "10.0.0.1", "s1", "", 9000, "blue", "green"),
	)})
	if got := r.delivered(t); !slices.Equal(got, []string{"10.0.0.1:9000", "10.1.0.2:9001"}) {
		t.Errorf("members %v; want the node address for s1, the service address for s2, sorted", got)
	}
	ms, synced := r.w.Members()
	if !synced || len(ms) != 2 || ms[0].Node != "n1" || !slices.Equal(ms[0].Tags, []string{"blue", "green"}) {
		t.Errorf("Members() = %+v, %v", ms, synced)
	}
	if req := f.next(t); req.Query.Get("index") != "5" {
		t.Errorf("second query on index %q, want 5", req.Query.Get("index"))
	}
	if strings.Contains(r.logs.String(), "s3cret") {
		t.Errorf("the token is in the log:\n%s", r.logs)
	}
}

// TestWatcherIndex follows Consul's rules for blocking queries: an
// unchanged index or result is no change, and an index that goes backwards
// resets to 0.
func TestWatcherIndex(t *testing.T) {
	f := newFakeConsul(t)
	r := startWatcher(t, f, Config{}, Query{Service: "php"})
	a := entry("n1", "10.0.0.1", "a", "", 9000)
	b := entry("n2", "10.0.0.2", "b", "", 9000)
	steps := []struct {
		name      string
		resp      response
		delivered []string // nil: no change expected
		nextIndex string   // the index the next query blocks on; "": none, it reads at once
	}{
		{"first answer", response{index: 10, body: list(a)}, []string{"10.0.0.1:9000"}, "10"},
		{"wait ended, same index", response{index: 10, body: list(a)}, nil, "10"},
		{"new index, same result", response{index: 11, body: list(a)}, nil, "11"},
		{"a member joins", response{index: 12, body: list(a, b)}, []string{"10.0.0.1:9000", "10.0.0.2:9000"}, "12"},
		{"index backwards", response{index: 3, body: list(b)}, []string{"10.0.0.2:9000"}, ""},
		{"afresh", response{index: 4, body: list(b)}, nil, "4"},
	}
	f.next(t)
	for _, s := range steps {
		f.answer(t, s.resp)
		if s.delivered != nil {
			if got := r.delivered(t); !slices.Equal(got, s.delivered) {
				t.Errorf("%s: delivered %v, want %v", s.name, got, s.delivered)
			}
		}
		req := f.next(t)
		if s.delivered == nil {
			r.none(t)
		}
		if got := req.Query.Get("index"); got != s.nextIndex {
			t.Errorf("%s: next query on index %q, want %q", s.name, got, s.nextIndex)
		}
	}
	if n := r.logs.count("index went backwards", "from=12", "to=3"); n != 1 {
		t.Errorf("%d log lines about the index going backwards, want 1", n)
	}
	// Only the pacing of MinInterval, never a backoff.
	for _, d := range r.clk.takeSleeps(DefaultMinInterval) {
		t.Errorf("slept %v", d)
	}
}

// TestWatcherKeepsLastGood: errors, garbage and an empty listing keep the
// members in force; failures back off with jitter, capped.
func TestWatcherKeepsLastGood(t *testing.T) {
	f := newFakeConsul(t)
	r := startWatcher(t, f, Config{}, Query{Service: "php"})
	a := entry("n1", "10.0.0.1", "a", "", 9000)
	b := entry("n2", "10.0.0.2", "b", "", 9000)
	f.next(t)
	f.answer(t, response{index: 10, body: list(a)})
	r.delivered(t)

	bad := []struct {
		name string
		resp response
	}{
		{"server error", response{status: 500, body: "No cluster leader"}},
		{"garbage", response{index: 11, body: "<html>gateway timeout</html>"}},
		{"not a list", response{index: 11, body: `{"Node":1}`}},
		{"no index", response{body: list(b)}},
		{"ACL denied", response{status: 403, body: "Permission denied"}},
	}
	for i, s := range bad {
		req := f.next(t)
		if want := map[bool]string{true: "10", false: ""}[i == 0]; req.Query.Get("index") != want {
			t.Errorf("query before %s on index %q, want %q: after a failure, read afresh", s.name, req.Query.Get("index"), want)
		}
		f.answer(t, s.resp)
	}
	if req := f.next(t); req.Query.Has("index") {
		t.Errorf("query after the failures on index %q, want none", req.Query.Get("index"))
	}
	r.none(t)
	if ms, _ := r.w.Members(); !slices.Equal(Addrs(ms), []string{"10.0.0.1:9000"}) {
		t.Errorf("members %v after bad answers, want the last good set", Addrs(ms))
	}
	// r = 0.5: three quarters of 250ms, 500ms, 1s, then capped at 1s.
	ms := time.Millisecond
	wantSleeps := []time.Duration{187500 * time.Microsecond, 375 * ms, 750 * ms, 750 * ms, 750 * ms}
	if got := r.clk.takeSleeps(DefaultMinInterval); !slices.Equal(got, wantSleeps) {
		t.Errorf("backoff %v, want %v", got, wantSleeps)
	}
	if n := r.logs.count("Consul query failed: keeping the last members"); n != 1 {
		t.Errorf("%d warnings for one outage, want 1", n)
	}

	// An empty listing is not applied, and is logged once.
	f.answer(t, response{index: 20, body: list()})
	f.next(t)
	f.answer(t, response{index: 21, body: list()})
	f.next(t)
	r.none(t)
	if n := r.logs.count("no passing instance"); n != 1 {
		t.Errorf("%d warnings about the empty listing, want 1", n)
	}
	if n := r.logs.count("Consul answers again", "failed_queries=5"); n != 1 {
		t.Errorf("%d lines saying Consul is back, want 1", n)
	}

	// A real change goes through.
	f.answer(t, response{index: 22, body: list(a, b)})
	if got := r.delivered(t); !slices.Equal(got, []string{"10.0.0.1:9000", "10.0.0.2:9000"}) {
		t.Errorf("delivered %v after recovery", got)
	}
	f.next(t)
}

func TestWatcherAllowEmpty(t *testing.T) {
	f := newFakeConsul(t)
	r := startWatcher(t, f, Config{AllowEmpty: true}, Query{Service: "php"})
	f.next(t)
	f.answer(t, response{index: 1, body: list(entry("n1", "10.0.0.1", "a", "", 9000))})
	r.delivered(t)
	f.next(t)
	f.answer(t, response{index: 2, body: "[]"})
	if got := r.delivered(t); len(got) != 0 {
		t.Errorf("delivered %v, want the empty set", got)
	}
	f.next(t)
}

// TestWatcherFirstAnswer: the first answer is delivered even when empty, and
// X-Consul-KnownLeader: false, which Consul's streaming backend always
// sends, is no error.
func TestWatcherFirstAnswer(t *testing.T) {
	for _, tt := range []struct {
		name string
		resp response
		want []string
	}{
		{"empty", response{index: 1, body: "[]"}, []string{}},
		{"no known leader", response{index: 2, noLead: true, body: list(entry("n1", "10.0.0.1", "a", "", 9000))}, []string{"10.0.0.1:9000"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeConsul(t)
			r := startWatcher(t, f, Config{}, Query{Service: "php"})
			f.next(t)
			f.answer(t, tt.resp)
			if got := r.delivered(t); !slices.Equal(got, tt.want) {
				t.Errorf("delivered %v, want %v", got, tt.want)
			}
			f.next(t)
		})
	}
}

// TestWatcherUnreachable: with nothing listening, the watcher backs off,
// capped, and logs the outage once.
func TestWatcherUnreachable(t *testing.T) {
	f := newFakeConsul(t)
	f.srv.Close()
	r := startWatcher(t, f, Config{RetryMin: 100 * time.Millisecond, RetryMax: 400 * time.Millisecond}, Query{Service: "php"})
	var sleeps []time.Duration
	deadline := time.Now().Add(wait)
	for len(sleeps) < 6 && time.Now().Before(deadline) {
		sleeps = append(sleeps, r.clk.takeSleeps(DefaultMinInterval)...)
		time.Sleep(time.Millisecond)
	}
	ms := time.Millisecond
	if want := []time.Duration{75 * ms, 150 * ms, 300 * ms, 300 * ms, 300 * ms, 300 * ms}; len(sleeps) < 6 || !slices.Equal(sleeps[:6], want) {
		t.Errorf("backoff %v, want %v then the same", sleeps, want)
	}
	if n := r.logs.count("Consul query failed: keeping the last members", "connection refused"); n != 1 {
		t.Errorf("%d warnings, want 1:\n%s", n, r.logs)
	}
	r.none(t)
}

// TestWatcherBadEntries: entries without a usable address are left out, with
// one log line each while they stay listed.
func TestWatcherBadEntries(t *testing.T) {
	f := newFakeConsul(t)
	r := startWatcher(t, f, Config{}, Query{Service: "php"})
	good := entry("n1", "10.0.0.1", "a", "", 9000)
	empty := entry("n2", "  ", "b", "", 9000)
	port0 := entry("n3", "10.0.0.3", "c", "", 0)
	dup := entry("n4", "10.0.0.4", "d", "10.0.0.1", 9000)
	withPort := entry("n5", "10.0.0.5", "e", "10.0.0.5:9000", 9000)
	all := list(good, empty, port0, dup, withPort)
	reasons := []string{
		"id=b addr=\"\" reason=\"empty address\"",
		"id=c addr=10.0.0.3:0 reason=\"port 0\"",
		"id=d addr=10.0.0.1:9000 reason=\"duplicate address (also n1/a)\"",
		"id=e addr=",
	}
	f.next(t)
	for i, resp := range []response{
		{index: 1, body: all},
		{index: 2, body: all},
		{index: 3, body: list(good, empty, dup, withPort)}, // port 0 gone
		{index: 4, body: all},                              // and back
	} {
		f.answer(t, resp)
		if i == 0 {
			if got := r.delivered(t); !slices.Equal(got, []string{"10.0.0.1:9000"}) {
				t.Errorf("members %v, want only the good entry", got)
			}
		}
		f.next(t)
	}
	r.none(t)
	for _, reason := range reasons {
		want := 1
		if strings.Contains(reason, "port 0") {
			want = 2 // logged again after it left and came back
		}
		if n := r.logs.count("ignoring a Consul service entry", reason); n != want {
			t.Errorf("%d log lines with %s, want %d", n, reason, want)
		}
	}
	if n := r.logs.count("ignoring a Consul service entry"); n != 5 {
		t.Errorf("%d log lines about bad entries, want 5:\n%s", n, r.logs)
	}
}

func TestBackoff(t *testing.T) {
	lo, hi := 250*time.Millisecond, time.Second
	tests := []struct {
		n        int
		min, max time.Duration
	}{
		{1, 125 * time.Millisecond, 250 * time.Millisecond},
		{2, 250 * time.Millisecond, 500 * time.Millisecond},
		{3, 500 * time.Millisecond, time.Second},
		{4, 500 * time.Millisecond, time.Second},
		{1000, 500 * time.Millisecond, time.Second},
	}
	for _, tt := range tests {
		for _, r := range []float64{0, 0.5, 0.999999} {
			d := backoff(tt.n, lo, hi, r)
			if d < tt.min || d > tt.max {
				t.Errorf("backoff(%d, r=%v) = %v, want within [%v, %v]", tt.n, r, d, tt.min, tt.max)
			}
		}
	}
}

func TestQueryValidate(t *testing.T) {
	tests := []struct {
		q    Query
		want string // substring of the error; "" for none
	}{
		{Query{Service: "php-app", Tags: []string{"blue"}, NodeMeta: map[string]string{"rack": "r1"}}, ""},
		{Query{}, "service: a name is required"},
		{Query{Service: "php/app"}, "not a Consul service name"},
		{Query{Service: "php app"}, "not a Consul service name"},
		{Query{Service: "php", Tags: []string{""}}, "tags: a tag must not be empty"},
		{Query{Service: "php", NodeMeta: map[string]string{"a:b": "c"}}, "node_meta"},
	}
	for _, tt := range tests {
		err := tt.q.Validate()
		if (err == nil) != (tt.want == "") || err != nil && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want %q", tt.q, err, tt.want)
		}
	}
}

func TestConfig(t *testing.T) {
	d := Config{}.Defaults()
	if d.Address != "127.0.0.1:8500" || d.WaitTime != 30*time.Second || d.RetryMin != 250*time.Millisecond ||
		d.RetryMax != time.Second || d.MinInterval != 50*time.Millisecond || d.AllowStale || d.AllowEmpty {
		t.Errorf("defaults %+v", d)
	}
	bad := []struct {
		c    Config
		want string
	}{
		{Config{Address: "ftp://x:1"}, "address"},
		{Config{WaitTime: 11 * time.Minute}, "wait_time"},
		{Config{RetryMin: 2 * time.Second, RetryMax: time.Second}, "retry_max"},
		{Config{TLS: TLSConfig{CertFile: "c.pem"}}, "tls.cert_file"},
	}
	for _, tt := range bad {
		if err := tt.c.Validate(); err == nil || !strings.HasPrefix(err.Error(), tt.want+":") {
			t.Errorf("%+v: %v, want an error on %s", tt.c, err, tt.want)
		}
	}
	if _, err := NewClient(Config{TokenFile: filepath.Join(t.TempDir(), "missing")}); err == nil || !strings.Contains(err.Error(), "token_file") {
		t.Errorf("missing token file: %v", err)
	}
	log, logs := newLog()
	log.Info("consul", "cfg", Config{Token: "s3cret", Address: "x:1"})
	if strings.Contains(logs.String(), "s3cret") || !strings.Contains(logs.String(), "token=(set)") {
		t.Errorf("Config logged as %s", logs)
	}
}

// TestTokenFromEnvironment: with neither Token nor TokenFile, the token
// comes from CONSUL_HTTP_TOKEN.
func TestTokenFromEnvironment(t *testing.T) {
	t.Setenv("CONSUL_HTTP_TOKEN", "env-token")
	t.Setenv("CONSUL_HTTP_TOKEN_FILE", "")
	f := newFakeConsul(t)
	startWatcher(t, f, Config{}, Query{Service: "php"})
	if req := f.next(t); req.Token != "env-token" {
		t.Errorf("token %q, want the one from CONSUL_HTTP_TOKEN", req.Token)
	}
}

func TestStatic(t *testing.T) {
	got := make(chan []Member, 1)
	s := NewStatic([]string{"10.0.0.2:9000", "", "10.0.0.1:9000", "10.0.0.2:9000"}, func(ms []Member) { got <- ms })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }() // ends when ctx is cancelled
	ms := <-got
	if want := []Member{{Addr: "10.0.0.2:9000"}, {Addr: "10.0.0.1:9000"}}; !reflect.DeepEqual(ms, want) {
		t.Errorf("members %+v, want %+v", ms, want)
	}
	if err := s.Run(ctx); err != ErrRunning {
		t.Errorf("second Run: %v, want ErrRunning", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}
