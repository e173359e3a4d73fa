package fastcgi

import (
	"errors"
	"fmt"
)

// errors.go defines the errors callers match with errors.Is and errors.As.

var (
	// ErrProtocol reports a record stream that breaks the FastCGI
	// specification: a wrong version, an impossible length, a record for an
	// unknown request, a stream that ends without FCGI_END_REQUEST.
	ErrProtocol = errors.New("fastcgi: protocol error")

	// ErrStaleConn reports that a pooled, reused connection had already been
	// closed by the backend before it answered anything. The backend never
	// processed the request, so it is safe to send it again elsewhere,
	// whatever its method.
	ErrStaleConn = errors.New("fastcgi: reused connection closed by backend")

	// ErrConnClosed is returned by a Conn after Close.
	ErrConnClosed = errors.New("fastcgi: connection closed")

	// ErrPoolClosed is returned by Pool.Get after Pool.Close.
	ErrPoolClosed = errors.New("fastcgi: pool closed")

	// ErrPoolBusy is returned by Pool.Do when every connection allowed by
	// MaxConns stayed in use for MaxWait.
	ErrPoolBusy = errors.New("fastcgi: all connections busy")

	// ErrRequestRejected reports an FCGI_END_REQUEST whose protocol status is
	// not FCGI_REQUEST_COMPLETE (overloaded, cannot multiplex, unknown role).
	// The backend did not run the request.
	ErrRequestRejected = errors.New("fastcgi: request rejected by backend")
)

// DialError reports a failure to connect to a backend. Nothing was sent, so a
// request that failed with a DialError may be retried on another backend
// whatever its method.
type DialError struct {
	Addr string
	Err  error
}

func (e *DialError) Error() string { return fmt.Sprintf("dial %s: %v", e.Addr, e.Err) }
func (e *DialError) Unwrap() error { return e.Err }

// staleError is ErrStaleConn with, when the whole body was small enough to
// keep, a copy of it to send again.
type staleError struct {
	err       error
	replay    []byte // the whole body, if it was kept
	untouched bool   // nothing of the body was read: send it as it is
}

func (e *staleError) Error() string { return e.err.Error() }
func (e *staleError) Unwrap() error { return e.err }

// protocolError wraps ErrProtocol with a description of what was wrong.
func protocolError(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrProtocol, fmt.Sprintf(format, args...))
}
