package gateway

// retry.go sends a request to a backend of its pool, and to another one when
// the first failed before answering and sending it again is safe.

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/fcgigate/fcgigate/balancer"
	"github.com/fcgigate/fcgigate/fastcgi"
)

// maxAttempts is the upper bound of PoolConfig.MaxAttempts that Validate
// enforces; it sizes the list of backends tried without an allocation.
const maxAttempts = 10

// roundTrip tries ex's request on up to MaxAttempts backends, each picked
// among those not tried yet, until one answers with a valid CGI header,
// which it parses into h. It returns the response, positioned at the start
// of the body in ex.br, and its backend, on which the caller must call Done.
// On error, every backend tried has had its Done, h holds only what it held
// before, and nothing has been written to the client.
func (g *Gateway) roundTrip(ctx context.Context, p *pool, ex *exchange, body *reqBody, h http.Header, rc *http.ResponseController, method string) (*fastcgi.Response, *balancer.Backend, cgiHead, error) {
	var avoid [maxAttempts]*balancer.Backend
	tried := avoid[:0]
	for attempt := 1; ; attempt++ {
		b, err := p.bal.Pick(tried)
		if err != nil {
			return nil, nil, cgiHead{}, err
		}
		ex.backend = b.Addr()
		ex.req.Body = nil
		if body != nil {
			ex.req.Body = body.reader()
		}
		resp, err := b.Value.(*fastcgi.Pool).Do(ctx, &ex.req)
		var head cgiHead
		if err == nil {
			ex.br.Reset(resp)
			head, err = readCGIHeader(ex.br, h)
			if err == nil {
				return resp, b, head, nil
			}
			resetHeader(h)
			body.abandon(rc)
			resp.Close()
		}
		b.Done(verdict(err))
		if attempt >= p.cfg.MaxAttempts || !retryable(err, method, body.resendable()) {
			return nil, nil, cgiHead{}, err
		}
		g.log.LogAttrs(ctx, slog.LevelWarn, "backend failed, retrying on another",
			slog.String("request_id", ex.id),
			slog.String("pool", p.cfg.Name),
			slog.String("backend", b.Addr()),
			slog.Int("attempt", attempt),
			slog.Any("err", err))
		tried = append(tried, b)
	}
}

// retryable reports whether an attempt that failed with err may be made
// again on another backend. A failure to connect, a reused connection that
// the backend had already closed, and an FPM that rejected the request
// (overloaded) all mean that PHP never saw the request: any method may be
// retried. Any other failure may have reached PHP, so only idempotent
// methods are. Neither when the body cannot be sent again, nor when the
// client went away, nor when the backend answered with a bad header.
func retryable(err error, method string, resendable bool) bool {
	var de *fastcgi.DialError
	switch {
	case !resendable,
		errors.Is(err, context.Canceled),
		errors.Is(err, errBadHeader),
		errors.Is(err, fastcgi.ErrPoolClosed),
		errors.Is(err, balancer.ErrNoBackend):
		return false
	case errors.As(err, &de),
		errors.Is(err, fastcgi.ErrStaleConn),
		errors.Is(err, fastcgi.ErrRequestRejected):
		return true
	}
	return idempotent(method)
}

// idempotent reports the methods that RFC 9110 section 9.2.2 makes
// idempotent.
func idempotent(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace, http.MethodPut, http.MethodDelete:
		return true
	}
	return false
}
