package gateway

// rawstatus.go sends a response whose status line carries PHP's own reason
// phrase ("Status: 299 Partly Done"). net/http always writes the standard
// phrase for a code and has no way to change it, so such a response is
// written on the hijacked connection by rawResponse, which then closes it.
// This works for HTTP/1.x only; under HTTP/2 there is no reason phrase.

import (
	"bufio"
	"context"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"
)

// rawResponse is an http.ResponseWriter that writes HTTP/1.x itself on a
// hijacked connection: the status line with its reason phrase, the header
// with "Connection: close", and the body, chunked when HTTP/1.1 and PHP gave
// no Content-Length.
type rawResponse struct {
	conn   net.Conn
	bw     *bufio.Writer
	header http.Header
	reason string
	proto  string // "HTTP/1.1" or "HTTP/1.0"
	head   bool   // a HEAD request: header only
	stop   func() bool

	wroteHeader bool
	bodyOK      bool  // the status allows a body
	chunked     bool  // the body goes in chunks
	remain      int64 // declared Content-Length left to write, or -1
	err         error // the first write error
}

// rawResponse hijacks r's connection to send reason, or returns nil, having
// logged why, when that is not possible: not HTTP/1.x, a request body that
// is still arriving on that connection, or a writer that cannot be hijacked.
// The response then keeps the numeric code with its standard phrase.
func (g *Gateway) rawResponse(w http.ResponseWriter, r *http.Request, rc *http.ResponseController, ex *exchange, reason string, body *reqBody) *rawResponse {
	why := ""
	switch {
	case r.ProtoMajor != 1:
		why = "HTTP/2 has no reason phrase"
	case body.streaming():
		why = "the request body is still arriving"
	}
	var conn net.Conn
	var brw *bufio.ReadWriter
	if why == "" {
		var err error
		if conn, brw, err = rc.Hijack(); err != nil {
			why = err.Error()
		}
	}
	if why != "" {
		g.log.LogAttrs(r.Context(), slog.LevelDebug, "custom reason phrase replaced by the standard one",
			slog.String("request_id", ex.id), slog.String("reason", reason), slog.String("why", why))
		return nil
	}
	proto := "HTTP/1.1"
	if !r.ProtoAtLeast(1, 1) {
		proto = "HTTP/1.0"
	}
	// Shutdown does not track a hijacked connection; close it when the
	// request's context ends, which Serve does when a drain times out.
	stop := context.AfterFunc(r.Context(), func() { conn.Close() })
	return &rawResponse{
		conn:   conn,
		bw:     brw.Writer,
		header: w.Header(),
		reason: reason,
		proto:  proto,
		head:   r.Method == http.MethodHead,
		stop:   stop,
		remain: -1,
	}
}

func (rr *rawResponse) Header() http.Header { return rr.header }

func (rr *rawResponse) WriteHeader(code int) {
	if rr.wroteHeader {
		return
	}
	rr.wroteHeader = true
	h := rr.header
	rr.bodyOK = !rr.head && bodyAllowed(http.MethodGet, code)
	if v := h["Content-Length"]; len(v) > 0 {
		if n, err := strconv.ParseInt(v[0], 10, 64); err == nil {
			rr.remain = n
		}
	}
	if code == http.StatusNoContent {
		delete(h, "Content-Length")
		rr.remain = -1
	}
	if rr.bodyOK && rr.remain < 0 && rr.proto == "HTTP/1.1" {
		rr.chunked = true
		h["Transfer-Encoding"] = []string{"chunked"}
	}
	h["Connection"] = []string{"close"}
	if _, ok := h["Date"]; !ok {
		h["Date"] = []string{time.Now().UTC().Format(http.TimeFormat)}
	}
	bw := rr.bw
	bw.WriteString(rr.proto)
	bw.WriteByte(' ')
	bw.WriteString(strconv.Itoa(code))
	bw.WriteByte(' ')
	bw.WriteString(rr.reason)
	bw.WriteString("\r\n")
	if err := h.Write(bw); err != nil {
		rr.err = err
		return
	}
	_, rr.err = bw.WriteString("\r\n")
}

func (rr *rawResponse) Write(p []byte) (int, error) {
	if !rr.wroteHeader {
		rr.WriteHeader(http.StatusOK)
	}
	if rr.err != nil {
		return 0, rr.err
	}
	if !rr.bodyOK {
		return 0, http.ErrBodyNotAllowed
	}
	if len(p) == 0 {
		return 0, nil
	}
	if rr.remain >= 0 && int64(len(p)) > rr.remain {
		return 0, http.ErrContentLength
	}
	if rr.chunked {
		var hex [16]byte
		rr.bw.Write(strconv.AppendInt(hex[:0], int64(len(p)), 16))
		rr.bw.WriteString("\r\n")
	}
	n, err := rr.bw.Write(p)
	if err == nil && rr.chunked {
		_, err = rr.bw.WriteString("\r\n")
	}
	if rr.remain >= 0 {
		rr.remain -= int64(n)
	}
	rr.err = err
	return n, err
}

// FlushError sends what is buffered; http.ResponseController calls it.
func (rr *rawResponse) FlushError() error {
	if rr.err != nil {
		return rr.err
	}
	rr.err = rr.bw.Flush()
	return rr.err
}

// Flush makes rawResponse an http.Flusher.
func (rr *rawResponse) Flush() { rr.FlushError() }

// finish ends a complete response: the last chunk, and a flush.
func (rr *rawResponse) finish() error {
	if !rr.wroteHeader {
		rr.WriteHeader(http.StatusOK)
	}
	if rr.err == nil && rr.chunked {
		_, rr.err = rr.bw.WriteString("0\r\n\r\n")
	}
	return rr.FlushError()
}

// close closes the connection. A response that was not finished is thereby
// cut short, which the client sees.
func (rr *rawResponse) close() {
	rr.stop()
	rr.conn.Close()
}
