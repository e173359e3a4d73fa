package gateway

// h1.go is the HTTP/1.x server that Serve runs in front of ServeHTTP, in
// place of net/http's Server. It runs each connection in one goroutine
// with no read in the background: net/http starts a goroutine and a read
// for every request that has no body, to notice a client that leaves, and
// sets two read deadlines to stop it again. For a small PHP answer that was
// about a tenth of the gateway's CPU time per request. Here a request that
// is still waiting after watchAfter gets that watch; a quick one never
// does.
//
// Requests are read by reqReader (h1req.go), not http.ReadRequest, which
// made most of the allocations per request. A request it accepts is the
// one http.ReadRequest would make, but for the trailer's values, which
// PHP never sees. It is stricter where two readers of one
// stream could disagree on where a request ends, for that is how requests
// are smuggled past a proxy: no folded header lines, no CR but before a
// LF, field names that are tokens, one Host, Content-Length digits only
// and all copies equal, Transfer-Encoding "chunked" alone (else 501) and
// never with a Content-Length nor in HTTP/1.0, CRLF in chunk lines and in
// the trailer, which is checked and dropped. A version other than HTTP/1.x
// gets 505.
//
// What it does beyond parsing: keep-alive for HTTP/1.1 and for HTTP/1.0
// with "Connection: keep-alive"; pipelined requests, answered in order;
// 100-continue; 431 for a header block over MaxHeaderBytes; a request body
// that the handler left unread is discarded up to maxDiscard so that the
// connection can carry the next request, else the connection closes; a
// response with no Content-Length is chunked for HTTP/1.1 and ends with the
// connection for HTTP/1.0; PHP's own reason phrase goes out as it is; a
// panic(http.ErrAbortHandler) cuts the response short by closing the
// connection. Shutdown closes idle connections at once and the others after
// their response.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fcgigate/fcgigate/internal/rawio"
)

const (
	// watchAfter is how long a request without a body runs before its
	// connection is watched for the client leaving, which cancels the
	// request's context.
	watchAfter = 100 * time.Millisecond
	// maxDiscard bounds the unread request body that is read and thrown
	// away to keep a connection; a larger rest closes it (net/http's
	// figure).
	maxDiscard = 256 << 10
	// headerSlack is read beyond MaxHeaderBytes before a header block is
	// refused: what a buffered reader may have taken of the body.
	headerSlack = 4096
)

// Connection states, h1Conn.state.
const (
	connIdle   int32 = iota // waiting for a request: Shutdown may close it
	connActive              // a request has begun: it ends first
	connClosed              // Shutdown closed it
)

// h1Server serves HTTP/1.x connections with handler.
type h1Server struct {
	handler           http.Handler
	log               *slog.Logger
	base              context.Context // parent of every request's context
	readHeaderTimeout time.Duration
	idleTimeout       time.Duration
	maxHeaderBytes    int

	shutdown atomic.Bool
	mu       sync.Mutex // protects conns
	conns    map[*h1Conn]struct{}
	wg       sync.WaitGroup // one per connection
}

// serve accepts connections on ln until it is closed (nil) or fails, and
// serves each in a goroutine of its own.
func (s *h1Server) serve(ln net.Listener) error {
	return acceptLoop(ln, s.log, "http", nil, func(nc net.Conn) {
		c := s.newConn(nc)
		if c == nil {
			nc.Close()
			return
		}
		go c.serve() // ends when the connection closes
	})
}

// newConn tracks a new connection, or returns nil once Shutdown has begun.
func (s *h1Server) newConn(nc net.Conn) *h1Conn {
	ctx, cancel := context.WithCancel(withConnInfo(s.base, nc))
	c := &h1Conn{srv: s, nc: nc, ctx: ctx, cancel: cancel, remote: nc.RemoteAddr().String()}
	c.io, c.rio = rawio.Wrap(nc)
	c.cr.nc, c.cr.remain, c.cr.cancel = c.io, -1, cancel
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.shutdown.Load() {
		cancel()
		return nil
	}
	if s.conns == nil {
		s.conns = map[*h1Conn]struct{}{}
	}
	s.conns[c] = struct{}{}
	s.wg.Add(1)
	return c
}

func (s *h1Server) forget(c *h1Conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.wg.Done()
}

// startShutdown makes every connection close once its current response is
// sent, and closes the idle ones now. The caller closes the listener.
func (s *h1Server) startShutdown() {
	s.shutdown.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		if c.state.CompareAndSwap(connIdle, connClosed) {
			c.nc.Close()
		}
	}
}

// closeAll closes every connection, whatever it is doing.
func (s *h1Server) closeAll() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.nc.Close()
	}
}

// wait returns a channel closed once every connection has ended.
func (s *h1Server) wait() <-chan struct{} {
	ch := make(chan struct{})
	go func() { // ends when the last connection does; closeAll ensures it
		s.wg.Wait()
		close(ch)
	}()
	return ch
}

// h1Conn is one client connection.
type h1Conn struct {
	srv    *h1Server
	nc     net.Conn
	io     io.ReadWriter // nc, or rio when nc has raw I/O
	rio    *rawio.Conn   // see internal/rawio; nil for a conn without a socket
	cr     connReader
	br     *bufio.Reader
	rr     reqReader // reads the requests from br
	bw     *outBuf
	ctx    context.Context // every request's context: ends with the connection
	cancel context.CancelFunc
	remote string
	state  atomic.Int32
	rdl    time.Time // the read deadline set, as setReadDeadline noted it
	resp   h1Response
	body   h1Body
	contMu sync.Mutex // orders "100 Continue" with the response header

	// The watch for the client leaving (watch, stopWatch).
	watchTimer *time.Timer
	wmu        sync.Mutex // protects the fields below
	wcond      sync.Cond
	armed      bool // the current request may be watched
	watching   bool // a read is pending in watch
	fired      bool // watch ran since the timer was last armed
	stopping   bool // stopWatch ended the pending read
}

var (
	h1ReaderPool sync.Pool // *bufio.Reader
	h1WriterPool sync.Pool // *outBuf
)

// serve serves requests on c until it closes.
func (c *h1Conn) serve() {
	if v, ok := h1ReaderPool.Get().(*bufio.Reader); ok {
		v.Reset(&c.cr)
		c.br = v
	} else {
		c.br = bufio.NewReaderSize(&c.cr, 4096)
	}
	// The template of every request: the context and the client's
	// address, set once (see reqReader.tmpl).
	c.rr = reqReader{br: c.br, tmpl: (&http.Request{RemoteAddr: c.remote}).WithContext(c.ctx)}
	if v, ok := h1WriterPool.Get().(*outBuf); ok {
		v.Reset(c.io, c.rio)
		c.bw = v
	} else {
		c.bw = &outBuf{nc: c.io, rio: c.rio, buf: make([]byte, 0, outBufSize)}
	}
	defer func() {
		c.nc.Close()
		c.cancel()
		if c.watchTimer != nil {
			c.stopWatch()
		}
		c.br.Reset(nil)
		c.bw.Reset(nil, nil)
		c.rr = reqReader{}
		h1ReaderPool.Put(c.br)
		h1WriterPool.Put(c.bw)
		c.srv.forget(c)
	}()
	for c.serveOne() {
		c.state.Store(connIdle)
		if c.srv.shutdown.Load() {
			return
		}
	}
}

// serveOne waits for a request and answers it. It reports whether the
// connection can carry another.
func (c *h1Conn) serveOne() bool {
	s := c.srv
	c.cr.limit(int64(s.maxHeaderBytes) + headerSlack)
	if c.br.Buffered() == 0 {
		// The idle deadline is moved only once it has run down by a
		// second: connections mostly carry one request after another,
		// and each move is a timer update.
		if now := time.Now(); s.idleTimeout > 0 && (c.rdl.IsZero() || c.rdl.Sub(now) < s.idleTimeout-time.Second) {
			c.setReadDeadline(now.Add(s.idleTimeout))
		}
		if _, err := c.br.Peek(1); err != nil {
			return false // the client left, or idled out, or Shutdown closed it
		}
	}
	if !c.state.CompareAndSwap(connIdle, connActive) {
		return false
	}
	slowHeader := s.readHeaderTimeout > 0 && !headerBuffered(c.br)
	if slowHeader {
		c.setReadDeadline(time.Now().Add(s.readHeaderTimeout))
	}
	req, err := c.rr.read()
	hitLimit := c.cr.hit
	c.cr.limit(-1)
	if err != nil {
		c.refuse(err, hitLimit)
		return false
	}
	if slowHeader {
		c.setReadDeadline(time.Time{}) // the next wait sets the idle deadline
	}
	if code, why := checkRequest(req); code != 0 {
		c.srv.log.Debug("request refused", "client", c.remote, "status", code, "why", why)
		c.writeRefusal(code, why)
		return false
	}

	// The response and the body wrapper are the connection's, reused.
	w := &c.resp
	header := w.header
	if header == nil {
		header = http.Header{}
	}
	clear(header)
	*w = h1Response{c: c, req: req, header: header, remain: -1}
	body := &c.body
	body.rc, body.w = req.Body, w
	body.eof.Store(false)
	if req.Body != http.NoBody {
		// The body may take its time; an idle deadline must not cut it.
		if !c.rdl.IsZero() {
			c.setReadDeadline(time.Time{})
		}
		w.continueWanted = req.ProtoAtLeast(1, 1) && containsToken(req.Header["Expect"], "100-continue")
		req.Body = body
	} else {
		body.eof.Store(true)
		c.armWatch()
	}
	aborted := c.run(w, req)
	if c.watchTimer != nil {
		c.stopWatch()
	}
	if aborted {
		c.bw.Flush()
		return false
	}
	if !w.wroteHeader && c.ctx.Err() != nil {
		// The request was cancelled (its client went away, or the drain
		// timed out) and the handler answered nothing: the close is the
		// answer. finish would send an empty 200.
		return false
	}
	if err := w.finish(); err != nil {
		return false
	}
	if w.closeAfter || req.Close {
		return false
	}
	if !body.eof.Load() {
		if w.continueWanted && !w.continueSent {
			return false // the client may never send the body
		}
		n, err := io.CopyN(io.Discard, body.rc, maxDiscard+1)
		if err != io.EOF || n > maxDiscard {
			return false
		}
	}
	return c.ctx.Err() == nil
}

// setReadDeadline sets the connection's read deadline and notes it.
func (c *h1Conn) setReadDeadline(t time.Time) {
	c.rdl = t
	c.nc.SetReadDeadline(t)
}

// headerBuffered reports whether br holds the end of a header block, so
// that reading the header cannot wait for the client.
func headerBuffered(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	return bytes.Contains(b, []byte("\n\r\n")) || bytes.Contains(b, []byte("\n\n"))
}

// run calls the handler. It reports whether the handler panicked; a panic
// other than http.ErrAbortHandler is logged with its stack, as net/http
// does.
func (c *h1Conn) run(w *h1Response, req *http.Request) (panicked bool) {
	defer func() {
		if v := recover(); v != nil {
			panicked = true
			if v != http.ErrAbortHandler {
				c.srv.log.Error("panic serving a request", "client", c.remote, "uri", req.RequestURI,
					"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			}
		}
	}()
	c.srv.handler.ServeHTTP(w, req)
	return false
}

// refuse answers a request that could not be read, if the client is still
// there to read why.
func (c *h1Conn) refuse(err error, hitLimit bool) {
	var ne net.Error
	var re *reqError
	switch {
	case hitLimit || err == errHeaderTooLarge:
		c.srv.log.Debug("request header too large", "client", c.remote, "limit", c.srv.maxHeaderBytes)
		c.writeRefusal(http.StatusRequestHeaderFieldsTooLarge, "")
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		// The client closed the connection, maybe mid-request.
	case errors.As(err, &ne) && ne.Timeout():
		c.srv.log.Debug("request header too slow", "client", c.remote)
		c.writeRefusal(http.StatusRequestTimeout, "")
	case errors.As(err, &re):
		c.srv.log.Debug("malformed request", "client", c.remote, "status", re.code, "err", err)
		c.writeRefusal(re.code, re.why)
	default:
		c.srv.log.Debug("malformed request", "client", c.remote, "err", err)
		c.writeRefusal(http.StatusBadRequest, err.Error())
	}
}

// writeRefusal sends an error status and closes the connection: what
// follows in it cannot be trusted to be a request.
func (c *h1Conn) writeRefusal(code int, why string) {
	body := strconv.Itoa(code) + " " + http.StatusText(code) + "\n"
	if why != "" && code == http.StatusBadRequest {
		body = "400 Bad Request: " + why + "\n"
	}
	c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	fmt.Fprintf(c.bw, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		code, http.StatusText(code), len(body), body)
	c.bw.Flush()
}

// checkRequest applies the rules the request reader leaves to the server
// (the reader has checked the version and the fields): a valid Host,
// required for HTTP/1.1, and an Expect it can meet. It returns 0 for a
// request that passes.
func checkRequest(r *http.Request) (int, string) {
	// The reader has moved the Host header (or the host of an absolute
	// request-target) to r.Host.
	if r.Host == "" && r.ProtoAtLeast(1, 1) {
		return http.StatusBadRequest, "missing required Host header"
	}
	if !validHost(r.Host) {
		return http.StatusBadRequest, "malformed Host header"
	}
	if e := r.Header["Expect"]; len(e) > 0 && !(len(e) == 1 && strings.EqualFold(e[0], "100-continue")) {
		return http.StatusExpectationFailed, "unsupported Expect"
	}
	return 0, ""
}

// validHost reports a Host value made only of the bytes a host name, an IP
// literal and a port can hold.
func validHost(h string) bool {
	for i := 0; i < len(h); i++ {
		c := h[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"#%/<>?@\^`+"`{|}", c) >= 0 {
			return false
		}
	}
	return true
}

// armWatch starts the timer after which the connection is watched for the
// client leaving; called for a request without a body, whose reading has
// ended.
func (c *h1Conn) armWatch() {
	c.wmu.Lock()
	c.armed, c.fired = true, false
	c.wmu.Unlock()
	if c.watchTimer == nil {
		c.wcond.L = &c.wmu
		c.watchTimer = time.AfterFunc(watchAfter, c.watch)
		return
	}
	c.watchTimer.Reset(watchAfter)
}

// watch runs on the timer: it reads from the connection until the client
// sends more (a pipelined request, whose first byte is kept), closes it,
// or stopWatch ends the read. A client that closed or reset the
// connection cancels the request.
func (c *h1Conn) watch() {
	c.wmu.Lock()
	defer c.wcond.Broadcast()
	defer c.wmu.Unlock()
	c.fired = true
	if !c.armed {
		return
	}
	c.watching = true
	c.wmu.Unlock()
	n, err := c.nc.Read(c.cr.one[:])
	c.wmu.Lock()
	c.watching = false
	if n == 1 {
		c.cr.hasOne = true
	}
	if err != nil && !c.stopping && !isTimeout(err) {
		c.srv.log.Debug("client went away while its request ran", "client", c.remote, "err", err)
		c.cancel()
	}
}

// stopWatch ends the watch of the request that has been answered: it stops
// the timer or, if the watch has begun, ends its read and waits for it.
func (c *h1Conn) stopWatch() {
	stopped := c.watchTimer.Stop()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	wasArmed := c.armed
	c.armed = false
	if stopped || !wasArmed {
		return
	}
	for !c.fired || c.watching {
		if c.watching && !c.stopping {
			c.stopping = true
			c.setReadDeadline(aLongTimeAgo)
		}
		c.wcond.Wait()
	}
	if c.stopping {
		c.stopping = false
		c.setReadDeadline(time.Time{})
	}
}

// connReader reads from the connection for the bufio.Reader: it stops at
// a limit while a header is read, first gives back the byte that watch
// read, if any, and ends the requests' context when a read fails.
type connReader struct {
	nc     io.Reader          // the connection, or its raw I/O
	cancel context.CancelFunc // called on a read error, as net/http does
	remain int64              // bytes left before the limit; < 0: no limit
	hit    bool               // the limit stopped a read
	one    [1]byte
	hasOne bool
}

func (cr *connReader) limit(n int64) { cr.remain, cr.hit = n, false }

func (cr *connReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	if cr.hasOne {
		cr.hasOne = false
		p[0] = cr.one[0]
		if cr.remain > 0 {
			cr.remain--
		}
		return 1, nil
	}
	if cr.remain == 0 {
		cr.hit = true
		return 0, io.EOF
	}
	if cr.remain > 0 && int64(len(p)) > cr.remain {
		p = p[:cr.remain]
	}
	n, err := cr.nc.Read(p)
	if cr.remain > 0 {
		cr.remain -= int64(n)
	}
	if err != nil {
		// The connection cannot carry more: the request it carries is
		// over too (a client that left mid-upload).
		cr.cancel()
	}
	return n, err
}

// h1Body is a request body: it sends "100 Continue" before the first read
// if the client asked for it, and notes the end of the body.
type h1Body struct {
	rc  io.ReadCloser
	w   *h1Response
	eof atomic.Bool // read by the handler while the backend's body writer reads
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.eof.Load() {
		return 0, io.EOF
	}
	if w := b.w; w.continueWanted {
		// The backend's body writer reads in a goroutine of its own:
		// contMu orders this with the header that the handler commits.
		w.c.contMu.Lock()
		var err error
		if !w.continueSent && !w.committed {
			w.continueSent = true
			w.c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			err = w.c.bw.Flush()
		}
		w.c.contMu.Unlock()
		if err != nil {
			return 0, err
		}
	}
	n, err := b.rc.Read(p)
	if err == io.EOF {
		b.eof.Store(true)
	}
	return n, err
}

// Close does nothing: the server decides what to do with an unread rest.
func (b *h1Body) Close() error { return nil }

// h1Response is the http.ResponseWriter of one request. The header goes
// out with the first byte of the body, a flush or the end of the handler;
// until then WriteHeader only records the status.
type h1Response struct {
	c      *h1Conn
	req    *http.Request
	header http.Header
	status int
	reason string // the reason phrase, if not the standard one

	wroteHeader    bool  // the status is set
	committed      bool  // the header is in c.bw
	bodyOK         bool  // the response has a body on the wire
	chunked        bool  // the body goes in chunks
	remain         int64 // declared Content-Length left to write, or -1
	closeAfter     bool  // the connection ends with this response
	continueWanted bool  // the client waits for 100 Continue
	continueSent   bool
	err            error // the first write error
}

func (w *h1Response) Header() http.Header { return w.header }

func (w *h1Response) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	if code < 100 || code > 999 {
		panic(fmt.Sprintf("invalid WriteHeader code %v", code))
	}
	if code < 200 {
		return // informational answers are not relayed
	}
	w.wroteHeader = true
	w.status = code
}

// setReason sets the reason phrase of the status line, for a status that
// PHP gave with a phrase of its own.
func (w *h1Response) setReason(reason string) { w.reason = reason }

// commit writes the status line and the header into the buffer, and
// decides how the body is framed. final says the handler has returned
// without writing a body.
func (w *h1Response) commit(final bool) {
	if w.committed {
		return
	}
	if w.continueWanted {
		w.c.contMu.Lock() // see h1Body.Read
		defer w.c.contMu.Unlock()
	}
	w.committed = true
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	h := w.header
	req := w.req
	w.bodyOK = req.Method != http.MethodHead && w.status != http.StatusNoContent && w.status != http.StatusNotModified
	if v := h["Content-Length"]; len(v) > 0 {
		if n, err := strconv.ParseInt(v[0], 10, 64); err == nil && n >= 0 {
			w.remain = n
		} else {
			delete(h, "Content-Length")
		}
	}
	if w.status == http.StatusNoContent {
		delete(h, "Content-Length")
		w.remain = -1
	}
	delete(h, "Transfer-Encoding")
	if final && w.bodyOK && w.remain < 0 {
		h["Content-Length"] = []string{"0"}
		w.remain = 0
	}
	if containsToken(h["Connection"], "close") || w.c.srv.shutdown.Load() {
		w.closeAfter = true
	}
	if !w.closeAfter && req.Body != http.NoBody {
		// A large unread body would not be discarded: say so now.
		if b, ok := req.Body.(*h1Body); ok && !b.eof.Load() && (req.ContentLength < 0 || req.ContentLength > maxDiscard) {
			w.closeAfter = true
		}
	}
	if w.bodyOK && w.remain < 0 {
		if req.ProtoAtLeast(1, 1) {
			w.chunked = true
			h["Transfer-Encoding"] = []string{"chunked"}
		} else {
			w.closeAfter = true // the end of the body is the end of the connection
		}
	}
	switch {
	case w.closeAfter || req.Close:
		h["Connection"] = []string{"close"}
	case !req.ProtoAtLeast(1, 1):
		h["Connection"] = []string{"keep-alive"}
	}
	_, hasDate := h["Date"]

	bw := w.c.bw
	bw.WriteString("HTTP/1.1 ")
	// The status has three digits (WriteHeader checks); written a byte
	// at a time, no buffer escapes for them.
	bw.WriteByte('0' + byte(w.status/100))
	bw.WriteByte('0' + byte(w.status/10%10))
	bw.WriteByte('0' + byte(w.status%10))
	bw.WriteByte(' ')
	if w.reason != "" {
		bw.WriteString(w.reason)
	} else {
		bw.WriteString(http.StatusText(w.status))
	}
	bw.WriteString("\r\n")
	for k, vs := range h {
		for _, v := range vs {
			bw.WriteString(k)
			bw.WriteString(": ")
			writeFieldValue(bw, v)
			bw.WriteString("\r\n")
		}
	}
	if !hasDate {
		// Written here rather than put in h: one map entry and one
		// slice fewer per response.
		bw.WriteString("Date: ")
		bw.WriteString(httpDate())
		bw.WriteString("\r\n")
	}
	bw.WriteString("\r\n")
}

// writeFieldValue writes v with any CR or LF replaced by a space, so that
// no value can start a header field of its own.
func writeFieldValue(bw *outBuf, v string) {
	if strings.IndexAny(v, "\r\n") < 0 {
		bw.WriteString(v)
		return
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\r' || c == '\n' {
			c = ' '
		}
		bw.WriteByte(c)
	}
}

func (w *h1Response) Write(p []byte) (int, error) {
	w.commit(false)
	if w.err != nil {
		return 0, w.err
	}
	if !w.bodyOK {
		if w.req.Method == http.MethodHead {
			return len(p), nil
		}
		return 0, http.ErrBodyNotAllowed
	}
	if len(p) == 0 {
		return 0, nil
	}
	if w.remain >= 0 && int64(len(p)) > w.remain {
		return 0, http.ErrContentLength
	}
	bw := w.c.bw
	if w.chunked {
		var hex [16]byte
		bw.Write(strconv.AppendInt(hex[:0], int64(len(p)), 16))
		bw.WriteString("\r\n")
	}
	n, err := bw.Write(p)
	if err == nil && w.chunked {
		_, err = bw.WriteString("\r\n")
	}
	if w.remain >= 0 {
		w.remain -= int64(n)
	}
	w.err = err
	return n, err
}

// WriteString lets io.WriteString write without a copy.
func (w *h1Response) WriteString(s string) (int, error) {
	return w.Write([]byte(s))
}

// FlushError sends the header, and what is buffered of the body, now;
// http.ResponseController calls it.
func (w *h1Response) FlushError() error {
	w.commit(false)
	if w.err != nil {
		return w.err
	}
	w.err = w.c.bw.Flush()
	return w.err
}

// Flush makes h1Response an http.Flusher.
func (w *h1Response) Flush() { w.FlushError() }

// EnableFullDuplex is what http.ResponseController calls: the server is
// always full duplex, the body can be read while the response is written.
func (w *h1Response) EnableFullDuplex() error { return nil }

// SetReadDeadline lets the handler end a pending read of the body.
func (w *h1Response) SetReadDeadline(t time.Time) error {
	w.c.setReadDeadline(t)
	return nil
}

// SetWriteDeadline bounds the writes of the response.
func (w *h1Response) SetWriteDeadline(t time.Time) error { return w.c.nc.SetWriteDeadline(t) }

// finish ends the response once the handler has returned: the header if
// not sent, the last chunk, and a flush. It returns the first write error,
// or an error if the body fell short of its Content-Length, after which
// the connection cannot carry another response.
func (w *h1Response) finish() error {
	w.commit(true)
	if w.err != nil {
		return w.err
	}
	if w.chunked {
		w.c.bw.WriteString("0\r\n\r\n")
	}
	if w.err = w.c.bw.Flush(); w.err != nil {
		return w.err
	}
	if w.bodyOK && w.remain > 0 {
		return fmt.Errorf("response %d bytes short of its Content-Length", w.remain)
	}
	return nil
}

// httpDate returns the current time in the Date header's format, formatted
// at most once a second.
func httpDate() string {
	now := time.Now()
	sec := now.Unix()
	if d := cachedDate.Load(); d != nil && d.sec == sec {
		return d.s
	}
	d := &dateValue{sec: sec, s: now.UTC().Format(http.TimeFormat)}
	cachedDate.Store(d)
	return d.s
}

type dateValue struct {
	sec int64
	s   string
}

var cachedDate atomic.Pointer[dateValue]

// outBufSize is the size of a connection's output buffer.
const outBufSize = 4096

// outBuf buffers what goes to the client. The header and a small body go
// out in one write; a write larger than the room left goes out together
// with what is buffered in one writev, where a bufio.Writer would fill its
// buffer, write it, then write the rest. Its first error sticks.
type outBuf struct {
	nc  io.Writer
	rio *rawio.Conn // nc's raw I/O, for writev; nil if it has none
	vec [2][]byte   // the writev's buffers, kept here so it allocates nothing
	buf []byte
	err error
}

func (o *outBuf) Reset(nc io.Writer, rio *rawio.Conn) {
	o.nc, o.rio, o.buf, o.err = nc, rio, o.buf[:0], nil
}

func (o *outBuf) Write(p []byte) (int, error) {
	if o.err != nil {
		return 0, o.err
	}
	if len(o.buf)+len(p) <= cap(o.buf) {
		o.buf = append(o.buf, p...)
		return len(p), nil
	}
	if len(o.buf) == 0 {
		n, err := o.nc.Write(p)
		o.err = err
		return n, err
	}
	var err error
	if o.rio != nil {
		o.vec = [2][]byte{o.buf, p}
		_, err = o.rio.Writev(o.vec[:])
		o.vec = [2][]byte{}
	} else {
		bufs := net.Buffers{o.buf, p}
		_, err = bufs.WriteTo(o.nc)
	}
	o.buf = o.buf[:0]
	if err != nil {
		o.err = err
		return 0, err
	}
	return len(p), nil
}

func (o *outBuf) WriteString(s string) (int, error) {
	if o.err == nil && len(o.buf)+len(s) <= cap(o.buf) {
		o.buf = append(o.buf, s...)
		return len(s), nil
	}
	return o.Write([]byte(s))
}

func (o *outBuf) WriteByte(c byte) error {
	if len(o.buf) == cap(o.buf) {
		o.Flush()
	}
	if o.err != nil {
		return o.err
	}
	o.buf = append(o.buf, c)
	return nil
}

// Flush writes what is buffered.
func (o *outBuf) Flush() error {
	if o.err == nil && len(o.buf) > 0 {
		_, o.err = o.nc.Write(o.buf)
		o.buf = o.buf[:0]
	}
	return o.err
}
