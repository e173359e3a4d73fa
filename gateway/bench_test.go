package gateway

import (
	"bufio"
	"context"
	"encoding/binary"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// fastFake answers every request on every connection with out, reading
// with one buffer, so that a benchmark counts the gateway's allocations.
func fastFake(b *testing.B, out []byte) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { // ends when ln is closed and its connections are
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { // ends when the gateway closes c
				defer c.Close()
				br := bufio.NewReaderSize(c, 64<<10)
				var h [8]byte
				for {
					if _, err := io.ReadFull(br, h[:]); err != nil {
						return
					}
					n := int(binary.BigEndian.Uint16(h[4:])) + int(h[6])
					if _, err := br.Discard(n); err != nil {
						return
					}
					if h[1] == recStdin && n == 0 {
						if _, err := c.Write(out); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	b.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// BenchmarkServeHTTP measures one GET through the whole handler, against a
// backend on loopback; allocations are the gateway's and the fastcgi
// client's. The sizes are those of `fcgilab bench`: a tiny answer, where
// per-request overhead shows, and 64 KiB, where copying does.
func BenchmarkServeHTTP(b *testing.B) {
	b.Run("tiny", func(b *testing.B) { benchmarkServeHTTP(b, len("<html>hello</html>")) })
	b.Run("64KiB", func(b *testing.B) { benchmarkServeHTTP(b, 64<<10) })
}

// benchCGIHeader is the CGI header of benchGateway's answers.
const benchCGIHeader = "Content-type: text/html; charset=UTF-8\r\nX-Powered-By: PHP/8.2\r\n\r\n"

// benchGateway returns a Gateway whose one backend, a fastFake, answers
// every request with a body of size bytes; it is closed at the end of b.
func benchGateway(b *testing.B, size int) *Gateway {
	out := append(stdout(benchCGIHeader+strings.Repeat("x", size)), endRequest(0)...)
	addr := fastFake(b, out)
	g, err := New(Config{Pools: []PoolConfig{testPool(addr)}}, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { g.Close() })
	return g
}

func benchmarkServeHTTP(b *testing.B, size int) {
	g := benchGateway(b, size)
	req := httptest.NewRequest("GET", "http://example.com/app.php/x?y=1", nil)
	req.Header.Set("Accept", "text/html")
	req.Header.Set("User-Agent", "Mozilla/5.0")
	req.Header.Set("Cookie", "session=abc")
	b.ReportAllocs()
	b.SetBytes(int64(size))
	for b.Loop() {
		w := httptest.NewRecorder()
		g.ServeHTTP(w, req)
		if w.Code != http.StatusOK || w.Body.Len() != size {
			b.Fatal(w.Code, w.Body.Len())
		}
	}
}

// BenchmarkServe measures one keep-alive GET through Serve's HTTP/1.1
// server and the handler, from a raw client over loopback: the figure to
// compare with BenchmarkServeHTTP is the allocations per request.
func BenchmarkServe(b *testing.B) {
	const size = len("<html>hello</html>")
	g := benchGateway(b, size)
	addr := benchServe(b, g.Serve)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	request := []byte("GET /app.php/x?y=1 HTTP/1.1\r\nHost: example.com\r\nAccept: text/html\r\nUser-Agent: Mozilla/5.0\r\nCookie: session=abc\r\n\r\n")
	treq := &http.Request{Method: "GET"}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(request); err != nil {
			b.Fatal(err)
		}
		resp, err := http.ReadResponse(br, treq)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || n != int64(size) {
			b.Fatal(resp.StatusCode, n)
		}
	}
}

// benchServe runs serve (g.Serve or g.ServeFastCGI) on a loopback listener
// until the benchmark ends, and returns the listener's address.
func benchServe(b *testing.B, serve func(context.Context, net.Listener, time.Duration) error) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- serve(ctx, ln, time.Second) }() // returns once cancelled
	b.Cleanup(func() { cancel(); <-served })
	return ln.Addr().String()
}
