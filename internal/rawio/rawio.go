// Package rawio reads and writes a socket with system calls the Go
// scheduler does not see (syscall.RawSyscall), for the gateway's hot paths.
//
// A read or write on a non-blocking socket never waits in the kernel: it
// copies what fits and returns, or returns EAGAIN, and then the goroutine
// waits in the netpoller as with net.Conn. What it may do is lose the CPU:
// a write on loopback wakes its reader (php-fpm, the client), and Linux
// often switches to that reader before the write returns. Made through
// syscall.Syscall, the goroutine is then "in a system call" for as long as
// the reader runs, and the runtime's sysmon takes its P away after 20 µs
// and wakes another thread to run the P, which itself costs a wake-up and
// a context switch, and the first thread must find a P again when the write
// returns. Under load that churn cost fcgigate as much CPU per request as
// its own code. A raw system call keeps the P on the thread, and the other
// Ps run on.
//
// On other Unix systems a Conn makes ordinary system calls, so that its
// callers keep one code path; elsewhere New returns nil.
package rawio

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
)

// maxIovecs bounds one writev; Linux's UIO_MAXIOV is 1024.
const maxIovecs = 64

// Conn does raw reads and writes on one socket. It is not safe for
// concurrent use by several readers or several writers, but one reader and
// one writer may run at once, as on a net.Conn.
type Conn struct {
	nc net.Conn
	rc syscall.RawConn

	// The read and write in progress, and their results: the closures
	// passed to rc are made once, in New, so that a call allocates nothing.
	rp, wp   []byte
	wv       [][]byte
	rn, wn   int
	rerr     syscall.Errno
	werr     syscall.Errno
	rblock   bool // the last read found nothing to read
	readFn   func(fd uintptr) bool
	tryFn    func(fd uintptr) bool
	writeFn  func(fd uintptr) bool
	writevFn func(fd uintptr) bool
}

// New returns a Conn on nc, or nil when nc is not a socket this package
// can drive (not on Linux, or a net.Conn without a file descriptor, such
// as net.Pipe's). Callers then use nc itself.
func New(nc net.Conn) *Conn {
	if !supported {
		return nil
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	c := &Conn{nc: nc, rc: rc}
	c.readFn = c.read
	c.tryFn = func(fd uintptr) bool {
		c.rblock = !c.read(fd)
		return true // never wait
	}
	c.writeFn = c.write
	c.writevFn = c.writev
	return c
}

// Wrap returns what to read and write nc through: the Conn on it, or nc
// itself where New gives none, and the Conn (nil then).
func Wrap(nc net.Conn) (io.ReadWriter, *Conn) {
	if c := New(nc); c != nil {
		return c, c
	}
	return nc, nil
}

// Read reads into p like nc.Read: it waits for data, honouring the read
// deadline, and returns io.EOF when the peer has closed.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rp, c.rn, c.rerr = p, 0, 0
	err := c.rc.Read(c.readFn)
	c.rp = nil
	if err != nil {
		return 0, err
	}
	return c.result()
}

// result is what the read just made returns.
func (c *Conn) result() (int, error) {
	switch {
	case c.rerr != 0:
		return 0, c.opError("read", os.NewSyscallError("read", c.rerr))
	case c.rn == 0:
		return 0, io.EOF
	}
	return c.rn, nil
}

// ErrWouldBlock is what TryRead returns when nothing has arrived.
var ErrWouldBlock = errors.New("rawio: nothing to read yet")

// TryRead reads into p what has already arrived, without waiting: it
// returns ErrWouldBlock when nothing has, and otherwise what Read would.
func (c *Conn) TryRead(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rp, c.rn, c.rerr, c.rblock = p, 0, 0, false
	err := c.rc.Read(c.tryFn)
	c.rp = nil
	switch {
	case err != nil:
		return 0, err
	case c.rblock:
		return 0, ErrWouldBlock
	}
	return c.result()
}

// Write writes all of p like nc.Write, waiting for room in the socket's
// buffer as needed and honouring the write deadline.
func (c *Conn) Write(p []byte) (int, error) {
	c.wp, c.wn, c.werr = p, 0, 0
	err := c.rc.Write(c.writeFn)
	c.wp = nil
	return c.wn, c.writeResult(err)
}

// Writev writes every buffer of bufs in order, in as few system calls as
// the socket allows, and returns the bytes written. It consumes bufs.
func (c *Conn) Writev(bufs [][]byte) (int, error) {
	c.wv, c.wn, c.werr = bufs, 0, 0
	err := c.rc.Write(c.writevFn)
	c.wv = nil
	return c.wn, c.writeResult(err)
}

func (c *Conn) writeResult(err error) error {
	switch {
	case err != nil:
		return err
	case c.werr != 0:
		return c.opError("write", os.NewSyscallError("write", c.werr))
	}
	return nil
}

// opError dresses a system call's error as nc's own Read and Write would.
func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: c.nc.LocalAddr().Network(), Source: c.nc.LocalAddr(), Addr: c.nc.RemoteAddr(), Err: err}
}
