package gateway

// retry.go sends a request to a backend of its pool, and to another one when
// the first failed before answering and sending it again is safe.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/fcgigate/fcgigate/balancer"
	"github.com/fcgigate/fcgigate/fastcgi"
)

// Errors of the attempt budget. They wrap context.DeadlineExceeded, so the
// client gets 504.
var (
	errTryTimeout   = fmt.Errorf("gateway: no response header within try_timeout: %w", context.DeadlineExceeded)
	errRetryTimeout = fmt.Errorf("gateway: no response header within retry_timeout: %w", context.DeadlineExceeded)
)

// roundTrip tries ex's request on up to MaxAttempts backends, each picked
// among those not tried yet, until one answers with a valid CGI header,
// which it parses into h. It returns the response, positioned at the start
// of the body in ex.br, and its backend, on which the caller must call Done,
// and its budget, whose release the caller must call when the request ends. On error,
// every backend tried has had its Done, h holds only what it held before,
// and nothing has been written to the client.
//
// TryTimeout and RetryTimeout bound only the wait for the response header:
// their timers stop once a header is in, so they never cut a response body.
//
// The FastCGI front passes answers through unparsed: it calls roundTrip
// with a nil h and rc, and an attempt then succeeds once the first byte of
// STDOUT, or its end, has arrived, left unread in ex.br (see peekAnswer).
func (g *Gateway) roundTrip(ctx context.Context, p *pool, ex *exchange, body *reqBody, h http.Header, rc *http.ResponseController, method string) (*fastcgi.Response, *balancer.Backend, cgiHead, *budget, error) {
	var tried []*balancer.Backend // allocated only when a retry needs it
	duplex := false
	var bud *budget // nil without try_timeout and retry_timeout
	if p.cfg.RetryTimeout > 0 || p.cfg.TryTimeout > 0 {
		bud = &budget{}
	}
	if p.cfg.RetryTimeout > 0 {
		ctx = bud.bound(ctx, p.cfg.RetryTimeout, errRetryTimeout)
	}
	for attempt := 1; ; attempt++ {
		b, err := p.bal.Acquire(ctx, tried)
		if err != nil {
			bud.release()
			return nil, nil, cgiHead{}, nil, budgetErr(ctx, err)
		}
		actx := ctx
		if p.cfg.TryTimeout > 0 {
			actx = bud.bound(ctx, p.cfg.TryTimeout, errTryTimeout)
		}
		ex.backend = b.Addr()
		ex.req.Body = nil
		if body != nil {
			ex.req.Body = body.reader()
			if body.stream != nil && !duplex && rc != nil {
				// The backend reads the body while the response comes
				// back; without this, net/http would discard what is
				// left of it when the response starts.
				rc.EnableFullDuplex()
				duplex = true
			}
		}
		start := time.Now()
		resp, err := b.Value.(*fastcgi.Pool).Do(actx, &ex.req)
		var head cgiHead
		if err == nil {
			ex.br.Reset(resp)
			if h == nil {
				head, err = peekAnswer(ex.br)
			} else {
				head, err = readCGIHeader(ex.br, h)
			}
			if err == nil {
				// Time to the header: what the balancer weighs a
				// backend's slowness by.
				b.ObserveLatency(time.Since(start))
				bud.stop() // the header is in: nothing may cut the body now
				if context.Cause(actx) == nil {
					return resp, b, head, bud, nil
				}
				err = context.Cause(actx) // a timer fired as the header came
			}
			resetHeader(h)
			body.abandon(rc)
			resp.Close()
		}
		err = budgetErr(actx, err)
		b.Done(verdict(err))
		if attempt >= p.cfg.MaxAttempts || errors.Is(err, errRetryTimeout) || !retryable(err, method, body.resendable()) {
			bud.release()
			return nil, nil, cgiHead{}, nil, err
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

// budget holds the timers of try_timeout and retry_timeout for one request.
// A nil *budget has none: release and stop do nothing.
type budget struct {
	cancels []context.CancelCauseFunc
	timers  []*time.Timer
}

// bound returns a child of parent that is cancelled with cause after d.
func (bu *budget) bound(parent context.Context, d time.Duration, cause error) context.Context {
	c, cancel := context.WithCancelCause(parent)
	bu.cancels = append(bu.cancels, cancel)
	bu.timers = append(bu.timers, time.AfterFunc(d, func() { cancel(cause) }))
	return c
}

// stop stops the timers, so that they can no longer cut the request.
func (bu *budget) stop() {
	if bu == nil {
		return
	}
	for _, t := range bu.timers {
		t.Stop()
	}
}

// release stops the timers and frees the contexts; the caller of roundTrip
// calls it when the request ends.
func (bu *budget) release() {
	if bu == nil {
		return
	}
	bu.stop()
	for _, c := range bu.cancels {
		c(nil)
	}
}

// budgetErr replaces the error of an attempt cut short by try_timeout or
// retry_timeout (which the fastcgi client sees as a cancellation) with the
// budget's own error.
func budgetErr(ctx context.Context, err error) error {
	if cause := context.Cause(ctx); errors.Is(cause, errTryTimeout) || errors.Is(cause, errRetryTimeout) {
		return fmt.Errorf("%w (%v)", cause, err)
	}
	return err
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
		errors.Is(err, balancer.ErrNoBackend),
		errors.Is(err, balancer.ErrQueueFull),
		errors.Is(err, balancer.ErrQueueTimeout):
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
