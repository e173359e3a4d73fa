package fastcgi

// server.go is the responder side of the protocol, which the gateway's
// FastCGI front uses to take requests from Apache or nginx: it reads
// records, gathers params, streams STDIN to the handler, answers
// FCGI_GET_VALUES and unknown management records itself, cancels a request
// on FCGI_ABORT_REQUEST, and runs multiplexed requests side by side.
//
// One goroutine at a time holds the reader role of a connection: it reads
// the records and hands each request to a handler. A request that is the
// only one on its connection, with nothing after it (the way Apache and
// nginx send: one request at a time), runs on the reader's own goroutine,
// which saves a goroutine and the wake-ups of handing the request over.
// Should such a handler run for longer than inlineGrace, or read more
// STDIN than has arrived, the reader role moves on to a new goroutine, so
// that its STDIN, ABORT_REQUEST, GET_VALUES, multiplexed requests and a
// broken connection are still read while it runs.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"

	"github.com/fcgigate/fcgigate/internal/rawio"
)

// ServerRequest is one request received by a Server.
type ServerRequest struct {
	// ID is the request id the client chose.
	ID uint16
	// Params are the params as received, in order.
	Params []Param
	// Stdin streams the request body; it returns io.EOF after the empty
	// STDIN record.
	Stdin io.Reader
	// KeepConn reports whether the client asked to keep the connection.
	KeepConn bool

	ctx context.Context
}

// Context is cancelled when the client aborts the request
// (FCGI_ABORT_REQUEST), the connection closes, or the server stops.
func (r *ServerRequest) Context() context.Context { return r.ctx }

// Param returns the value of the first param named name.
func (r *ServerRequest) Param(name string) string {
	for _, p := range r.Params {
		if p.Name == name {
			return p.Value
		}
	}
	return ""
}

// Handler answers a request. Its return ends the request with END_REQUEST
// carrying the returned application status.
type Handler interface {
	ServeFastCGI(w *ResponseWriter, r *ServerRequest) (appStatus int)
}

// HandlerFunc adapts a function to Handler.
type HandlerFunc func(w *ResponseWriter, r *ServerRequest) int

// ServeFastCGI calls f.
func (f HandlerFunc) ServeFastCGI(w *ResponseWriter, r *ServerRequest) int { return f(w, r) }

// ServerConfig configures a Server. The zero value works.
type ServerConfig struct {
	// MaxConns, MaxReqs and Multiplex answer FCGI_GET_VALUES
	// (FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS). Defaults 1000,
	// 1000 and true.
	MaxConns, MaxReqs int
	NoMultiplex       bool

	// MaxParamsBytes bounds the params of one request. Default 1 MiB.
	MaxParamsBytes int

	// ReadTimeout bounds the wait for each record from the client while
	// a request is being received, and each write to it; an idle
	// keep-alive connection waits up to IdleTimeout for its next request,
	// then is closed cleanly (ServeConn returns nil). Defaults 60s and 5m.
	ReadTimeout, IdleTimeout time.Duration
}

func (c *ServerConfig) setDefaults() {
	if c.MaxConns <= 0 {
		c.MaxConns = 1000
	}
	if c.MaxReqs <= 0 {
		c.MaxReqs = 1000
	}
	if c.MaxParamsBytes <= 0 {
		c.MaxParamsBytes = 1 << 20
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 60 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 5 * time.Minute
	}
}

// Server serves FastCGI connections.
type Server struct {
	cfg     ServerConfig
	handler Handler

	mu       sync.Mutex // protects conns, draining
	conns    map[*serverConn]struct{}
	draining bool
}

// NewServer returns a Server that passes each request to h.
func NewServer(cfg ServerConfig, h Handler) *Server {
	cfg.setDefaults()
	return &Server{cfg: cfg, handler: h}
}

// ServeConn serves requests on nc until the client closes it, a protocol
// error, or ctx is done; it then closes nc and waits for its handlers to
// return. A protocol error is returned wrapping ErrProtocol; a clean close
// returns nil.
func (s *Server) ServeConn(ctx context.Context, nc net.Conn) error {
	ctx, cancel := context.WithCancel(ctx)
	rw, _ := rawio.Wrap(nc)
	br := bufio.NewReaderSize(rw, 16<<10)
	sc := &serverConn{s: s, nc: nc, w: rw, br: br, rr: &recordReader{r: br}, ctx: ctx,
		reqs: map[uint16]*serverReq{}, readerDone: make(chan error, 1)}
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	s.track(sc)
	defer s.untrack(sc)
	err, movedOn := sc.serve()
	if movedOn {
		err = <-sc.readerDone
	}
	sc.stopGrace()
	if err == io.EOF {
		// The client sent all it will send: let requests whose input is
		// complete answer before the connection closes.
		sc.wg.Wait()
		err = nil
	}
	cancel()
	sc.abortAll() // requests still running lose their input with the connection
	stop()
	nc.Close()
	sc.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// Drain makes every connection, served now or later, close as soon as no
// request is in flight on it: an idle one at once, a busy one after the
// END_REQUEST of its last request, whatever FCGI_KEEP_CONN asked for.
// Requests in flight run to their end. ServeConn returns nil for a
// connection it closes so. Drain may be called more than once.
func (s *Server) Drain() {
	s.mu.Lock()
	s.draining = true
	conns := make([]*serverConn, 0, len(s.conns))
	for sc := range s.conns {
		conns = append(conns, sc)
	}
	s.mu.Unlock()
	for _, sc := range conns {
		sc.closeIfIdle()
	}
}

func (s *Server) track(sc *serverConn) {
	s.mu.Lock()
	if s.conns == nil {
		s.conns = map[*serverConn]struct{}{}
	}
	s.conns[sc] = struct{}{}
	draining := s.draining
	s.mu.Unlock()
	if draining {
		sc.closeIfIdle()
	}
}

func (s *Server) untrack(sc *serverConn) {
	s.mu.Lock()
	delete(s.conns, sc)
	s.mu.Unlock()
}

func (s *Server) isDraining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining
}

// closeIfIdle closes the connection if no request is in flight on it.
// Under mu, so that a request cannot begin between the check and the close.
func (sc *serverConn) closeIfIdle() {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	if len(sc.reqs) == 0 {
		sc.nc.Close()
	}
}

// serverConn is the state of one served connection.
type serverConn struct {
	s   *Server
	nc  net.Conn
	w   io.Writer // nc, or its raw I/O (internal/rawio); under wmu
	br  *bufio.Reader
	rr  *recordReader // reads br; used by the reader only
	ctx context.Context
	wg  sync.WaitGroup // running handlers, and readers after the first

	// inline is a request that the reader is to run itself, set by start
	// for serve; used by the reader only.
	inline *inlineReq
	// readerDone carries serve's result from the reader that ended the
	// connection, once the role has left ServeConn's goroutine.
	readerDone chan error

	imu sync.Mutex // protects running, grace
	// running is the inline request that the reader is running, if any:
	// moveOn hands the reader role on while it runs.
	running *inlineReq
	grace   *time.Timer // calls moveOn; made by the first inline request

	wmu  sync.Mutex // protects writes to nc, done, wdl
	done bool       // the connection is to close once no request is left
	// wdl is the write deadline as last set on nc, moved only when it
	// strays (see refreshDeadline); rdl is the same for reads.
	wdl time.Time

	dmu sync.Mutex // protects lingerUntil, rdl; never held while waiting
	// lingerUntil is set once the server has stopped writing (closeWrite):
	// what the client still sends is read and dropped until it closes its
	// side, or until then.
	lingerUntil time.Time
	rdl         time.Time

	mu   sync.Mutex // protects reqs
	reqs map[uint16]*serverReq
}

// serverReq is a request being received or served.
type serverReq struct {
	id       uint16
	keepConn bool
	params   []byte
	started  bool           // its params have ended
	stdin    *io.PipeWriter // streams STDIN to its handler
	cancel   context.CancelFunc
}

// serve reads and handles records until the connection ends, and returns
// why; or, once the reader role has moved on to another goroutine while
// this one ran a request inline, it returns movedOn, and that goroutine
// will end the connection.
func (sc *serverConn) serve() (err error, movedOn bool) {
	for {
		if !sc.receiving() && sc.br.Buffered() == 0 && !sc.readDeadline(sc.s.cfg.IdleTimeout) {
			// No request is being received: the wait is for the next
			// one. A keep-alive connection on which nothing comes for
			// IdleTimeout, with no request in flight, is closed cleanly;
			// while handlers run, the wait goes on. Once a record has
			// begun, ReadTimeout bounds the wait for the rest.
			if _, err := sc.br.Peek(1); errors.Is(err, os.ErrDeadlineExceeded) {
				if sc.idle() {
					return nil, false
				}
				continue
			}
		}
		lingering := sc.readDeadline(sc.s.cfg.ReadTimeout)
		rec, err := sc.rr.next()
		if lingering || sc.lingering() {
			if err != nil {
				return nil, false // the client has closed its side, or taken too long to
			}
			continue
		}
		if err == io.EOF {
			return sc.endOfInput(), false
		}
		if err != nil {
			sc.abortAll()
			return err, false
		}
		if err := sc.handle(rec); err != nil {
			sc.abortAll()
			return err, false
		}
		if ir := sc.inline; ir != nil {
			sc.inline = nil
			if sc.runInline(ir) {
				return nil, true
			}
		}
	}
}

// inlineGrace is how long a request may run on the reader's goroutine
// before the reader role moves on to a new one: long enough for most
// quick PHP answers to end first, short enough that an ABORT_REQUEST or a
// multiplexed request is not held up noticeably.
const inlineGrace = 10 * time.Millisecond

// inlineReq is a request that the reader runs itself (see start).
type inlineReq struct {
	run     func()
	movedOn bool // the reader role moved on while it ran; under imu
}

// runInline runs ir on the reader's goroutine, and reports whether the
// reader role moved on to another goroutine meanwhile.
func (sc *serverConn) runInline(ir *inlineReq) (movedOn bool) {
	sc.imu.Lock()
	sc.running = ir
	if sc.grace == nil {
		sc.grace = time.AfterFunc(inlineGrace, sc.moveOn)
	} else {
		sc.grace.Reset(inlineGrace)
	}
	sc.imu.Unlock()
	ir.run()
	sc.imu.Lock()
	defer sc.imu.Unlock()
	if ir.movedOn {
		return true // the timer is the new reader's now
	}
	sc.running = nil
	sc.grace.Stop()
	return false
}

// stopGrace stops the grace timer of a connection that is ending.
func (sc *serverConn) stopGrace() {
	sc.imu.Lock()
	defer sc.imu.Unlock()
	sc.running = nil
	if sc.grace != nil {
		sc.grace.Stop()
	}
}

// moveOn hands the reader role to a new goroutine if the reader is still
// running a request inline. It runs on the grace timer; a late call, after
// the request ended, finds nothing to do.
func (sc *serverConn) moveOn() {
	sc.imu.Lock()
	defer sc.imu.Unlock()
	if sc.running == nil {
		return
	}
	sc.running.movedOn = true
	sc.running = nil
	sc.wg.Add(1)
	go func() { // the reader now: ends with the connection, or moves on in turn
		defer sc.wg.Done()
		if err, movedOn := sc.serve(); !movedOn {
			sc.readerDone <- err
		}
	}()
}

// lingerTimeout bounds the wait, once the server has stopped writing, for
// the client to close its side.
const lingerTimeout = time.Second

// readDeadline sets the deadline of the next read: timeout from now, or
// the end of the linger. It reports whether the connection is lingering.
func (sc *serverConn) readDeadline(timeout time.Duration) (lingering bool) {
	sc.dmu.Lock()
	defer sc.dmu.Unlock()
	if !sc.lingerUntil.IsZero() {
		if !sc.rdl.Equal(sc.lingerUntil) {
			sc.rdl = sc.lingerUntil
			sc.nc.SetReadDeadline(sc.rdl)
		}
		return true
	}
	refreshDeadline(sc.nc.SetReadDeadline, &sc.rdl, timeout)
	return false
}

func (sc *serverConn) lingering() bool {
	sc.dmu.Lock()
	defer sc.dmu.Unlock()
	return !sc.lingerUntil.IsZero()
}

// closeWrite ends the connection from the server's side once its last
// request has ended: it sends FIN, and serve reads and drops what the
// client still sends (the end of a STDIN that the handler did not wait
// for) until the client closes or lingerTimeout passes. Closing at once
// with that input unread would reset the connection, and the client could
// lose the answer it has not read yet.
func (sc *serverConn) closeWrite() {
	sc.wmu.Lock() // no write is under way as the write side closes
	defer sc.wmu.Unlock()
	sc.dmu.Lock()
	defer sc.dmu.Unlock()
	if !sc.lingerUntil.IsZero() {
		return
	}
	sc.lingerUntil = time.Now().Add(lingerTimeout)
	if cw, ok := sc.nc.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		sc.rdl = sc.lingerUntil
		sc.nc.SetReadDeadline(sc.rdl)
		return
	}
	sc.nc.Close()
}

// endIfDone begins the close of a connection that has no request left and
// is to close: its last request asked not to keep it, or the server drains.
func (sc *serverConn) endIfDone() {
	if !sc.idle() {
		return
	}
	sc.wmu.Lock()
	done := sc.done
	sc.wmu.Unlock()
	if done || sc.s.isDraining() {
		sc.closeWrite()
	}
}

// receiving reports whether a request is still being received: its params
// or its STDIN have not ended.
func (sc *serverConn) receiving() bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for _, r := range sc.reqs {
		if !r.started || r.stdin != nil {
			return true
		}
	}
	return false
}

func (sc *serverConn) idle() bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return len(sc.reqs) == 0
}

func (sc *serverConn) handle(rec record) error {
	h := rec.h
	if h.ID == 0 {
		return sc.management(rec)
	}
	sc.mu.Lock()
	req := sc.reqs[h.ID]
	sc.mu.Unlock()
	if req == nil && h.Type != typeBeginRequest {
		// While a request id is inactive, the application ignores its
		// records (FastCGI 1.0, 3.3): a client may send the end of STDIN
		// after the END_REQUEST of an answer that did not wait for it, or
		// an ABORT_REQUEST that crossed it.
		return nil
	}
	switch h.Type {
	case typeBeginRequest:
		if req != nil {
			return protocolError("BEGIN_REQUEST for request %d, which is already active", h.ID)
		}
		if len(rec.Content) != 8 {
			return protocolError("BEGIN_REQUEST with %d content bytes, want 8", len(rec.Content))
		}
		role := uint16(rec.Content[0])<<8 | uint16(rec.Content[1])
		keep := rec.Content[2]&flagKeepConn != 0
		if role != roleResponder {
			return sc.endRequest(h.ID, 0, statusUnknownRole, keep)
		}
		if sc.s.cfg.NoMultiplex && !sc.idle() {
			return sc.endRequest(h.ID, 0, statusCantMultiplex, keep)
		}
		sc.mu.Lock()
		sc.reqs[h.ID] = &serverReq{id: h.ID, keepConn: keep}
		sc.mu.Unlock()
		return nil
	case typeAbortRequest:
		if !req.started {
			sc.remove(h.ID)
			return sc.endRequest(h.ID, 0, statusRequestComplete, req.keepConn)
		}
		req.cancel()
		return nil
	case typeParams:
		if req.started {
			return protocolError("PARAMS for request %d after its params ended", h.ID)
		}
		if len(rec.Content) == 0 {
			return sc.start(req)
		}
		if len(req.params)+len(rec.Content) > sc.s.cfg.MaxParamsBytes {
			return protocolError("params of request %d exceed %d bytes", h.ID, sc.s.cfg.MaxParamsBytes)
		}
		req.params = append(req.params, rec.Content...)
		return nil
	case typeStdin:
		if !req.started {
			return protocolError("STDIN for request %d before its params ended", h.ID)
		}
		if req.stdin == nil {
			return nil // the handler is done with stdin; drop the rest
		}
		if len(rec.Content) == 0 {
			req.stdin.Close()
			req.stdin = nil
			return nil
		}
		// Blocks until the handler reads: a handler that stops reading
		// holds up only its own connection, and the read deadline ends
		// the wait for a client that stalls.
		if _, err := req.stdin.Write(rec.Content); err != nil {
			req.stdin = nil // the handler closed stdin
		}
		return nil
	case typeData:
		return nil // the filter role's second stream; a responder ignores it
	default:
		return protocolError("unexpected %s record for request %d", h.Type, h.ID)
	}
}

// management answers records with request id 0.
func (sc *serverConn) management(rec record) error {
	if rec.h.Type != typeGetValues {
		return sc.writeRecords(func(b []byte) []byte {
			body := [8]byte{uint8(rec.h.Type)}
			return appendRecordID(b, typeUnknownType, 0, body[:])
		})
	}
	ps, err := DecodeParams(rec.Content)
	if err != nil {
		return err
	}
	mpxs := "1"
	if sc.s.cfg.NoMultiplex {
		mpxs = "0"
	}
	known := map[string]string{
		"FCGI_MAX_CONNS":  fmt.Sprint(sc.s.cfg.MaxConns),
		"FCGI_MAX_REQS":   fmt.Sprint(sc.s.cfg.MaxReqs),
		"FCGI_MPXS_CONNS": mpxs,
	}
	var out []byte
	for _, p := range ps {
		if v, ok := known[p.Name]; ok {
			out = AppendParam(out, p.Name, v)
		}
	}
	return sc.writeRecords(func(b []byte) []byte { return appendRecordID(b, typeGetValuesResult, 0, out) })
}

// start runs the handler of a request whose params are complete. When it
// is the only request on the connection and nothing else has arrived
// after it, it runs on the reader's goroutine (see inlineReq), with its
// whole STDIN if that has arrived, as Apache and nginx send a request
// without a body; else with its STDIN streamed to it: Apache sends the
// end of STDIN in a write of its own, which a handler that does not read
// STDIN (the request has no body) never waits for. Otherwise the handler
// runs on a goroutine of its own, with its STDIN streamed to it.
func (sc *serverConn) start(req *serverReq) error {
	ps, err := DecodeParams(req.params)
	if err != nil {
		return err
	}
	req.params = nil
	req.started = true
	ctx, cancel := context.WithCancel(sc.ctx)
	req.cancel = cancel
	sr := &ServerRequest{ID: req.id, Params: ps, KeepConn: req.keepConn, ctx: ctx}
	w := &ResponseWriter{sc: sc, id: req.id}
	var pr *io.PipeReader
	run := func() {
		defer cancel()
		status := sc.s.handler.ServeFastCGI(w, sr)
		if pr != nil {
			pr.CloseWithError(errHandlerDone)
		}
		sc.remove(req.id)
		if err := w.end(status, req.keepConn); err != nil {
			sc.nc.Close()
		}
	}
	stdin, whole := sc.takeStdin(req.id)
	inline := sc.br.Buffered() == 0 && sc.only(req.id)
	switch {
	case whole:
		sr.Stdin = stdin
	case inline:
		pr, req.stdin = io.Pipe()
		sr.Stdin = streamedStdin{sc, pr}
	default:
		pr, req.stdin = io.Pipe()
		sr.Stdin = pr
	}
	if inline {
		sc.inline = &inlineReq{run: run}
		return nil
	}
	sc.wg.Add(1)
	go func() { // ends when the handler returns
		defer sc.wg.Done()
		run()
	}()
	return nil
}

var errHandlerDone = errors.New("fastcgi: handler returned")

// streamedStdin is the STDIN of a request that runs on the reader's
// goroutine before its STDIN has all arrived: a Read first hands the
// reader role on (see moveOn), so that the rest is read from the
// connection and streamed to it through the pipe.
type streamedStdin struct {
	sc *serverConn
	*io.PipeReader
}

func (s streamedStdin) Read(p []byte) (int, error) {
	s.sc.moveOn()
	return s.PipeReader.Read(p)
}

// takeStdin takes from the read buffer the whole STDIN of request id, if
// it is there, up to its empty record, and nothing else is: what the
// client sent so far ends with it. It returns a reader of the content.
func (sc *serverConn) takeStdin(id uint16) (io.Reader, bool) {
	b, _ := sc.br.Peek(sc.br.Buffered())
	var body []byte
	for off := 0; ; {
		if len(b)-off < headerLen {
			return nil, false
		}
		var h header
		h.decode(b[off:])
		end := off + headerLen + int(h.ContentLength) + int(h.PaddingLength)
		if h.Version != version1 || h.Type != typeStdin || h.ID != id || end > len(b) {
			return nil, false
		}
		if h.ContentLength == 0 {
			if end != len(b) {
				return nil, false
			}
			break
		}
		body = append(body, b[off+headerLen:off+headerLen+int(h.ContentLength)]...)
		off = end
	}
	sc.br.Discard(len(b))
	return stdinOf(body), true
}

// stdinOf returns a reader of a whole STDIN.
func stdinOf(body []byte) io.Reader {
	if len(body) == 0 {
		return noStdin{}
	}
	return bytes.NewReader(body)
}

// noStdin is the STDIN of a request that sent none.
type noStdin struct{}

func (noStdin) Read([]byte) (int, error) { return 0, io.EOF }

// only reports whether request id is the only one on the connection.
func (sc *serverConn) only(id uint16) bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return len(sc.reqs) == 1 && sc.reqs[id] != nil
}

func (sc *serverConn) remove(id uint16) {
	sc.mu.Lock()
	delete(sc.reqs, id)
	sc.mu.Unlock()
}

// endOfInput handles a client that closed its side between records:
// requests still waiting for params are a protocol error, and those still
// reading STDIN see it end early. It returns io.EOF when every request
// already has its whole input.
func (sc *serverConn) endOfInput() error {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	var err error = io.EOF
	for _, r := range sc.reqs {
		if !r.started {
			err = protocolError("connection closed before the params of request %d ended", r.id)
		}
		if r.stdin != nil {
			r.stdin.CloseWithError(io.ErrUnexpectedEOF)
			err = protocolError("connection closed inside the STDIN of request %d", r.id)
		}
	}
	if err != io.EOF {
		for _, r := range sc.reqs {
			if r.cancel != nil {
				r.cancel()
			}
		}
	}
	return err
}

// abortAll cancels every request of a connection that ended.
func (sc *serverConn) abortAll() {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for _, r := range sc.reqs {
		if r.cancel != nil {
			r.cancel()
		}
		if r.stdin != nil {
			r.stdin.CloseWithError(io.ErrUnexpectedEOF)
		}
	}
}

func (sc *serverConn) endRequest(id uint16, appStatus int, status uint8, keep bool) error {
	var b [headerLen + 8]byte
	return sc.endAfter(b[:0], id, appStatus, status, keep)
}

// endAfter writes pending, records of the request not sent yet, and its
// END_REQUEST, in one write.
func (sc *serverConn) endAfter(pending []byte, id uint16, appStatus int, status uint8, keep bool) error {
	var body [8]byte
	binary.BigEndian.PutUint32(body[:], uint32(appStatus))
	body[4] = status
	err := sc.write(appendRecordID(pending, typeEndRequest, id, body[:]))
	if err != nil {
		return err
	}
	if !keep {
		sc.wmu.Lock()
		sc.done = true
		sc.wmu.Unlock()
	}
	sc.endIfDone()
	return nil
}

// write writes b under the write lock.
func (sc *serverConn) write(b []byte) error {
	sc.wmu.Lock()
	defer sc.wmu.Unlock()
	refreshDeadline(sc.nc.SetWriteDeadline, &sc.wdl, sc.s.cfg.ReadTimeout)
	_, err := sc.w.Write(b)
	return err
}

// writeRecords writes what build appends, under the write lock.
func (sc *serverConn) writeRecords(build func([]byte) []byte) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	b := build((*bp)[:0])
	sc.wmu.Lock()
	defer sc.wmu.Unlock()
	refreshDeadline(sc.nc.SetWriteDeadline, &sc.wdl, sc.s.cfg.ReadTimeout)
	_, err := sc.w.Write(b)
	return err
}

func appendRecordID(b []byte, t recType, id uint16, content []byte) []byte {
	var h header
	h.init(t, id, len(content))
	var hb [headerLen]byte
	h.encode(hb[:])
	b = append(b, hb[:]...)
	b = append(b, content...)
	var pad [8]byte
	return append(b, pad[:h.PaddingLength]...)
}

// ResponseWriter writes a request's STDOUT and STDERR streams, in records
// of at most 65535 bytes. Writes are buffered, up to about 128 KiB, and
// sent by Flush or when the handler returns, together with END_REQUEST:
// an answer of up to 128 KiB costs one write to the connection. A handler
// that streams calls Flush when it has no more to send for now. A
// ResponseWriter belongs to its handler's goroutine.
//
// END_REQUEST ends the streams: as php-fpm does, the empty STDOUT and
// STDERR records that the specification puts before it are not sent.
// Apache, nginx and libfcgi's clients take END_REQUEST for the end of the
// answer, since php-fpm is what they talk to; and Apache's mod_proxy_fcgi
// pays a poll and a read for each record, so the empty one cost it about
// a tenth of its system calls per request.
type ResponseWriter struct {
	sc  *serverConn
	id  uint16
	bp  *[]byte // from bufPool, or bigBufPool once grown, while records are buffered
	buf []byte  // records not sent yet, in *bp's array
	err error   // the first failed write; later ones fail with it
}

// Write buffers p as STDOUT.
func (w *ResponseWriter) Write(p []byte) (int, error) {
	return w.write(typeStdout, p)
}

// Stderr buffers p as STDERR.
func (w *ResponseWriter) Stderr(p []byte) (int, error) {
	return w.write(typeStderr, p)
}

// Flush sends what is buffered.
func (w *ResponseWriter) Flush() error {
	if w.err == nil && len(w.buf) > 0 {
		w.err = w.sc.write(w.buf)
		w.buf = w.buf[:0]
	}
	return w.err
}

// Abort closes the connection without ending the request, for a handler
// whose output was cut short: without END_REQUEST the client cannot take
// what it got for the whole answer. What is still buffered is dropped. The
// other requests on the connection end with it. The handler should return
// soon after.
func (w *ResponseWriter) Abort() {
	w.buf = w.buf[:0]
	w.sc.nc.Close()
}

func (w *ResponseWriter) write(t recType, p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), maxContent)
		if err := w.room(headerLen + k + 7); err != nil { // a record pads to 8 bytes
			return n, err
		}
		w.buf = appendRecordID(w.buf, t, w.id, p[:k])
		n += k
		p = p[k:]
	}
	return n, w.err
}

// bigBufPool holds the buffers of answers that outgrow one from bufPool:
// room for two full records and the END_REQUEST after them.
var bigBufPool = sync.Pool{New: func() any { b := make([]byte, bigBufSize); return &b }}

const bigBufSize = 2*(headerLen+maxContent+8) + headerLen + 8

// room makes room for n more bytes in the buffer: a buffer from bufPool
// grows once into one from bigBufPool, then what it holds is sent.
func (w *ResponseWriter) room(n int) error {
	if w.bp == nil {
		w.bp = bufPool.Get().(*[]byte)
		w.buf = (*w.bp)[:0]
	}
	if len(w.buf)+n <= cap(w.buf) {
		return w.err
	}
	if cap(w.buf) < bigBufSize && len(w.buf)+n <= bigBufSize {
		big := bigBufPool.Get().(*[]byte)
		w.buf = append((*big)[:0], w.buf...)
		bufPool.Put(w.bp)
		w.bp = big
		return w.err
	}
	return w.Flush()
}

// end sends what is buffered and END_REQUEST, in one write, and gives the
// buffer back.
func (w *ResponseWriter) end(appStatus int, keep bool) error {
	defer func() {
		if w.bp != nil {
			if cap(*w.bp) == bigBufSize {
				bigBufPool.Put(w.bp)
			} else {
				bufPool.Put(w.bp)
			}
			w.bp, w.buf = nil, nil
		}
	}()
	if w.err != nil {
		return w.err
	}
	var small [headerLen + 8]byte
	pending := small[:0]
	if w.bp != nil {
		if err := w.room(len(small)); err != nil {
			return err
		}
		pending = w.buf
	}
	return w.sc.endAfter(pending, w.id, appStatus, statusRequestComplete, keep)
}
