package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// startH1 serves h on a loopback port with the HTTP/1.x server of Serve,
// and shuts it down at the end of the test. It returns the address and the
// server, whose log goes to logs.
func startH1(t *testing.T, h http.HandlerFunc, maxHeader int) (string, *h1Server, *logBuffer) {
	t.Helper()
	ln := listen(t)
	logs := &logBuffer{}
	base, cancel := context.WithCancel(context.Background())
	s := &h1Server{
		handler:           h,
		log:               slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		base:              base,
		readHeaderTimeout: safety,
		idleTimeout:       safety,
		maxHeaderBytes:    maxHeader,
	}
	served := make(chan error, 1)
	go func() { served <- s.serve(ln) }() // returns once ln is closed
	t.Cleanup(func() {
		s.startShutdown()
		ln.Close()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
		cancel()
		s.closeAll()
		<-s.wait()
	})
	return ln.Addr().String(), s, logs
}

// h1Client is a raw connection to an h1Server.
type h1Client struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialH1(t *testing.T, addr string) *h1Client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(safety))
	return &h1Client{t: t, c: c, br: bufio.NewReader(c)}
}

func (hc *h1Client) send(s string) {
	hc.t.Helper()
	if _, err := io.WriteString(hc.c, s); err != nil {
		hc.t.Fatal(err)
	}
}

// response reads one response to a request with method, and its body.
func (hc *h1Client) response(method string) (*http.Response, string) {
	hc.t.Helper()
	resp, err := http.ReadResponse(hc.br, &http.Request{Method: method})
	if err != nil {
		hc.t.Fatalf("reading a response: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		hc.t.Fatalf("reading the body: %v", err)
	}
	return resp, string(b)
}

// closed reports whether the server closed the connection, with nothing
// more sent. A close with request bytes still unread is a reset.
func (hc *h1Client) closed() bool {
	hc.c.SetReadDeadline(time.Now().Add(safety))
	_, err := hc.br.ReadByte()
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

func echoPath(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, r.Method+" "+r.URL.Path)
}

func TestH1KeepAliveAndPipelining(t *testing.T) {
	leakCheck(t)
	addr, _, _ := startH1(t, echoPath, 4096)
	hc := dialH1(t, addr)
	hc.send("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\n\r\nHEAD /c HTTP/1.1\r\nHost: x\r\n\r\n")
	for _, want := range []string{"GET /a", "GET /b"} {
		resp, body := hc.response("GET")
		if resp.StatusCode != 200 || body != want || resp.Close {
			t.Errorf("%d %q close %v, want 200 %q", resp.StatusCode, body, resp.Close, want)
		}
	}
	resp, body := hc.response("HEAD")
	if resp.StatusCode != 200 || body != "" {
		t.Errorf("HEAD: %d %q", resp.StatusCode, body)
	}
	hc.send("GET /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if resp, body := hc.response("GET"); body != "GET /d" || !resp.Close {
		t.Errorf("Connection: close: %q close %v", body, resp.Close)
	}
	if !hc.closed() {
		t.Error("connection open after Connection: close")
	}
}

func TestH1HTTP10(t *testing.T) {
	leakCheck(t)
	addr, _, _ := startH1(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			w.Header().Set("Content-Length", "18")
		}
		io.WriteString(w, "part one, ")
		if r.URL.Path == "/stream" {
			w.(http.Flusher).Flush() // no Content-Length: the body ends with the connection
		}
		io.WriteString(w, "part two")
	}, 4096)

	hc := dialH1(t, addr)
	hc.send("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	resp, body := hc.response("GET")
	if body != "part one, part two" || resp.Header.Get("Connection") != "keep-alive" {
		t.Errorf("keep-alive: %q Connection %q", body, resp.Header.Get("Connection"))
	}
	hc.send("GET /stream HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	resp, body = hc.response("GET")
	if body != "part one, part two" || len(resp.TransferEncoding) != 0 || !hc.closed() {
		t.Errorf("streamed to HTTP/1.0: %q %v, want the whole body then the end of the connection", body, resp.TransferEncoding)
	}

	hc = dialH1(t, addr)
	hc.send("GET / HTTP/1.0\r\n\r\n")
	if resp, _ := hc.response("GET"); !resp.Close || !hc.closed() {
		t.Error("HTTP/1.0 without keep-alive: connection kept")
	}
}

func TestH1Bodies(t *testing.T) {
	leakCheck(t)
	addr, _, _ := startH1(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ignore" {
			io.WriteString(w, "ignored")
			return
		}
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("reading the body: %v", err)
		}
		io.WriteString(w, "got ")
		w.(http.Flusher).Flush()
		fmt.Fprintf(w, "%d bytes: %s", len(b), b)
	}, 4096)
	hc := dialH1(t, addr)
	hc.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
	resp, body := hc.response("POST")
	if body != "got 11 bytes: hello world" || len(resp.TransferEncoding) == 0 {
		t.Errorf("chunked both ways: %q %v", body, resp.TransferEncoding)
	}
	// The trailer is read, so that the next request starts after it.
	hc.send("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-T\r\n\r\n2\r\nab\r\n0\r\nX-T: v\r\n\r\nGET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, body := hc.response("POST"); body != "got 2 bytes: ab" {
		t.Errorf("chunked with a trailer: %q", body)
	}
	if _, body := hc.response("GET"); body != "got 0 bytes: " {
		t.Errorf("after a trailer: %q", body)
	}
	// A small body left unread is discarded; the connection goes on.
	hc.send("POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, body := hc.response("POST"); body != "ignored" {
		t.Errorf("unread body: %q", body)
	}
	if _, body := hc.response("GET"); body != "got 0 bytes: " {
		t.Errorf("after an unread body: %q", body)
	}
	// A large one closes the connection, and the response says so.
	hc.send(fmt.Sprintf("POST /ignore HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\nsome", 10<<20))
	if resp, _ := hc.response("POST"); !resp.Close || !hc.closed() {
		t.Error("a large unread body left the connection open")
	}
}

func TestH1ExpectContinue(t *testing.T) {
	leakCheck(t)
	addr, _, _ := startH1(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/refuse" {
			http.Error(w, "no", http.StatusForbidden)
			return
		}
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	}, 4096)
	hc := dialH1(t, addr)
	hc.send("PUT /take HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
	line, _ := hc.br.ReadString('\n')
	blank, _ := hc.br.ReadString('\n')
	if line != "HTTP/1.1 100 Continue\r\n" || blank != "\r\n" {
		t.Fatalf("got %q %q, want 100 Continue", line, blank)
	}
	hc.send("data")
	if _, body := hc.response("PUT"); body != "data" {
		t.Errorf("after 100 Continue: %q", body)
	}
	// Refused without reading: no 100, and the connection ends, since the
	// client may or may not send the body.
	hc.send("PUT /refuse HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n")
	if resp, _ := hc.response("PUT"); resp.StatusCode != 403 || !hc.closed() {
		t.Errorf("refused: %d, want 403 and the connection closed", resp.StatusCode)
	}
}

// TestH1FullDuplex: the body is read in another goroutine while the
// response is written, as the backend's body writer does, with and
// without 100-continue (run it with -race).
func TestH1FullDuplex(t *testing.T) {
	leakCheck(t)
	addr, _, _ := startH1(t, func(w http.ResponseWriter, r *http.Request) {
		got := make(chan int, 1)
		go func() { // ends at the end of the body
			n, _ := io.Copy(io.Discard, r.Body)
			got <- int(n)
		}()
		w.Header().Set("X-Early", "yes")
		w.(http.Flusher).Flush()
		fmt.Fprintf(w, "%d", <-got)
	}, 4096)
	for _, expect := range []string{"", "Expect: 100-continue\r\n"} {
		hc := dialH1(t, addr)
		hc.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n" + expect + "\r\n")
		resp, err := http.ReadResponse(hc.br, nil)
		for err == nil && resp.StatusCode == http.StatusContinue {
			resp, err = http.ReadResponse(hc.br, nil)
		}
		if err != nil || resp.Header.Get("X-Early") != "yes" {
			t.Fatalf("%q: %v %v", expect, err, resp)
		}
		hc.send("hello")
		b, _ := io.ReadAll(resp.Body)
		if string(b) != "5" {
			t.Errorf("%q: %q", expect, b)
		}
	}
}

func TestH1Refusals(t *testing.T) {
	leakCheck(t)
	var handled atomic.Int32
	addr, _, _ := startH1(t, func(w http.ResponseWriter, r *http.Request) { handled.Add(1) }, 1024)
	for _, tt := range []struct {
		name, req string
		status    int
	}{
		{"no Host in HTTP/1.1", "GET / HTTP/1.1\r\n\r\n", 400},
		{"control byte in a value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n", 400},
		{"bad Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
		{"space before the colon", "GET / HTTP/1.1\r\nHost: x\r\nX-A : b\r\n\r\n", 400},
		{"garbage request line", "HELLO\r\n\r\n", 400},
		{"bad Content-Length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400},
		{"two Content-Lengths", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400},
		{"unknown Expect", "GET / HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\n\r\n", 417},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505},
		{"unknown transfer coding", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
		{"header over the limit", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 8<<10) + "\r\n\r\n", 431},
		{"too many fields", "GET / HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("A:\r\n", maxHeaderFields) + "\r\n", 431},
		{"Content-Length and chunked", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"chunked in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400},
		{"chunked, identity", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 501},
		{"folded line", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400},
		{"bare CR", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", 400},
		{"HTTP/0.9", "GET / HTTP/0.9\r\n\r\n", 505},
	} {
		t.Run(tt.name, func(t *testing.T) {
			hc := dialH1(t, addr)
			hc.send(tt.req)
			resp, _ := hc.response("GET")
			if resp.StatusCode != tt.status || !resp.Close || !hc.closed() {
				t.Errorf("%d close %v, want %d and the connection closed", resp.StatusCode, resp.Close, tt.status)
			}
		})
	}
	if n := handled.Load(); n != 0 {
		t.Errorf("%d refused requests reached the handler", n)
	}
}

// TestH1ClientGone: a request that runs long is watched, and the client
// closing its connection cancels it; a request that is answered after the
// watch has begun leaves the connection usable, pipelined bytes included.
func TestH1ClientGone(t *testing.T) {
	leakCheck(t)
	canceled := make(chan struct{})
	addr, _, _ := startH1(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/wait":
			select {
			case <-r.Context().Done():
				close(canceled)
			case <-time.After(safety):
			}
		case "/slow":
			time.Sleep(3 * watchAfter)
			io.WriteString(w, "slow")
		default:
			io.WriteString(w, "quick")
		}
	}, 4096)

	hc := dialH1(t, addr)
	hc.send("GET /wait HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(watchAfter / 2) // the request has begun, the watch not yet
	hc.c.Close()
	select {
	case <-canceled:
	case <-time.After(safety):
		t.Fatal("the request was not cancelled when its client left")
	}

	hc = dialH1(t, addr)
	hc.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	time.Sleep(2 * watchAfter) // the watch is reading
	hc.send("GET /quick HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, body := hc.response("GET"); body != "slow" {
		t.Errorf("slow: %q", body)
	}
	if _, body := hc.response("GET"); body != "quick" {
		t.Errorf("pipelined during the watch: %q", body)
	}
	hc.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	if _, body := hc.response("GET"); body != "slow" {
		t.Errorf("after a watch that was stopped: %q", body)
	}
}

func TestH1ResponseRules(t *testing.T) {
	leakCheck(t)
	var writeErr atomic.Value
	addr, _, logs := startH1(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/reason":
			w.(*h1Response).setReason("Partly Done")
			w.WriteHeader(299)
			io.WriteString(w, "ok")
		case "/nocontent":
			w.Header().Set("Content-Length", "3")
			w.WriteHeader(http.StatusNoContent)
			if _, err := io.WriteString(w, "abc"); !errors.Is(err, http.ErrBodyNotAllowed) {
				t.Errorf("body on 204: %v", err)
			}
		case "/over":
			w.Header().Set("Content-Length", "2")
			_, err := io.WriteString(w, "abc")
			writeErr.Store(fmt.Sprint(err))
		case "/short":
			w.Header().Set("Content-Length", "10")
			io.WriteString(w, "abc")
		case "/newline":
			w.Header()["X-A"] = []string{"a\r\nX-Injected: b"}
		case "/abort":
			io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		case "/panic":
			panic("boom")
		}
	}, 4096)

	hc := dialH1(t, addr)
	hc.send("GET /reason HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, body := hc.response("GET"); resp.Status != "299 Partly Done" || body != "ok" || resp.Close {
		t.Errorf("reason: %q %q close %v", resp.Status, body, resp.Close)
	}
	hc.send("GET /nocontent HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, _ := hc.response("GET"); resp.StatusCode != 204 || resp.Header.Get("Content-Length") != "" {
		t.Errorf("204: %d %v", resp.StatusCode, resp.Header)
	}
	hc.send("GET /newline HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, _ := hc.response("GET"); resp.Header.Get("X-Injected") != "" || resp.Header.Get("Content-Length") != "0" {
		t.Errorf("a newline in a value: %v", resp.Header)
	}

	hc.send("GET /short HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(hc.br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(resp.Body); err != io.ErrUnexpectedEOF {
		t.Errorf("short of Content-Length: %v, want the connection cut", err)
	}

	for _, path := range []string{"/over", "/abort", "/panic"} {
		hc = dialH1(t, addr)
		hc.send("GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n")
		resp, err := http.ReadResponse(hc.br, nil)
		if err == nil {
			_, err = io.ReadAll(resp.Body)
		}
		if err == nil {
			t.Errorf("%s: a whole response", path)
		}
	}
	if writeErr.Load() != http.ErrContentLength.Error() {
		t.Errorf("writing over Content-Length: %v", writeErr.Load())
	}
	waitFor(t, "the panic logged", func() bool { return len(logs.find("panic serving a request")) == 1 })
}

func TestH1Shutdown(t *testing.T) {
	leakCheck(t)
	rel := newRelease(t)
	started := make(chan struct{})
	addr, s, _ := startH1(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			<-rel.ch
		}
		io.WriteString(w, "done")
	}, 4096)
	idle := dialH1(t, addr)
	idle.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	idle.response("GET")
	busy := dialH1(t, addr)
	busy.send("GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	<-started
	s.startShutdown()
	if !idle.closed() {
		t.Error("idle connection kept open by Shutdown")
	}
	rel.open()
	if resp, body := busy.response("GET"); body != "done" || !resp.Close || !busy.closed() {
		t.Errorf("request in flight: %q close %v, want it answered, then the connection closed", body, resp.Close)
	}
}

// waitFor polls cond until it holds, or fails the test after safety.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(safety)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// FuzzH1 feeds arbitrary bytes to a connection of the HTTP/1.x server: it
// must answer or close, never panic or hang.
func FuzzH1(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
		"PUT / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nz",
		"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"\r\n\r\n\x00\xff",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		client, server := net.Pipe()
		defer client.Close()
		s := &h1Server{
			handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n, _ := io.Copy(io.Discard, r.Body)
				fmt.Fprintf(w, "%s %d", r.Method, n)
			}),
			log:               slog.New(slog.DiscardHandler),
			base:              context.Background(),
			readHeaderTimeout: time.Second,
			idleTimeout:       time.Second,
			maxHeaderBytes:    1024,
		}
		c := s.newConn(server)
		done := make(chan struct{})
		go func() { c.serve(); close(done) }()             // ends when the connection does
		go func() { io.Copy(io.Discard, client) }()        // ends when client is closed
		go func() { client.Write(data); client.Close() }() // ends once the server has read it all, or closed
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("the connection did not end for %q", data)
		}
	})
}

// recordConn is a net.Conn that records each Write.
type recordConn struct {
	net.Conn
	writes []string
}

func (r *recordConn) Write(p []byte) (int, error) {
	r.writes = append(r.writes, string(p))
	return len(p), nil
}

// TestOutBuf: small writes go out together at Flush; a large one goes out
// after what is buffered, in order; bytes are never reordered or lost.
func TestOutBuf(t *testing.T) {
	rc := &recordConn{}
	o := &outBuf{nc: rc, buf: make([]byte, 0, 16)}
	o.WriteString("head ")
	o.WriteByte('|')
	o.Write([]byte("x"))
	if len(rc.writes) != 0 {
		t.Fatalf("wrote before Flush: %q", rc.writes)
	}
	o.Flush()
	big := strings.Repeat("b", 40)
	o.WriteString("hdr")
	o.Write([]byte(big))
	o.WriteString("tail")
	o.Flush()
	got := strings.Join(rc.writes, "")
	if want := "head |x" + "hdr" + big + "tail"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if rc.writes[0] != "head |x" {
		t.Errorf("small writes not sent together: %q", rc.writes)
	}
}
