package fastcgi

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// FuzzRecordReader: any byte stream yields records or an error, never a
// panic, and every record's content fits its header.
func FuzzRecordReader(f *testing.F) {
	f.Add(append(stdout("hello"), end()...))
	f.Add([]byte{1, 6, 0, 1, 0xff, 0xff, 0xff, 0})
	f.Add([]byte{2, 6, 0, 1, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		rr := &recordReader{r: bytes.NewReader(b)}
		for i := 0; i < 1000; i++ {
			rec, err := rr.next()
			if err != nil {
				return
			}
			if len(rec.Content) != int(rec.h.ContentLength) {
				t.Fatalf("content %d bytes, header says %d", len(rec.Content), rec.h.ContentLength)
			}
		}
	})
}

// FuzzParams: decoding never panics, and whatever decodes re-encodes to a
// stream that decodes to the same pairs.
func FuzzParams(f *testing.F) {
	f.Add(EncodeParams([]Param{{"SCRIPT_FILENAME", "/srv/index.php"}, {"QUERY_STRING", ""}}))
	f.Add([]byte{0x80, 0, 1, 0, 0})
	f.Add(append([]byte{1, 0x80, 0, 0, 200, 'K'}, bytes.Repeat([]byte{'v'}, 200)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		ps, err := DecodeParams(b)
		if err != nil {
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("error %v does not wrap ErrProtocol", err)
			}
			return
		}
		again, err := DecodeParams(EncodeParams(ps))
		if err != nil || len(again) != len(ps) {
			t.Fatalf("round trip: %d pairs, %v; want %d", len(again), err, len(ps))
		}
		for i := range ps {
			if ps[i] != again[i] {
				t.Fatalf("pair %d: %+v became %+v", i, ps[i], again[i])
			}
		}
	})
}

// pipeConn is a net.Conn that reads a fixed answer and discards writes.
type pipeConn struct {
	io.Reader
	net.Conn // nil; only the methods below are used
}

func (pipeConn) Write(b []byte) (int, error)      { return len(b), nil }
func (pipeConn) Close() error                     { return nil }
func (pipeConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (pipeConn) SetReadDeadline(time.Time) error  { return nil }
func (pipeConn) SetWriteDeadline(time.Time) error { return nil }
func (c pipeConn) Read(b []byte) (int, error)     { return c.Reader.Read(b) }

// FuzzStream: a response stream split into STDOUT records at the fuzzer's
// chosen sizes, with STDERR between them, reads back as the same bytes;
// arbitrary answer bytes end in an error or EOF, never a panic or a hang.
func FuzzStream(f *testing.F) {
	f.Add([]byte("Status: 200\r\n\r\nhello"), uint16(3), []byte{})
	f.Add(bytes.Repeat([]byte{'x'}, 70000), uint16(65535), append(stdout("x"), 1, 3))
	f.Fuzz(func(t *testing.T, payload []byte, split uint16, garbage []byte) {
		if split == 0 {
			split = 1
		}
		var stream []byte
		for rest := payload; len(rest) > 0; {
			n := min(len(rest), int(split))
			stream = append(stream, stdout(string(rest[:n]))...)
			stream = append(stream, rec(typeStderr, []byte("warn"))...)
			rest = rest[n:]
		}
		stream = append(stream, end()...)
		got, err := readAnswer(stream)
		if err != nil || !bytes.Equal(got, payload) {
			t.Fatalf("round trip of %d bytes split at %d: got %d bytes, %v", len(payload), split, len(got), err)
		}
		readAnswer(garbage) // must only return
	})
}

func readAnswer(stream []byte) ([]byte, error) {
	c := NewConn(pipeConn{Reader: bytes.NewReader(stream)}, false)
	resp, err := c.Do(context.Background(), &Request{})
	if err != nil {
		return nil, err
	}
	defer resp.Close()
	return io.ReadAll(resp)
}

// FuzzServeConn: whatever a client sends, ServeConn returns once the input
// has ended, every handler it started has returned, and nothing panics: a
// malformed stream closes the connection with an error, a request whose
// input was cut short sees its STDIN end. The client's side is a fixed
// byte stream and then EOF; what the server writes is dropped.
func FuzzServeConn(f *testing.F) {
	req := func(id uint16, flags uint8, params []Param, stdin string) []byte {
		var b []byte
		b = appendRecordID(b, typeBeginRequest, id, beginRequestBody(roleResponder, flags))
		b = appendRecordID(b, typeParams, id, EncodeParams(params))
		b = appendRecordID(b, typeParams, id, nil)
		if stdin != "" {
			b = appendRecordID(b, typeStdin, id, []byte(stdin))
		}
		return appendRecordID(b, typeStdin, id, nil)
	}
	ps := []Param{{"SCRIPT_FILENAME", "/srv/index.php"}, {"CONTENT_LENGTH", "5"}}
	f.Add(req(1, flagKeepConn, ps, "hello"))
	f.Add(append(req(1, flagKeepConn, ps, "a"), req(2, 0, ps, "b")...))
	f.Add(append(req(1, flagKeepConn, ps, ""), appendRecordID(nil, typeAbortRequest, 1, nil)...))
	f.Add(appendRecordID(nil, typeGetValues, 0, EncodeParams([]Param{{"FCGI_MAX_CONNS", ""}, {"FCGI_MPXS_CONNS", ""}})))
	f.Add(appendRecordID(nil, typeStdin, 7, []byte("stdin before begin")))
	f.Add([]byte{1, 1, 0, 1, 0, 8, 0, 0, 0, 1, 1}) // cut inside BEGIN_REQUEST
	f.Fuzz(func(t *testing.T, in []byte) {
		var started, ended atomic.Int32
		srv := NewServer(ServerConfig{MaxParamsBytes: 4 << 10}, HandlerFunc(func(w *ResponseWriter, r *ServerRequest) int {
			started.Add(1)
			defer ended.Add(1)
			body, _ := io.ReadAll(io.LimitReader(r.Stdin, 64<<10))
			w.Stderr([]byte("a line for the log"))
			w.Write([]byte(r.Param("SCRIPT_FILENAME")))
			w.Write(body)
			return len(body)
		}))
		done := make(chan error, 1)
		go func() { done <- srv.ServeConn(context.Background(), pipeConn{Reader: bytes.NewReader(in)}) }()
		select {
		case err := <-done:
			if err != nil && !errors.Is(err, ErrProtocol) {
				t.Fatalf("ServeConn: %v, want nil or ErrProtocol", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("ServeConn still running 10s after its input ended")
		}
		if s, e := started.Load(), ended.Load(); s != e {
			t.Fatalf("%d handlers started, %d returned when ServeConn did", s, e)
		}
	})
}
