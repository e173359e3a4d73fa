package gateway

// errors.go maps the error that ended a request to the status the client
// gets, and writes the short plain-text error responses.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"

	"github.com/fcgigate/fcgigate/balancer"
	"github.com/fcgigate/fcgigate/fastcgi"
)

// errBadHeader reports a CGI header block that the backend sent but that is
// not a valid one: garbage, too large, or cut short by the end of the
// response. The backend answered, so the request is not retried.
var errBadHeader = errors.New("gateway: invalid CGI header from backend")

// badHeader wraps errBadHeader with what was wrong.
func badHeader(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadHeader, fmt.Sprintf(format, args...))
}

// statusClientClosed is the status logged, never sent, for a request whose
// client went away (nginx's 499).
const statusClientClosed = 499

// errorStatus maps the error that ended a request before any response byte
// went to the client to the status the client gets.
func errorStatus(err error) int {
	var de *fastcgi.DialError
	switch {
	case errors.Is(err, context.Canceled):
		return statusClientClosed
	case errors.As(err, &de),
		errors.Is(err, balancer.ErrNoBackend),
		errors.Is(err, balancer.ErrQueueFull),
		errors.Is(err, balancer.ErrQueueTimeout),
		errors.Is(err, fastcgi.ErrPoolClosed),
		errors.Is(err, fastcgi.ErrPoolBusy),
		errors.Is(err, fastcgi.ErrRequestRejected):
		// Nothing could take the request: every backend tried refused
		// the connection, was overloaded, or there was none.
		return http.StatusServiceUnavailable
	case isTimeout(err):
		return http.StatusGatewayTimeout
	default:
		return http.StatusBadGateway
	}
}

// isTimeout reports a read or write deadline that passed.
func isTimeout(err error) bool {
	if errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// verdict returns what to pass to Backend.Done for an attempt that ended
// with err. A stale keep-alive connection is no fault of the backend: FPM
// closes idle connections when a worker reaches pm.max_requests or
// reloads. context.Canceled passes through: the balancer takes it for no
// verdict, since it was the client that went away.
func verdict(err error) error {
	if errors.Is(err, fastcgi.ErrStaleConn) {
		return nil
	}
	return err
}

// errorBodies holds the body of each error the gateway writes itself, so
// that writing one allocates nothing.
var errorBodies = func() map[int]string {
	m := map[int]string{}
	for _, code := range []int{
		http.StatusMovedPermanently,
		http.StatusBadRequest,
		http.StatusNotFound,
		http.StatusMethodNotAllowed,
		http.StatusRequestEntityTooLarge,
		http.StatusInternalServerError,
		http.StatusBadGateway,
		http.StatusServiceUnavailable,
		http.StatusGatewayTimeout,
	} {
		m[code] = strconv.Itoa(code) + " " + http.StatusText(code) + "\n"
	}
	return m
}()

// writeError sends a short plain-text error. A 503 says when to come back.
func writeError(w http.ResponseWriter, code int) {
	h := w.Header()
	h["Content-Type"] = []string{"text/plain; charset=utf-8"}
	h["X-Content-Type-Options"] = []string{"nosniff"}
	if code == http.StatusServiceUnavailable {
		h["Retry-After"] = []string{"1"}
	}
	body, ok := errorBodies[code]
	if !ok {
		body = strconv.Itoa(code) + " " + http.StatusText(code) + "\n"
	}
	h["Content-Length"] = []string{strconv.Itoa(len(body))}
	w.WriteHeader(code)
	io.WriteString(w, body)
}
