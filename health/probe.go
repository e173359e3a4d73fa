package health

// probe.go sends one probe to one target: the FastCGI requests for FPM's
// status and ping pages, the reading of their CGI answers, and the short
// reasons a probe fails with.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/fcgigate/fcgigate/fastcgi"
)

// maxAnswer bounds a probe answer. FPM's ping page is a few bytes and its
// status page a few hundred; anything near this is not FPM answering.
const maxAnswer = 64 << 10

// ProbeError is why a probe, or its status page, failed. Its message is a
// short reason meant for logs and the status command ("dial: connection
// refused", "timeout", "status 404", `ping answered "x"`); Err, if not nil,
// is the underlying error, for errors.Is and errors.As.
type ProbeError struct {
	Reason string
	Err    error
}

func (e *ProbeError) Error() string { return e.Reason }
func (e *ProbeError) Unwrap() error { return e.Err }

// sourceDialer returns a dial function whose connections come from the IP
// source, or nil (the pool's default dialer) when source is empty.
func sourceDialer(source string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	if source == "" {
		return nil
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(source)}}
	return d.DialContext
}

// checker sends the probe requests of one target over a pool of its own
// that keeps no idle connection (see the package invariants).
type checker struct {
	cfg    Config
	pool   *fastcgi.Pool
	ping   []fastcgi.Param
	status []fastcgi.Param
}

func newChecker(addr string, cfg Config) *checker {
	c := &checker{
		cfg:  cfg,
		pool: fastcgi.NewPool(fastcgi.PoolConfig{Addr: addr, DialTimeout: cfg.Timeout, MaxIdle: -1, Dial: sourceDialer(cfg.SourceAddress)}),
		ping: probeParams(cfg.PingPath, ""),
	}
	if cfg.StatusPath != "" {
		c.status = probeParams(cfg.StatusPath, "json")
	}
	return c
}

func (c *checker) close() { c.pool.Close() }

// probeParams returns the params FPM needs to recognise its ping or status
// page: it compares the path with SCRIPT_NAME, and reads "json" in
// QUERY_STRING. The rest make it a well-formed CGI request for any
// responder, and name the prober in FPM's access log.
func probeParams(path, query string) []fastcgi.Param {
	uri := path
	if query != "" {
		uri += "?" + query
	}
	return []fastcgi.Param{
		{Name: "GATEWAY_INTERFACE", Value: "CGI/1.1"},
		{Name: "SERVER_SOFTWARE", Value: "fcgigate"},
		{Name: "SERVER_PROTOCOL", Value: "HTTP/1.1"},
		{Name: "REQUEST_METHOD", Value: "GET"},
		{Name: "SCRIPT_NAME", Value: path},
		{Name: "SCRIPT_FILENAME", Value: path},
		{Name: "REQUEST_URI", Value: uri},
		{Name: "QUERY_STRING", Value: query},
		{Name: "HTTP_USER_AGENT", Value: "fcgigate-health"},
	}
}

// outcome is what one probe found.
type outcome struct {
	latency   time.Duration
	err       error // *ProbeError; nil if the probe succeeded
	status    *FPMStatus
	statusErr error // *ProbeError
}

// check probes the target: first its status page, if a status path is set,
// then its ping. The status page comes first because FPM marks a worker
// idle only after it has sent its answer: read right after the ping, the
// status page would often count the ping's worker as still active. A status
// request that gets no answer at all (dial error, timeout, protocol error)
// fails the probe as a ping would, and the ping is not sent; a status page
// that answers but not as expected (404, malformed) is only a status error.
func (c *checker) check(ctx context.Context) (o outcome) {
	start := c.cfg.Now()
	defer func() { o.latency = c.cfg.Now().Sub(start) }()
	if c.status != nil {
		b, err := c.roundTrip(ctx, c.status)
		if err != nil {
			o.err = err
			return o
		}
		st, err := readStatus(b)
		if err != nil {
			o.statusErr = err
		} else {
			o.status = &st
		}
	}
	b, err := c.roundTrip(ctx, c.ping)
	if err == nil {
		err = c.readPing(b)
	}
	if err != nil {
		o.err = err
		o.status, o.statusErr = nil, nil // the backend is not serving: no load to report
	}
	return o
}

// readPing checks a ping answer.
func (c *checker) readPing(b []byte) error {
	code, body, err := parseCGI(b)
	switch {
	case err != nil:
		return err
	case code != 200:
		return &ProbeError{Reason: fmt.Sprintf("status %d", code)}
	case strings.TrimSpace(string(body)) != strings.TrimSpace(c.cfg.PingResponse):
		return &ProbeError{Reason: fmt.Sprintf("ping answered %.40q", body)}
	}
	return nil
}

// readStatus parses a status page answer.
func readStatus(b []byte) (FPMStatus, error) {
	code, body, err := parseCGI(b)
	if err != nil {
		return FPMStatus{}, err
	}
	if code != 200 {
		return FPMStatus{}, &ProbeError{Reason: fmt.Sprintf("status %d", code)}
	}
	st, err := ParseFPMStatus(body)
	if err != nil {
		return FPMStatus{}, &ProbeError{Reason: shorten(strings.TrimPrefix(err.Error(), "health: ")), Err: err}
	}
	return st, nil
}

// roundTrip sends one GET with params, bounded by Timeout, and returns the
// whole CGI answer, up to maxAnswer+1 bytes. Its errors, *ProbeError, mean
// that the backend did not answer.
func (c *checker) roundTrip(ctx context.Context, params []fastcgi.Param) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	resp, err := c.pool.Do(ctx, &fastcgi.Request{Params: params})
	if err != nil {
		return nil, classify(ctx, err)
	}
	defer resp.Close()
	b, err := io.ReadAll(io.LimitReader(resp, maxAnswer+1))
	if err != nil {
		return nil, classify(ctx, err)
	}
	return b, nil
}

// parseCGI splits a CGI answer into its status (200 without a Status
// header) and body.
func parseCGI(b []byte) (int, []byte, error) {
	if len(b) > maxAnswer {
		return 0, nil, &ProbeError{Reason: fmt.Sprintf("answer longer than %d bytes", maxAnswer)}
	}
	r := textproto.NewReader(bufio.NewReader(bytes.NewReader(b)))
	h, err := r.ReadMIMEHeader()
	if err != nil {
		return 0, nil, &ProbeError{Reason: "protocol: malformed CGI header", Err: err}
	}
	code := 200
	if s := h.Get("Status"); s != "" {
		f, _, _ := strings.Cut(s, " ")
		n, err := strconv.Atoi(f)
		if err != nil || n < 100 || n > 999 {
			return 0, nil, &ProbeError{Reason: fmt.Sprintf("protocol: bad Status header %.40q", s), Err: err}
		}
		code = n
	}
	body, _ := io.ReadAll(r.R) // reads from memory
	return code, body, nil
}

// classify turns an error of the fastcgi client into a short reason. ctx is
// the request's context, whose deadline is the probe timeout.
func classify(ctx context.Context, err error) *ProbeError {
	timedOut := errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		timedOut = true
	}
	var de *fastcgi.DialError
	switch {
	case errors.As(err, &de) && timedOut:
		return &ProbeError{Reason: "dial: timeout", Err: err}
	case errors.As(err, &de):
		return &ProbeError{Reason: "dial: " + shorten(rootCause(err).Error()), Err: err}
	case timedOut:
		return &ProbeError{Reason: "timeout", Err: err}
	case errors.Is(err, fastcgi.ErrProtocol), errors.Is(err, fastcgi.ErrRequestRejected):
		return &ProbeError{Reason: shorten(strings.TrimPrefix(err.Error(), "fastcgi: ")), Err: err}
	}
	return &ProbeError{Reason: shorten(rootCause(err).Error()), Err: err}
}

// rootCause returns the innermost error of a chain of single wraps, such as
// the errno inside a *net.OpError: "connection refused".
func rootCause(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}

// shorten caps a reason at about 120 bytes, cutting between runes.
func shorten(s string) string {
	n := 120
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}
