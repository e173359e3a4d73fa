package fastcgi

// server.go is the responder side of the protocol, which the gateway's
// FastCGI front uses to take requests from Apache or nginx: it reads
// records, gathers params, streams STDIN to the handler, answers
// FCGI_GET_VALUES and unknown management records itself, cancels a request
// on FCGI_ABORT_REQUEST, and runs multiplexed requests side by side.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
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
	// a request is being received; an idle keep-alive connection waits up
	// to IdleTimeout. Defaults 60s and 5m.
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
	sc := &serverConn{s: s, nc: nc, br: bufio.NewReaderSize(nc, 16<<10), ctx: ctx, reqs: map[uint16]*serverReq{}}
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	err := sc.serve()
	if err == io.EOF {
		// The client sent all it will send: let requests whose input is
		// complete answer before the connection closes.
		sc.wg.Wait()
		err = nil
	}
	cancel()
	stop()
	nc.Close()
	sc.wg.Wait()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// serverConn is the state of one served connection.
type serverConn struct {
	s   *Server
	nc  net.Conn
	br  *bufio.Reader
	ctx context.Context
	wg  sync.WaitGroup // running handlers

	wmu  sync.Mutex // protects writes to nc and closing
	done bool       // the connection is to close once no request is left

	mu   sync.Mutex // protects reqs
	reqs map[uint16]*serverReq
}

// serverReq is a request being received or served.
type serverReq struct {
	id       uint16
	keepConn bool
	params   []byte
	started  bool
	stdin    *io.PipeWriter
	cancel   context.CancelFunc
}

func (sc *serverConn) serve() error {
	rr := &recordReader{r: sc.br}
	for {
		timeout := sc.s.cfg.ReadTimeout
		if sc.idle() {
			timeout = sc.s.cfg.IdleTimeout
		}
		sc.nc.SetReadDeadline(time.Now().Add(timeout))
		rec, err := rr.next()
		if err == io.EOF {
			return sc.endOfInput()
		}
		if err != nil {
			sc.abortAll()
			return err
		}
		if err := sc.handle(rec); err != nil {
			sc.abortAll()
			return err
		}
		if sc.finished() {
			return nil
		}
	}
}

func (sc *serverConn) idle() bool {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return len(sc.reqs) == 0
}

// finished reports a connection whose last request asked not to keep it.
func (sc *serverConn) finished() bool {
	sc.wmu.Lock()
	defer sc.wmu.Unlock()
	return sc.done && sc.idle()
}

func (sc *serverConn) handle(rec record) error {
	h := rec.h
	if h.ID == 0 {
		return sc.management(rec)
	}
	sc.mu.Lock()
	req := sc.reqs[h.ID]
	sc.mu.Unlock()
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
		if req == nil {
			return nil // the request already ended; the abort crossed its END_REQUEST
		}
		if !req.started {
			sc.remove(h.ID)
			return sc.endRequest(h.ID, 0, statusRequestComplete, req.keepConn)
		}
		req.cancel()
		return nil
	case typeParams:
		if req == nil {
			return protocolError("PARAMS for request %d, which was not begun", h.ID)
		}
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
		if req == nil {
			return protocolError("STDIN for request %d, which was not begun", h.ID)
		}
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

// start runs the handler of a request whose params are complete.
func (sc *serverConn) start(req *serverReq) error {
	ps, err := DecodeParams(req.params)
	if err != nil {
		return err
	}
	req.params = nil
	req.started = true
	pr, pw := io.Pipe()
	req.stdin = pw
	ctx, cancel := context.WithCancel(sc.ctx)
	req.cancel = cancel
	sr := &ServerRequest{ID: req.id, Params: ps, Stdin: pr, KeepConn: req.keepConn, ctx: ctx}
	w := &ResponseWriter{sc: sc, id: req.id}
	sc.wg.Add(1)
	go func() { // ends when the handler returns
		defer sc.wg.Done()
		defer cancel()
		status := sc.s.handler.ServeFastCGI(w, sr)
		pr.CloseWithError(errHandlerDone)
		w.closeStreams()
		sc.remove(req.id)
		if err := sc.endRequest(req.id, status, statusRequestComplete, req.keepConn); err != nil || !req.keepConn {
			sc.nc.Close()
		}
	}()
	return nil
}

var errHandlerDone = errors.New("fastcgi: handler returned")

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
	err := sc.writeRecords(func(b []byte) []byte {
		return appendRecordID(b, typeEndRequest, id, endRequestBody(uint32(appStatus), status))
	})
	if !keep {
		sc.wmu.Lock()
		sc.done = true
		sc.wmu.Unlock()
	}
	return err
}

// writeRecords writes what build appends, under the write lock.
func (sc *serverConn) writeRecords(build func([]byte) []byte) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	b := build((*bp)[:0])
	sc.wmu.Lock()
	defer sc.wmu.Unlock()
	sc.nc.SetWriteDeadline(time.Now().Add(sc.s.cfg.ReadTimeout))
	_, err := sc.nc.Write(b)
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

// ResponseWriter writes a request's STDOUT and STDERR streams. Writes are
// sent at once, split into records of at most 65535 bytes.
type ResponseWriter struct {
	sc          *serverConn
	id          uint16
	wroteStdout bool
	wroteStderr bool
}

// Write sends p as STDOUT.
func (w *ResponseWriter) Write(p []byte) (int, error) {
	w.wroteStdout = w.wroteStdout || len(p) > 0
	return w.write(typeStdout, p)
}

// Stderr sends p as STDERR.
func (w *ResponseWriter) Stderr(p []byte) (int, error) {
	w.wroteStderr = w.wroteStderr || len(p) > 0
	return w.write(typeStderr, p)
}

func (w *ResponseWriter) write(t recType, p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := min(len(p), maxContent)
		if err := w.sc.writeRecords(func(b []byte) []byte { return appendRecordID(b, t, w.id, p[:k]) }); err != nil {
			return n, err
		}
		n += k
		p = p[k:]
	}
	return n, nil
}

// closeStreams ends the streams that were written to with an empty record.
func (w *ResponseWriter) closeStreams() {
	if w.wroteStdout {
		w.sc.writeRecords(func(b []byte) []byte { return appendRecordID(b, typeStdout, w.id, nil) })
	}
	if w.wroteStderr {
		w.sc.writeRecords(func(b []byte) []byte { return appendRecordID(b, typeStderr, w.id, nil) })
	}
}
