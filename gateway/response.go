package gateway

// response.go reads the CGI header block that PHP writes at the start of
// STDOUT, and relays the response: status, header, then the body record by
// record, flushed to the client whenever no more output is waiting.

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/fcgigate/fcgigate/fastcgi"
)

// maxCGIHeader bounds the CGI header block. nginx's fastcgi_buffer_size is
// 4 or 8 KiB; 64 KiB leaves room for many cookies and a long CSP, and
// still stops a backend that never ends its header.
const maxCGIHeader = 64 << 10

// cgiHead is what the CGI header block says besides the header fields.
type cgiHead struct {
	status int
	// reason is the reason phrase of PHP's Status header; "" if it gave
	// none.
	reason string
	// hasStatus reports a Status header. Without one the status is 200,
	// or 302 with a Location.
	hasStatus bool
}

// cgiField is a field of the CGI header block while it is read: its
// canonical name, and where its value lies in the block's values.
type cgiField struct {
	key      string
	from, to int
}

// readCGIHeader reads the header block from br into h, leaving br at the
// start of the body. A block that is not valid is an errBadHeader; an error
// from the backend is returned as it is.
//
// The rules: lines end in "\n" or "\r\n", an empty line ends the block, a
// field is a token, ':' and a value without control bytes (no folding).
// Status sets the status and is never forwarded; hop-by-hop fields
// (Connection, Transfer-Encoding, ...) are dropped, since they describe
// PHP's side of the exchange, not the gateway's; X-Request-Id stays the
// gateway's own.
//
// The fields go into h only once the whole block has been read, and their
// values are substrings of one string, in slices of one backing array: two
// allocations for the block rather than two per field.
func readCGIHeader(br *bufio.Reader, h http.Header) (cgiHead, error) {
	var head cgiHead
	var location bool
	var long []byte // a line longer than br's buffer, gathered
	total := 0
	// The values, one after another, and each field's key and the place of
	// its value in them; on the stack unless the block is large.
	var arenaBuf [512]byte
	var fieldsBuf [16]cgiField
	arena, fields := arenaBuf[:0], fieldsBuf[:0]
	contentLength := -1 // the field in fields that holds the first Content-Length
	for {
		frag, err := br.ReadSlice('\n')
		total += len(frag)
		if total > maxCGIHeader {
			return head, badHeader("header block over %d bytes", maxCGIHeader)
		}
		if err == bufio.ErrBufferFull {
			long = append(long, frag...)
			continue
		}
		if err != nil {
			if err != io.EOF {
				return head, err
			}
			if total == 0 {
				return head, badHeader("empty response")
			}
			return head, badHeader("response ended inside the header block")
		}
		line := frag
		if len(long) > 0 {
			long = append(long, frag...)
			line = long
			long = long[:0]
		}
		line = line[:len(line)-1]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return head, badHeader("line without a field name: %.40q", line)
		}
		name, value := line[:colon], trimSpace(line[colon+1:])
		if !validName(name) {
			return head, badHeader("invalid field name %.40q", name)
		}
		if !validValue(value) {
			return head, badHeader("invalid value in field %.40q", name)
		}
		var lower [32]byte
		switch string(lowerName(&lower, name)) {
		case "status":
			if head.hasStatus {
				return head, badHeader("two Status fields")
			}
			if err := head.parseStatus(value); err != nil {
				return head, err
			}
			continue
		case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "x-request-id":
			continue
		case "location":
			location = true
		case "content-length":
			if !validLength(value) {
				return head, badHeader("invalid Content-Length %.40q", value)
			}
			if contentLength >= 0 {
				if f := fields[contentLength]; !bytes.Equal(arena[f.from:f.to], value) {
					return head, badHeader("two different Content-Length fields")
				}
				continue
			}
			contentLength = len(fields)
		}
		from := len(arena)
		arena = append(arena, value...)
		fields = append(fields, cgiField{key: canonicalKey(&lower, name), from: from, to: len(arena)})
	}
	values := string(arena)
	slots := make([]string, len(fields))
	for i, f := range fields {
		v := values[f.from:f.to]
		if old, ok := h[f.key]; ok {
			h[f.key] = append(old, v)
			continue
		}
		slots[i] = v
		h[f.key] = slots[i : i+1 : i+1]
	}
	if !head.hasStatus {
		head.status = http.StatusOK
		if location {
			head.status = http.StatusFound
		}
	}
	return head, nil
}

// parseStatus parses the value of a Status field: a three-digit code from
// 200 to 999, then optionally a space and a reason phrase. 1xx is not a
// final status.
func (head *cgiHead) parseStatus(v []byte) error {
	if len(v) < 3 || v[0] < '2' || v[0] > '9' || !isDigit(v[1]) || !isDigit(v[2]) || (len(v) > 3 && v[3] != ' ') {
		return badHeader("invalid Status %.40q", v)
	}
	head.hasStatus = true
	head.status = int(v[0]-'0')*100 + int(v[1]-'0')*10 + int(v[2]-'0')
	if len(v) > 4 {
		if reason := trimSpace(v[4:]); len(reason) > 0 {
			head.reason = string(reason)
		}
	}
	return nil
}

// resetHeader removes what a failed attempt put in h, keeping the gateway's
// own X-Request-Id.
func resetHeader(h http.Header) {
	for k := range h {
		if k != "X-Request-Id" {
			delete(h, k)
		}
	}
}

// fpmNotFound reports whether the body that is already buffered starts with
// FPM's answer to a SCRIPT_FILENAME it cannot find ("Primary script
// unknown"), without waiting for more.
func fpmNotFound(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	return bytes.HasPrefix(b, []byte("File not found."))
}

// relay sends the response whose header has been read into w.Header(): the
// status, then the body as it arrives. It returns the error that cut the
// body short, either the backend's or the client's. Nothing is left to be
// sent when it returns.
func (g *Gateway) relay(w http.ResponseWriter, r *http.Request, rc *http.ResponseController, ex *exchange, resp *fastcgi.Response, head cgiHead) (backendErr, clientErr error) {
	if head.reason != "" && head.reason != http.StatusText(head.status) {
		if rw, ok := w.(interface{ setReason(string) }); ok {
			rw.setReason(head.reason) // Serve's own server (h1.go)
		} else {
			// Another server (net/http's) writes the standard phrase.
			g.log.LogAttrs(r.Context(), slog.LevelDebug, "custom reason phrase replaced by the standard one",
				slog.String("request_id", ex.id), slog.String("reason", head.reason))
		}
	}
	if !bodyAllowed(r.Method, head.status) {
		w.WriteHeader(head.status)
		// Drain what PHP wrote anyway, so that its STDERR is logged and
		// the connection can carry another request.
		_, backendErr = io.Copy(io.Discard, ex.br)
		return backendErr, nil
	}
	return copyBody(w, rc, ex.br, resp, ex.buf, head.status)
}

// copyBody sends the status and copies the body from br to w. Each round
// waits for the first bytes that are not there yet, then takes whatever else
// has already arrived, up to len(buf), and writes it in one piece; it
// flushes whenever nothing more is on its way from the backend, so that
// output PHP flushed reaches the client at once while a fast stream is sent
// in large writes. It never waits for more data to write what it has.
//
// An answer that has arrived whole by the end of the first round, and gave
// no Content-Length, gets one: it is sent in one write, not chunked.
func copyBody(w http.ResponseWriter, rc *http.ResponseController, br *bufio.Reader, resp *fastcgi.Response, buf []byte, status int) (backendErr, clientErr error) {
	wroteHeader := false
	if !arrived(br, resp) {
		// PHP flushed its header before any body: so does the gateway.
		w.WriteHeader(status)
		wroteHeader = true
		if err := flush(rc); err != nil {
			return nil, err
		}
	}
	for {
		n, err := readArrived(br, resp, buf)
		if !wroteHeader {
			if err == io.EOF {
				if h := w.Header(); h["Content-Length"] == nil {
					h["Content-Length"] = []string{strconv.Itoa(n)}
				}
			}
			w.WriteHeader(status)
			wroteHeader = true
		}
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				if errors.Is(werr, http.ErrContentLength) {
					// PHP wrote more than its Content-Length.
					return werr, nil
				}
				return nil, werr
			}
			if err != io.EOF && !arrived(br, resp) {
				if ferr := flush(rc); ferr != nil {
					return nil, ferr
				}
			}
		}
		if err == io.EOF {
			return nil, nil
		}
		if err != nil {
			return err, nil
		}
	}
}

// arrived reports whether more of the body, or its end, has already
// arrived, so that reading it does not wait for PHP.
func arrived(br *bufio.Reader, resp *fastcgi.Response) bool {
	return br.Buffered() > 0 || resp.Buffered()
}

// readArrived reads into buf: it waits until some of the body is there,
// then reads on while more has already arrived and buf has room.
func readArrived(br *bufio.Reader, resp *fastcgi.Response, buf []byte) (int, error) {
	n, err := br.Read(buf)
	for err == nil && n < len(buf) && arrived(br, resp) {
		var k int
		k, err = br.Read(buf[n:])
		n += k
	}
	return n, err
}

// flush flushes rc, if its writer can be flushed.
func flush(rc *http.ResponseController) error {
	if err := rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

// bodyAllowed reports whether a response to method with status has a body.
func bodyAllowed(method string, status int) bool {
	return method != http.MethodHead && status != http.StatusNoContent && status != http.StatusNotModified
}

// text is what the field checks below read: the bytes of a CGI header
// from PHP, or the string of a request's header block (h1req.go).
type text interface{ ~string | ~[]byte }

// trimSpace trims the spaces and tabs (OWS) around b.
func trimSpace[T text](b T) T {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// validName reports an RFC 9110 token.
func validName[T text](b T) bool {
	for i := 0; i < len(b); i++ {
		if !isTokenByte(b[i]) {
			return false
		}
	}
	return len(b) > 0
}

func isTokenByte(c byte) bool {
	if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' {
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// validValue reports a field value without control bytes but tab: no
// NUL, CR, LF or DEL. obs-text (0x80 and above) is allowed.
func validValue[T text](b T) bool {
	for i := 0; i < len(b); i++ {
		if c := b[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// validLength reports a Content-Length value: 1 to 18 digits.
func validLength(b []byte) bool {
	if len(b) == 0 || len(b) > 18 {
		return false
	}
	for _, c := range b {
		if !isDigit(c) {
			return false
		}
	}
	return true
}

// lowerName returns name in lower case, in buf; a name longer than buf
// gives nil, which matches no known field.
func lowerName(buf *[32]byte, name []byte) []byte {
	if len(name) > len(buf) {
		return nil
	}
	for i, c := range name {
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return buf[:len(name)]
}

// canonicalKey returns the canonical form of name, whose lower-case form
// lowerName left in lower: interned for the fields PHP sends most, so that
// "Content-type" costs no allocation.
func canonicalKey(lower *[32]byte, name []byte) string {
	if len(name) <= len(lower) {
		if k, ok := commonKeys[string(lower[:len(name)])]; ok {
			return k
		}
	}
	return http.CanonicalHeaderKey(string(name))
}

// commonKeys maps the lower-case names of common response fields to their
// canonical form.
var commonKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"Cache-Control", "Content-Disposition", "Content-Encoding",
		"Content-Language", "Content-Length", "Content-Security-Policy",
		"Content-Type", "Etag", "Expires", "Last-Modified", "Link",
		"Location", "Pragma", "Referrer-Policy", "Set-Cookie",
		"Strict-Transport-Security", "Vary", "X-Content-Type-Options",
		"X-Frame-Options", "X-Powered-By", "X-Xss-Protection",
	} {
		m[string(bytes.ToLower([]byte(k)))] = k
	}
	return m
}()
