package gateway

// fakes_test.go holds the test doubles: a scripted FastCGI backend that
// speaks raw records (for exact params and for garbage), net/http/fcgi as a
// stand-in FPM, and a gateway served on a loopback listener.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/fcgi"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fcgigate/fcgigate/fastcgi"
	"github.com/fcgigate/fcgigate/internal/syncbuf"
	"go.uber.org/goleak"
)

// safety bounds a wait that should end at once, so that a bug fails a test
// instead of hanging it. It is never used to synchronise.
const safety = 10 * time.Second

// leakCheck verifies, after the test's other cleanups, that it left no
// goroutine behind.
func leakCheck(t *testing.T) {
	t.Helper()
	t.Cleanup(func() { goleak.VerifyNone(t) })
}

// listen listens on a free loopback port.
func listen(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// Record types the fake backend writes and reads.
const (
	recBegin  = 1
	recEnd    = 3
	recParams = 4
	recStdin  = 5
	recStdout = 6
	recStderr = 7
)

// rec encodes one record with request id 1, padded to 8 bytes.
func rec(typ byte, content []byte) []byte {
	pad := -len(content) & 7
	b := []byte{1, typ, 0, 1, 0, 0, byte(pad), 0}
	binary.BigEndian.PutUint16(b[4:], uint16(len(content)))
	b = append(b, content...)
	return append(b, make([]byte, pad)...)
}

// stdout encodes s as STDOUT records, then the empty one.
func stdout(s string) []byte {
	var b []byte
	for len(s) > 0 {
		n := min(len(s), 65535)
		b = append(b, rec(recStdout, []byte(s[:n]))...)
		s = s[n:]
	}
	return append(b, rec(recStdout, nil)...)
}

// endRequest encodes END_REQUEST with the protocol status (0: complete).
func endRequest(protocolStatus byte) []byte {
	return rec(recEnd, []byte{0, 0, 0, 0, protocolStatus, 0, 0, 0})
}

// fakeRequest is a request as the fake backend read it.
type fakeRequest struct {
	conn   int // the connection's number, from 1
	params map[string]string
	names  []string // param names in order
	stdin  []byte
}

// fakeFPM is a FastCGI backend whose every connection runs a script.
type fakeFPM struct {
	addr     string
	ln       net.Listener
	accepted atomic.Int32
	reqs     chan *fakeRequest // every request read

	mu    sync.Mutex // protects conns
	conns []net.Conn
	wg    sync.WaitGroup
}

// fakeConn is one connection of a fakeFPM.
type fakeConn struct {
	f  *fakeFPM
	n  int
	c  net.Conn
	br *bufio.Reader
}

// startFake starts a fake backend that runs script on each connection. It
// stops at the end of the test.
func startFake(t *testing.T, script func(c *fakeConn)) *fakeFPM {
	t.Helper()
	ln := listen(t)
	f := &fakeFPM{addr: ln.Addr().String(), ln: ln, reqs: make(chan *fakeRequest, 1000)}
	f.wg.Add(1)
	go f.accept(script) // ends when ln is closed
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		for _, c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
	return f
}

func (f *fakeFPM) accept(script func(*fakeConn)) {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		n := f.accepted.Add(1)
		f.mu.Lock()
		f.conns = append(f.conns, c)
		f.mu.Unlock()
		f.wg.Add(1)
		go func() { // ends when script returns; cleanup closes c
			defer f.wg.Done()
			defer c.Close()
			script(&fakeConn{f: f, n: int(n), c: c, br: bufio.NewReader(c)})
		}()
	}
}

// requests returns the requests read so far.
func (f *fakeFPM) requests() []*fakeRequest {
	var rs []*fakeRequest
	for {
		select {
		case r := <-f.reqs:
			rs = append(rs, r)
		default:
			return rs
		}
	}
}

// readRecord reads one record.
func (c *fakeConn) readRecord() (typ byte, content []byte, err error) {
	var h [8]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return 0, nil, err
	}
	n := int(binary.BigEndian.Uint16(h[4:]))
	b := make([]byte, n+int(h[6]))
	if _, err := io.ReadFull(c.br, b); err != nil {
		return 0, nil, err
	}
	return h[1], b[:n], nil
}

// read reads one whole request: BEGIN_REQUEST, PARAMS, STDIN.
func (c *fakeConn) read() (*fakeRequest, error) {
	typ, _, err := c.readRecord()
	if err != nil {
		return nil, err
	}
	if typ != recBegin {
		return nil, errors.New("fake: want BEGIN_REQUEST")
	}
	var params, stdin []byte
	for {
		typ, b, err := c.readRecord()
		if err != nil {
			return nil, err
		}
		if typ != recParams {
			return nil, errors.New("fake: want PARAMS")
		}
		if len(b) == 0 {
			break
		}
		params = append(params, b...)
	}
	for {
		typ, b, err := c.readRecord()
		if err != nil {
			return nil, err
		}
		if typ != recStdin {
			return nil, errors.New("fake: want STDIN")
		}
		if len(b) == 0 {
			break
		}
		stdin = append(stdin, b...)
	}
	ps, err := fastcgi.DecodeParams(params)
	if err != nil {
		return nil, err
	}
	r := &fakeRequest{conn: c.n, params: map[string]string{}, stdin: stdin}
	for _, p := range ps {
		r.params[p.Name] = p.Value
		r.names = append(r.names, p.Name)
	}
	c.f.reqs <- r
	return r, nil
}

// write writes the byte strings in one write.
func (c *fakeConn) write(bs ...[]byte) error {
	_, err := c.c.Write(bytes.Join(bs, nil))
	return err
}

// closedByPeer reads until the gateway closes the connection, and reports
// whether it did (rather than sending something or leaving it open).
func (c *fakeConn) closedByPeer() bool {
	c.c.SetReadDeadline(time.Now().Add(safety))
	_, err := io.Copy(io.Discard, c.br)
	return err == nil || errors.Is(err, syscall.ECONNRESET)
}

// answer is a script that answers every request on the connection with the
// CGI output out.
func answer(out string) func(*fakeConn) {
	return func(c *fakeConn) {
		for {
			if _, err := c.read(); err != nil {
				return
			}
			if c.write(stdout(out), endRequest(0)) != nil {
				return
			}
		}
	}
}

// echo is a script that answers with the request body.
func echo(c *fakeConn) {
	for {
		r, err := c.read()
		if err != nil {
			return
		}
		if c.write(stdout("Content-Type: text/plain\r\n\r\n"+string(r.stdin)), endRequest(0)) != nil {
			return
		}
	}
}

// startFCGI serves h with net/http/fcgi, the standard library's FastCGI
// responder, as a stand-in FPM.
func startFCGI(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	ln := listen(t)
	done := make(chan struct{})
	go func() { fcgi.Serve(ln, h); close(done) }() // returns when ln is closed
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// release is a channel a fake backend's handler waits on; it is closed by
// the test or, at the latest, by its cleanup.
type release struct {
	ch   chan struct{}
	once sync.Once
}

func newRelease(t *testing.T) *release {
	r := &release{ch: make(chan struct{})}
	t.Cleanup(r.open)
	return r
}

func (r *release) open() { r.once.Do(func() { close(r.ch) }) }

// logBuffer collects a gateway's JSON log.
type logBuffer struct{ syncbuf.Buffer }

// find returns the entries whose msg contains msg.
func (l *logBuffer) find(msg string) []map[string]any {
	var out []map[string]any
	for line := range strings.Lines(l.String()) {
		var e map[string]any
		if json.Unmarshal([]byte(line), &e) == nil && strings.Contains(e["msg"].(string), msg) {
			out = append(out, e)
		}
	}
	return out
}

// testGateway is a Gateway served on a loopback listener.
type testGateway struct {
	*Gateway
	url    string
	addr   string
	logs   *logBuffer
	client *http.Client
}

// testPool is a pool config for backends, with a safety read timeout.
func testPool(backends ...string) PoolConfig {
	return PoolConfig{
		Name:         "php",
		Backends:     backends,
		DocumentRoot: "/srv/www",
		ReadTimeout:  safety,
	}
}

// startGateway serves a gateway of the one pool pc until the test ends.
// dial, if not nil, makes its backend connections.
func startGateway(t *testing.T, pc PoolConfig, dial dialFunc) *testGateway {
	t.Helper()
	return startGatewayConfig(t, Config{Pools: []PoolConfig{pc}}, dial)
}

func startGatewayConfig(t *testing.T, cfg Config, dial dialFunc) *testGateway {
	t.Helper()
	logs := &logBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ln := listen(t)
	cfg.Listen = ln.Addr().String()
	g, err := newGateway(cfg, log, dial)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- g.Serve(ctx, ln, safety) }() // returns when ctx is cancelled
	tr := &http.Transport{DisableCompression: true}
	t.Cleanup(func() {
		tr.CloseIdleConnections()
		cancel()
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
		g.Close()
		for _, p := range g.pools {
			for _, b := range p.bal.Backends() {
				if n := b.InFlight(); n != 0 {
					t.Errorf("backend %s: %d requests still in flight: a Done is missing", b.Addr(), n)
				}
			}
		}
		if t.Failed() {
			t.Logf("gateway log:\n%s", logs.String())
		}
	})
	return &testGateway{
		Gateway: g,
		url:     "http://" + ln.Addr().String(),
		addr:    ln.Addr().String(),
		logs:    logs,
		client: &http.Client{
			Transport:     tr,
			Timeout:       safety,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// get sends a request and returns the response with its body read.
func (tg *testGateway) do(t *testing.T, req *http.Request) (*http.Response, string) {
	t.Helper()
	resp, err := tg.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", req.Method, req.URL, err)
	}
	return resp, string(b)
}

func (tg *testGateway) get(t *testing.T, path string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, tg.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return tg.do(t, req)
}

// raw sends the raw HTTP request text on a new connection and reads the
// response.
func (tg *testGateway) raw(t *testing.T, request string) (*http.Response, string) {
	t.Helper()
	c, err := net.Dial("tcp", tg.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(safety))
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%q: %v", request, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%q: reading the body: %v", request, err)
	}
	return resp, string(b)
}

// refusingDial is a dialFunc that refuses the addresses in dead and dials
// the others, counting the refusals.
type refusingDial struct {
	dead    map[string]bool
	refused atomic.Int32
}

func (d *refusingDial) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if d.dead[addr] {
		d.refused.Add(1)
		return nil, &net.OpError{Op: "dial", Net: network, Err: syscall.ECONNREFUSED}
	}
	var nd net.Dialer
	return nd.DialContext(ctx, network, addr)
}
