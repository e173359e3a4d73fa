package gateway

// h1req.go reads HTTP/1.x requests for h1.go, in place of
// http.ReadRequest. A request it accepts comes out as http.ReadRequest
// would make it, followed by what net/http's server does next (the Host
// header moved to Host), but the reader is stricter where a lax parser lets
// two readers of one stream disagree on where a request ends: request
// smuggling. And it allocates less: the header block becomes one string,
// and the names and values are substrings of it; the Request, its URL and
// the values' slices are one allocation.
//
// The rules, beyond net/http's:
//   - no obs-fold: a header line that starts with a space or a tab is
//     refused, where textproto joins it to the line before;
//   - a field name is a token: no space before the colon;
//   - a CR is allowed only at the end of a line. A bare LF ends a line in
//     the header, as in net/http; chunk lines and the trailer need CRLF;
//   - a chunk line is hex digits, then at most an extension without
//     control bytes: no white space after the size (see chunkedBody);
//   - Transfer-Encoding with Content-Length is refused, where net/http
//     drops the Content-Length, and so is Transfer-Encoding in an HTTP/1.0
//     request, which net/http ignores (RFC 9112, 6.1: the framing is
//     faulty);
//   - the trailer after a chunked body is checked (valid fields, at most
//     maxTrailerBytes) and dropped: see chunkedBody;
//   - a version other than HTTP/1.x is refused (505) at the request line;
//   - at most maxHeaderFields fields (431).

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

const (
	// maxHeaderFields bounds the fields of a header block: the map of a
	// block of many tiny fields costs far more than its bytes.
	maxHeaderFields = 1000
	// maxTrailerBytes bounds the trailer after a chunked body: net/http's
	// figure, the size of the connection's buffered reader.
	maxTrailerBytes = 4096
	// maxKeptScratch is the largest header buffer a connection keeps for
	// its next request.
	maxKeptScratch = 16 << 10
)

// reqError is a request that cannot be served: the status to answer with,
// and why.
type reqError struct {
	code int
	why  string
}

func (e *reqError) Error() string { return e.why }

func badRequest(format string, args ...any) error {
	return &reqError{http.StatusBadRequest, fmt.Sprintf(format, args...)}
}

// errHeaderTooLarge is a header block over the limits: 431.
var errHeaderTooLarge = &reqError{http.StatusRequestHeaderFieldsTooLarge, "request header too large"}

// reqReader reads the requests of one connection from br.
type reqReader struct {
	br *bufio.Reader
	// tmpl is copied into each request: its context is the connection's,
	// which a Request can only get through a copy (WithContext), so it
	// is made once here rather than once per request. nil: no context.
	tmpl *http.Request
	// maxBytes bounds the header block (0: no bound). The connection's
	// reader has a limit of its own; this one serves other callers.
	maxBytes int
	scratch  []byte // the header block, before it becomes a string
	fixed    fixedBody
	chunked  chunkedBody
}

// reqAlloc is a request with its URL and the slices of its first values,
// allocated together.
type reqAlloc struct {
	req  http.Request
	url  url.URL
	strs [8]string
}

// read reads a request's header and sets up its body, which reads from
// br until the next request. The body is rr's own and valid until the
// next read. The error is io.EOF if the client sent nothing, an I/O error,
// or a *reqError.
func (rr *reqReader) read() (*http.Request, error) {
	block, err := rr.readBlock()
	if err != nil {
		return nil, err
	}
	// The one copy of the header: every string below is a part of it.
	s := string(block)
	if cap(rr.scratch) > maxKeptScratch {
		rr.scratch = nil
	}
	return rr.parse(s)
}

// readBlock returns the request line and the header, up to and with the
// empty line that ends them.
func (rr *reqReader) readBlock() ([]byte, error) {
	b := rr.scratch[:0]
	start := 0 // of the current line in b
	for {
		frag, err := rr.br.ReadSlice('\n')
		b = append(b, frag...)
		rr.scratch = b
		if rr.maxBytes > 0 && len(b) > rr.maxBytes {
			return nil, errHeaderTooLarge
		}
		if err == bufio.ErrBufferFull {
			continue // a line longer than the buffer
		}
		if err != nil {
			if err == io.EOF && len(b) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
		if n := len(b) - start; n == 1 || n == 2 && b[start] == '\r' {
			if start == 0 {
				// net/http too: only its server skips an empty line,
				// and only after a POST.
				return nil, badRequest("malformed HTTP request: empty request line")
			}
			return b, nil
		}
		start = len(b)
	}
}

// nextLine cuts the first line off s, without its CR LF or LF. s ends
// with a LF.
func nextLine(s string) (line, rest string) {
	i := strings.IndexByte(s, '\n')
	line, rest = s[:i], s[i+1:]
	if i > 0 && line[i-1] == '\r' {
		line = line[:i-1]
	}
	return line, rest
}

// parse makes the request of the header block s.
func (rr *reqReader) parse(s string) (*http.Request, error) {
	line, s := nextLine(s)
	if strings.IndexByte(line, '\r') >= 0 {
		return nil, badRequest("malformed HTTP request: CR in the request line")
	}
	// One space between the parts: a target with a space in it makes a
	// version that does not parse.
	method, rest, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 {
		return nil, badRequest("malformed HTTP request %.60q", line)
	}
	if !validName(method) {
		return nil, badRequest("invalid method %.60q", method)
	}
	major, minor, ok := parseVersion(proto)
	if !ok {
		return nil, badRequest("malformed HTTP version %.60q", proto)
	}
	if major != 1 {
		return nil, &reqError{http.StatusHTTPVersionNotSupported, "unsupported protocol version"}
	}

	a := new(reqAlloc)
	req := &a.req
	if rr.tmpl != nil {
		*req = *rr.tmpl
	}
	req.Method, req.RequestURI, req.Proto, req.ProtoMajor, req.ProtoMinor = method, target, proto, major, minor
	switch proto { // constants rather than a part of the block
	case "HTTP/1.1":
		req.Proto = "HTTP/1.1"
	case "HTTP/1.0":
		req.Proto = "HTTP/1.0"
	}
	if !originForm(target, &a.url) {
		u, err := parseTarget(method, target)
		if err != nil {
			return nil, &reqError{http.StatusBadRequest, err.Error()}
		}
		a.url = *u
	}
	req.URL = &a.url

	h, err := parseFields(s, a.strs[:])
	if err != nil {
		return nil, err
	}
	req.Header = h

	// The Host header, or the host of an absolute target, which wins
	// (RFC 9112, 3.2.2); the server deletes the header, as net/http's.
	hosts := h["Host"]
	if len(hosts) > 1 {
		return nil, badRequest("too many Host headers")
	}
	req.Host = req.URL.Host
	if req.Host == "" && len(hosts) == 1 {
		req.Host = hosts[0]
	}
	delete(h, "Host")

	// net/http's fixPragmaCacheControl (RFC 7234, 5.4).
	if p := h["Pragma"]; len(p) > 0 && p[0] == "no-cache" {
		if _, ok := h["Cache-Control"]; !ok {
			h["Cache-Control"] = []string{"no-cache"}
		}
	}

	conn := h["Connection"]
	req.Close = containsToken(conn, "close") || minor == 0 && !containsToken(conn, "keep-alive")

	if err := rr.framing(req); err != nil {
		return nil, err
	}
	return req, nil
}

// framing finds where the body of req ends (Content-Length, chunked or
// none) and sets up the reader of the body. Two readers of one stream
// that disagree here see different requests: it refuses all that is
// ambiguous.
func (rr *reqReader) framing(req *http.Request) error {
	h := req.Header
	te, hasTE := h["Transfer-Encoding"]
	cl, hasCL := h["Content-Length"]
	if hasTE {
		switch {
		case req.ProtoMinor == 0:
			return badRequest("Transfer-Encoding in an HTTP/1.0 request")
		case hasCL:
			return badRequest("both Transfer-Encoding and Content-Length")
		case len(te) != 1:
			return badRequest("too many transfer encodings: %d fields", len(te))
		case !asciiEqualFold(te[0], "chunked"):
			// Like nginx and net/http: only chunked, and only on its
			// own ("chunked, identity" is refused).
			return &reqError{http.StatusNotImplemented, fmt.Sprintf("unsupported transfer encoding: %.60q", te[0])}
		}
		delete(h, "Transfer-Encoding")
		req.TransferEncoding = []string{"chunked"}
		req.ContentLength = -1
		if err := declaredTrailer(req); err != nil {
			return err
		}
		rr.chunked = chunkedBody{br: rr.br}
		req.Body = &rr.chunked
		return nil
	}
	if !hasCL {
		req.Body = http.NoBody // a request without either has no body
		return nil
	}
	for _, v := range cl[1:] {
		if v != cl[0] {
			return badRequest("Content-Length fields that differ: %.20q and %.20q", cl[0], v)
		}
	}
	if len(cl) > 1 {
		h["Content-Length"] = cl[:1]
	}
	n, ok := parseLength(cl[0])
	if !ok {
		return badRequest("bad Content-Length %.60q", cl[0])
	}
	req.ContentLength = n
	if n == 0 {
		req.Body = http.NoBody
		return nil
	}
	rr.fixed = fixedBody{br: rr.br, n: n}
	req.Body = &rr.fixed
	return nil
}

// declaredTrailer moves the Trailer header of a chunked request to
// req.Trailer as net/http does: the names it declares, with no values.
func declaredTrailer(req *http.Request) error {
	vv, ok := req.Header["Trailer"]
	if !ok {
		return nil
	}
	delete(req.Header, "Trailer")
	var t http.Header
	for _, v := range vv {
		for name := range strings.SplitSeq(v, ",") {
			name = trimSpace(name)
			if name == "" {
				continue
			}
			name = http.CanonicalHeaderKey(name)
			switch name {
			case "Transfer-Encoding", "Trailer", "Content-Length":
				return badRequest("bad trailer key %.60q", name)
			}
			if t == nil {
				t = http.Header{}
			}
			t[name] = nil
		}
	}
	req.Trailer = t
	return nil
}

// parseFields parses the header fields in s, which ends with the empty
// line. strs holds the first values of the first names.
func parseFields(s string, strs []string) (http.Header, error) {
	n := strings.Count(s, "\n") - 1 // the fields, at most: the last line is empty
	if n > maxHeaderFields {
		return nil, errHeaderTooLarge
	}
	if n > len(strs) {
		strs = make([]string, n)
	}
	h := make(http.Header, n)
	for {
		var line string
		line, s = nextLine(s)
		if line == "" {
			return h, nil
		}
		name, value, err := parseField(line)
		if err != nil {
			return nil, err
		}
		name = canonicalReqKey(name)
		if vv := h[name]; vv != nil {
			h[name] = append(vv, value)
		} else {
			// Capacity 1: a second value is appended elsewhere, not over
			// the next name's first.
			vv, strs = strs[:1:1], strs[1:]
			vv[0] = value
			h[name] = vv
		}
	}
}

// parseField splits a header or trailer line into its name and its value,
// without the white space around it.
func parseField(line string) (name, value string, err error) {
	if line[0] == ' ' || line[0] == '\t' {
		// obs-fold (RFC 9112, 5.2): a server may refuse it, and a
		// reader that joins the lines and one that does not disagree.
		return "", "", badRequest("folded header line %.60q", line)
	}
	name, value, ok := strings.Cut(line, ":")
	if !ok {
		return "", "", badRequest("malformed header line %.60q", line)
	}
	if !validName(name) {
		// A space before the colon among them: textproto lets it
		// through for old clients (RFC 9112, 5.1 says refuse it).
		return "", "", badRequest("invalid header name %.60q", name)
	}
	value = trimSpace(value)
	if !validValue(value) {
		return "", "", badRequest("invalid header value for %.60q", name)
	}
	return name, value, nil
}

// originForm parses the common request target "/path?query" into u, as
// url.ParseRequestURI would, and reports whether it could: a path with a
// byte that ParseRequestURI would escape or unescape (a RawPath), or a
// control byte anywhere, is left to ParseRequestURI.
func originForm(target string, u *url.URL) bool {
	if target == "" || target[0] != '/' {
		return false
	}
	path, query, hasQuery := strings.Cut(target, "?")
	for i := 0; i < len(path); i++ {
		if !pathByte[path[i]] {
			return false
		}
	}
	for i := 0; i < len(query); i++ {
		if c := query[i]; c < ' ' || c == 0x7f {
			return false
		}
	}
	*u = url.URL{Path: path, RawQuery: query}
	if hasQuery && query == "" {
		u.ForceQuery = true
	}
	return true
}

// pathByte holds the bytes that url's escape leaves alone in a path.
var pathByte = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = true, true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "-_.~$&+,/:;=@" {
		t[c] = true
	}
	return t
}()

// parseTarget parses a request target as http.ReadRequest does.
func parseTarget(method, target string) (*url.URL, error) {
	// CONNECT's target is an authority ("host:443"), which goes in
	// URL.Host; net/rpc's CONNECT has a path.
	justAuthority := method == "CONNECT" && !strings.HasPrefix(target, "/")
	if justAuthority {
		target = "http://" + target
	}
	u, err := url.ParseRequestURI(target)
	if err != nil {
		return nil, err
	}
	if justAuthority {
		u.Scheme = ""
	}
	return u, nil
}

// parseVersion parses "HTTP/1.1", "HTTP/1.0", and any "HTTP/d.d", as
// http.ParseHTTPVersion.
func parseVersion(v string) (major, minor int, ok bool) {
	switch v {
	case "HTTP/1.1":
		return 1, 1, true
	case "HTTP/1.0":
		return 1, 0, true
	}
	if len(v) != len("HTTP/d.d") || !strings.HasPrefix(v, "HTTP/") || v[6] != '.' || !isDigit(v[5]) || !isDigit(v[7]) {
		return 0, 0, false
	}
	return int(v[5] - '0'), int(v[7] - '0'), true
}

// parseLength parses a Content-Length: digits only, no sign, at most
// 1<<63-1.
func parseLength(s string) (int64, bool) {
	if s == "" {
		return 0, false
	}
	var n int64
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !isDigit(c) || n > (1<<63-1-int64(c-'0'))/10 {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// containsToken reports whether the comma-separated values hold token,
// in ASCII case: strings.EqualFold would take "cloſe" for "close".
func containsToken(values []string, token string) bool {
	for _, v := range values {
		for part := range strings.SplitSeq(v, ",") {
			if asciiEqualFold(trimSpace(part), token) {
				return true
			}
		}
	}
	return false
}

// asciiEqualFold reports whether s and t are equal in ASCII case.
func asciiEqualFold(s, t string) bool {
	if len(s) != len(t) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if lower(s[i]) != lower(t[i]) {
			return false
		}
	}
	return true
}

func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// canonicalReqKey returns the canonical form of the token name, as
// http.CanonicalHeaderKey: name itself if it is canonical already, as it
// mostly is, else a common name from a table, else a new string.
func canonicalReqKey(name string) string {
	upper := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			return recase(name)
		}
		upper = c == '-'
	}
	return name
}

func recase(name string) string {
	var buf [64]byte
	if len(name) > len(buf) {
		return http.CanonicalHeaderKey(name)
	}
	b := buf[:len(name)]
	upper := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if upper && 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		} else if !upper && 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
		upper = c == '-'
	}
	if k, ok := commonReqKeys[string(b)]; ok { // no allocation for the lookup
		return k
	}
	return string(b)
}

// commonReqKeys interns the names that clients send in lower case (some
// proxies and HTTP/2 libraries do), so that they cost no allocation.
var commonReqKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{
		"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language",
		"Authorization", "Cache-Control", "Connection", "Content-Length",
		"Content-Type", "Cookie", "Expect", "Forwarded", "Host",
		"If-Match", "If-Modified-Since", "If-None-Match", "If-Range",
		"If-Unmodified-Since", "Origin", "Pragma", "Range", "Referer",
		"Sec-Fetch-Dest", "Sec-Fetch-Mode", "Sec-Fetch-Site", "Sec-Fetch-User",
		"Te", "Trailer", "Transfer-Encoding", "Upgrade",
		"Upgrade-Insecure-Requests", "User-Agent", "Via",
		"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto",
		"X-Real-Ip", "X-Requested-With",
	} {
		m[k] = k
	}
	return m
}()

// fixedBody is a body of Content-Length bytes.
type fixedBody struct {
	br *bufio.Reader
	n  int64 // bytes left
}

func (b *fixedBody) Read(p []byte) (int, error) {
	if b.n <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.br.Read(p)
	b.n -= int64(n)
	switch {
	case err == io.EOF && b.n > 0:
		err = io.ErrUnexpectedEOF
	case err == nil && b.n == 0:
		err = io.EOF // as net/http: the caller learns of the end with the data
	}
	return n, err
}

func (b *fixedBody) Close() error { return nil }

// chunkedBody is a chunked body. The reader is net/http's, made stricter:
// a chunk line is 1 to 16 hex digits, then at most an extension (";" and
// no control bytes, where net/http takes any byte but CR), and CRLF; no
// white space after the size, which net/http allows. Like net/http, it
// refuses a bare LF, and a sender whose chunk lines and extensions outweigh
// its data (maxChunkExcess). After the last chunk comes the trailer, which
// is read and checked so that the next request starts where it should,
// and dropped: the gateway has no use for trailers (PHP never sees them),
// so req.Trailer keeps the names the Trailer header declared with no
// values, where net/http fills them in.
type chunkedBody struct {
	br       *bufio.Reader
	n        uint64 // bytes left in the current chunk
	needCRLF bool   // the current chunk's data has been read: its CRLF is next
	excess   int64  // overhead beyond what the data allows, as net/http counts it
	err      error  // the first error, or io.EOF: it sticks
}

// maxChunkExcess bounds the overhead of chunk lines: each chunk may have
// 16 bytes of it, plus twice its data (net/http's figures).
const maxChunkExcess = 16 << 10

func (b *chunkedBody) Read(p []byte) (int, error) {
	for b.err == nil && b.n == 0 {
		b.err = b.nextChunk()
	}
	if b.err != nil {
		return 0, b.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if uint64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.br.Read(p)
	b.n -= uint64(n)
	b.needCRLF = b.n == 0
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	b.err = err
	return n, err
}

// nextChunk reads the CRLF after the data of the chunk before, if any, and
// the next chunk line. For the last chunk, it reads the trailer and returns
// io.EOF.
func (b *chunkedBody) nextChunk() error {
	if b.needCRLF {
		crlf, err := b.br.Peek(2)
		if len(crlf) < 2 {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if crlf[0] != '\r' || crlf[1] != '\n' {
			return errors.New("malformed chunked encoding: no CRLF after a chunk")
		}
		b.br.Discard(2)
		b.needCRLF = false
	}
	line, err := readCRLFLine(b.br, "chunk line")
	if err != nil {
		return err
	}
	var size uint64
	i := 0
	for ; i < len(line) && isHex(line[i]); i++ {
		size = size<<4 | uint64(unhex(line[i]))
	}
	if i == 0 || i > 16 || size >= 1<<62 {
		return errors.New("malformed chunk size")
	}
	if ext := line[i:]; len(ext) > 0 {
		if ext[0] != ';' {
			return errors.New("malformed chunk size")
		}
		if !validValue(ext) {
			return errors.New("control byte in a chunk extension")
		}
	}
	b.excess += int64(len(line)+2) - 16 - 2*int64(size)
	b.excess = max(b.excess, 0)
	if b.excess > maxChunkExcess {
		return errors.New("chunked encoding contains too much non-data")
	}
	if size == 0 {
		if err := skipTrailer(b.br); err != nil {
			return err
		}
		return io.EOF
	}
	b.n = size
	return nil
}

func (b *chunkedBody) Close() error { return nil }

// skipTrailer reads the trailer section after the last chunk, up to and
// with its empty line: at most maxTrailerBytes of lines ending in CRLF,
// each a valid field.
func skipTrailer(br *bufio.Reader) error {
	total := 0
	for {
		line, err := readCRLFLine(br, "trailer line")
		if err != nil {
			return err
		}
		if total += len(line) + 2; total > maxTrailerBytes {
			return errors.New("trailer too large")
		}
		if len(line) == 0 {
			return nil
		}
		s := string(line)
		if strings.IndexByte(s, '\r') >= 0 {
			return errors.New("CR in a trailer line")
		}
		if _, _, err := parseField(s); err != nil {
			return err
		}
	}
}

// readCRLFLine reads a line that must end in CRLF, a chunk line or a
// trailer line, and returns it without the CRLF; what names it in the
// errors. The line is br's own, valid until the next read.
func readCRLFLine(br *bufio.Reader, what string) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	switch {
	case err == io.EOF:
		return nil, io.ErrUnexpectedEOF
	case err == bufio.ErrBufferFull:
		return nil, errors.New(what + " too long")
	case err != nil:
		return nil, err
	}
	n := len(line)
	if n < 2 || line[n-2] != '\r' {
		return nil, errors.New(what + " ends with a bare LF")
	}
	return line[:n-2], nil
}
