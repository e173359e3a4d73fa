package gateway

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
)

// readOurs reads one request from raw with the gateway's reader, and its
// body. ok says both were read without error; rest is what follows.
type readResult struct {
	req  *http.Request
	body []byte
	rest []byte
	err  error // of the header, or else of the body
	code int   // the status the server answers err with (0: I/O)
}

func readOurs(raw []byte) readResult {
	br := bufio.NewReader(bytes.NewReader(raw))
	rr := reqReader{br: br, maxBytes: 64 << 10}
	req, err := rr.read()
	if err != nil {
		var re *reqError
		code := 0
		if errors.As(err, &re) {
			code = re.code
		}
		return readResult{err: err, code: code}
	}
	body, err := io.ReadAll(req.Body)
	rest, _ := io.ReadAll(br)
	return readResult{req: req, body: body, rest: rest, err: err}
}

// readStd does the same with http.ReadRequest, and then deletes the Host
// header, as net/http's server does.
func readStd(raw []byte) readResult {
	br := bufio.NewReader(bytes.NewReader(raw))
	req, err := http.ReadRequest(br)
	if err != nil {
		return readResult{err: err}
	}
	delete(req.Header, "Host")
	trailer := req.Trailer // before the body fills in the values
	if trailer != nil {
		trailer = trailer.Clone()
	}
	body, err := io.ReadAll(req.Body)
	req.Trailer = trailer
	rest, _ := io.ReadAll(br)
	return readResult{req: req, body: body, rest: rest, err: err}
}

// diffRequests returns the first field in which a and b differ, or "".
func diffRequests(a, b readResult) string {
	x, y := a.req, b.req
	type field struct {
		name string
		a, b any
	}
	for _, f := range []field{
		{"Method", x.Method, y.Method},
		{"RequestURI", x.RequestURI, y.RequestURI},
		{"URL", *x.URL, *y.URL},
		{"Proto", x.Proto, y.Proto},
		{"ProtoMajor", x.ProtoMajor, y.ProtoMajor},
		{"ProtoMinor", x.ProtoMinor, y.ProtoMinor},
		{"Header", x.Header, y.Header},
		{"Host", x.Host, y.Host},
		{"ContentLength", x.ContentLength, y.ContentLength},
		{"TransferEncoding", x.TransferEncoding, y.TransferEncoding},
		{"Close", x.Close, y.Close},
		{"Trailer", x.Trailer, y.Trailer},
		{"no body", x.Body == http.NoBody, y.Body == http.NoBody},
		{"body", string(a.body), string(b.body)},
		{"what follows", string(a.rest), string(b.rest)},
	} {
		if !reflect.DeepEqual(f.a, f.b) {
			return fmt.Sprintf("%s: %#v, net/http %#v", f.name, f.a, f.b)
		}
	}
	return ""
}

// checkAgainstStd fails t if ours accepted raw (header and body) where
// http.ReadRequest did not, or they read it differently.
func checkAgainstStd(t *testing.T, raw []byte) {
	t.Helper()
	ours := readOurs(raw)
	if ours.err != nil {
		return
	}
	std := readStd(raw)
	if std.err != nil {
		t.Fatalf("%q: accepted, net/http refuses it: %v", raw, std.err)
	}
	if d := diffRequests(ours, std); d != "" {
		t.Fatalf("%q: %s", raw, d)
	}
}

// validRequests are read as net/http reads them.
var validRequests = []string{
	"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
	"GET /app.php/x?y=1 HTTP/1.1\r\nHost: example.com\r\nAccept: text/html\r\nUser-Agent: Mozilla/5.0\r\nCookie: session=abc\r\n\r\n",
	"GET /a?b HTTP/1.1\nHost: x\n\n",                                // bare LF ends header lines
	"GET /a? HTTP/1.1\r\nHost: x\r\n\r\n",                           // ForceQuery
	"GET /a?? HTTP/1.1\r\nHost: x\r\n\r\n",                          // a query "?"
	"GET /a%20b/%2F?q=%41#f HTTP/1.1\r\nHost: x\r\n\r\n",            // escapes: RawPath
	"GET /a(b)*!'c HTTP/1.1\r\nHost: x\r\n\r\n",                     // bytes the path escapes
	"GET /caf\xc3\xa9?\xff HTTP/1.1\r\nHost: x\r\n\r\n",             // non-ASCII
	"GET //double/slash HTTP/1.1\r\nHost: x\r\n\r\n",                // not an authority
	"GET http://a.example:8080/p?q HTTP/1.1\r\nHost: b\r\n\r\n",     // absolute form: its host wins
	"GET HTTP://User@A.example/p HTTP/1.1\r\nHost: b\r\n\r\n",       // scheme in upper case, userinfo
	"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n",                         // asterisk form
	"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n", // authority form
	"CONNECT /rpc HTTP/1.1\r\nHost: x\r\n\r\n",                      // net/rpc's CONNECT
	"GET / HTTP/1.0\r\n\r\n",                                        // HTTP/1.0: no Host, closes
	"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade, CLOSE\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nConnection: cloſe\r\n\r\n", // not close
	"GET / HTTP/1.2\r\nHost: x\r\n\r\n",                      // a later HTTP/1 minor, as net/http
	"GET / HTTP/1.1\r\nhost: x\r\nuser-agent: a\r\nx-CUSTOM-field: b\r\nACCEPT: c\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nX-B: 2\r\nX-A: 3\r\nx-a: 4\r\n\r\n", // repeats in order
	"GET / HTTP/1.1\r\nHost: x\r\nX-Empty:\r\nX-Sp: \t a b \t\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nX-Obs: caf\xe9\x80\xff\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nX_Under_Score: a\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nPragma: no-cache\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nPragma: no-cache\r\nCache-Control: max-age=0\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: x\r\nH1: a\r\nH2: a\r\nH3: a\r\nH4: a\r\nH5: a\r\nH6: a\r\nH7: a\r\nH8: a\r\nH9: a\r\nH10: a\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello",
	"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 005\r\n\r\nhello",
	"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc", // equal copies
	"POST / HTTP/1.1\r\nHost: x\r\nContent-Length:  3 \r\n\r\nabc",
	"POST / HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc",
	"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: Chunked\r\n\r\n3;ext=1\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;a=b;c=\"q; s\"\r\nabc\r\n0000000000000000;e\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + strings.Repeat("1;"+strings.Repeat("e", 10)+"\r\nx\r\n", 300) + "0\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: X-T, x-u\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\nX-U: 2\r\n\r\n",
	"POST / HTTP/1.1\r\nHost: x\r\nTrailer: X-T\r\nContent-Length: 1\r\n\r\na", // kept: not chunked
	// pipelined: what follows the first request is left for the next
	"GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n",
	"POST /1 HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nabGET /2 HTTP/1.1\r\nHost: x\r\n\r\n",
	"POST /1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\nX-T: v\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n",
}

// invalidRequests are refused with the status given, or, with 0, their
// body fails. net/http accepts some of them: see wantStd.
var invalidRequests = []struct {
	name    string
	raw     string
	code    int
	stdOK   bool // http.ReadRequest accepts it (and its body)
	comment string
}{
	{"empty line", "\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 400, false, ""},
	{"HTTP/0.9", "GET /\r\n\r\n", 400, false, ""},
	{"HTTP/0.9 version", "GET / HTTP/0.9\r\n\r\n", 505, true, "refused by checkRequest before"},
	{"HTTP/2.0", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505, true, "refused by checkRequest before"},
	{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, true, "refused by checkRequest before"},
	{"HTTP/1.10", "GET / HTTP/1.10\r\nHost: x\r\n\r\n", 400, false, ""},
	{"lower-case version", "GET / http/1.1\r\nHost: x\r\n\r\n", 400, false, ""},
	{"two spaces", "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400, false, ""},
	{"space in target", "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", 400, false, ""},
	{"trailing space", "GET / HTTP/1.1 \r\nHost: x\r\n\r\n", 400, false, ""},
	{"tab separator", "GET\t/ HTTP/1.1\r\nHost: x\r\n\r\n", 400, false, ""},
	{"method not a token", "G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400, false, ""},
	{"CR in request line", "GET /\r HTTP/1.1\r\nHost: x\r\n\r\n", 400, false, ""},
	{"relative target", "GET a/b HTTP/1.1\r\nHost: x\r\n\r\n", 400, false, ""},
	{"control byte in target", "GET /a\x01 HTTP/1.1\r\nHost: x\r\n\r\n", 400, false, ""},
	{"control byte in query", "GET /?a\x7f HTTP/1.1\r\nHost: x\r\n\r\n", 400, false, ""},
	{"bad escape", "GET /%zz HTTP/1.1\r\nHost: x\r\n\r\n", 400, false, ""},
	{"obs-fold", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400, true, "net/http joins the lines"},
	{"obs-fold with tab", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n\tb\r\n\r\n", 400, true, ""},
	{"first line folded", "GET / HTTP/1.1\r\n Host: x\r\n\r\n", 400, false, ""},
	{"space before colon", "GET / HTTP/1.1\r\nHost: x\r\nX-A : b\r\n\r\n", 400, true, "textproto keeps it"},
	{"space in name", "GET / HTTP/1.1\r\nHost: x\r\nX A: b\r\n\r\n", 400, true, ""},
	{"no colon", "GET / HTTP/1.1\r\nHost: x\r\nX-A\r\n\r\n", 400, false, ""},
	{"empty name", "GET / HTTP/1.1\r\nHost: x\r\n: b\r\n\r\n", 400, false, ""},
	{"bad name byte", "GET / HTTP/1.1\r\nHost: x\r\nX@A: b\r\n\r\n", 400, false, ""},
	{"NUL in value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400, false, ""},
	{"control byte in value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n", 400, false, ""},
	{"DEL in value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x7f\r\n\r\n", 400, false, ""},
	{"bare CR in value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", 400, false, ""},
	{"CR CR LF", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\r\n\r\n", 400, false, ""},
	{"bare CR line", "GET / HTTP/1.1\r\nHost: x\r\n\rX-A: a\r\n\r\n", 400, false, ""},
	{"two Hosts", "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400, false, ""},
	{"two equal Hosts", "GET / HTTP/1.1\r\nHost: x\r\nhost: x\r\n\r\n", 400, false, ""},
	{"CL and TE", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, true, "net/http drops the Content-Length"},
	{"TE and CL", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n", 400, true, ""},
	{"TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc", 400, true, "net/http ignores the TE"},
	{"TE in HTTP/1.0 alone", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, true, ""},
	{"chunked, identity", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 501, false, ""},
	{"identity", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\n\r\n", 501, false, ""},
	{"xchunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 501, false, ""},
	{"gzip", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501, false, ""},
	{"empty TE", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n\r\n", 501, false, ""},
	{"two TEs", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, false, ""},
	{"chunked in a folded TE", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n", 400, true, "net/http unfolds it to chunked"},
	{"TE with a space before the colon", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400, true, ""},
	{"two different CLs", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", 400, false, ""},
	{"CL 3 and 03", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 03\r\n\r\nabc", 400, false, ""},
	{"CL list", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 3\r\n\r\nabc", 400, false, ""},
	{"CL with plus", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc", 400, false, ""},
	{"CL negative", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400, false, ""},
	{"CL with inner space", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1 2\r\n\r\nabc", 400, false, ""},
	{"CL hex", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x3\r\n\r\nabc", 400, false, ""},
	{"CL underscore", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1_0\r\n\r\nabc", 400, false, ""},
	{"CL empty", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n", 400, false, ""},
	{"CL too large", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9223372036854775808\r\n\r\n", 400, false, ""},
	{"bad trailer key", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTrailer: Content-Length\r\n\r\n0\r\n\r\n", 400, false, ""},
	// Bodies that fail.
	{"short body", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nabc", 0, false, ""},
	{"chunk line with bare LF", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n", 0, false, ""},
	{"chunk size not hex", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3g\r\nabc\r\n0\r\n\r\n", 0, false, ""},
	{"chunk size signed", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n+3\r\nabc\r\n0\r\n\r\n", 0, false, ""},
	{"space after chunk size", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n", 0, true, "net/http trims it"},
	{"tab after chunk size", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\t\r\nabc\r\n0\r\n\r\n", 0, true, ""},
	{"space before extension", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3 ;a\r\nabc\r\n0\r\n\r\n", 0, false, ""},
	{"control byte in extension", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;a\x00\r\nabc\r\n0\r\n\r\n", 0, true, "net/http takes any byte but CR"},
	{"bare LF in extension", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;a\nb\r\nabc\r\n0\r\n\r\n", 0, false, ""},
	{"CR in extension", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3;a\rb\r\nabc\r\n0\r\n\r\n", 0, false, ""},
	{"chunk size 0x", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n", 0, false, ""},
	{"empty chunk size", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\r\nabc\r\n0\r\n\r\n", 0, false, ""},
	{"17 hex digits", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n00000000000000003\r\nabc\r\n0\r\n\r\n", 0, false, ""},
	{"no CRLF after data", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\n0\r\n\r\n", 0, false, ""},
	{"extensions outweigh data", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + strings.Repeat("1;"+strings.Repeat("e", 100)+"\r\nx\r\n", 300) + "0\r\n\r\n", 0, false, ""},
	{"chunk size huge", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\nabc\r\n0\r\n\r\n", 0, false, ""},
	{"chunk data too long", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcd\r\n0\r\n\r\n", 0, false, ""},
	{"no last chunk", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n", 0, false, ""},
	{"no trailer end", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n", 0, false, ""},
	{"trailer with bare LF", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: v\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 0, true, "net/http accepts it, if a CRLF CRLF follows"},
	{"trailer ends with bare LF", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 0, true, ""},
	{"folded trailer", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: v\r\n w\r\n\r\n", 0, true, ""},
	{"trailer without colon", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T\r\n\r\n", 0, false, ""},
	{"NUL in trailer", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nX-T: \x00\r\n\r\n", 0, false, ""},
	{"trailer too long", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n" + strings.Repeat("X-T: "+strings.Repeat("v", 90)+"\r\n", 50) + "\r\n", 0, false, ""},
	{"too many fields", "GET / HTTP/1.1\r\nHost: x\r\n" + strings.Repeat("X: y\r\n", maxHeaderFields) + "\r\n", 431, true, "net/http allows 10000"},
}

func TestReadRequestValid(t *testing.T) {
	for _, raw := range validRequests {
		ours := readOurs([]byte(raw))
		if ours.err != nil {
			t.Errorf("%q: %v", raw, ours.err)
			continue
		}
		checkAgainstStd(t, []byte(raw))
	}
}

func TestReadRequestInvalid(t *testing.T) {
	for _, tt := range invalidRequests {
		t.Run(tt.name, func(t *testing.T) {
			ours := readOurs([]byte(tt.raw))
			switch {
			case ours.err == nil:
				t.Fatalf("accepted: %+v, body %q", ours.req, ours.body)
			case ours.req == nil && ours.code != tt.code:
				t.Fatalf("status %d (%v), want %d", ours.code, ours.err, tt.code)
			case ours.req != nil && tt.code != 0:
				t.Fatalf("body failed (%v), want status %d", ours.err, tt.code)
			}
			if std := readStd([]byte(tt.raw)); (std.err == nil) != tt.stdOK {
				t.Errorf("net/http: %v, stdOK %v", std.err, tt.stdOK)
			}
		})
	}
}

// TestReadRequestFields checks what the differential test cannot: the
// template's context and address, and the interned keys.
func TestReadRequestFields(t *testing.T) {
	type ctxKey struct{}
	ctx := context.WithValue(context.Background(), ctxKey{}, 1)
	raw := "GET /p?q HTTP/1.1\r\nhost: x\r\nuser-agent: a\r\nX-Some-Thing: b\r\n\r\n" +
		"POST /2 HTTP/1.1\r\nHost: y\r\nContent-Length: 2\r\n\r\nok"
	br := bufio.NewReader(strings.NewReader(raw))
	rr := reqReader{br: br, tmpl: (&http.Request{RemoteAddr: "192.0.2.1:1234"}).WithContext(ctx)}
	req, err := rr.read()
	if err != nil {
		t.Fatal(err)
	}
	if req.Context() != ctx || req.RemoteAddr != "192.0.2.1:1234" {
		t.Errorf("context %v, address %q: not the template's", req.Context(), req.RemoteAddr)
	}
	want := http.Header{"User-Agent": {"a"}, "X-Some-Thing": {"b"}}
	if !reflect.DeepEqual(req.Header, want) || req.Host != "x" {
		t.Errorf("header %v, host %q", req.Header, req.Host)
	}
	if *req.URL != (url.URL{Path: "/p", RawQuery: "q"}) {
		t.Errorf("URL %#v", req.URL)
	}
	req2, err := rr.read()
	if err != nil {
		t.Fatal(err)
	}
	if req2 == req || req2.URL == req.URL || req.Method != "GET" || req.URL.Path != "/p" {
		t.Error("the second request shares the first's memory")
	}
	if b, err := io.ReadAll(req2.Body); err != nil || string(b) != "ok" {
		t.Errorf("second body %q, %v", b, err)
	}
	if _, err := rr.read(); err != io.EOF {
		t.Errorf("at the end: %v, want io.EOF", err)
	}
}

// TestReadRequestLimit checks that a header block over maxBytes is 431,
// and a request cut short io.ErrUnexpectedEOF.
func TestReadRequestLimit(t *testing.T) {
	raw := "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 8000) + "\r\n\r\n"
	rr := reqReader{br: bufio.NewReader(strings.NewReader(raw)), maxBytes: 4096}
	if _, err := rr.read(); err != errHeaderTooLarge {
		t.Errorf("over the limit: %v", err)
	}
	rr = reqReader{br: bufio.NewReader(strings.NewReader(raw)), maxBytes: 10000}
	if _, err := rr.read(); err != nil {
		t.Errorf("a line longer than the buffer: %v", err)
	}
	rr = reqReader{br: bufio.NewReader(strings.NewReader(raw[:100]))}
	if _, err := rr.read(); err != io.ErrUnexpectedEOF {
		t.Errorf("cut short: %v", err)
	}
}

// TestOriginForm checks the fast path against url.ParseRequestURI.
func TestOriginForm(t *testing.T) {
	for _, target := range []string{
		"/", "/a/b.php", "/a?b=c&d", "/a?", "/a??", "/?", "/a?b?c", "/a#b", "/a?b#c",
		"/-_.~$&+,/:;=@", "/a!", "/a*", "/a(", "/a'", "/a%41", "/a\x80", "/a?\x80\xff",
		"/a?\x01", "/a?\x7f", "/a?\t", "//a/b", "///a", "/a[b]", "/a|b", "/a^b", "/a\\b",
	} {
		var u url.URL
		if !originForm(target, &u) {
			continue
		}
		want, err := url.ParseRequestURI(target)
		if err != nil {
			t.Errorf("%q: taken, ParseRequestURI refuses it: %v", target, err)
			continue
		}
		if u != *want {
			t.Errorf("%q: %#v, ParseRequestURI %#v", target, u, *want)
		}
	}
}

// FuzzReadRequest checks that the reader never panics, and that whatever
// it accepts http.ReadRequest also accepts, and reads the same way.
func FuzzReadRequest(f *testing.F) {
	for _, raw := range validRequests {
		f.Add([]byte(raw))
	}
	for _, tt := range invalidRequests {
		f.Add([]byte(tt.raw))
	}
	// Random bytes seldom make a request line and a header that pass:
	// the input is also tried as the header fields of a GET, and as the
	// chunked body of a POST, so that the mutations reach those parsers.
	const (
		get  = "GET / HTTP/1.1\r\nHost: x\r\n"
		post = "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
	)
	f.Add([]byte("X-A: 1\r\nx-b: 2\r\nContent-Length: 1\r\n\r\na"))
	f.Add([]byte("3;e=1\r\nabc\r\n0\r\nX-T: v\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		checkAgainstStd(t, raw)
		checkAgainstStd(t, append([]byte(get), raw...))
		checkAgainstStd(t, append([]byte(post), raw...))
	})
}

// BenchmarkReadRequest compares the reader with http.ReadRequest and the
// WithContext that the server needed after it, on BenchmarkServe's
// request.
func BenchmarkReadRequest(b *testing.B) {
	raw := "GET /app.php/x?y=1 HTTP/1.1\r\nHost: example.com\r\nAccept: text/html\r\nUser-Agent: Mozilla/5.0\r\nCookie: session=abc\r\n\r\n"
	ctx := context.Background()
	sr := strings.NewReader(raw)
	br := bufio.NewReader(sr)
	b.Run("ours", func(b *testing.B) {
		rr := reqReader{br: br, tmpl: (&http.Request{}).WithContext(ctx)}
		b.ReportAllocs()
		for b.Loop() {
			sr.Reset(raw)
			br.Reset(sr)
			if _, err := rr.read(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("net-http", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			sr.Reset(raw)
			br.Reset(sr)
			req, err := http.ReadRequest(br)
			if err != nil {
				b.Fatal(err)
			}
			_ = req.WithContext(ctx)
		}
	})
}
