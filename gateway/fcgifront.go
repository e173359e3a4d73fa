package gateway

// fcgifront.go is the FastCGI front: fcgigate as the FastCGI server that a
// web server sends PHP requests to (Apache's SetHandler
// "proxy:fcgi://lb-address:9000", nginx's fastcgi_pass), in front of the
// same pools, balancer and retries as the HTTP front. The web server has
// already turned the HTTP request into CGI params, so they pass through as
// received, and so does the answer: STDOUT, CGI header included, record by
// record, STDERR as STDERR, and the application status.

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
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fcgigate/fcgigate/fastcgi"
)

// fcgiFront is the FastCGI front's state in a Gateway.
type fcgiFront struct {
	refused atomic.Uint64 // clients closed at accept: not in AllowedClients
}

// RefusedClients returns how many connections the FastCGI front has closed
// at accept because the client was not in AllowedClients.
func (g *Gateway) RefusedClients() uint64 { return g.front.refused.Load() }

// ServeFastCGI serves the FastCGI front on ln until ctx is done: the
// responder role, with keep-alive connections and multiplexed requests,
// FCGI_GET_VALUES and FCGI_ABORT_REQUEST. A client whose address is not in
// AllowedClients is closed at accept, logged and counted (RefusedClients);
// a client that breaks the protocol has its connection closed, with a log
// line. When ctx is done it stops accepting, closes idle connections, and
// each busy one once its requests have ended; it waits up to drain for
// that, then cuts off what is left, and returns nil. A failure of ln is
// returned. ln is closed on return.
func (g *Gateway) ServeFastCGI(ctx context.Context, ln net.Listener, drain time.Duration) error {
	defer ln.Close()
	allow, err := parseAllowList(g.cfg.AllowedClients)
	if err != nil {
		return fmt.Errorf("gateway: allowed_clients: %w", err) // New has validated it
	}
	// Connections run under base, not ctx: ctx ending starts the drain,
	// base ending (when the drain times out) cuts off what is left.
	base, cutOff := context.WithCancel(context.WithoutCancel(ctx))
	defer cutOff()
	srv := fastcgi.NewServer(fastcgi.ServerConfig{
		ReadTimeout: g.cfg.FastCGIReadTimeout,
		IdleTimeout: g.cfg.FastCGIIdleTimeout,
	}, fastcgi.HandlerFunc(g.serveFastCGIRequest))

	var conns sync.WaitGroup // one per connection being served
	accepted := make(chan error, 1)
	go func() { // returns once ln is closed or fails
		accepted <- g.acceptFastCGI(ctx, base, ln, allow, srv, &conns)
	}()
	select {
	case err := <-accepted:
		cutOff()
		conns.Wait()
		return fmt.Errorf("gateway: serve fastcgi %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	ln.Close()
	<-accepted
	srv.Drain()
	closed := make(chan struct{})
	go func() { // ends once every connection is closed; cutOff below makes sure
		conns.Wait()
		close(closed)
	}()
	timer := time.NewTimer(drain)
	defer timer.Stop()
	select {
	case <-closed:
	case <-timer.C:
		g.log.Warn("fastcgi drain timed out: cutting off the requests left", "timeout", drain)
		cutOff()
		<-closed
	}
	return nil
}

// acceptFastCGI accepts connections on ln and serves each allowed one
// under base in a goroutine counted in conns. It returns nil once ln is
// closed, and the error of a listener that fails otherwise. A failure for
// want of resources (descriptors, memory) is retried with a backoff.
func (g *Gateway) acceptFastCGI(ctx, base context.Context, ln net.Listener, allow allowList, srv *fastcgi.Server, conns *sync.WaitGroup) error {
	return acceptLoop(ln, g.log, "fastcgi", ctx.Done(), func(nc net.Conn) {
		if !allow.allows(nc.RemoteAddr()) {
			g.front.refused.Add(1)
			g.log.Warn("fastcgi client refused: not in allowed_clients", "client", nc.RemoteAddr().String())
			nc.Close()
			return
		}
		conns.Add(1)
		go func() { // ends when the connection closes: client, error, drain or cut-off
			defer conns.Done()
			g.serveFastCGIConn(base, srv, nc)
		}()
	})
}

// acceptLoop accepts connections on ln and hands each to serve, until ln
// is closed (nil) or fails (its error). A failure for want of resources
// (descriptors, memory) is logged and retried with a backoff of up to a
// second, which stop, when closed, cuts short. front names the front in
// the log ("http", "fastcgi").
func acceptLoop(ln net.Listener, log *slog.Logger, front string, stop <-chan struct{}, serve func(net.Conn)) error {
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			if !acceptRetryable(err) {
				return err
			}
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			log.Warn("accept failed; retrying", "front", front, "err", err, "in", delay)
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-stop:
				t.Stop()
			}
			continue
		}
		delay = 0
		serve(nc)
	}
}

// acceptRetryable reports an accept error that a later accept may not meet.
func acceptRetryable(err error) bool {
	for _, e := range []syscall.Errno{syscall.ECONNABORTED, syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.EINTR} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// serveFastCGIConn serves one client connection until it closes, and logs
// why it closed when that was not the client's or the gateway's choice.
func (g *Gateway) serveFastCGIConn(ctx context.Context, srv *fastcgi.Server, nc net.Conn) {
	client := nc.RemoteAddr().String()
	err := srv.ServeConn(ctx, nc)
	switch {
	case err == nil:
	case errors.Is(err, fastcgi.ErrProtocol):
		g.log.Warn("fastcgi client broke the protocol: connection closed", "client", client, "err", err)
	case isTimeout(err):
		g.log.Warn("fastcgi client too slow: connection closed", "client", client, "err", err)
	default:
		g.log.Info("fastcgi client connection failed", "client", client, "err", err)
	}
}

// frontPool returns the pool that takes a request of the FastCGI front.
// Until routing exists, every request goes to the first pool, as on the
// HTTP front.
func (g *Gateway) frontPool(*fastcgi.ServerRequest) *pool { return g.pools[0] }

// serveFastCGIRequest runs one request of the FastCGI front on a backend
// and relays its answer. It returns the backend's application status.
func (g *Gateway) serveFastCGIRequest(w *fastcgi.ResponseWriter, r *fastcgi.ServerRequest) int {
	id := newRequestID()
	ctx := r.Context()
	p := g.frontPool(r)
	method := r.Param("REQUEST_METHOD")

	ex := getExchange(g.log, id)
	defer putExchange(ex)
	ex.params, ex.scriptFilename = p.frontParams(ex.params[:0], r.Params)
	ex.req.Params = ex.params
	ex.req.ReadTimeout = p.cfg.ReadTimeout
	ex.req.WriteTimeout = p.cfg.WriteTimeout
	ex.req.Stderr = func(b []byte) { w.Stderr(b) }

	body, err := p.frontBody(r)
	if err != nil {
		g.log.LogAttrs(ctx, slog.LevelInfo, "request body refused",
			slog.String("request_id", id), slog.String("front", "fastcgi"),
			slog.Int("status", http.StatusRequestEntityTooLarge), slog.Any("err", err))
		writeCGIError(w, http.StatusRequestEntityTooLarge, id)
		return 0
	}

	resp, b, head, bud, err := g.roundTrip(ctx, p, ex, body, nil, nil, method)
	if err != nil {
		body.abandon(nil)
		g.frontFailed(w, r, p, ex, err)
		return 0
	}
	defer bud.release()
	if head.status == http.StatusNotFound && fpmNotFoundRaw(ex.br) {
		g.log.LogAttrs(ctx, slog.LevelWarn, "FPM does not find the script: is document_root the docroot of the FPM hosts?",
			slog.String("request_id", id),
			slog.String("front", "fastcgi"),
			slog.String("pool", p.cfg.Name),
			slog.String("backend", ex.backend),
			slog.String("script_filename", ex.scriptFilename))
	}
	backendErr, clientErr := relayAnswer(w, ex.br, resp, ex.buf)
	body.abandon(nil)
	resp.Close()
	if g.settle(ctx, p, b, ex, "fastcgi", head.status, backendErr, clientErr) {
		// Without END_REQUEST the web server cannot take the answer
		// for whole.
		w.Abort()
	}
	return resp.AppStatus()
}

// frontParams appends to ps the params a FastCGI client sent, as the
// backend gets them, and returns SCRIPT_FILENAME for the log. They pass
// through in order, except that HTTP_PROXY is dropped (httpoxy: it comes
// from the client's Proxy header, and PHP libraries take it for the
// outgoing proxy), DOCUMENT_ROOT and the paths under it are rewritten to
// the pool's DocumentRoot (unless KeepClientDocroot), and the pool's own
// params come last.
func (p *pool) frontParams(ps, in []fastcgi.Param) ([]fastcgi.Param, string) {
	from, rewrite := "", false
	if !p.cfg.KeepClientDocroot {
		for _, q := range in {
			if q.Name == "DOCUMENT_ROOT" {
				from = strings.TrimRight(q.Value, "/")
				rewrite = q.Value != "" && from != p.docRoot
				break
			}
		}
	}
	scriptFilename := ""
	for _, q := range in {
		switch q.Name {
		case "HTTP_PROXY":
			continue
		case "DOCUMENT_ROOT":
			if rewrite {
				q.Value = p.docRoot
				if q.Value == "" {
					q.Value = "/"
				}
			}
		case "SCRIPT_FILENAME", "PATH_TRANSLATED":
			if rewrite {
				q.Value = rebase(q.Value, from, p.docRoot)
			}
			if q.Name == "SCRIPT_FILENAME" && scriptFilename == "" {
				scriptFilename = q.Value
			}
		}
		ps = append(ps, q)
	}
	return append(ps, p.extra...), scriptFilename
}

// rebase replaces the directory from at the start of the path v with to.
// v may start with the "proxy:fcgi://host:port" that Apache's
// mod_proxy_fcgi puts before SCRIPT_FILENAME, which FPM strips; it is
// kept. A path outside from is returned as it is.
func rebase(v, from, to string) string {
	prefix, path := "", v
	if len(v) > 6 && strings.EqualFold(v[:6], "proxy:") {
		i := strings.Index(v, "://")
		if i < 0 {
			return v
		}
		j := strings.IndexByte(v[i+3:], '/')
		if j < 0 {
			return v
		}
		prefix, path = v[:i+3+j], v[i+3+j:]
	}
	if path != from && !strings.HasPrefix(path, from+"/") {
		return v
	}
	return prefix + to + path[len(from):]
}

// frontBody returns the request body as it will be sent: STDIN, streamed
// as the client sends it, or nil when CONTENT_LENGTH is empty or 0, since
// PHP reads no more of STDIN than CONTENT_LENGTH says. A CONTENT_LENGTH
// over MaxBodyBytes is errTooLarge. The STDIN of a request without a body
// is closed at once, so that what a client sends anyway is dropped.
func (p *pool) frontBody(r *fastcgi.ServerRequest) (*reqBody, error) {
	cl := r.Param("CONTENT_LENGTH")
	if cl == "" || cl == "0" {
		closeStdin(r.Stdin)
		return nil, nil
	}
	n, err := strconv.ParseInt(cl, 10, 64)
	if err == nil && n > p.cfg.MaxBodyBytes {
		closeStdin(r.Stdin)
		return nil, errTooLarge
	}
	s := &streamBody{r: r.Stdin}
	s.abandon = func() { closeStdin(r.Stdin) }
	return &reqBody{size: max(n, 0), stream: s}, nil
}

// errStdinDropped ends the STDIN of a request that no longer reads it.
var errStdinDropped = errors.New("gateway: request body no longer read")

// closeStdin ends a pending or later read of a FastCGI request's STDIN; the
// server then drops the rest of it.
func closeStdin(stdin io.Reader) {
	switch c := stdin.(type) {
	case interface{ CloseWithError(error) error }:
		c.CloseWithError(errStdinDropped)
	case io.Closer:
		c.Close()
	}
}

// peekAnswer waits for the first byte of an answer that the FastCGI front
// passes through, and leaves it unread in br; an answer without STDOUT is
// an answer too. The status is taken from a leading Status line (PHP
// writes Status first when it writes one), for the balancer and the log.
func peekAnswer(br *bufio.Reader) (cgiHead, error) {
	head := cgiHead{status: http.StatusOK}
	if _, err := br.Peek(1); err != nil {
		if err == io.EOF {
			return head, nil
		}
		return cgiHead{}, err
	}
	b, _ := br.Peek(br.Buffered())
	const prefix = "status:"
	if len(b) > len(prefix) && bytes.EqualFold(b[:len(prefix)], []byte(prefix)) {
		v := trimSpace(b[len(prefix):])
		if len(v) >= 3 && '2' <= v[0] && v[0] <= '9' && isDigit(v[1]) && isDigit(v[2]) {
			head.hasStatus = true
			head.status = int(v[0]-'0')*100 + int(v[1]-'0')*10 + int(v[2]-'0')
		}
	}
	return head, nil
}

// fpmNotFoundRaw reports whether the answer already buffered in br is
// FPM's own 404 for a SCRIPT_FILENAME it cannot find, CGI header included.
func fpmNotFoundRaw(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	return bytes.Contains(b, []byte("\r\n\r\nFile not found."))
}

// relayAnswer copies the backend's STDOUT to the client as STDOUT: each
// round waits for the first bytes that are not there yet, then takes what
// else has already arrived, up to len(buf), and passes it on, flushing
// whenever nothing more is on its way, so that output PHP flushed reaches
// the web server at once while a fast stream goes in large records. The
// end of the answer is left in w's buffer, to go out with END_REQUEST in
// one write. It returns the error that cut the answer short, either the
// backend's or the client's.
func relayAnswer(w *fastcgi.ResponseWriter, br *bufio.Reader, resp *fastcgi.Response, buf []byte) (backendErr, clientErr error) {
	for {
		n, err := readArrived(br, resp, buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return nil, werr
			}
		}
		if err == io.EOF {
			return nil, nil
		}
		if err != nil {
			return err, nil
		}
		if !arrived(br, resp) {
			if ferr := w.Flush(); ferr != nil {
				return nil, ferr
			}
		}
	}
}

// frontFailed answers a request that no backend answered with a CGI error
// response, and logs why.
func (g *Gateway) frontFailed(w *fastcgi.ResponseWriter, r *fastcgi.ServerRequest, p *pool, ex *exchange, err error) {
	code := errorStatus(err)
	level := slog.LevelWarn
	if code == statusClientClosed {
		level = slog.LevelDebug // the client aborted the request or went away
	}
	g.log.LogAttrs(r.Context(), level, "request failed",
		slog.String("request_id", ex.id),
		slog.String("front", "fastcgi"),
		slog.String("pool", p.cfg.Name),
		slog.String("backend", ex.backend),
		slog.String("method", r.Param("REQUEST_METHOD")),
		slog.String("uri", r.Param("REQUEST_URI")),
		slog.String("script_filename", ex.scriptFilename),
		slog.Int("status", code),
		slog.Any("err", err))
	if code != statusClientClosed {
		writeCGIError(w, code, ex.id)
	}
}

// writeCGIError sends a short plain-text error as a CGI response, which the
// web server turns into its HTTP status. A 503 says when to come back.
func writeCGIError(w io.Writer, code int, id string) {
	body, ok := errorBodies[code]
	if !ok {
		body = strconv.Itoa(code) + " " + http.StatusText(code) + "\n"
	}
	b := fmt.Appendf(nil, "Status: %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\nX-Request-Id: %s\r\n",
		code, http.StatusText(code), id)
	if code == http.StatusServiceUnavailable {
		b = append(b, "Retry-After: 1\r\n"...)
	}
	b = fmt.Appendf(b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	w.Write(b)
}
