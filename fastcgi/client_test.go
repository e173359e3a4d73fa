package fastcgi

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/fcgi"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// stdlibBackend serves h with the standard library's FastCGI server, a fine
// stand-in for FPM in unit tests.
func stdlibBackend(t *testing.T, h http.HandlerFunc) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { // stops when the listener is closed
		defer close(done)
		fcgi.Serve(ln, h)
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// fakeBackend accepts connections and hands each to serve, which scripts the
// bytes it sends. It is for answers no real backend would give.
func fakeBackend(t *testing.T, serve func(c net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Add(1)
	go func() { // stops when the listener is closed
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Add(1)
			go func() { defer wg.Done(); defer c.Close(); serve(c) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// readRequest reads one request's records up to the empty STDIN record and
// returns its params and body.
func readRequest(rr *recordReader) (params []Param, body []byte, keep bool, err error) {
	var pbuf []byte
	for {
		rec, err := rr.next()
		if err != nil {
			return nil, nil, false, err
		}
		switch rec.h.Type {
		case typeBeginRequest:
			keep = rec.Content[2]&flagKeepConn != 0
		case typeParams:
			pbuf = append(pbuf, rec.Content...)
		case typeStdin:
			if len(rec.Content) == 0 {
				params, err = DecodeParams(pbuf)
				return params, body, keep, err
			}
			body = append(body, rec.Content...)
		}
	}
}

func stdout(s string) []byte {
	var b bytes.Buffer
	writeRecord(&b, make([]byte, headerLen+maxContent+8), typeStdout, 1, []byte(s))
	return b.Bytes()
}

func rec(t recType, c []byte) []byte {
	var b bytes.Buffer
	writeRecord(&b, make([]byte, headerLen+maxContent+8), t, 1, c)
	return b.Bytes()
}

func end() []byte { return rec(typeEndRequest, endRequestBody(0, statusRequestComplete)) }

func get(t *testing.T, p *Pool, req *Request) (string, error) {
	t.Helper()
	resp, err := p.Do(context.Background(), req)
	if err != nil {
		return "", err
	}
	defer resp.Close()
	b, err := io.ReadAll(resp)
	return string(b), err
}

func TestClientAgainstStdlib(t *testing.T) {
	addr := stdlibBackend(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/env":
			env := fcgi.ProcessEnv(r)
			fmt.Fprintf(w, "method=%s query=%s x=%s", r.Method, r.URL.RawQuery, env["X_CUSTOM"])
		case "/md5":
			h := md5.New()
			n, _ := io.Copy(h, r.Body)
			fmt.Fprintf(w, "%s %d", hex.EncodeToString(h.Sum(nil)), n)
		case "/big":
			n, _ := strconv.Atoi(r.URL.Query().Get("n"))
			chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
			for n > 0 {
				k := min(n, len(chunk))
				w.Write(chunk[:k])
				n -= k
			}
		}
	})
	p := NewPool(PoolConfig{Addr: addr})
	defer p.Close()
	params := func(uri, method string, n int) []Param {
		return []Param{
			{"REQUEST_METHOD", method}, {"REQUEST_URI", uri}, {"SERVER_PROTOCOL", "HTTP/1.1"},
			{"CONTENT_LENGTH", strconv.Itoa(n)}, {"X_CUSTOM", strings.Repeat("c", 300)},
		}
	}

	t.Run("get", func(t *testing.T) {
		body, err := get(t, p, &Request{Params: params("/env?a=1", "GET", 0)})
		if err != nil {
			t.Fatal(err)
		}
		want := "method=GET query=a=1 x=" + strings.Repeat("c", 300)
		if !strings.HasSuffix(body, want) {
			t.Fatalf("body = %q, want suffix %q", body, want)
		}
	})
	t.Run("5MB body", func(t *testing.T) {
		data := bytes.Repeat([]byte("fcgigate"), 5<<20/8)
		sum := md5.Sum(data)
		body, err := get(t, p, &Request{Params: params("/md5", "POST", len(data)), Body: bytes.NewReader(data)})
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("%x %d", sum, len(data))
		if !strings.HasSuffix(body, want) {
			t.Fatalf("body = %q, want suffix %q", body, want)
		}
	})
	t.Run("20MB response", func(t *testing.T) {
		body, err := get(t, p, &Request{Params: params("/big?n=20971520", "GET", 0)})
		if err != nil {
			t.Fatal(err)
		}
		if i := strings.Index(body, "\r\n\r\n"); i < 0 || len(body)-i-4 != 20<<20 {
			t.Fatalf("got %d bytes", len(body))
		}
	})
	t.Run("keep-alive", func(t *testing.T) {
		for i := 0; i < 20; i++ {
			if _, err := get(t, p, &Request{Params: params("/env", "GET", 0)}); err != nil {
				t.Fatal(err)
			}
		}
		if s := p.Stats(); s.Open != 1 || s.Idle != 1 {
			t.Fatalf("stats after sequential requests = %+v, want one open idle connection", s)
		}
	})
}

func TestStderrAndStatus(t *testing.T) {
	addr := fakeBackend(t, func(c net.Conn) {
		rr := &recordReader{r: c}
		if _, _, _, err := readRequest(rr); err != nil {
			return
		}
		var out []byte
		out = append(out, rec(typeStderr, []byte("PHP Warning: x"))...)
		out = append(out, stdout("Status: 200\r\n\r\nok")...)
		out = append(out, rec(typeStdout, nil)...)
		out = append(out, rec(typeEndRequest, endRequestBody(7, statusRequestComplete))...)
		c.Write(out)
	})
	p := NewPool(PoolConfig{Addr: addr, MaxIdle: -1})
	defer p.Close()
	var stderr []string
	resp, err := p.Do(context.Background(), &Request{Stderr: func(b []byte) { stderr = append(stderr, string(b)) }})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp)
	resp.Close()
	if err != nil || string(b) != "Status: 200\r\n\r\nok" {
		t.Fatalf("body %q, err %v", b, err)
	}
	if resp.AppStatus() != 7 || len(stderr) != 1 || stderr[0] != "PHP Warning: x" {
		t.Fatalf("app status %d, stderr %q", resp.AppStatus(), stderr)
	}
}

// TestGarbage feeds each kind of broken answer: each must end in an error,
// never a panic or a hang, and the connection must not be reused.
func TestGarbage(t *testing.T) {
	tests := []struct {
		name   string
		answer []byte
		want   error
	}{
		{"wrong version", []byte{9, 6, 0, 1, 0, 2, 0, 0, 'h', 'i'}, ErrProtocol},
		{"truncated header", []byte{1, 6, 0}, ErrProtocol},
		{"truncated record", stdout("hello")[:10], ErrProtocol},
		{"absurd length", []byte{1, 6, 0, 1, 0xff, 0xff, 0, 0, 'x'}, ErrProtocol},
		{"no END_REQUEST", stdout("hello"), ErrProtocol},
		{"wrong request id", []byte{1, 6, 0, 9, 0, 0, 0, 0}, ErrProtocol},
		{"unexpected type", rec(typeGetValuesResult, nil), ErrProtocol},
		{"short END_REQUEST", rec(typeEndRequest, []byte{0, 0}), ErrProtocol},
		{"bad protocol status", rec(typeEndRequest, endRequestBody(0, 9)), ErrProtocol},
		{"overloaded", rec(typeEndRequest, endRequestBody(0, statusOverloaded)), ErrRequestRejected},
		{"nothing", nil, ErrProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := fakeBackend(t, func(c net.Conn) {
				if _, _, _, err := readRequest(&recordReader{r: c}); err != nil {
					return
				}
				c.Write(tt.answer)
			})
			p := NewPool(PoolConfig{Addr: addr})
			defer p.Close()
			_, err := get(t, p, &Request{ReadTimeout: 5 * time.Second})
			if !errors.Is(err, tt.want) {
				t.Fatalf("error = %v, want %v", err, tt.want)
			}
			if s := p.Stats(); s.Open != 0 {
				t.Fatalf("a connection that saw garbage stayed open: %+v", s)
			}
		})
	}
}

func TestReadTimeout(t *testing.T) {
	release := make(chan struct{})
	addr := fakeBackend(t, func(c net.Conn) {
		readRequest(&recordReader{r: c})
		c.Write(stdout("first"))
		<-release
	})
	defer close(release)
	p := NewPool(PoolConfig{Addr: addr})
	defer p.Close()
	_, err := get(t, p, &Request{ReadTimeout: 50 * time.Millisecond})
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("error = %v, want a timeout", err)
	}
}

func TestCancel(t *testing.T) {
	release := make(chan struct{})
	addr := fakeBackend(t, func(c net.Conn) {
		readRequest(&recordReader{r: c})
		<-release
	})
	defer close(release)
	p := NewPool(PoolConfig{Addr: addr})
	defer p.Close()
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := p.Do(ctx, &Request{}); errc <- err }()
	cancel()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v, want context.Canceled", err)
	}
}

func TestDialError(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	p := NewPool(PoolConfig{Addr: addr})
	defer p.Close()
	_, err := p.Do(context.Background(), &Request{})
	var de *DialError
	if !errors.As(err, &de) || de.Addr != addr {
		t.Fatalf("error = %v, want a *DialError for %s", err, addr)
	}
}

// TestStaleConn: a backend that closes each connection after one answer, as
// FPM does when a worker reaches pm.max_requests. Whether the pool's check
// before reuse sees the close or the request hits the closed socket, every
// request must succeed.
func TestStaleConn(t *testing.T) {
	answered := make(chan struct{}, 100)
	addr := fakeBackend(t, func(c net.Conn) {
		if _, _, _, err := readRequest(&recordReader{r: c}); err != nil {
			return
		}
		c.Write(append(stdout("\r\nok"), end()...))
		answered <- struct{}{}
	})
	p := NewPool(PoolConfig{Addr: addr})
	defer p.Close()
	for i := 0; i < 50; i++ {
		if body, err := get(t, p, &Request{}); err != nil || body != "\r\nok" {
			t.Fatalf("request %d: %q, %v", i, body, err)
		}
	}
}

// TestStaleConnRace: the check before reuse passes, but the backend closes
// the connection as the request arrives. Without a body, or with one small
// enough to keep, the pool sends it again on a new connection; with a large
// streamed body it reports ErrStaleConn so the caller may decide.
func TestStaleConnRace(t *testing.T) {
	addr := fakeBackend(t, func(c net.Conn) {
		rr := &recordReader{r: c}
		_, body, _, err := readRequest(rr)
		if err != nil {
			return
		}
		c.Write(append(stdout(fmt.Sprintf("\r\n%d", len(body))), end()...))
		readRequest(rr) // the second request arrives, and is dropped
	})
	p := NewPool(PoolConfig{Addr: addr})
	defer p.Close()
	for _, tt := range []struct {
		name string
		body io.Reader
		want string
		err  error
	}{
		{"no body", nil, "\r\n0", nil},
		{"small body", strings.NewReader("x=1"), "\r\n3", nil},
		{"64 KiB body", bytes.NewReader(make([]byte, replayLimit)), fmt.Sprint("\r\n", replayLimit), nil},
		{"large body", bytes.NewReader(make([]byte, replayLimit+1)), "", ErrStaleConn},
	} {
		t.Run(tt.name, func(t *testing.T) {
			get(t, p, &Request{}) // leaves an idle connection that drops the next request
			body, err := get(t, p, &Request{Body: tt.body})
			if !errors.Is(err, tt.err) || body != tt.want {
				t.Fatalf("got %q, %v; want %q, %v", body, err, tt.want, tt.err)
			}
		})
	}
}

// TestMaxConns: under the cap, requests wait for a connection instead of
// opening more; past MaxWait they get ErrPoolBusy; SetMaxConns lifts it.
func TestMaxConns(t *testing.T) {
	release := make(chan struct{})
	addr := fakeBackend(t, func(c net.Conn) {
		rr := &recordReader{r: c}
		for {
			if _, _, _, err := readRequest(rr); err != nil {
				return
			}
			<-release
			c.Write(append(stdout("\r\nok"), end()...))
		}
	})
	p := NewPool(PoolConfig{Addr: addr, MaxConns: 2, MaxWait: 50 * time.Millisecond})
	defer p.Close()
	errs := make(chan error, 3)
	for i := 0; i < 3; i++ {
		go func() { _, err := get(t, p, &Request{}); errs <- err }()
	}
	// Two hold the connections; the third waits, then gives up.
	if err := <-errs; !errors.Is(err, ErrPoolBusy) {
		t.Fatalf("third request: %v, want ErrPoolBusy", err)
	}
	if s := p.Stats(); s.Open != 2 {
		t.Fatalf("stats %+v, want 2 open", s)
	}
	// A waiter gets the connection the moment one is free.
	p2done := make(chan error, 1)
	go func() { _, err := get(t, p, &Request{}); p2done <- err }()
	for p.Stats().Waiting != 1 {
		time.Sleep(time.Millisecond)
	}
	release <- struct{}{}
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	release <- struct{}{}
	release <- struct{}{}
	for i := 0; i < 2; i++ {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatal(err)
			}
		case err := <-p2done:
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if s := p.Stats(); s.Open > 2 {
		t.Fatalf("stats %+v: more than MaxConns open", s)
	}
	p.SetMaxConns(0)
	if s := p.Stats(); s.Max != 0 {
		t.Fatalf("SetMaxConns(0): %+v", s)
	}
}

// TestEarlyAnswer: the backend answers without reading the body. Close must
// not hang, and the connection must not be reused.
func TestEarlyAnswer(t *testing.T) {
	addr := fakeBackend(t, func(c net.Conn) {
		var h [headerLen]byte
		io.ReadFull(c, h[:])
		c.Write(append(stdout("\r\nearly"), end()...))
		io.Copy(io.Discard, io.LimitReader(c, 1<<20))
	})
	p := NewPool(PoolConfig{Addr: addr})
	defer p.Close()
	big := bytes.NewReader(make([]byte, 64<<20))
	body, err := get(t, p, &Request{Body: big, WriteTimeout: 5 * time.Second})
	if err != nil || body != "\r\nearly" {
		t.Fatalf("body %q, err %v", body, err)
	}
	if s := p.Stats(); s.Open != 0 {
		t.Fatalf("connection kept after an answer that skipped the body: %+v", s)
	}
}

func TestIdleTimeout(t *testing.T) {
	addr := stdlibBackend(t, func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	now := time.Unix(1000, 0)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	p := NewPool(PoolConfig{Addr: addr, IdleTimeout: time.Minute, Now: clock})
	defer p.Close()
	params := []Param{{"REQUEST_METHOD", "GET"}, {"SERVER_PROTOCOL", "HTTP/1.1"}, {"REQUEST_URI", "/"}}
	if _, err := get(t, p, &Request{Params: params}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	if _, err := get(t, p, &Request{Params: params}); err != nil {
		t.Fatal(err)
	}
	if s := p.Stats(); s.Open != 1 {
		t.Fatalf("expired idle connection not closed: %+v", s)
	}
}

func TestMaxRequestsPerConn(t *testing.T) {
	addr := stdlibBackend(t, func(w http.ResponseWriter, r *http.Request) {})
	p := NewPool(PoolConfig{Addr: addr, MaxRequestsPerConn: 2})
	defer p.Close()
	params := []Param{{"REQUEST_METHOD", "GET"}, {"SERVER_PROTOCOL", "HTTP/1.1"}, {"REQUEST_URI", "/"}}
	for i := 1; i <= 6; i++ {
		if _, err := get(t, p, &Request{Params: params}); err != nil {
			t.Fatal(err)
		}
		if open, want := p.Stats().Open, i%2; open != want {
			t.Fatalf("after request %d: %d connections open, want %d", i, open, want)
		}
	}
}

// fpmLike serves like PHP-FPM: workers goroutines each accept a connection
// and serve its requests until the client closes it, so that a keep-alive
// connection holds its worker even while idle.
func fpmLike(t *testing.T, workers int) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() { // stops when the listener is closed
			defer wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				mu.Lock()
				conns = append(conns, c)
				mu.Unlock()
				rr := &recordReader{r: c}
				for {
					if _, _, _, err := readRequest(rr); err != nil {
						break
					}
					c.Write(append(stdout("\r\nok"), end()...))
				}
				c.Close()
			}
		}()
	}
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// TestMoreClientsThanWorkers: eight clients, two FPM-like workers and no
// MaxConns. Idle keep-alive connections must not hold the workers that new
// connections wait for: every request is answered.
func TestMoreClientsThanWorkers(t *testing.T) {
	addr := fpmLike(t, 2)
	p := NewPool(PoolConfig{Addr: addr})
	defer p.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 50; j++ {
				if _, err := get(t, p, &Request{ReadTimeout: 5 * time.Second}); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
