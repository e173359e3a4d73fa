package fastcgi

import (
	"bytes"
	"context"
	"crypto/md5"
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
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
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
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
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
		"params before begin": recID(typeParams, 1, nil),
		"stdin before params": append(append([]byte{}, begin...), recID(typeStdin, 1, []byte("x"))...),
		"double begin":        append(append([]byte{}, begin...), begin...),
		"short begin":         recID(typeBeginRequest, 1, []byte{0, 1}),
		"bad params":          append(append([]byte{}, begin...), append(recID(typeParams, 1, []byte{0x80, 0, 0, 9, 1}), recID(typeParams, 1, nil)...)...),
		"stdout from client":  append(append([]byte{}, begin...), recID(typeStdout, 1, []byte("x"))...),
		"cut mid-record":      append(append([]byte{}, begin...), 1, 4, 0, 1, 0, 50, 0, 0, 'a'),
		"cut mid-request":     begin,
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
