package fastcgi

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// serve runs s on a loopback listener until the test ends and returns the
// address and a channel of ServeConn results.
// dialServer connects to a server from serve, with a deadline of 5 s for
// every read and write, and closes the connection when the test ends.
func dialServer(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(5 * time.Second))
	return c
}

func serve(t *testing.T, s *Server) (string, <-chan error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	errs := make(chan error, 100)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // stops when the listener is closed
		defer wg.Done()
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); errs <- s.ServeConn(ctx, nc) }()
		}
	}()
	t.Cleanup(func() { cancel(); ln.Close(); wg.Wait() })
	return ln.Addr().String(), errs
}

var echo = HandlerFunc(func(w *ResponseWriter, r *ServerRequest) int {
	h := md5.New()
	n, _ := io.Copy(h, r.Stdin)
	w.Stderr([]byte("note"))
	fmt.Fprintf(w, "uri=%s md5=%x n=%d", r.Param("REQUEST_URI"), h.Sum(nil), n)
	return 3
})

// TestServerRoundTrip drives the server with this package's own client,
// over pooled keep-alive connections.
func TestServerRoundTrip(t *testing.T) {
	addr, _ := serve(t, NewServer(ServerConfig{}, echo))
	p := NewPool(PoolConfig{Addr: addr})
	defer p.Close()
	body := bytes.Repeat([]byte("0123456789"), 100000)
	for i := 0; i < 5; i++ {
		var stderr []string
		resp, err := p.Do(context.Background(), &Request{
			Params: []Param{{"REQUEST_URI", "/x"}},
			Body:   bytes.NewReader(body),
			Stderr: func(b []byte) { stderr = append(stderr, string(b)) },
		})
		if err != nil {
			t.Fatal(err)
		}
		out, err := io.ReadAll(resp)
		resp.Close()
		want := fmt.Sprintf("uri=/x md5=%x n=%d", md5.Sum(body), len(body))
		if err != nil || string(out) != want || resp.AppStatus() != 3 || len(stderr) != 1 {
			t.Fatalf("got %q (%v), status %d, stderr %q", out, err, resp.AppStatus(), stderr)
		}
	}
	if s := p.Stats(); s.Open != 1 {
		t.Fatalf("keep-alive not kept: %+v", s)
	}
}

// exchange writes raw records to the server and reads until it has seen
// want bytes or the connection closes.
func exchange(t *testing.T, addr string, in []byte) []byte {
	t.Helper()
	c := dialServer(t, addr)
	c.Write(in)
	c.(*net.TCPConn).CloseWrite()
	out, _ := io.ReadAll(c)
	return out
}

func recID(t recType, id uint16, c []byte) []byte { return appendRecordID(nil, t, id, c) }

func TestServerManagementRecords(t *testing.T) {
	addr, _ := serve(t, NewServer(ServerConfig{MaxConns: 7, MaxReqs: 9}, echo))
	t.Run("GET_VALUES", func(t *testing.T) {
		q := EncodeParams([]Param{{"FCGI_MAX_CONNS", ""}, {"FCGI_MPXS_CONNS", ""}, {"UNKNOWN", ""}})
		out := exchange(t, addr, recID(typeGetValues, 0, q))
		want := recID(typeGetValuesResult, 0, EncodeParams([]Param{{"FCGI_MAX_CONNS", "7"}, {"FCGI_MPXS_CONNS", "1"}}))
		if !bytes.Equal(out, want) {
			t.Fatalf("answer %x, want %x", out, want)
		}
	})
	t.Run("unknown type", func(t *testing.T) {
		out := exchange(t, addr, recID(42, 0, nil))
		want := []byte{1, byte(typeUnknownType), 0, 0, 0, 8, 0, 0, 42, 0, 0, 0, 0, 0, 0, 0}
		if !bytes.Equal(out, want) {
			t.Fatalf("answer %x, want %x", out, want)
		}
	})
}

// TestServerMultiplex: two requests interleaved on one connection are both
// answered, each under its own id.
func TestServerMultiplex(t *testing.T) {
	addr, _ := serve(t, NewServer(ServerConfig{}, echo))
	var in []byte
	for _, id := range []uint16{1, 2} {
		in = append(in, recID(typeBeginRequest, id, beginRequestBody(roleResponder, flagKeepConn))...)
	}
	for _, id := range []uint16{2, 1} {
		in = append(in, recID(typeParams, id, EncodeParams([]Param{{"REQUEST_URI", fmt.Sprint("/", id)}}))...)
		in = append(in, recID(typeParams, id, nil)...)
	}
	for _, id := range []uint16{1, 2} {
		in = append(in, recID(typeStdin, id, []byte("body"))...)
		in = append(in, recID(typeStdin, id, nil)...)
	}
	out := exchange(t, addr, in)
	rr := &recordReader{r: bytes.NewReader(out)}
	stdout := map[uint16]string{}
	ended := map[uint16]bool{}
	for {
		rec, err := rr.next()
		if err != nil {
			break
		}
		switch rec.h.Type {
		case typeStdout:
			stdout[rec.h.ID] += string(rec.Content)
		case typeEndRequest:
			ended[rec.h.ID] = true
		}
	}
	for _, id := range []uint16{1, 2} {
		if !ended[id] || !strings.HasPrefix(stdout[id], fmt.Sprintf("uri=/%d md5=%x n=4", id, md5.Sum([]byte("body")))) {
			t.Errorf("request %d: ended %v, stdout %q", id, ended[id], stdout[id])
		}
	}
}

// TestServerAbort: FCGI_ABORT_REQUEST cancels the handler's context.
func TestServerAbort(t *testing.T) {
	started := make(chan struct{})
	cancelled := make(chan struct{})
	h := HandlerFunc(func(w *ResponseWriter, r *ServerRequest) int {
		close(started)
		<-r.Context().Done()
		close(cancelled)
		return 1
	})
	addr, _ := serve(t, NewServer(ServerConfig{}, h))
	c := dialServer(t, addr)
	var in []byte
	in = append(in, recID(typeBeginRequest, 5, beginRequestBody(roleResponder, 0))...)
	in = append(in, recID(typeParams, 5, nil)...)
	c.Write(in)
	<-started
	c.Write(recID(typeAbortRequest, 5, nil))
	select {
	case <-cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("ABORT_REQUEST did not cancel the handler")
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	out, _ := io.ReadAll(c)
	if want := recID(typeEndRequest, 5, endRequestBody(1, statusRequestComplete)); !bytes.Equal(out, want) {
		t.Fatalf("answer %x, want %x", out, want)
	}
}

// TestServerGarbage: each broken stream ends its connection with an error
// and leaves no goroutine behind (goleak checks at exit).
func TestServerGarbage(t *testing.T) {
	begin := recID(typeBeginRequest, 1, beginRequestBody(roleResponder, 0))
	tests := map[string][]byte{
		"bad version":         {7, 1, 0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0},
		"stdin before params": append(append([]byte{}, begin...), recID(typeStdin, 1, []byte("x"))...),
		"double begin":        append(append([]byte{}, begin...), begin...),
		"short begin":         recID(typeBeginRequest, 1, []byte{0, 1}),
		"bad params":          append(append([]byte{}, begin...), append(recID(typeParams, 1, []byte{0x80, 0, 0, 9, 1}), recID(typeParams, 1, nil)...)...),
		"stdout from client":  append(append([]byte{}, begin...), recID(typeStdout, 1, []byte("x"))...),
		"cut mid-record":      append(append([]byte{}, begin...), 1, 4, 0, 1, 0, 50, 0, 0, 'a'),
		"cut mid-request":     begin,
		"cut before stdin":    append(append([]byte{}, begin...), recID(typeParams, 1, nil)...),
		"garbage in stdin":    append(append(append([]byte{}, begin...), recID(typeParams, 1, nil)...), 9, 9, 9, 9, 9, 9, 9, 9),
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			addr, errs := serve(t, NewServer(ServerConfig{}, echo))
			exchange(t, addr, in)
			if err := <-errs; !errors.Is(err, ErrProtocol) {
				t.Fatalf("ServeConn = %v, want ErrProtocol", err)
			}
		})
	}
}

// TestServerUnknownRole: a role other than responder is refused with
// FCGI_UNKNOWN_ROLE.
func TestServerUnknownRole(t *testing.T) {
	addr, _ := serve(t, NewServer(ServerConfig{}, echo))
	out := exchange(t, addr, recID(typeBeginRequest, 3, beginRequestBody(roleAuthorizer, 0)))
	if want := recID(typeEndRequest, 3, endRequestBody(0, statusUnknownRole)); !bytes.Equal(out, want) {
		t.Fatalf("answer %x, want %x", out, want)
	}
}

// TestServerDrain: Drain closes an idle connection at once, and a busy one
// after the END_REQUEST of its last request, although the client asked to
// keep it; both ServeConns return nil.
func TestServerDrain(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	h := HandlerFunc(func(w *ResponseWriter, r *ServerRequest) int {
		close(started)
		<-release
		io.WriteString(w, "done")
		return 0
	})
	s := NewServer(ServerConfig{}, h)
	addr, errs := serve(t, s)
	idle := dialServer(t, addr)
	busy := dialServer(t, addr)
	var in []byte
	in = append(in, recID(typeBeginRequest, 1, beginRequestBody(roleResponder, flagKeepConn))...)
	in = append(in, recID(typeParams, 1, nil)...)
	in = append(in, recID(typeStdin, 1, nil)...)
	busy.Write(in)
	<-started
	// The idle connection is being served too before Drain.
	idle.Write(recID(typeGetValues, 0, nil))
	idle.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(idle, make([]byte, headerLen)); err != nil {
		t.Fatal(err)
	}

	s.Drain()
	if out, err := io.ReadAll(idle); len(out) != 0 || err != nil {
		t.Fatalf("idle connection: %q, %v; want it closed", out, err)
	}
	close(release)
	busy.SetDeadline(time.Now().Add(5 * time.Second))
	out, err := io.ReadAll(busy)
	want := append(recID(typeStdout, 1, []byte("done")), recID(typeEndRequest, 1, endRequestBody(0, statusRequestComplete))...)
	if err != nil || !bytes.Equal(out, want) {
		t.Fatalf("busy connection: %x, %v; want %x, then the close", out, err, want)
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("ServeConn = %v, want nil", err)
		}
	}
}

// TestServerWriterAbort: Abort closes the connection without END_REQUEST.
func TestServerWriterAbort(t *testing.T) {
	h := HandlerFunc(func(w *ResponseWriter, r *ServerRequest) int {
		io.WriteString(w, "partial")
		w.Flush()
		io.WriteString(w, "dropped")
		w.Abort()
		return 0
	})
	addr, _ := serve(t, NewServer(ServerConfig{}, h))
	var in []byte
	in = append(in, recID(typeBeginRequest, 1, beginRequestBody(roleResponder, flagKeepConn))...)
	in = append(in, recID(typeParams, 1, nil)...)
	in = append(in, recID(typeStdin, 1, nil)...)
	if out := exchange(t, addr, in); !bytes.Equal(out, recID(typeStdout, 1, []byte("partial"))) {
		t.Fatalf("answer %x, want the partial STDOUT and nothing else", out)
	}
}

// TestServerIdleTimeout: a keep-alive connection on which nothing comes is
// closed cleanly after IdleTimeout; a client that stops inside a record is
// a protocol error after ReadTimeout.
func TestServerIdleTimeout(t *testing.T) {
	s := NewServer(ServerConfig{IdleTimeout: 50 * time.Millisecond, ReadTimeout: 50 * time.Millisecond}, echo)
	addr, errs := serve(t, s)
	dialServer(t, addr) // stays idle
	if err := <-errs; err != nil {
		t.Errorf("idle: ServeConn = %v, want nil", err)
	}
	c2 := dialServer(t, addr)
	c2.Write([]byte{1, byte(typeBeginRequest), 0, 1, 0, 8, 0, 0, 0})
	if err := <-errs; !errors.Is(err, ErrProtocol) {
		t.Errorf("stalled mid-record: ServeConn = %v, want ErrProtocol", err)
	}
}

// TestServerIgnoresInactive: records for a request id that is not active
// are ignored (FastCGI 1.0, 3.3), such as the end of a STDIN that comes
// after the END_REQUEST of an answer that did not wait for it.
func TestServerIgnoresInactive(t *testing.T) {
	early := HandlerFunc(func(w *ResponseWriter, r *ServerRequest) int {
		io.WriteString(w, "early")
		return 0
	})
	addr, errs := serve(t, NewServer(ServerConfig{}, early))
	c := dialServer(t, addr)
	var in []byte
	in = append(in, recID(typeParams, 9, []byte("junk"))...) // never begun
	in = append(in, recID(typeStdin, 9, nil)...)
	in = append(in, recID(typeBeginRequest, 1, beginRequestBody(roleResponder, 0))...)
	in = append(in, recID(typeParams, 1, nil)...)
	c.Write(in)
	want := append(recID(typeStdout, 1, []byte("early")), recID(typeEndRequest, 1, endRequestBody(0, statusRequestComplete))...)
	got := make([]byte, len(want))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("answer %x, %v; want %x", got, err, want)
	}
	// The client sends its STDIN after the answer, then closes: the
	// server has read it (no reset) and ends the connection cleanly.
	c.Write(append(recID(typeStdin, 1, []byte("late")), recID(typeStdin, 1, nil)...))
	closeClean(t, c, errs)
}

// TestServerSlowHandler: the read and idle timeouts bound the client's
// sending, never a handler's work: a keep-alive connection whose request
// takes longer than both is answered and carries the next request.
func TestServerSlowHandler(t *testing.T) {
	slow := HandlerFunc(func(w *ResponseWriter, r *ServerRequest) int {
		time.Sleep(200 * time.Millisecond) // the work of a slow script
		io.WriteString(w, "slow")
		return 0
	})
	addr, _ := serve(t, NewServer(ServerConfig{ReadTimeout: 50 * time.Millisecond, IdleTimeout: 50 * time.Millisecond}, slow))
	p := NewPool(PoolConfig{Addr: addr})
	defer p.Close()
	for i := range 2 {
		resp, err := p.Do(context.Background(), &Request{Params: []Param{{"REQUEST_URI", "/"}}})
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		out, err := io.ReadAll(resp)
		resp.Close()
		if err != nil || string(out) != "slow" {
			t.Fatalf("request %d: %q, %v", i, out, err)
		}
	}
	if s := p.Stats(); s.Open != 1 {
		t.Fatalf("the connection was not kept: %+v", s)
	}
}

// TestServerBufferedWrites: writes are buffered up to about 64 KiB and sent
// when the buffer is full, by Flush, and with END_REQUEST; the stream comes
// out whole and in order.
func TestServerBufferedWrites(t *testing.T) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 200000/16)
	h := HandlerFunc(func(w *ResponseWriter, r *ServerRequest) int {
		w.Write(big[:10])
		w.Stderr([]byte("warn"))
		w.Flush()
		w.Write(big[10:])
		return 5
	})
	addr, _ := serve(t, NewServer(ServerConfig{}, h))
	p := NewPool(PoolConfig{Addr: addr})
	defer p.Close()
	var stderr []byte
	resp, err := p.Do(context.Background(), &Request{Stderr: func(b []byte) { stderr = append(stderr, b...) }})
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(resp)
	resp.Close()
	if err != nil || !bytes.Equal(out, big) || string(stderr) != "warn" || resp.AppStatus() != 5 {
		t.Fatalf("%d bytes (equal: %v), %v, stderr %q, app status %d", len(out), bytes.Equal(out, big), err, stderr, resp.AppStatus())
	}
}

// wholeRequest is the records of a whole request as Apache sends a GET: BEGIN
// (keep the connection), params, their end, STDIN and its end, in one
// write; such a request runs on the reader's goroutine.
func wholeRequest(id uint16, uri string, stdin []byte) []byte {
	var in []byte
	in = append(in, recID(typeBeginRequest, id, beginRequestBody(roleResponder, flagKeepConn))...)
	in = append(in, recID(typeParams, id, EncodeParams([]Param{{"REQUEST_URI", uri}}))...)
	in = append(in, recID(typeParams, id, nil)...)
	if len(stdin) > 0 {
		in = append(in, recID(typeStdin, id, stdin)...)
	}
	return append(in, recID(typeStdin, id, nil)...)
}

// readServerAnswer reads records from br until the END_REQUEST of id, and
// returns its STDOUT and application status.
func readServerAnswer(t *testing.T, br io.Reader, id uint16) (string, int) {
	t.Helper()
	rr := &recordReader{r: br}
	var out []byte
	for {
		rec, err := rr.next()
		if err != nil {
			t.Fatalf("reading the answer to %d: %v", id, err)
		}
		if rec.h.ID != id {
			t.Fatalf("%s record for request %d, want %d", rec.h.Type, rec.h.ID, id)
		}
		switch rec.h.Type {
		case typeStdout:
			out = append(out, rec.Content...)
		case typeEndRequest:
			return string(out), int(binary.BigEndian.Uint32(rec.Content))
		}
	}
}

// TestServerInline: requests whose input arrives whole run on the reader's
// goroutine, one after another on a keep-alive connection, with their
// STDIN; a handler that runs past the grace period hands the reader role
// on, and the requests after it still run, quick or slow.
func TestServerInline(t *testing.T) {
	h := HandlerFunc(func(w *ResponseWriter, r *ServerRequest) int {
		if r.Param("REQUEST_URI") == "/slow" {
			time.Sleep(3 * inlineGrace / 2)
		}
		b, _ := io.ReadAll(r.Stdin)
		fmt.Fprintf(w, "%s %s", r.Param("REQUEST_URI"), b)
		return len(b)
	})
	addr, errs := serve(t, NewServer(ServerConfig{}, h))
	c := dialServer(t, addr)
	for i, uri := range []string{"/a", "/slow", "/b", "/slow", "/slow", "/c"} {
		body := bytes.Repeat([]byte{'x'}, i)
		c.Write(wholeRequest(1, uri, body))
		out, status := readServerAnswer(t, c, 1)
		if want := uri + " " + string(body); out != want || status != i {
			t.Fatalf("request %d: %q, status %d; want %q, %d", i, out, status, want, i)
		}
	}
	c.Close()
	if err := <-errs; err != nil {
		t.Errorf("ServeConn = %v, want nil", err)
	}
}

// TestServerInlineMovesOn: while a request runs on the reader's goroutine,
// after the grace period the connection is read again: GET_VALUES is
// answered, a second, multiplexed request runs beside the first, and
// ABORT_REQUEST cancels the first.
func TestServerInlineMovesOn(t *testing.T) {
	second := make(chan struct{})
	h := HandlerFunc(func(w *ResponseWriter, r *ServerRequest) int {
		if r.ID == 2 {
			close(second)
			io.WriteString(w, "second")
			return 2
		}
		<-second
		<-r.Context().Done() // the ABORT_REQUEST
		io.WriteString(w, "aborted")
		return 1
	})
	addr, errs := serve(t, NewServer(ServerConfig{}, h))
	c := dialServer(t, addr)
	c.Write(wholeRequest(1, "/first", nil))

	c.Write(recID(typeGetValues, 0, EncodeParams([]Param{{"FCGI_MPXS_CONNS", ""}})))
	rr := &recordReader{r: c}
	rec, err := rr.next()
	if err != nil || rec.h.Type != typeGetValuesResult {
		t.Fatalf("GET_VALUES answered with %v, %v", rec.h.Type, err)
	}
	c.Write(wholeRequest(2, "/second", nil))
	if out, status := readServerAnswer(t, c, 2); out != "second" || status != 2 {
		t.Fatalf("request 2: %q, status %d", out, status)
	}
	c.Write(recID(typeAbortRequest, 1, nil))
	if out, status := readServerAnswer(t, c, 1); out != "aborted" || status != 1 {
		t.Fatalf("request 1: %q, status %d", out, status)
	}
	closeClean(t, c, errs)
}

// closeClean ends the client's sending on c and checks that the server
// sends nothing more and closes the connection cleanly, with ServeConn
// (reporting on errs) returning nil.
func closeClean(t *testing.T, c net.Conn, errs <-chan error) {
	t.Helper()
	c.(*net.TCPConn).CloseWrite()
	if rest, err := io.ReadAll(c); len(rest) != 0 || err != nil {
		t.Fatalf("after the answers: %x, %v; want a clean close", rest, err)
	}
	if err := <-errs; err != nil {
		t.Errorf("ServeConn = %v, want nil", err)
	}
}

// TestServerInlineBroken: a connection that breaks while an inline request
// runs past the grace period cancels it, and ServeConn returns once it
// has ended.
func TestServerInlineBroken(t *testing.T) {
	done := make(chan struct{})
	h := HandlerFunc(func(w *ResponseWriter, r *ServerRequest) int {
		defer close(done)
		<-r.Context().Done()
		return 0
	})
	addr, errs := serve(t, NewServer(ServerConfig{}, h))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.Write(wholeRequest(1, "/", nil))
	c.Write([]byte{9, 9, 9, 9, 9, 9, 9, 9}) // a bad version, read once the reader has moved on
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the handler was not cancelled")
	}
	if err := <-errs; !errors.Is(err, ErrProtocol) {
		t.Errorf("ServeConn = %v, want ErrProtocol", err)
	}
	c.Close()
}

// TestServerSplitStdin: a request whose STDIN comes after its params, in
// writes of their own, runs at once and gets all of it, streamed, however
// it comes.
func TestServerSplitStdin(t *testing.T) {
	started := make(chan struct{}, 1)
	h := HandlerFunc(func(w *ResponseWriter, r *ServerRequest) int {
		started <- struct{}{}
		b, _ := io.ReadAll(r.Stdin)
		fmt.Fprintf(w, "%s %s", r.Param("REQUEST_URI"), b)
		return 0
	})
	addr, _ := serve(t, NewServer(ServerConfig{}, h))
	c := dialServer(t, addr)
	head := func(uri string) []byte {
		in := recID(typeBeginRequest, 1, beginRequestBody(roleResponder, flagKeepConn))
		in = append(in, recID(typeParams, 1, EncodeParams([]Param{{"REQUEST_URI", uri}}))...)
		return append(in, recID(typeParams, 1, nil)...)
	}

	// As Apache sends: the params, then the STDIN in writes of its own.
	c.Write(head("/split"))
	c.Write(recID(typeStdin, 1, []byte("ab")))
	c.Write(append(recID(typeStdin, 1, []byte("cd")), recID(typeStdin, 1, nil)...))
	if out, _ := readServerAnswer(t, c, 1); out != "/split abcd" {
		t.Fatalf("answer %q", out)
	}
	<-started

	// The STDIN comes only once the handler has started.
	c.Write(head("/streamed"))
	<-started
	c.Write(append(recID(typeStdin, 1, []byte("ef")), recID(typeStdin, 1, nil)...))
	if out, _ := readServerAnswer(t, c, 1); out != "/streamed ef" {
		t.Fatalf("answer %q", out)
	}

	// A STDIN larger than the read buffer.
	big := bytes.Repeat([]byte("z"), 3*maxContent)
	c.Write(head("/big"))
	for b := big; len(b) > 0; {
		n := min(len(b), maxContent)
		c.Write(recID(typeStdin, 1, b[:n]))
		b = b[n:]
	}
	c.Write(recID(typeStdin, 1, nil))
	if out, _ := readServerAnswer(t, c, 1); out != "/big "+string(big) {
		t.Fatalf("answer of %d bytes, want %d", len(out), len("/big ")+len(big))
	}
	<-started
}

// countingConn counts the writes to a net.Conn.
type countingConn struct {
	net.Conn
	mu     sync.Mutex
	writes int
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	c.writes++
	c.mu.Unlock()
	return c.Conn.Write(b)
}

// TestServerOneWrite: an answer of up to 128 KiB goes out with its
// END_REQUEST in one write.
func TestServerOneWrite(t *testing.T) {
	for _, size := range []int{5, 64 << 10, 120 << 10} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			body := bytes.Repeat([]byte("y"), size)
			s := NewServer(ServerConfig{}, HandlerFunc(func(w *ResponseWriter, r *ServerRequest) int {
				w.Write(body[:size/2])
				w.Write(body[size/2:])
				return 0
			}))
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			nc, err := ln.Accept()
			if err != nil {
				t.Fatal(err)
			}
			cc := &countingConn{Conn: nc}
			served := make(chan error, 1)
			go func() { served <- s.ServeConn(context.Background(), cc) }() // ends when c closes
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.Write(wholeRequest(1, "/", nil))
			if out, _ := readServerAnswer(t, c, 1); out != string(body) {
				t.Fatalf("answer of %d bytes, want %d", len(out), size)
			}
			c.Close()
			if err := <-served; err != nil {
				t.Fatal(err)
			}
			if cc.writes != 1 {
				t.Errorf("%d writes, want 1", cc.writes)
			}
		})
	}
}
