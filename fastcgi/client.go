package fastcgi

// client.go holds the client side of one connection: Conn sends a request's
// params and body, and Response streams the answer back record by record.

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fcgigate/fcgigate/internal/rawio"
)

// requestID is the id of every request a Conn sends; FPM does not multiplex.
const requestID = 1

// Request is one FastCGI responder request.
type Request struct {
	// Params are sent in order in FCGI_PARAMS. The caller sets
	// CONTENT_LENGTH to match Body.
	Params []Param

	// Body is sent as FCGI_STDIN. Nil means an empty body. It is read by a
	// goroutine of the Conn while the response streams in, so a script may
	// answer before it has read all of its input; Response.Close waits for a
	// pending Body.Read to return.
	Body io.Reader

	// Stderr, if not nil, receives the content of each FCGI_STDERR record.
	// It must not retain p. Nil discards STDERR.
	Stderr func(p []byte)

	// ReadTimeout bounds the wait for each read from the backend, so a
	// long response that keeps streaming is never cut. Zero means no limit.
	ReadTimeout time.Duration

	// WriteTimeout bounds each write to the backend. Zero means no limit.
	WriteTimeout time.Duration
}

// Conn is a client connection to a FastCGI responder. It carries one request
// at a time. Close may be called more than once.
type Conn struct {
	nc       net.Conn
	br       *bufio.Reader
	keepConn bool // ask the backend to keep the connection after a request

	created  time.Time
	lastUsed time.Time // when a Pool last took it back; set by the Pool
	requests int       // requests started on this connection

	readDeadline, writeDeadline time.Time // as last set on nc

	// Scratch space of the one request in progress, kept here so that
	// reading headers and padding allocates nothing.
	scratch [headerLen + maxPad]byte
	wbuf    []byte          // writeHead's output, reused
	rc      syscall.RawConn // for alive; nil if nc has none
	io      io.ReadWriter   // nc, or rio where nc has one
	rio     *rawio.Conn     // raw reads and writes on nc; nil if it has none
	peekOK  bool            // result of the last peek
	peekFn  func(fd uintptr) bool

	// full reports that the last read from nc filled the buffer it was
	// given, so that more has probably arrived already; nonblock makes
	// reads from nc return errWouldBlock instead of waiting. See
	// buffered.
	full, nonblock bool
	// answering reports that some of the current answer has been read:
	// a wait from then on is a wait in the middle of it. See connReader.
	answering bool
	// readErr is an error that a read with nonblock met, kept for the
	// next ordinary read, since bufio drops the errors of Peek.
	readErr error
	broken  bool // not reusable: an error, an abort, or no FCGI_KEEP_CONN

	// watch is the context watch of each request: it closes the
	// connection, which ends any pending read or write, and sets
	// cancelled. Made once, so that a request does not allocate it. A
	// connection whose watch ran is never reused, so cancelled is the
	// current request's.
	watch     func()
	cancelled atomic.Bool

	// release, if set, is called once per request when its Response is
	// closed; a Pool uses it to take the connection back.
	release func(*Conn)
	// onClose, if set, is called once when the connection closes.
	onClose func()

	mu       sync.Mutex // protects closed, closeErr
	closed   bool
	closeErr error
}

// NewConn returns a Conn on nc. With keepConn the backend is asked to keep
// the connection open after each request (FCGI_KEEP_CONN), as a pool wants.
func NewConn(nc net.Conn, keepConn bool) *Conn {
	now := time.Now()
	c := &Conn{nc: nc, keepConn: keepConn, created: now, lastUsed: now}
	c.br = bufio.NewReaderSize((*connReader)(c), 16<<10)
	if sc, ok := nc.(syscall.Conn); ok {
		c.rc, _ = sc.SyscallConn()
	}
	c.io, c.rio = rawio.Wrap(nc)
	c.peekFn = c.peek
	c.watch = func() {
		c.cancelled.Store(true)
		c.Close()
	}
	return c
}

// Close closes the connection. It is safe to call more than once and from
// any goroutine; it keeps the first close error.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed = true
		c.closeErr = c.nc.Close()
		if c.onClose != nil {
			c.onClose()
		}
	}
	return c.closeErr
}

func (c *Conn) isClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// RemoteAddr returns the backend's address.
func (c *Conn) RemoteAddr() net.Addr { return c.nc.RemoteAddr() }

// Reusable reports whether another request may be sent on c.
func (c *Conn) Reusable() bool { return !c.broken && c.keepConn && !c.isClosed() }

// bufPool holds write buffers large enough for one full record.
var bufPool = sync.Pool{New: func() any { b := make([]byte, headerLen+maxContent+8); return &b }}

// Do sends req and waits for the first record of the answer: the first
// STDOUT content or END_REQUEST. The caller reads the body from the returned
// Response and must Close it. Errors before that point are returned by Do:
// ErrStaleConn when a reused connection had been closed by the backend before
// it answered, a timeout, ErrProtocol, or ErrRequestRejected.
//
// Cancelling ctx closes the connection, which ends any pending read or write.
func (c *Conn) Do(ctx context.Context, req *Request) (*Response, error) {
	if c.isClosed() {
		return nil, ErrConnClosed
	}
	if c.broken {
		return nil, errors.New("fastcgi: connection not reusable")
	}
	if err := checkParams(req.Params); err != nil {
		return nil, err
	}
	reused := c.requests > 0
	c.requests++
	c.answering = false
	resp := &Response{c: c, req: req, reused: reused, ctx: ctx}
	c.cancelled.Store(false)
	resp.stop = context.AfterFunc(ctx, c.watch)

	if err := c.writeHead(req); err != nil {
		c.broken = true
		resp.finish()
		if reused && isReset(err) && !resp.aborted() {
			return nil, &staleError{err: fmt.Errorf("%w: %v", ErrStaleConn, err), untouched: true}
		}
		return nil, resp.wrapErr("write params", err)
	}
	if req.Body != nil {
		resp.bodyDone = make(chan error, 1)
		go resp.writeBody() // ends when Body is drained or the conn fails
	} else {
		resp.bodySent = true
	}
	if err := resp.fill(); err != nil && err != io.EOF {
		resp.Close()
		return nil, err
	}
	return resp, nil
}

// writeHead writes BEGIN_REQUEST, the params and their terminating empty
// record, and, for a request without a body, the empty STDIN record, in one
// write.
func (c *Conn) writeHead(req *Request) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	var flags uint8
	if c.keepConn {
		flags = flagKeepConn
	}
	enc := (*bp)[:0]
	for _, p := range req.Params {
		enc = AppendParam(enc, p.Name, p.Value)
	}
	if cap(enc) <= 1<<20 {
		*bp = enc[:0] // keep a grown buffer, within reason
	}
	out := c.wbuf[:0]
	out = appendRecord(out, typeBeginRequest, beginRequestBody(roleResponder, flags))
	for len(enc) > 0 {
		n := min(len(enc), maxContent)
		out = appendRecord(out, typeParams, enc[:n])
		enc = enc[n:]
	}
	out = appendRecord(out, typeParams, nil)
	if req.Body == nil {
		out = appendRecord(out, typeStdin, nil)
	}
	if cap(out) <= 64<<10 {
		c.wbuf = out[:0]
	}
	return c.write(req.WriteTimeout, out)
}

func appendRecord(b []byte, t recType, content []byte) []byte {
	return appendRecordID(b, t, requestID, content)
}

func (c *Conn) write(timeout time.Duration, b []byte) error {
	if timeout > 0 {
		refreshDeadline(c.nc.SetWriteDeadline, &c.writeDeadline, timeout)
	}
	_, err := c.io.Write(b)
	return err
}

// read fills p from the backend, applying the read timeout to this read.
func (c *Conn) read(timeout time.Duration, p []byte) (int, error) {
	if timeout > 0 && c.br.Buffered() == 0 {
		refreshDeadline(c.nc.SetReadDeadline, &c.readDeadline, timeout)
	}
	return c.br.Read(p)
}

// connReader is what c.br reads from: nc, noting whether each read filled
// its buffer, or, with nonblock, only what has already arrived.
//
// A read in the middle of an answer first takes what is there without
// waiting; only when nothing is does it acknowledge what has arrived (see
// ackNow) and wait.
type connReader Conn

// errWouldBlock is what a read with nonblock returns when nothing has
// arrived. It never leaves the package: bufio hands it back to buffered,
// which drops it.
var errWouldBlock = errors.New("fastcgi: nothing to read yet")

func (cr *connReader) Read(p []byte) (int, error) {
	c := (*Conn)(cr)
	if c.nonblock {
		return c.readNow(p)
	}
	if err := c.readErr; err != nil {
		c.readErr = nil
		return 0, err
	}
	if c.answering && c.rio != nil {
		if n, err := c.readNow(p); err == nil {
			return n, nil
		}
		if err := c.readErr; err != nil {
			c.readErr = nil
			return 0, err
		}
		c.ackNow()
	}
	n, err := c.io.Read(p)
	c.full = n == len(p)
	c.answering = c.answering || n > 0
	return n, err
}

// readNow reads into p what has already arrived on the socket, without
// waiting: errWouldBlock when nothing has. It keeps EOF or an error in
// c.readErr for the next ordinary read, and returns errWouldBlock.
func (c *Conn) readNow(p []byte) (int, error) {
	if c.rio == nil || len(p) == 0 || c.readErr != nil {
		return 0, errWouldBlock
	}
	n, err := c.rio.TryRead(p)
	switch {
	case err == rawio.ErrWouldBlock:
	case err != nil:
		c.readErr = err
	default:
		c.full = n == len(p)
		c.answering = true
		return n, nil
	}
	c.full = false
	return 0, errWouldBlock
}

// tcpQuickAck is Linux's TCP_QUICKACK, which package syscall lacks on some
// platforms.
const tcpQuickAck = 0xc

// ackNow acknowledges at once what has arrived, rather than after the
// delayed-ACK timer (40 ms on Linux). PHP-FPM leaves Nagle's algorithm on:
// it writes an answer in several pieces (its header, a large STDOUT
// record, the last bytes, END_REQUEST), and holds back each small piece
// until the previous ones are acknowledged, so without this the end of a
// large answer would often wait for the timer. It costs a system call only
// when a wait in the middle of an answer begins.
func (c *Conn) ackNow() {
	if runtime.GOOS != "linux" || c.rc == nil {
		return
	}
	c.rc.Control(func(fd uintptr) {
		syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, tcpQuickAck, 1)
	})
}

// buffered returns how many bytes c.br holds, having first taken into it,
// without waiting, what has arrived on the socket when it held fewer than
// want and the last read had filled its buffer. A full read means that the
// backend was faster than the reads: so a large answer is read in large
// pieces, while one that PHP streams costs no extra read.
func (c *Conn) buffered(want int) int {
	if b := c.br.Buffered(); b >= want || !c.full {
		return b
	}
	c.nonblock = true
	c.br.Peek(want) // fills what it can; errWouldBlock is dropped
	c.nonblock = false
	return c.br.Buffered()
}

// readMore reads into p, without waiting, what has already arrived, when
// c.br is empty and the last read filled its buffer. A p at least as large
// as c.br's buffer is read into directly, as bufio would.
func (c *Conn) readMore(p []byte) int {
	if c.br.Buffered() > 0 || !c.full {
		return 0
	}
	if len(p) >= c.br.Size() {
		n, _ := c.readNow(p)
		return n
	}
	if c.buffered(1) == 0 {
		return 0
	}
	n, _ := c.br.Read(p)
	return n
}

// refreshDeadline moves a deadline to now+timeout, unless it already lies
// between now+7/8 timeout and now+timeout: so the timeout allowed for each
// read or write is between 7/8 of the configured one and all of it, and a
// busy connection resets its deadline (a runtime timer update) about once
// every timeout/8 rather than on every call.
func refreshDeadline(set func(time.Time) error, cur *time.Time, timeout time.Duration) {
	now := time.Now()
	if cur.Before(now.Add(timeout-timeout/8)) || cur.After(now.Add(timeout)) {
		*cur = now.Add(timeout)
		set(*cur)
	}
}

// readFull reads len(p) bytes. It returns io.EOF if the stream ended before
// the first byte and io.ErrUnexpectedEOF if it ended part way.
func (c *Conn) readFull(timeout time.Duration, p []byte) error {
	got := 0
	for got < len(p) {
		n, err := c.read(timeout, p[got:])
		got += n
		if err != nil {
			if got == len(p) {
				return nil
			}
			if err == io.EOF && got > 0 {
				return io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// Response is the answer to one request: its STDOUT stream, read with Read,
// and, once Read has returned io.EOF, its application status.
type Response struct {
	c      *Conn
	req    *Request
	reused bool
	stop   func() bool // stops the context watch

	ctx       context.Context
	gotAny    bool // a record of the answer arrived
	remain    int  // STDOUT content left in the current record
	pad       int  // padding left after it
	ended     bool // END_REQUEST seen
	err       error
	appStatus int

	bodyDone chan error // result of writeBody; nil without a body
	bodySent bool       // the whole body and its empty STDIN record went out
	// bodyEnding is set by writeBody once all of the body is sent, as it
	// writes the empty STDIN record. The backend may answer, and finish
	// run, before that write has returned.
	bodyEnding atomic.Bool

	// Kept by writeBody while the body is small, so that a request that
	// met a stale connection can be sent again.
	kept     []byte
	keptAll  bool // kept holds the whole body
	bodyRead bool // some of the body was read

	closeOnce sync.Once
}

// AppStatus returns the application status of FCGI_END_REQUEST, valid once
// Read has returned io.EOF.
func (r *Response) AppStatus() int { return r.appStatus }

// Buffered reports whether more STDOUT content, or the end of the answer,
// has already arrived, so that a caller that flushes per Read may leave the
// flush to the next Read without holding back output while PHP works.
func (r *Response) Buffered() bool {
	if r.remain > 0 {
		return r.c.buffered(1) > 0
	}
	h, ok := r.peekHeader()
	if ok && h.Type == typeStdout && h.ContentLength == 0 {
		// FPM ends STDOUT with an empty record right before
		// END_REQUEST: what counts is the record after it.
		h, ok = r.peekHeaderAt(r.pad + headerLen + int(h.PaddingLength))
	}
	return ok && (h.Type == typeStdout && h.ContentLength > 0 || h.Type == typeEndRequest)
}

// peekHeader decodes the next record's header if it has arrived, past any
// padding still to skip.
func (r *Response) peekHeader() (header, bool) { return r.peekHeaderAt(r.pad) }

// peekHeaderAt decodes the header that starts off bytes ahead, if it has
// arrived.
func (r *Response) peekHeaderAt(off int) (header, bool) {
	var h header
	if r.err != nil || r.c.buffered(off+headerLen) < off+headerLen {
		return h, false
	}
	b, err := r.c.br.Peek(off + headerLen)
	if err != nil {
		return h, false
	}
	h.decode(b[off:])
	return h, h.Version == version1 && h.ID == requestID
}

// Read reads STDOUT content. It blocks only until some content is there,
// then returns what has already arrived, across records, without waiting for
// more: a caller that flushes per Read passes on each flushed chunk of PHP
// output at once, and one that reads a fast answer gets it in few large
// reads. It returns io.EOF after END_REQUEST; an answer cut short returns
// an error wrapping ErrProtocol or the network error.
func (r *Response) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if r.remain == 0 {
			if r.pad > 0 {
				if n > 0 && r.c.buffered(r.pad) < r.pad {
					break
				}
				if err := r.skipPad(); err != nil {
					return n, err
				}
			}
			if n > 0 && !r.stdoutBuffered() {
				break
			}
			if r.err != nil {
				return n, r.err
			}
			if err := r.fill(); err != nil {
				return n, err
			}
			continue
		}
		want := p[n : n+min(r.remain, len(p)-n)]
		if n > 0 && r.c.br.Buffered() == 0 {
			k := r.c.readMore(want)
			if k == 0 {
				break // more would mean waiting
			}
			n += k
			r.remain -= k
			continue
		}
		k, err := r.c.read(r.req.ReadTimeout, want)
		n += k
		r.remain -= k
		if err != nil {
			if err == io.EOF {
				err = protocolError("connection closed inside a STDOUT record")
			}
			r.fail(r.wrapErr("read response", err))
			return n, r.err
		}
	}
	return n, nil
}

// stdoutBuffered reports whether the next record is a non-empty STDOUT
// record whose header has already arrived, so reading on cannot block.
func (r *Response) stdoutBuffered() bool {
	h, ok := r.peekHeader()
	return ok && h.Type == typeStdout && h.ContentLength > 0
}

func (r *Response) skipPad() error {
	if err := r.c.readFull(r.req.ReadTimeout, r.c.scratch[:r.pad]); err != nil {
		r.fail(r.wrapErr("read padding", err))
		return r.err
	}
	r.pad = 0
	return nil
}

// fill reads records until STDOUT content is available (r.remain > 0) or
// the request ends (io.EOF). STDERR goes to req.Stderr on the way.
func (r *Response) fill() error {
	hb := r.c.scratch[:headerLen]
	for {
		if r.err != nil {
			return r.err
		}
		if err := r.c.readFull(r.req.ReadTimeout, hb); err != nil {
			if (err == io.EOF || isReset(err)) && !r.gotAny && r.reused && !r.aborted() {
				r.fail(r.stale(err))
				return r.err
			}
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				if r.gotAny {
					err = protocolError("connection closed before FCGI_END_REQUEST")
				} else {
					err = protocolError("connection closed before any answer")
				}
			}
			r.fail(r.wrapErr("read response", err))
			return r.err
		}
		r.gotAny = true
		var h header
		h.decode(hb)
		if h.Version != version1 {
			r.fail(protocolError("invalid header version %d", h.Version))
			return r.err
		}
		if h.ID != requestID {
			r.fail(protocolError("%s record for request id %d, want %d", h.Type, h.ID, requestID))
			return r.err
		}
		switch h.Type {
		case typeStdout:
			if h.ContentLength == 0 {
				if err := r.discard(int(h.PaddingLength)); err != nil {
					return err
				}
				continue
			}
			r.remain, r.pad = int(h.ContentLength), int(h.PaddingLength)
			return nil
		case typeStderr:
			if err := r.stderr(h); err != nil {
				return err
			}
		case typeEndRequest:
			if h.ContentLength != 8 {
				r.fail(protocolError("END_REQUEST with %d content bytes, want 8", h.ContentLength))
				return r.err
			}
			b := r.c.scratch[:8+int(h.PaddingLength)]
			if err := r.c.readFull(r.req.ReadTimeout, b); err != nil {
				r.fail(r.wrapErr("read END_REQUEST", err))
				return r.err
			}
			r.appStatus = int(int32(binary.BigEndian.Uint32(b[:4])))
			r.ended = true
			switch b[4] {
			case statusRequestComplete:
				r.err = io.EOF
			case statusCantMultiplex:
				r.fail(fmt.Errorf("%w: cannot multiplex", ErrRequestRejected))
			case statusOverloaded:
				r.fail(fmt.Errorf("%w: overloaded", ErrRequestRejected))
			case statusUnknownRole:
				r.fail(fmt.Errorf("%w: unknown role", ErrRequestRejected))
			default:
				r.fail(protocolError("END_REQUEST with unknown protocol status %d", b[4]))
			}
			return r.err
		default:
			r.fail(protocolError("unexpected %s record in a response", h.Type))
			return r.err
		}
	}
}

func (r *Response) stderr(h header) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	b := (*bp)[:int(h.ContentLength)+int(h.PaddingLength)]
	if err := r.c.readFull(r.req.ReadTimeout, b); err != nil {
		r.fail(r.wrapErr("read STDERR", err))
		return r.err
	}
	if r.req.Stderr != nil && h.ContentLength > 0 {
		r.req.Stderr(b[:h.ContentLength])
	}
	return nil
}

func (r *Response) discard(n int) error {
	if n == 0 {
		return nil
	}
	if err := r.c.readFull(r.req.ReadTimeout, r.c.scratch[:n]); err != nil {
		r.fail(r.wrapErr("read padding", err))
		return r.err
	}
	return nil
}

// fail records the first error of the response and marks the connection
// unusable.
func (r *Response) fail(err error) {
	if r.err == nil || r.err == io.EOF {
		r.err = err
	}
	r.c.broken = true
}

// aborted reports a request whose context ended: its errors are the
// context's, not the backend's. A context cancelled by the body reader
// (the client went away) counts even before the watch has run.
func (r *Response) aborted() bool { return r.c.cancelled.Load() || r.ctx.Err() != nil }

// wrapErr names the operation and, when the context was cancelled, says so.
func (r *Response) wrapErr(op string, err error) error {
	if r.aborted() {
		return fmt.Errorf("fastcgi: %s: %w", op, context.Canceled)
	}
	if errors.Is(err, ErrProtocol) || errors.Is(err, ErrStaleConn) {
		return err
	}
	return fmt.Errorf("fastcgi: %s from %s: %w", op, r.c.nc.RemoteAddr(), err)
}

// replayLimit is the largest body kept for sending again after a stale
// connection.
const replayLimit = 64 << 10

// writeBody streams req.Body as STDIN records, then the empty STDIN record.
// On a reused connection it keeps a copy of a small body (see stale).
func (r *Response) writeBody() {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := (*bp)[:headerLen+maxContent+8]
	keep := r.reused
	var err error
	for {
		n, rerr := r.req.Body.Read(buf[headerLen : headerLen+maxContent])
		if n > 0 {
			r.bodyRead = true
			if keep && len(r.kept)+n <= replayLimit {
				r.kept = append(r.kept, buf[headerLen:headerLen+n]...)
			} else {
				keep, r.kept = false, nil
			}
			var h header
			h.init(typeStdin, requestID, n)
			h.encode(buf)
			end := headerLen + n + int(h.PaddingLength)
			clear(buf[headerLen+n : end])
			if err = r.c.write(r.req.WriteTimeout, buf[:end]); err != nil {
				err = fmt.Errorf("fastcgi: write request body to %s: %w", r.c.nc.RemoteAddr(), err)
				if keep && rerr == nil {
					r.keepRest()
				}
				r.keptAll = r.keptAll || (keep && rerr == io.EOF)
				break
			}
		}
		if rerr == io.EOF {
			r.keptAll = keep
			r.bodyEnding.Store(true)
			err = r.c.write(r.req.WriteTimeout, appendRecord(buf[:0], typeStdin, nil))
			break
		}
		if rerr != nil {
			err = fmt.Errorf("fastcgi: read request body: %w", rerr)
			// FPM would wait for the rest of the body: end the request.
			r.c.Close()
			break
		}
	}
	r.bodyDone <- err
}

// keepRest reads the rest of a small body after the connection failed, so
// that it can be sent again whole.
func (r *Response) keepRest() {
	var b [4096]byte
	for len(r.kept) <= replayLimit {
		n, err := r.req.Body.Read(b[:])
		r.kept = append(r.kept, b[:n]...)
		if err == io.EOF {
			r.keptAll = len(r.kept) <= replayLimit
			return
		}
		if err != nil {
			return
		}
	}
}

// stale builds the ErrStaleConn for a reused connection that the backend
// had closed, with what is needed to send the request again.
func (r *Response) stale(cause error) error {
	se := &staleError{err: fmt.Errorf("%w: %v", ErrStaleConn, cause)}
	if r.bodyDone != nil {
		r.c.Close() // unblocks the body writer
		r.bodyErr()
		se.untouched = !r.bodyRead
		if r.keptAll {
			se.replay = r.kept
		}
	}
	return se
}

// bodyEndWait bounds finish's wait for a body writer that is writing the
// empty STDIN record: the record is 8 bytes after a body that went out,
// so only a backend that stopped reading holds it up.
const bodyEndWait = 50 * time.Millisecond

// awaitBody waits up to bodyEndWait for the body writer's report, and
// reports whether it came and said that all went out.
func (r *Response) awaitBody() bool {
	t := time.NewTimer(bodyEndWait)
	defer t.Stop()
	select {
	case err := <-r.bodyDone:
		r.bodyDone = nil
		r.bodySent = err == nil
		return err == nil
	case <-t.C:
		return false
	}
}

// BodyErr waits for the request body to be sent and returns the error that
// stopped it, if any. It returns nil for a request without a body.
func (r *Response) bodyErr() error {
	if r.bodyDone == nil {
		return nil
	}
	err := <-r.bodyDone
	r.bodyDone = nil
	r.bodySent = err == nil
	return err
}

// CloseConn ends the response and closes its connection instead of
// returning it to the pool, for a caller that found the answer unusable.
func (r *Response) CloseConn() error {
	r.c.broken = true
	return r.Close()
}

// Close ends the response. If the answer was not read to its end, or the
// body was not fully sent, the connection is closed rather than reused. It
// waits for the body writer to stop. Close may be called more than once.
func (r *Response) Close() error {
	r.closeOnce.Do(r.finish)
	return nil
}

func (r *Response) finish() {
	if r.stop != nil && !r.stop() {
		// The context was cancelled as the request ended: the watch
		// closes the connection, so it must not go back to the pool.
		r.c.broken = true
	}
	if r.err != io.EOF {
		r.c.broken = true
	}
	if r.bodyDone != nil {
		select {
		case err := <-r.bodyDone:
			r.bodyDone = nil
			r.bodySent = err == nil
		default:
			if r.bodyEnding.Load() && r.awaitBody() {
				break
			}
			// The backend answered before reading all of the body: the
			// connection cannot carry another request.
			r.c.broken = true
			r.c.Close()
			r.bodyErr()
		}
	}
	if !r.bodySent {
		r.c.broken = true
	}
	if r.aborted() {
		r.c.broken = true
	}
	if r.c.broken || !r.c.keepConn {
		r.c.Close()
	}
	if r.c.release != nil {
		r.c.release(r.c)
	}
}

// isReset reports a connection reset or broken pipe, which a backend that
// closed an idle connection produces on the next write or read.
func isReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// alive reports whether an idle connection still looks open: no data and no
// EOF waiting on the socket. With peek it looks at the socket, without
// blocking and without consuming; without, it only checks what the Conn
// already knows.
func (c *Conn) alive(peek bool) bool {
	if c.isClosed() || c.br.Buffered() > 0 || c.readErr != nil {
		return false
	}
	if c.rc == nil || !peek {
		return true
	}
	c.peekOK = false
	return c.rc.Read(c.peekFn) == nil && c.peekOK
}

// peek looks at the socket without blocking or consuming: EAGAIN means
// open and quiet; data or EOF (0 bytes) means the connection is done.
func (c *Conn) peek(fd uintptr) bool {
	var b [1]byte
	n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	c.peekOK = n < 0 && (err == syscall.EAGAIN || err == syscall.EWOULDBLOCK)
	return true
}
