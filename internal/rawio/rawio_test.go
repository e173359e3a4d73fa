package rawio

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"syscall"
	"testing"
	"time"
)

// pair returns both ends of a loopback TCP connection, closed at the end of
// the test.
func pair(t *testing.T) (a, b *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			c = nil
		}
		acc <- c
	}()
	ac, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	bc := <-acc
	if bc == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { ac.Close(); bc.Close() })
	return ac.(*net.TCPConn), bc.(*net.TCPConn)
}

func mustNew(t *testing.T, nc net.Conn) *Conn {
	t.Helper()
	if !supported {
		t.Skip("no socket I/O on " + runtime.GOOS)
	}
	c := New(nc)
	if c == nil {
		t.Fatal("New returned nil for a TCP connection")
	}
	return c
}

func randomBytes(t *testing.T, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// readAll reads r until EOF in a goroutine, for a writer that needs its
// peer to read while it writes.
func readAll(r io.Reader) <-chan []byte {
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(r)
		got <- b
	}()
	return got
}

func TestNewNeedsASocket(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if New(a) != nil {
		t.Fatal("New(net.Pipe()) is not nil: a pipe has no file descriptor")
	}
}

// A write larger than the socket buffers goes out whole, waiting for room,
// and the reader gets every byte in order and then io.EOF.
func TestWriteAndReadLarge(t *testing.T) {
	a, b := pair(t)
	wa, rb := mustNew(t, a), mustNew(t, b)
	want := randomBytes(t, 8<<20)
	werr := make(chan error, 1)
	go func() {
		n, err := wa.Write(want)
		if err == nil && n != len(want) {
			err = errors.New("short write")
		}
		a.CloseWrite()
		werr <- err
	}()
	got := <-readAll(struct{ io.Reader }{rb})
	if err := <-werr; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, not the %d written", len(got), len(want))
	}
	if n, err := rb.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Fatalf("read after the peer's close: %d, %v; want 0, io.EOF", n, err)
	}
	if n, err := rb.Read(nil); n != 0 || err != nil {
		t.Fatalf("empty read: %d, %v", n, err)
	}
}

// Writev sends more buffers than one writev takes, empty ones among them,
// and more bytes than the socket holds.
func TestWritev(t *testing.T) {
	a, b := pair(t)
	wa := mustNew(t, a)
	var bufs [][]byte
	var want []byte
	for i := range 3 * maxIovecs {
		var p []byte
		switch i % 4 {
		case 0: // empty
		case 1:
			p = randomBytes(t, 1)
		default:
			p = randomBytes(t, 1+i*97)
		}
		bufs = append(bufs, p)
		want = append(want, p...)
	}
	bufs = append(bufs, randomBytes(t, 4<<20), nil)
	want = append(want, bufs[len(bufs)-2]...)
	got := readAll(b)
	n, err := wa.Writev(bufs)
	a.CloseWrite()
	if err != nil || n != len(want) {
		t.Fatalf("Writev: %d, %v; want %d, nil", n, err, len(want))
	}
	if g := <-got; !bytes.Equal(g, want) {
		t.Fatalf("read %d bytes, not the %d written in order", len(g), len(want))
	}
	if n, err := wa.Writev(nil); n != 0 || err != nil {
		t.Fatalf("Writev(nil): %d, %v", n, err)
	}
}

// A read deadline ends a read that waits, with the error net.Conn gives.
func TestReadDeadline(t *testing.T) {
	a, _ := pair(t)
	ra := mustNew(t, a)
	a.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	_, err := ra.Read(make([]byte, 10))
	var ne net.Error
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past its deadline: %v; want a timeout", err)
	}
}

// A write deadline ends a write whose peer reads nothing, and says how
// much went out.
func TestWriteDeadline(t *testing.T) {
	a, _ := pair(t)
	wa := mustNew(t, a)
	a.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	n, err := wa.Write(make([]byte, 64<<20))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("write past its deadline: %v; want a timeout", err)
	}
	if n <= 0 || n >= 64<<20 {
		t.Fatalf("write past its deadline reported %d bytes written", n)
	}
}

// Closing the connection ends a read that waits, with net.ErrClosed.
func TestCloseEndsRead(t *testing.T) {
	a, _ := pair(t)
	ra := mustNew(t, a)
	time.AfterFunc(20*time.Millisecond, func() { a.Close() })
	if _, err := ra.Read(make([]byte, 10)); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read on a closed conn: %v; want net.ErrClosed", err)
	}
}

// A reset from the peer is an error that names ECONNRESET, as isReset in
// package fastcgi expects, dressed as net.Conn's own (a *net.OpError).
func TestResetIsReported(t *testing.T) {
	a, b := pair(t)
	ra := mustNew(t, a)
	b.SetLinger(0)
	b.Close()
	_, err := ra.Read(make([]byte, 10))
	var op *net.OpError
	if !errors.Is(err, syscall.ECONNRESET) || !errors.As(err, &op) || op.Op != "read" {
		t.Fatalf("read after the peer's reset: %v; want a read OpError for ECONNRESET", err)
	}
	_, err = ra.Write([]byte("x"))
	if !errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("write after the peer's reset: %v; want EPIPE or ECONNRESET", err)
	}
}

// Reads and writes allocate nothing: the closures are made once, in New.
func TestNoAllocations(t *testing.T) {
	a, b := pair(t)
	wa, rb := mustNew(t, a), mustNew(t, b)
	msg := []byte("ping")
	buf := make([]byte, 16)
	bufs := make([][]byte, 2)
	allocs := testing.AllocsPerRun(200, func() {
		if _, err := wa.Write(msg); err != nil {
			t.Fatal(err)
		}
		bufs[0], bufs[1] = msg, msg
		if _, err := wa.Writev(bufs); err != nil {
			t.Fatal(err)
		}
		for got := 0; got < 3*len(msg); {
			n, err := rb.Read(buf)
			if err != nil {
				t.Fatal(err)
			}
			got += n
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per write and read; want 0", allocs)
	}
}

// TryRead never waits: ErrWouldBlock while nothing has arrived, then what
// has, then io.EOF once the peer has closed.
func TestTryRead(t *testing.T) {
	a, b := pair(t)
	rb := mustNew(t, b)
	buf := make([]byte, 16)
	if n, err := rb.TryRead(buf); n != 0 || err != ErrWouldBlock {
		t.Fatalf("TryRead with nothing sent: %d, %v; want 0, ErrWouldBlock", n, err)
	}
	a.Write([]byte("hello"))
	a.Close()
	var got []byte
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := rb.TryRead(buf)
		got = append(got, buf[:n]...)
		if err == io.EOF {
			break
		}
		if err != nil && err != ErrWouldBlock {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("no EOF after the peer closed; read %q", got)
		}
		if err == ErrWouldBlock {
			time.Sleep(time.Millisecond)
		}
	}
	if string(got) != "hello" {
		t.Fatalf("TryRead got %q, want %q", got, "hello")
	}
}
