package gateway

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

func TestReadCGIHeader(t *testing.T) {
	long := strings.Repeat("a", 20<<10) // longer than the reader's buffer
	tests := []struct {
		name   string
		in     string
		status int
		reason string
		header http.Header // nil: the input is invalid
		body   string
	}{
		{"plain", "Content-type: text/html\r\n\r\nhi", 200, "", http.Header{"Content-Type": {"text/html"}}, "hi"},
		{"LF only", "Content-Type: text/html\nX-A: 1\n\nhi", 200, "", http.Header{"Content-Type": {"text/html"}, "X-A": {"1"}}, "hi"},
		{"status", "Status: 201 Created\r\nContent-Type: a/b\r\n\r\n", 201, "Created", http.Header{"Content-Type": {"a/b"}}, ""},
		{"status without reason", "status: 404\r\n\r\n", 404, "", http.Header{}, ""},
		{"custom reason", "Status: 299 Partly Done \r\n\r\n", 299, "Partly Done", http.Header{}, ""},
		{"location", "Location: /next\r\n\r\n", 302, "", http.Header{"Location": {"/next"}}, ""},
		{"location with 201", "Status: 201 Created\r\nLocation: /items/7\r\n\r\n", 201, "Created", http.Header{"Location": {"/items/7"}}, ""},
		{"location with 303", "Location: /next\r\nStatus: 303 See Other\r\n\r\n", 303, "See Other", http.Header{"Location": {"/next"}}, ""},
		{"set-cookie twice", "Set-Cookie: a=1\r\nset-cookie: b=2; Path=/\r\n\r\n", 200, "", http.Header{"Set-Cookie": {"a=1", "b=2; Path=/"}}, ""},
		{"value spacing", "X-A:   padded\t \r\nX-Empty:\r\n\r\n", 200, "", http.Header{"X-A": {"padded"}, "X-Empty": {""}}, ""},
		{"hop-by-hop dropped", "Connection: close\r\nTransfer-Encoding: chunked\r\nKeep-Alive: 5\r\nUpgrade: h2c\r\nTrailer: X\r\nX-Request-Id: php\r\nX-Kept: 1\r\n\r\n", 200, "", http.Header{"X-Kept": {"1"}}, ""},
		{"content-length", "Content-Length: 2\r\ncontent-length: 2\r\n\r\nhi", 200, "", http.Header{"Content-Length": {"2"}}, "hi"},
		{"long line", "X-Long: " + long + "\r\n\r\n", 200, "", http.Header{"X-Long": {long}}, ""},
		{"empty", "", 0, "", nil, ""},
		{"ends inside the header", "Content-Type: text/html\r\n", 0, "", nil, ""},
		{"ends without a blank line", "Content-Type: text/html", 0, "", nil, ""},
		{"no colon", "this is not a header\r\n\r\n", 0, "", nil, ""},
		{"status line", "HTTP/1.1 200 OK\r\n\r\n", 0, "", nil, ""},
		{"space in name", "Content Type: x\r\n\r\n", 0, "", nil, ""},
		{"folded line", "X-A: 1\r\n  continued\r\n\r\n", 0, "", nil, ""},
		{"empty name", ": x\r\n\r\n", 0, "", nil, ""},
		{"NUL in value", "X-A: a\x00b\r\n\r\n", 0, "", nil, ""},
		{"CR in value", "X-A: a\rb\r\n\r\n", 0, "", nil, ""},
		{"bad status", "Status: abc\r\n\r\n", 0, "", nil, ""},
		{"short status", "Status: 20\r\n\r\n", 0, "", nil, ""},
		{"1xx status", "Status: 101 Switching Protocols\r\n\r\n", 0, "", nil, ""},
		{"status glued to reason", "Status: 200OK\r\n\r\n", 0, "", nil, ""},
		{"two statuses", "Status: 200 OK\r\nStatus: 500 Oops\r\n\r\n", 0, "", nil, ""},
		{"bad content-length", "Content-Length: 1e3\r\n\r\n", 0, "", nil, ""},
		{"two content-lengths", "Content-Length: 2\r\nContent-Length: 3\r\n\r\n", 0, "", nil, ""},
		{"binary", "\x00\x01\x02\xff\xfe\r\n\r\n", 0, "", nil, ""},
		{"too large", strings.Repeat("X-A: "+strings.Repeat("b", 1000)+"\r\n", 70) + "\r\n", 0, "", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			br := bufio.NewReaderSize(strings.NewReader(tt.in), 8<<10)
			h := http.Header{}
			head, err := readCGIHeader(br, h)
			if tt.header == nil {
				if !errors.Is(err, errBadHeader) {
					t.Fatalf("err %v, want errBadHeader", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if head.status != tt.status || head.reason != tt.reason {
				t.Errorf("status %d %q, want %d %q", head.status, head.reason, tt.status, tt.reason)
			}
			if !reflect.DeepEqual(h, tt.header) {
				t.Errorf("header %v, want %v", h, tt.header)
			}
			if rest, _ := io.ReadAll(br); string(rest) != tt.body {
				t.Errorf("body %q, want %q", rest, tt.body)
			}
		})
	}
}

// TestResponse relays scripted CGI output and checks what the client gets.
func TestResponse(t *testing.T) {
	leakCheck(t)
	tests := []struct {
		name   string
		cgi    string
		method string
		status string // the whole status as the client reads it
		header map[string][]string
		body   string
	}{{
		name:   "created",
		cgi:    "Status: 201 Created\r\nContent-Type: application/json\r\n\r\n{}",
		status: "201 Created",
		header: map[string][]string{"Content-Type": {"application/json"}, "Status": nil},
		body:   "{}",
	}, {
		name:   "location without status is a 302",
		cgi:    "Location: /login?next=%2F\r\n\r\n",
		status: "302 Found",
		header: map[string][]string{"Location": {"/login?next=%2F"}},
	}, {
		name:   "location with 201 keeps 201",
		cgi:    "Status: 201 Created\r\nLocation: /items/7\r\n\r\n",
		status: "201 Created",
		header: map[string][]string{"Location": {"/items/7"}},
	}, {
		name:   "location with 303 keeps 303",
		cgi:    "Status: 303 See Other\r\nLocation: /done\r\n\r\n",
		status: "303 See Other",
		header: map[string][]string{"Location": {"/done"}},
	}, {
		name:   "custom reason phrase survives",
		cgi:    "Status: 299 Partly Done\r\nContent-Type: text/plain\r\nSet-Cookie: a=1\r\n\r\nsome of it",
		status: "299 Partly Done",
		header: map[string][]string{"Set-Cookie": {"a=1"}, "Status": nil},
		body:   "some of it",
	}, {
		name:   "custom reason phrase for a known code",
		cgi:    "Status: 404 No Such Article\r\nContent-Length: 7\r\n\r\nmissing",
		status: "404 No Such Article",
		header: map[string][]string{"Content-Length": {"7"}},
		body:   "missing",
	}, {
		name:   "custom reason phrase on HEAD",
		cgi:    "Status: 250 Fine\r\nContent-Type: text/plain\r\n\r\n",
		method: "HEAD",
		status: "250 Fine",
	}, {
		name:   "set-cookie repeated",
		cgi:    "Set-Cookie: a=1; Path=/\r\nSet-Cookie: b=2; HttpOnly\r\nContent-Type: text/html\r\n\r\nok",
		status: "200 OK",
		header: map[string][]string{"Set-Cookie": {"a=1; Path=/", "b=2; HttpOnly"}},
		body:   "ok",
	}, {
		name:   "content-length from PHP",
		cgi:    "Content-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
		status: "200 OK",
		header: map[string][]string{"Content-Length": {"5"}},
		body:   "hello",
	}, {
		name:   "HEAD has no body",
		cgi:    "Content-Type: text/plain\r\n\r\nthe body PHP should not have sent",
		method: "HEAD",
		status: "200 OK",
	}, {
		name:   "no content",
		cgi:    "Status: 204 No Content\r\n\r\n",
		status: "204 No Content",
	}, {
		name:   "hop-by-hop from PHP dropped",
		cgi:    "Transfer-Encoding: identity\r\nConnection: close\r\nX-Request-Id: php\r\n\r\nbody",
		status: "200 OK",
		header: map[string][]string{"Connection": nil},
		body:   "body",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startFake(t, answer(tt.cgi))
			tg := startGateway(t, testPool(f.addr), nil)
			method := tt.method
			if method == "" {
				method = "GET"
			}
			req, _ := http.NewRequest(method, tg.url+"/index.php", nil)
			resp, body := tg.do(t, req)
			if resp.Status != tt.status {
				t.Errorf("status %q, want %q", resp.Status, tt.status)
			}
			for k, want := range tt.header {
				if got := resp.Header[k]; !reflect.DeepEqual(got, want) {
					t.Errorf("%s: %q, want %q", k, got, want)
				}
			}
			if resp.Header.Get("X-Request-Id") == "" || resp.Header.Get("X-Request-Id") == "php" {
				t.Errorf("X-Request-Id %q, want the gateway's", resp.Header.Get("X-Request-Id"))
			}
			if body != tt.body {
				t.Errorf("body %q, want %q", body, tt.body)
			}
		})
	}
}

// TestReasonPhraseHTTP10 checks the reason phrase for an HTTP/1.0 client:
// the status line says HTTP/1.1, the version the server speaks (as nginx
// and net/http do), and the body is not chunked.
func TestReasonPhraseHTTP10(t *testing.T) {
	leakCheck(t)
	f := startFake(t, answer("Status: 299 Partly Done\r\nContent-Type: text/plain\r\n\r\nold client"))
	tg := startGateway(t, testPool(f.addr), nil)
	resp, body := tg.raw(t, "GET /index.php HTTP/1.0\r\n\r\n")
	if resp.Status != "299 Partly Done" || resp.Proto != "HTTP/1.1" || body != "old client" || len(resp.TransferEncoding) != 0 {
		t.Errorf("got %s %q %q %v", resp.Proto, resp.Status, body, resp.TransferEncoding)
	}
}

// TestStreaming checks that output PHP flushes reaches the client while the
// script still runs: the first chunk is read before the backend is let go.
func TestStreaming(t *testing.T) {
	leakCheck(t)
	rel := newRelease(t)
	addr := startFCGI(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "first\n")
		w.(http.Flusher).Flush()
		<-rel.ch
		io.WriteString(w, "second\n")
	})
	tg := startGateway(t, testPool(addr), nil)
	resp, err := tg.client.Get(tg.url + "/stream.php")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.ContentLength != -1 {
		t.Errorf("Content-Length %d, want none (chunked)", resp.ContentLength)
	}
	first := make([]byte, len("first\n"))
	if _, err := io.ReadFull(resp.Body, first); err != nil || string(first) != "first\n" {
		t.Fatalf("first chunk %q, %v", first, err)
	}
	rel.open()
	rest, err := io.ReadAll(resp.Body)
	if err != nil || string(rest) != "second\n" {
		t.Errorf("rest %q, %v", rest, err)
	}
}

// TestStderrLogged checks that STDERR lines are logged at warn with the
// request id the client sees.
func TestStderrLogged(t *testing.T) {
	leakCheck(t)
	f := startFake(t, func(c *fakeConn) {
		if _, err := c.read(); err != nil {
			return
		}
		c.write(rec(recStderr, []byte("PHP message: PHP Warning:  oops in /srv/www/index.php on line 3\nsecond line\n")),
			stdout("Content-Type: text/plain\r\n\r\nok"), endRequest(0))
	})
	tg := startGateway(t, testPool(f.addr), nil)
	resp, body := tg.get(t, "/index.php")
	if resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	logged := tg.logs.find("php stderr")
	if len(logged) != 2 {
		t.Fatalf("%d stderr entries, want 2:\n%s", len(logged), tg.logs)
	}
	for _, e := range logged {
		if e["level"] != "WARN" || e["request_id"] != resp.Header.Get("X-Request-Id") {
			t.Errorf("entry %v: want WARN with request_id %s", e, resp.Header.Get("X-Request-Id"))
		}
	}
	if !strings.Contains(logged[0]["line"].(string), "oops") || logged[1]["line"] != "second line" {
		t.Errorf("lines %q, %q", logged[0]["line"], logged[1]["line"])
	}
}

// TestFPMFileNotFound checks that FPM's own 404 for an unknown script is
// passed through and logged with the SCRIPT_FILENAME sent.
func TestFPMFileNotFound(t *testing.T) {
	leakCheck(t)
	f := startFake(t, answer("Status: 404 Not Found\r\nContent-type: text/html; charset=UTF-8\r\n\r\nFile not found.\n"))
	tg := startGateway(t, testPool(f.addr), nil)
	resp, body := tg.get(t, "/missing.php")
	if resp.StatusCode != 404 || body != "File not found.\n" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	logged := tg.logs.find("FPM does not find the script")
	if len(logged) != 1 || logged[0]["script_filename"] != "/srv/www/missing.php" || logged[0]["level"] != "WARN" {
		t.Errorf("log entries %v", logged)
	}
	// An application's own 404 is not FPM's.
	f2 := startFake(t, answer("Status: 404 Not Found\r\nContent-type: text/html\r\n\r\n<h1>No such page</h1>"))
	tg2 := startGateway(t, testPool(f2.addr), nil)
	tg2.get(t, "/page.php")
	if logged := tg2.logs.find("FPM does not find the script"); len(logged) != 0 {
		t.Errorf("app 404 logged as FPM's: %v", logged)
	}
}

// TestGarbage feeds the gateway broken backends. Each request must get a
// 502, no panic, no hang; the backend connection must be closed, not
// reused; and no goroutine may be left (leakCheck).
func TestGarbage(t *testing.T) {
	leakCheck(t)
	header := func(version, typ byte, id uint16, length uint16, pad byte) []byte {
		return []byte{version, typ, byte(id >> 8), byte(id), byte(length >> 8), byte(length), pad, 0}
	}
	tests := []struct {
		name   string
		answer []byte
		// keepOpen: the fake leaves the connection open after its
		// answer, and checks that the gateway closes it.
		keepOpen bool
	}{
		{"wrong version", append(header(2, recStdout, 1, 4, 4), "Stat\x00\x00\x00\x00"...), true},
		{"truncated record", append(header(1, recStdout, 1, 100, 4), "Status: 200"...), false},
		{"header cut short", header(1, recStdout, 1, 8, 0)[:5], false},
		{"absurd END_REQUEST length", append(header(1, recEnd, 1, 65535, 255), make([]byte, 64)...), false},
		{"absurd STDOUT length, then close", append(header(1, recStdout, 1, 65535, 255), "Content-Type: text/html\r\n"...), false},
		{"unknown record type", append(header(1, 42, 1, 8, 0), make([]byte, 8)...), true},
		{"wrong request id", append(header(1, recStdout, 7, 8, 0), "X-A: b\r\n"...), true},
		{"close without answer", nil, false},
		{"no END_REQUEST", rec(recStdout, []byte("Content-Type: text/html\r\n")), false},
		{"closing mid-record", append(header(1, recStdout, 1, 200, 0), "Content-Type: te"...), false},
		{"garbage CGI header", append(stdout("this is not a header\r\n\r\nbody"), endRequest(0)...), true},
		{"binary CGI header", append(stdout("\x00\x01\x02\xff\r\n\r\n"), endRequest(0)...), true},
		{"CGI header never ends", append(stdout(strings.Repeat("X-Filler: "+strings.Repeat("z", 100)+"\r\n", 700)), endRequest(0)...), true},
		// The record stream is whole, so the connection may be reused;
		// fastcgi.Response offers no way to refuse it.
		{"empty response", append(rec(recStdout, nil), endRequest(0)...), false},
		{"invalid status", append(stdout("Status: 1000 Too Big\r\n\r\n"), endRequest(0)...), true},
		{"END_REQUEST unknown protocol status", endRequest(9), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			closed := make(chan bool, 10)
			f := startFake(t, func(c *fakeConn) {
				if _, err := c.read(); err != nil {
					return
				}
				if tt.answer != nil && c.write(tt.answer) != nil {
					return
				}
				if tt.keepOpen {
					closed <- c.closedByPeer()
				}
			})
			for _, method := range []string{"GET", "POST"} {
				pc := testPool(f.addr)
				pc.MaxAttempts = 1
				tg := startGateway(t, pc, nil)
				req, _ := http.NewRequest(method, tg.url+"/index.php", nil)
				resp, body := tg.do(t, req)
				if resp.StatusCode != http.StatusBadGateway {
					t.Errorf("%s: status %d %q, want 502", method, resp.StatusCode, body)
				}
				if tt.keepOpen && !<-closed {
					t.Errorf("%s: the gateway left the broken connection open", method)
				}
			}
		})
	}
}

// TestCutShort checks that a backend failing after the response header went
// out aborts the response, so that the client sees an error, never a
// truncated body taken for a whole one.
func TestCutShort(t *testing.T) {
	leakCheck(t)
	tests := []struct {
		name   string
		answer []byte
	}{
		{"closed before END_REQUEST", rec(recStdout, []byte("Content-Type: text/plain\r\n\r\npart of the"))},
		{"closed mid-record", append(rec(recStdout, []byte("Content-Type: text/plain\r\n\r\npart")), []byte{1, recStdout, 0, 1, 0, 100, 0, 0, 'x'}...)},
		{"shorter than Content-Length", append(stdout("Content-Length: 100\r\n\r\nonly this"), endRequest(0)...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startFake(t, func(c *fakeConn) {
				if _, err := c.read(); err == nil {
					c.write(tt.answer)
				}
			})
			tg := startGateway(t, testPool(f.addr), nil)
			resp, err := tg.client.Get(tg.url + "/index.php")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err == nil {
				t.Errorf("read %q without error, want the response cut short", b)
			}
		})
	}
}

// TestReasonPhraseAfterBody: the reason phrase reaches the client of a
// POST too, and the connection goes on.
func TestReasonPhraseAfterBody(t *testing.T) {
	leakCheck(t)
	f := startFake(t, func(c *fakeConn) {
		for {
			r, err := c.read()
			if err != nil {
				return
			}
			c.write(stdout("Status: 202 Queued For Later\r\nContent-Type: text/plain\r\n\r\n"+string(r.stdin)), endRequest(0))
		}
	})
	tg := startGateway(t, testPool(f.addr), nil)
	req, _ := http.NewRequest("POST", tg.url+"/job.php", strings.NewReader("job=1"))
	resp, body := tg.do(t, req)
	if resp.Status != "202 Queued For Later" || body != "job=1" {
		t.Errorf("got %q %q", resp.Status, body)
	}
}

// TestReasonPhraseFallback: under another server, which cannot write a
// reason phrase of its own, the code is kept with its standard phrase, and
// the loss is logged.
func TestReasonPhraseFallback(t *testing.T) {
	leakCheck(t)
	f := startFake(t, answer("Status: 299 Partly Done\r\nContent-Type: text/plain\r\n\r\nbody"))
	logs := &logBuffer{}
	g, err := New(Config{Pools: []PoolConfig{testPool(f.addr)}}, slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	w := httptest.NewRecorder()
	g.ServeHTTP(w, httptest.NewRequest("GET", "/index.php", nil))
	if w.Code != 299 || w.Body.String() != "body" {
		t.Errorf("got %d %q", w.Code, w.Body)
	}
	if len(logs.find("custom reason phrase replaced")) != 1 {
		t.Errorf("fallback not logged:\n%s", logs)
	}
}

// FuzzReadCGIHeader: whatever block readCGIHeader accepts, written back out
// (its Status, then its fields), reads back the same; one it refuses adds
// no field to the header. It reads through bufio's smallest buffer, so that
// long lines take the path that gathers them.
func FuzzReadCGIHeader(f *testing.F) {
	for _, s := range []string{
		"Content-Type: text/html\r\n\r\nbody",
		"Status: 404 Not Found\nX-A: 1\nX-A: 2\n\n",
		"Status: 201\r\nLocation: /x\r\n\r\n",
		"Location: /x\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
		"Content-Length: 5\r\nContent-Length: 6\r\n\r\n",
		"Set-Cookie: a=1\r\nSet-Cookie: b=2; Path=/\r\nX-Powered-By: PHP/8.2\r\n\r\n",
		"Connection: close\r\nX-Request-Id: 1\r\nTransfer-Encoding: chunked\r\n\r\n",
		"X-Long: " + strings.Repeat("v", 100) + "\r\n\r\n",
		"bad line\r\n\r\n",
		"Status: 200 OK\r\nStatus: 404\r\n\r\n",
		"x-lower-case:   spaced value  \r\n\r\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		h := http.Header{}
		head, err := readCGIHeader(bufio.NewReaderSize(bytes.NewReader(in), 16), h)
		if err != nil {
			if len(h) != 0 {
				t.Fatalf("refused (%v) but added %v", err, h)
			}
			return
		}
		var out bytes.Buffer
		if head.hasStatus {
			fmt.Fprintf(&out, "Status: %d", head.status)
			if head.reason != "" {
				out.WriteString(" " + head.reason)
			}
			out.WriteString("\r\n")
		}
		for k, vv := range h {
			for _, v := range vv {
				fmt.Fprintf(&out, "%s: %s\r\n", k, v)
			}
		}
		out.WriteString("\r\n")
		h2 := http.Header{}
		head2, err := readCGIHeader(bufio.NewReader(&out), h2)
		if err != nil {
			t.Fatalf("%q read as %+v %v, but written back as %q it is refused: %v", in, head, h, out.String(), err)
		}
		if head2 != head || !reflect.DeepEqual(h, h2) {
			t.Fatalf("%q read as %+v %v, written back and read again: %+v %v", in, head, h, head2, h2)
		}
	})
}
