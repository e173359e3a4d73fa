package discovery

// fake_test.go holds a scripted fake Consul agent, a fake clock and a log
// sink for the package's tests.

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fcgigate/fcgigate/internal/syncbuf"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wait bounds every wait for something that should happen promptly.
const wait = 10 * time.Second

// request is what the fake saw of one request.
type request struct {
	Method string
	Path   string
	Query  url.Values
	Token  string
	Body   string
}

// response is the fake's answer to one request.
type response struct {
	status  int
	index   uint64 // X-Consul-Index; 0: none
	noLead  bool   // X-Consul-KnownLeader: false
	hash    string // X-Consul-ContentHash
	body    string
	hangup  bool // close the connection without an answer
	noReply bool // only record the request; reply is not expected
}

// fakeConsul answers each request with the next response the test gives
// it, so that a test steps a watcher query by query.
type fakeConsul struct {
	srv   *httptest.Server
	reqs  chan request
	resps chan response
}

func newFakeConsul(t *testing.T) *fakeConsul {
	f := &fakeConsul{reqs: make(chan request, 100), resps: make(chan response)}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.reqs <- request{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Token: r.Header.Get("X-Consul-Token"), Body: string(b)}
		var resp response
		select {
		case resp = <-f.resps:
		case <-r.Context().Done():
			return
		}
		if resp.hangup {
			panic(http.ErrAbortHandler)
		}
		h := w.Header()
		if resp.index > 0 {
			h.Set("X-Consul-Index", fmt.Sprint(resp.index))
		}
		h.Set("X-Consul-KnownLeader", fmt.Sprint(!resp.noLead))
		h.Set("X-Consul-LastContact", "0")
		if resp.hash != "" {
			h.Set("X-Consul-ContentHash", resp.hash)
		}
		if resp.status == 0 {
			resp.status = 200
		}
		w.WriteHeader(resp.status)
		io.WriteString(w, resp.body)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

// addr is the fake's address for Config.Address.
func (f *fakeConsul) addr() string { return strings.TrimPrefix(f.srv.URL, "http://") }

// next returns the next request, failing the test if none comes.
func (f *fakeConsul) next(t *testing.T) request {
	t.Helper()
	select {
	case r := <-f.reqs:
		return r
	case <-time.After(wait):
		t.Fatalf("no request within %v", wait)
	}
	return request{}
}

// answer gives the response to the request waiting for one.
func (f *fakeConsul) answer(t *testing.T, r response) {
	t.Helper()
	select {
	case f.resps <- r:
	case <-time.After(wait):
		t.Fatalf("no request to answer within %v", wait)
	}
}

// fakeClock advances only when something sleeps on it, and records the
// sleeps.
type fakeClock struct {
	mu     sync.Mutex // protects the fields below
	now    time.Time
	sleeps []time.Duration
	r      float64
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Unix(1e9, 0), r: 0.5} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	if d > 0 {
		c.sleeps = append(c.sleeps, d)
		c.now = c.now.Add(d)
	}
	c.mu.Unlock()
	return ctx.Err()
}

func (c *fakeClock) Rand() float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.r
}

// takeSleeps returns the sleeps since the last call, those of MinInterval
// pacing left out.
func (c *fakeClock) takeSleeps(pacing time.Duration) []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []time.Duration
	for _, d := range c.sleeps {
		if d != pacing {
			out = append(out, d)
		}
	}
	c.sleeps = nil
	return out
}

// logBuffer is a log sink that tests read while loops write.
type logBuffer struct{ syncbuf.Buffer }

// count returns how many lines hold every one of subs.
func (l *logBuffer) count(subs ...string) int {
	n := 0
	for _, line := range strings.Split(l.String(), "\n") {
		all := line != ""
		for _, s := range subs {
			all = all && strings.Contains(line, s)
		}
		if all {
			n++
		}
	}
	return n
}

func newLog() (*slog.Logger, *logBuffer) {
	buf := &logBuffer{}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})), buf
}

// entry renders one /v1/health/service entry.
func entry(node, nodeAddr, id, addr string, port int, tags ...string) string {
	t := "[]"
	if len(tags) > 0 {
		t = `["` + strings.Join(tags, `","`) + `"]`
	}
	return fmt.Sprintf(`{"Node":{"Node":%q,"Address":%q},"Service":{"ID":%q,"Service":"php","Address":%q,"Port":%d,"Tags":%s},"Checks":[]}`,
		node, nodeAddr, id, addr, port, t)
}

// list renders a /v1/health/service answer.
func list(entries ...string) string { return "[" + strings.Join(entries, ",") + "]" }
