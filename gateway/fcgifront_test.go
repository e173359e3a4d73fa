package gateway

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fcgigate/fcgigate/fastcgi"
)

func TestParseAllowList(t *testing.T) {
	list, err := parseAllowList([]string{"127.0.0.0/8", "::1", "10.1.2.3", " 192.168.7.9/16 "})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		addr net.Addr
		want bool
	}{
		{&net.TCPAddr{IP: net.ParseIP("127.0.0.1")}, true},
		{&net.TCPAddr{IP: net.ParseIP("127.255.0.9")}, true},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:127.0.0.1")}, true}, // a dual-stack listener's view
		{&net.TCPAddr{IP: net.ParseIP("::1")}, true},
		{&net.TCPAddr{IP: net.ParseIP("::2")}, false},
		{&net.TCPAddr{IP: net.ParseIP("10.1.2.3")}, true},
		{&net.TCPAddr{IP: net.ParseIP("10.1.2.4")}, false},
		{&net.TCPAddr{IP: net.ParseIP("192.168.200.1")}, true}, // the host bits of /16 are ignored
		{&net.TCPAddr{IP: net.ParseIP("192.169.0.1")}, false},
		{&net.UnixAddr{Name: "/run/fcgigate.sock", Net: "unix"}, true},
	} {
		if got := list.allows(tt.addr); got != tt.want {
			t.Errorf("allows(%v) = %v, want %v", tt.addr, got, tt.want)
		}
	}
	for _, bad := range []string{"", "localhost", "10.0.0.0/33", "fe80::1%eth0", "1.2.3"} {
		if _, err := parseAllowList([]string{bad}); err == nil {
			t.Errorf("parseAllowList(%q): no error", bad)
		}
	}
	if err := (Config{Pools: []PoolConfig{testPool("127.0.0.1:9000")}, AllowedClients: []string{"nope"}}).Defaults().Validate(); err == nil ||
		!strings.HasPrefix(err.Error(), `fastcgi.allowed_clients: "nope"`) {
		t.Errorf("Validate: %v", err)
	}
}

func TestFrontParams(t *testing.T) {
	ps := func(kv ...string) []fastcgi.Param {
		var out []fastcgi.Param
		for i := 0; i < len(kv); i += 2 {
			out = append(out, fastcgi.Param{Name: kv[i], Value: kv[i+1]})
		}
		return out
	}
	tests := []struct {
		name   string
		keep   bool
		root   string
		extra  map[string]string
		in     []fastcgi.Param
		want   []fastcgi.Param
		script string
	}{
		{"same docroot passes through", false, "/srv/www", nil,
			ps("SCRIPT_FILENAME", "/srv/www/a.php", "DOCUMENT_ROOT", "/srv/www/", "X", "y"),
			ps("SCRIPT_FILENAME", "/srv/www/a.php", "DOCUMENT_ROOT", "/srv/www/", "X", "y"), "/srv/www/a.php"},
		{"httpoxy", false, "/srv/www", nil,
			ps("HTTP_PROXY", "http://evil:8080", "HTTP_HOST", "h"),
			ps("HTTP_HOST", "h"), ""},
		{"docroot rewritten", false, "/srv/www", nil,
			ps("DOCUMENT_ROOT", "/var/www/html", "SCRIPT_FILENAME", "/var/www/html/sub/a.php", "PATH_TRANSLATED", "/var/www/html/x/y", "SCRIPT_NAME", "/sub/a.php"),
			ps("DOCUMENT_ROOT", "/srv/www", "SCRIPT_FILENAME", "/srv/www/sub/a.php", "PATH_TRANSLATED", "/srv/www/x/y", "SCRIPT_NAME", "/sub/a.php"),
			"/srv/www/sub/a.php"},
		{"Apache's proxy: prefix kept", false, "/srv/www/", nil,
			ps("SCRIPT_FILENAME", "proxy:fcgi://127.0.0.1:9000/var/www/html/a.php", "DOCUMENT_ROOT", "/var/www/html"),
			ps("SCRIPT_FILENAME", "proxy:fcgi://127.0.0.1:9000/srv/www/a.php", "DOCUMENT_ROOT", "/srv/www"),
			"proxy:fcgi://127.0.0.1:9000/srv/www/a.php"},
		{"prefix of a longer name is not the docroot", false, "/srv/www", nil,
			ps("DOCUMENT_ROOT", "/var/www", "SCRIPT_FILENAME", "/var/www2/a.php"),
			ps("DOCUMENT_ROOT", "/srv/www", "SCRIPT_FILENAME", "/var/www2/a.php"), "/var/www2/a.php"},
		{"kept", true, "/srv/www", nil,
			ps("DOCUMENT_ROOT", "/var/www", "SCRIPT_FILENAME", "/var/www/a.php"),
			ps("DOCUMENT_ROOT", "/var/www", "SCRIPT_FILENAME", "/var/www/a.php"), "/var/www/a.php"},
		{"no DOCUMENT_ROOT: nothing to rewrite from", false, "/srv/www", nil,
			ps("SCRIPT_FILENAME", "/var/www/a.php"),
			ps("SCRIPT_FILENAME", "/var/www/a.php"), "/var/www/a.php"},
		{"root docroot", false, "/", nil,
			ps("DOCUMENT_ROOT", "/var/www", "SCRIPT_FILENAME", "/var/www/a.php"),
			ps("DOCUMENT_ROOT", "/", "SCRIPT_FILENAME", "/a.php"), "/a.php"},
		{"pool params last", false, "/srv/www", map[string]string{"APP_ENV": "prod", "A": "1"},
			ps("APP_ENV", "dev"),
			ps("APP_ENV", "dev", "A", "1", "APP_ENV", "prod"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pc := testPool("127.0.0.1:9000")
			pc.DocumentRoot, pc.KeepClientDocroot, pc.Params = tt.root, tt.keep, tt.extra
			g, err := New(Config{Pools: []PoolConfig{pc}}, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			defer g.Close()
			got, script := g.pools[0].frontParams(nil, tt.in)
			if !reflect.DeepEqual(got, tt.want) || script != tt.script {
				t.Errorf("got %v, %q\nwant %v, %q", got, script, tt.want, tt.script)
			}
		})
	}
}

// testFront is a gateway serving only its FastCGI front on a loopback
// listener.
type testFront struct {
	*Gateway
	addr   string
	logs   *logBuffer
	stop   context.CancelFunc // starts the drain
	served chan error         // ServeFastCGI's result
}

// startFront serves cfg's FastCGI front until the test ends, with a drain
// of drain.
// dial connects to the front as a web server would, with a deadline of
// safety for every read and write, and closes the connection when the test
// ends.
func (tf *testFront) dial(t *testing.T) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", tf.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(safety))
	return nc
}

func startFront(t *testing.T, cfg Config, drain time.Duration) *testFront {
	t.Helper()
	logs := &logBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ln := listen(t)
	g, err := newGateway(cfg, log, nil)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tf := &testFront{Gateway: g, addr: ln.Addr().String(), logs: logs, stop: cancel, served: make(chan error, 1)}
	go func() { tf.served <- g.ServeFastCGI(ctx, ln, drain) }() // returns when ctx is cancelled
	t.Cleanup(func() {
		cancel()
		if err := <-tf.served; err != nil {
			t.Errorf("ServeFastCGI: %v", err)
		}
		tf.served <- nil // for a second Cleanup or a test that read it
		g.Close()
		for _, b := range g.pools[0].bal.Backends() {
			if n := b.InFlight(); n != 0 {
				t.Errorf("backend %s: %d requests still in flight: a Done is missing", b.Addr(), n)
			}
		}
		if t.Failed() {
			t.Logf("gateway log:\n%s", logs.String())
		}
	})
	return tf
}

// frontAnswer is what a FastCGI client got from the front.
type frontAnswer struct {
	stdout, stderr string
	appStatus      int
	err            error
}

// do sends one request to the front with this package's FastCGI client.
func (tf *testFront) do(t *testing.T, params []fastcgi.Param, body io.Reader) frontAnswer {
	t.Helper()
	nc, err := net.Dial("tcp", tf.addr)
	if err != nil {
		t.Fatal(err)
	}
	c := fastcgi.NewConn(nc, false)
	defer c.Close()
	var a frontAnswer
	ctx, cancel := context.WithTimeout(context.Background(), safety)
	defer cancel()
	resp, err := c.Do(ctx, &fastcgi.Request{Params: params, Body: body, Stderr: func(b []byte) { a.stderr += string(b) }})
	if err != nil {
		a.err = err
		return a
	}
	defer resp.Close()
	out, err := io.ReadAll(resp)
	a.stdout, a.appStatus, a.err = string(out), resp.AppStatus(), err
	return a
}

func get(uri string) []fastcgi.Param {
	return []fastcgi.Param{
		{Name: "REQUEST_METHOD", Value: "GET"}, {Name: "REQUEST_URI", Value: uri},
		{Name: "SCRIPT_FILENAME", Value: "/srv/www" + uri}, {Name: "DOCUMENT_ROOT", Value: "/srv/www"},
	}
}

func post(uri string, n int) []fastcgi.Param {
	return append(get(uri)[1:], fastcgi.Param{Name: "REQUEST_METHOD", Value: "POST"},
		fastcgi.Param{Name: "CONTENT_LENGTH", Value: strconv.Itoa(n)})
}

// TestFrontPassThrough: params reach the backend as sent, and its STDOUT
// (CGI header and all), STDERR and application status reach the client
// unchanged.
func TestFrontPassThrough(t *testing.T) {
	leakCheck(t)
	out := "Status: 299 Odd\r\nX-Weird:  spaced \r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n" + strings.Repeat("body.", 30000)
	f := startFake(t, func(c *fakeConn) {
		for {
			r, err := c.read()
			if err != nil {
				return
			}
			end := rec(recEnd, []byte{0, 0, 0, 7, 0, 0, 0, 0})
			if c.write(rec(recStderr, []byte("PHP message: careful")), rec(recStdout, []byte(out[:100])), stdout(out[100:]+string(r.stdin)), end) != nil {
				return
			}
		}
	})
	tf := startFront(t, Config{Pools: []PoolConfig{testPool(f.addr)}}, safety)
	params := append(post("/a.php", 5), fastcgi.Param{Name: "HTTP_PROXY", Value: "http://evil"}, fastcgi.Param{Name: "Z_LAST", Value: ""})
	a := tf.do(t, params, strings.NewReader("hello"))
	if a.err != nil || a.stdout != out+"hello" || a.stderr != "PHP message: careful" || a.appStatus != 7 {
		t.Fatalf("got err %v, stderr %q, app status %d, stdout %.80q...", a.err, a.stderr, a.appStatus, a.stdout)
	}
	r := f.requests()[0]
	var want []string
	for _, p := range params {
		if p.Name != "HTTP_PROXY" {
			want = append(want, p.Name)
		}
	}
	if !reflect.DeepEqual(r.names, want) || r.params["CONTENT_LENGTH"] != "5" || string(r.stdin) != "hello" {
		t.Errorf("backend got %v %v, stdin %q; want names %v", r.names, r.params, r.stdin, want)
	}
}

// TestFrontErrors: a failure before any byte of the answer becomes the CGI
// error response the HTTP front would send as HTTP.
func TestFrontErrors(t *testing.T) {
	leakCheck(t)
	hangUp := func(c *fakeConn) { c.read() } // reads the request, then closes
	t.Run("no backend: 503", func(t *testing.T) {
		dead := listen(t)
		addr := dead.Addr().String()
		dead.Close()
		tf := startFront(t, Config{Pools: []PoolConfig{testPool(addr)}}, safety)
		a := tf.do(t, get("/x.php"), nil)
		if a.err != nil || !strings.HasPrefix(a.stdout, "Status: 503 Service Unavailable\r\n") || !strings.Contains(a.stdout, "\r\nRetry-After: 1\r\n") ||
			!strings.HasSuffix(a.stdout, "\r\n\r\n503 Service Unavailable\n") {
			t.Fatalf("got %q, %v", a.stdout, a.err)
		}
	})
	t.Run("POST that may have reached PHP: 502, not retried", func(t *testing.T) {
		f := startFake(t, hangUp)
		tf := startFront(t, Config{Pools: []PoolConfig{testPool(f.addr)}}, safety)
		a := tf.do(t, post("/x.php", 3), strings.NewReader("abc"))
		if a.err != nil || !strings.HasPrefix(a.stdout, "Status: 502 Bad Gateway\r\n") {
			t.Fatalf("got %q, %v", a.stdout, a.err)
		}
		if n := f.accepted.Load(); n != 1 {
			t.Errorf("%d connections to the backend, want 1", n)
		}
	})
	t.Run("GET retried on another backend", func(t *testing.T) {
		bad := startFake(t, hangUp)
		good := startFake(t, answer("Content-Type: text/plain\r\n\r\nfine"))
		tf := startFront(t, Config{Pools: []PoolConfig{testPool(bad.addr, good.addr)}}, safety)
		for range 6 {
			if a := tf.do(t, get("/x.php"), nil); a.err != nil || a.stdout != "Content-Type: text/plain\r\n\r\nfine" {
				t.Fatalf("got %q, %v", a.stdout, a.err)
			}
		}
	})
	t.Run("too slow: 504", func(t *testing.T) {
		rel := newRelease(t)
		f := startFake(t, func(c *fakeConn) {
			c.read()
			<-rel.ch
		})
		pc := testPool(f.addr)
		pc.ReadTimeout = 100 * time.Millisecond
		tf := startFront(t, Config{Pools: []PoolConfig{pc}}, safety)
		a := tf.do(t, post("/x.php", 0), nil)
		if a.err != nil || !strings.HasPrefix(a.stdout, "Status: 504 Gateway Timeout\r\n") {
			t.Fatalf("got %q, %v", a.stdout, a.err)
		}
		rel.open()
	})
	t.Run("body over max_body_size: 413", func(t *testing.T) {
		f := startFake(t, echo)
		pc := testPool(f.addr)
		pc.MaxBodyBytes = 10
		tf := startFront(t, Config{Pools: []PoolConfig{pc}}, safety)
		a := tf.do(t, post("/x.php", 11), strings.NewReader("01234567890"))
		if a.err != nil || !strings.HasPrefix(a.stdout, "Status: 413 Request Entity Too Large\r\n") || f.accepted.Load() != 0 {
			t.Fatalf("got %q, %v; %d backend connections", a.stdout, a.err, f.accepted.Load())
		}
		a = tf.do(t, post("/x.php", 10), strings.NewReader("0123456789"))
		if a.err != nil || !strings.HasSuffix(a.stdout, "\r\n\r\n0123456789") {
			t.Fatalf("body at the limit: got %q, %v", a.stdout, a.err)
		}
	})
}

// TestFrontCutShort: a backend that dies after the answer began makes the
// front close the client's connection without END_REQUEST, so the web
// server cannot take the answer for whole.
func TestFrontCutShort(t *testing.T) {
	leakCheck(t)
	f := startFake(t, func(c *fakeConn) {
		c.read()
		c.write(rec(recStdout, []byte("Content-Type: text/plain\r\n\r\npartial")))
	})
	tf := startFront(t, Config{Pools: []PoolConfig{testPool(f.addr)}}, safety)
	a := tf.do(t, get("/x.php"), nil)
	if !errors.Is(a.err, fastcgi.ErrProtocol) || !strings.HasSuffix(a.stdout, "partial") {
		t.Fatalf("got %q, %v; want the partial answer, then a closed connection", a.stdout, a.err)
	}
	waitFrontLog(t, tf.logs, "response cut short by the backend")
}

// TestFrontAbort: FCGI_ABORT_REQUEST cancels the backend request, and the
// front ends the request with END_REQUEST on a connection that stays open.
func TestFrontAbort(t *testing.T) {
	leakCheck(t)
	got := make(chan *fakeConn, 1)
	f := startFake(t, func(c *fakeConn) {
		if _, err := c.read(); err != nil {
			return
		}
		got <- c
		c.closedByPeer()
	})
	tf := startFront(t, Config{Pools: []PoolConfig{testPool(f.addr)}}, safety)
	nc := tf.dial(t)
	begin := rec(1, []byte{0, 1, 1, 0, 0, 0, 0, 0}) // responder, FCGI_KEEP_CONN
	nc.Write(bytes.Join([][]byte{begin, rec(recParams, fastcgi.EncodeParams(get("/x.php"))), rec(recParams, nil), rec(recStdin, nil)}, nil))
	select {
	case <-got:
	case <-time.After(safety):
		t.Fatal("the request did not reach the backend")
	}
	nc.Write(rec(2, nil)) // FCGI_ABORT_REQUEST
	var h [8]byte
	if _, err := io.ReadFull(nc, h[:]); err != nil || h[1] != recEnd {
		t.Fatalf("after ABORT_REQUEST: header %v, %v; want END_REQUEST", h, err)
	}
	waitFrontLog(t, tf.logs, "request failed") // logged at debug as the client's doing
	// The connection carries the next request.
	nc.Write(bytes.Join([][]byte{begin, rec(recParams, fastcgi.EncodeParams(get("/x.php"))), rec(recParams, nil), rec(recStdin, nil)}, nil))
	select {
	case <-got:
	case <-time.After(safety):
		t.Fatal("the second request on the connection did not reach the backend")
	}
}

// TestFrontAllowList: a client outside allowed_clients is closed at accept
// and counted; one inside is served.
func TestFrontAllowList(t *testing.T) {
	leakCheck(t)
	f := startFake(t, answer("Content-Type: text/plain\r\n\r\nok"))
	tf := startFront(t, Config{Pools: []PoolConfig{testPool(f.addr)}, AllowedClients: []string{"127.0.0.5/32"}}, safety)
	nc, err := net.Dial("tcp", tf.addr) // from 127.0.0.1
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(safety))
	nc.Write(rec(1, []byte{0, 1, 0, 0, 0, 0, 0, 0}))
	if n, err := nc.Read(make([]byte, 1)); n != 0 || err == nil || isTimeout(err) {
		t.Errorf("refused client read %d bytes, %v; want the connection closed", n, err)
	}
	nc.Close()
	if n := tf.RefusedClients(); n != 1 {
		t.Errorf("RefusedClients() = %d, want 1", n)
	}
	waitFrontLog(t, tf.logs, "fastcgi client refused")

	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.5")}}
	nc, err = d.Dial("tcp", tf.addr)
	if err != nil {
		t.Fatal(err)
	}
	c := fastcgi.NewConn(nc, false)
	defer c.Close()
	resp, err := c.Do(context.Background(), &fastcgi.Request{Params: get("/x.php"), ReadTimeout: safety})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp)
	resp.Close()
	if err != nil || !strings.HasSuffix(string(b), "ok") {
		t.Fatalf("allowed client: %q, %v", b, err)
	}
}

// TestFrontDrain: when its context ends, the front stops accepting,
// closes idle connections at once and lets the request in flight finish.
func TestFrontDrain(t *testing.T) {
	leakCheck(t)
	rel := newRelease(t)
	f := startFake(t, func(c *fakeConn) {
		for {
			if _, err := c.read(); err != nil {
				return
			}
			<-rel.ch
			if c.write(stdout("Content-Type: text/plain\r\n\r\nfinished"), endRequest(0)) != nil {
				return
			}
		}
	})
	tf := startFront(t, Config{Pools: []PoolConfig{testPool(f.addr)}}, safety)
	idle := tf.dial(t)
	got := make(chan frontAnswer, 1)
	go func() { got <- tf.do(t, get("/slow.php"), nil) }() // ends when the request does
	select {
	case <-f.reqs:
	case <-time.After(safety):
		t.Fatal("the request did not reach the backend")
	}
	tf.stop()
	idle.SetReadDeadline(time.Now().Add(safety))
	if _, err := idle.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("idle connection: %v, want it closed (EOF)", err)
	}
	select {
	case err := <-tf.served:
		t.Fatalf("ServeFastCGI returned %v with a request in flight", err)
	default:
	}
	rel.open()
	if a := <-got; a.err != nil || !strings.HasSuffix(a.stdout, "finished") {
		t.Errorf("request in flight: %q, %v", a.stdout, a.err)
	}
	select {
	case err := <-tf.served:
		if err != nil {
			t.Errorf("ServeFastCGI: %v", err)
		}
		tf.served <- err
	case <-time.After(safety):
		t.Fatal("ServeFastCGI did not return after the drain")
	}
	if _, err := net.Dial("tcp", tf.addr); err == nil {
		t.Error("still accepting after the drain")
	}
}

// waitFrontLog waits until a log line contains msg.
func waitFrontLog(t *testing.T, logs *logBuffer, msg string) {
	t.Helper()
	deadline := time.Now().Add(safety)
	for delay := time.Millisecond; len(logs.find(msg)) == 0; delay = min(2*delay, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("no log line %q in:\n%s", msg, logs.String())
		}
		time.Sleep(delay)
	}
}

// recWithID encodes one record with request id id.
func recWithID(typ byte, id uint16, content []byte) []byte {
	b := rec(typ, content)
	binary.BigEndian.PutUint16(b[2:], id)
	return b
}

// TestFrontMultiplex: two requests interleaved on one connection are both
// answered, each under its own id, from backends of the pool.
func TestFrontMultiplex(t *testing.T) {
	leakCheck(t)
	f := startFake(t, func(c *fakeConn) {
		for {
			r, err := c.read()
			if err != nil {
				return
			}
			if c.write(stdout("Content-Type: text/plain\r\n\r\n"+r.params["REQUEST_URI"]), endRequest(0)) != nil {
				return
			}
		}
	})
	tf := startFront(t, Config{Pools: []PoolConfig{testPool(f.addr)}}, safety)
	nc := tf.dial(t)
	var in []byte
	for _, id := range []uint16{1, 2} {
		in = append(in, recWithID(1, id, []byte{0, 1, 1, 0, 0, 0, 0, 0})...)
	}
	for _, id := range []uint16{2, 1} {
		in = append(in, recWithID(recParams, id, fastcgi.EncodeParams(get("/r"+strconv.Itoa(int(id))+".php")))...)
		in = append(in, recWithID(recParams, id, nil)...)
		in = append(in, recWithID(recStdin, id, nil)...)
	}
	nc.Write(in)
	stdout := map[uint16]string{}
	for ended := 0; ended < 2; {
		var h [8]byte
		if _, err := io.ReadFull(nc, h[:]); err != nil {
			t.Fatalf("after %v: %v", stdout, err)
		}
		id := binary.BigEndian.Uint16(h[2:])
		b := make([]byte, int(binary.BigEndian.Uint16(h[4:]))+int(h[6]))
		if _, err := io.ReadFull(nc, b); err != nil {
			t.Fatal(err)
		}
		switch h[1] {
		case recStdout:
			stdout[id] += string(b[:binary.BigEndian.Uint16(h[4:])])
		case recEnd:
			ended++
		}
	}
	for _, id := range []uint16{1, 2} {
		if want := "/r" + strconv.Itoa(int(id)) + ".php"; !strings.HasSuffix(stdout[id], "\r\n\r\n"+want) {
			t.Errorf("request %d: %q, want the answer for %s", id, stdout[id], want)
		}
	}
}
