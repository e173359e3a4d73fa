package test

import (
	"bufio"
	"bytes"
	"crypto/md5"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fcgigate/fcgigate/test/fpmtest"
)

// phpEnv is what env.php reports.
type phpEnv struct {
	Server   map[string]any `json:"server"`
	Get      map[string]any `json:"get"`
	Post     map[string]any `json:"post"`
	Cookie   map[string]any `json:"cookie"`
	Headers  map[string]any `json:"headers"`
	Files    map[string]any `json:"files"`
	InputMD5 string         `json:"input_md5"`
	InputLen int            `json:"input_len"`
	AuthUser *string        `json:"auth_user"`
	AuthPW   *string        `json:"auth_pw"`
}

func (e *phpEnv) server(k string) string {
	v, _ := e.Server[k].(string)
	return v
}

func decodeEnv(t *testing.T, resp *http.Response) *phpEnv {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	var e phpEnv
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("env.php answer is not JSON: %v\n%s", err, b)
	}
	return &e
}

// onePHP starts one FPM and a gateway in front of it.
func onePHP(t *testing.T, o fpmtest.Options) (*fpmtest.FPM, *testGateway) {
	t.Helper()
	fpmtest.Need(t)
	if o.Addr == "" {
		o.Addr = fpmtest.FreePort(t, "127.0.0.2")
	}
	fpm := fpmtest.Start(t, o)
	gw := startGateway(t, "127.0.1.1", withPool(phpPool(fpm.Addr)))
	return fpm, gw
}

func TestRequests(t *testing.T) {
	fpm, gw := onePHP(t, fpmtest.Options{})
	c := client(t)

	t.Run("GET with query", func(t *testing.T) {
		resp, err := c.Get(gw.URL + "/env.php?a=1&b=two%20words")
		if err != nil {
			t.Fatal(err)
		}
		e := decodeEnv(t, resp)
		want := map[string]string{
			"REQUEST_METHOD":    "GET",
			"QUERY_STRING":      "a=1&b=two%20words",
			"REQUEST_URI":       "/env.php?a=1&b=two%20words",
			"SCRIPT_NAME":       "/env.php",
			"SCRIPT_FILENAME":   fpmtest.PHPDir() + "/env.php",
			"DOCUMENT_ROOT":     fpmtest.PHPDir(),
			"DOCUMENT_URI":      "/env.php",
			"SERVER_PROTOCOL":   "HTTP/1.1",
			"GATEWAY_INTERFACE": "CGI/1.1",
			"REQUEST_SCHEME":    "http",
			"SERVER_NAME":       "127.0.1.1",
			"SERVER_ADDR":       "127.0.1.1",
			"REMOTE_ADDR":       "127.0.0.1",
			"REDIRECT_STATUS":   "200",
		}
		for k, v := range want {
			if got := e.server(k); got != v {
				t.Errorf("%s = %q, want %q", k, got, v)
			}
		}
		if e.Get["b"] != "two words" {
			t.Errorf("$_GET[b] = %v", e.Get["b"])
		}
		for _, k := range []string{"SERVER_PORT", "REMOTE_PORT", "SERVER_SOFTWARE"} {
			if e.server(k) == "" {
				t.Errorf("%s is empty", k)
			}
		}
		if _, ok := e.Server["PATH_INFO"]; ok && e.server("PATH_INFO") != "" {
			t.Errorf("PATH_INFO = %q without extra path", e.server("PATH_INFO"))
		}
	})

	t.Run("HEAD", func(t *testing.T) {
		resp, err := c.Head(gw.URL + "/hello.php")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(b) != 0 {
			t.Fatalf("HEAD: status %d, %d body bytes", resp.StatusCode, len(b))
		}
	})

	t.Run("POST form", func(t *testing.T) {
		resp, err := c.PostForm(gw.URL+"/env.php", url.Values{"name": {"Zoë"}, "n": {"42"}})
		if err != nil {
			t.Fatal(err)
		}
		e := decodeEnv(t, resp)
		if e.Post["name"] != "Zoë" || e.Post["n"] != "42" {
			t.Fatalf("$_POST = %v", e.Post)
		}
		if e.server("CONTENT_TYPE") != "application/x-www-form-urlencoded" {
			t.Fatalf("CONTENT_TYPE = %q", e.server("CONTENT_TYPE"))
		}
	})

	t.Run("POST JSON", func(t *testing.T) {
		body := `{"hello":"world"}`
		resp, err := c.Post(gw.URL+"/env.php", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		e := decodeEnv(t, resp)
		if e.InputLen != len(body) || e.InputMD5 != fmt.Sprintf("%x", md5.Sum([]byte(body))) {
			t.Fatalf("php://input: %d bytes, md5 %s", e.InputLen, e.InputMD5)
		}
		if e.server("CONTENT_LENGTH") != fmt.Sprint(len(body)) {
			t.Fatalf("CONTENT_LENGTH = %q", e.server("CONTENT_LENGTH"))
		}
	})

	t.Run("PUT", func(t *testing.T) {
		body := bytes.Repeat([]byte("put!"), 1000)
		req, _ := http.NewRequest("PUT", gw.URL+"/md5.php", bytes.NewReader(body))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		expectBody(t, resp, 200, fmt.Sprintf("%x %d\n", md5.Sum(body), len(body)))
	})

	for _, size := range []int{5 << 20, 3 << 20} {
		t.Run(fmt.Sprintf("chunked upload %d bytes", size), func(t *testing.T) {
			body := make([]byte, size)
			for i := range body {
				body[i] = byte(i * 7)
			}
			req, _ := http.NewRequest("POST", gw.URL+"/md5.php", io.MultiReader(bytes.NewReader(body)))
			req.Header.Set("Content-Type", "application/octet-stream")
			req.ContentLength = -1
			req.TransferEncoding = []string{"chunked"}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			expectBody(t, resp, 200, fmt.Sprintf("%x %d\n", md5.Sum(body), len(body)))
		})
	}

	t.Run("multipart upload", func(t *testing.T) {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		mw.WriteField("title", "a file")
		fw, _ := mw.CreateFormFile("upload", "data.bin")
		content := bytes.Repeat([]byte{0, 1, 2, 255}, 100000)
		fw.Write(content)
		mw.Close()
		resp, err := c.Post(gw.URL+"/env.php", mw.FormDataContentType(), &buf)
		if err != nil {
			t.Fatal(err)
		}
		e := decodeEnv(t, resp)
		f, _ := e.Files["upload"].(map[string]any)
		if e.Post["title"] != "a file" || f["md5"] != fmt.Sprintf("%x", md5.Sum(content)) || f["size"] != float64(len(content)) {
			t.Fatalf("post %v, file %v", e.Post, f)
		}
	})

	t.Run("20MB response", func(t *testing.T) {
		resp, err := c.Get(gw.URL + "/big.php?mb=20")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		h := md5.New()
		n, err := io.Copy(h, resp.Body)
		if err != nil || n != 20<<20 {
			t.Fatalf("read %d bytes, %v", n, err)
		}
		want := md5.New()
		pad := strings.Repeat(".", 65525) + "\n"
		for i := 0; i < 20*16; i++ {
			fmt.Fprintf(want, "%010d%s", i, pad)
		}
		if !bytes.Equal(h.Sum(nil), want.Sum(nil)) {
			t.Fatal("20 MB body differs from what big.php wrote")
		}
	})

	t.Run("streamed response", func(t *testing.T) { expectStreamed(t, c, gw.URL) })

	t.Run("status Location and cookies", func(t *testing.T) {
		for _, tc := range []struct {
			query      string
			wantStatus int
			wantLine   string
		}{
			{"code=201&location=/made", 201, "201 Created"},
			{"code=303&location=/other", 303, "303 See Other"},
			{"location=/moved", 302, "302 Found"},
			{"code=299&reason=Custom%20Reason", 299, "299 Custom Reason"},
			{"code=404&reason=Nope%20Not%20Here", 404, "404 Nope Not Here"},
		} {
			resp, err := c.Get(gw.URL + "/status.php?" + tc.query)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus || resp.Status != tc.wantLine {
				t.Errorf("%s: status %q, want %q", tc.query, resp.Status, tc.wantLine)
			}
			if _, ok := resp.Header["Status"]; ok {
				t.Errorf("%s: the CGI Status header reached the client", tc.query)
			}
			if cookies := resp.Header.Values("Set-Cookie"); len(cookies) != 3 {
				t.Errorf("%s: Set-Cookie = %q, want 3", tc.query, cookies)
			}
			if strings.Contains(tc.query, "location") && resp.Header.Get("Location") == "" {
				t.Errorf("%s: Location lost", tc.query)
			}
		}
	})

	t.Run("PATH_INFO", func(t *testing.T) {
		resp, err := c.Get(gw.URL + "/env.php/extra/path?q=1")
		if err != nil {
			t.Fatal(err)
		}
		e := decodeEnv(t, resp)
		if e.server("SCRIPT_NAME") != "/env.php" || e.server("PATH_INFO") != "/extra/path" ||
			e.server("PATH_TRANSLATED") != fpmtest.PHPDir()+"/extra/path" || e.server("REQUEST_URI") != "/env.php/extra/path?q=1" {
			t.Fatalf("SCRIPT_NAME %q PATH_INFO %q PATH_TRANSLATED %q REQUEST_URI %q", e.server("SCRIPT_NAME"),
				e.server("PATH_INFO"), e.server("PATH_TRANSLATED"), e.server("REQUEST_URI"))
		}
	})

	t.Run("front controller", func(t *testing.T) {
		resp, err := c.Get(gw.URL + "/blog/2026/hello-world?page=2")
		if err != nil {
			t.Fatal(err)
		}
		b := readBody(t, resp, 200)
		var got map[string]any
		if !strings.HasPrefix(b, "front:") || json.Unmarshal([]byte(strings.TrimPrefix(b, "front:")), &got) != nil {
			t.Fatalf("body %q", b)
		}
		if got["REQUEST_URI"] != "/blog/2026/hello-world?page=2" || got["SCRIPT_NAME"] != "/index.php" || got["QUERY_STRING"] != "page=2" {
			t.Fatalf("front controller saw %v", got)
		}
	})

	t.Run("index file", func(t *testing.T) {
		resp, err := c.Get(gw.URL + "/sub/")
		if err != nil {
			t.Fatal(err)
		}
		if b := readBody(t, resp, 200); !strings.Contains(b, "sub index") {
			t.Fatalf("body %q", b)
		}
	})

	t.Run("static file", func(t *testing.T) {
		resp, err := c.Get(gw.URL + "/static.txt")
		if err != nil {
			t.Fatal(err)
		}
		readBody(t, resp, 200)
	})

	t.Run("percent-encoded path", func(t *testing.T) {
		resp, err := c.Get(gw.URL + "/%65nv.php/caf%C3%A9%20au%20lait")
		if err != nil {
			t.Fatal(err)
		}
		e := decodeEnv(t, resp)
		if e.server("SCRIPT_NAME") != "/env.php" || e.server("PATH_INFO") != "/café au lait" {
			t.Fatalf("SCRIPT_NAME %q PATH_INFO %q", e.server("SCRIPT_NAME"), e.server("PATH_INFO"))
		}
		if e.server("REQUEST_URI") != "/%65nv.php/caf%C3%A9%20au%20lait" {
			t.Fatalf("REQUEST_URI %q is not the raw URI", e.server("REQUEST_URI"))
		}
	})

	t.Run("headers", func(t *testing.T) {
		req, _ := http.NewRequest("GET", gw.URL+"/env.php", nil)
		req.Header.Set("Proxy", "http://evil.example:8080")
		req.Header.Add("X-Multi", "one")
		req.Header.Add("X-Multi", "two")
		req.Header.Add("Cookie", "a=1")
		req.Header.Add("Cookie", "b=2")
		req.Header.Set("X-Forwarded-For", "10.1.1.1")
		req.Header["X_Forwarded_For"] = []string{"6.6.6.6"}
		req.SetBasicAuth("alice", "s3cret")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		e := decodeEnv(t, resp)
		if _, ok := e.Server["HTTP_PROXY"]; ok {
			t.Errorf("HTTP_PROXY reached PHP: %v", e.Server["HTTP_PROXY"])
		}
		if e.server("HTTP_X_MULTI") != "one, two" {
			t.Errorf("HTTP_X_MULTI = %q, want %q", e.server("HTTP_X_MULTI"), "one, two")
		}
		if e.server("HTTP_COOKIE") != "a=1; b=2" || e.Cookie["b"] != "2" {
			t.Errorf("HTTP_COOKIE = %q, cookies %v", e.server("HTTP_COOKIE"), e.Cookie)
		}
		if e.server("HTTP_X_FORWARDED_FOR") != "10.1.1.1" {
			t.Errorf("HTTP_X_FORWARDED_FOR = %q: an underscore header posed as X-Forwarded-For", e.server("HTTP_X_FORWARDED_FOR"))
		}
		if e.AuthUser == nil || *e.AuthUser != "alice" || e.AuthPW == nil || *e.AuthPW != "s3cret" {
			t.Errorf("PHP_AUTH_USER/PW = %v/%v", e.AuthUser, e.AuthPW)
		}
	})

	t.Run("missing script", func(t *testing.T) {
		// A .php path that is not there: the gateway's 404, not the front
		// controller's page.
		resp, err := c.Get(gw.URL + "/nope.php")
		if err != nil {
			t.Fatal(err)
		}
		if b := readBody(t, resp, 404); strings.HasPrefix(b, "front:") {
			t.Fatalf("missing .php went to the front controller: %q", b)
		}
	})

	t.Run("never runs an upload", func(t *testing.T) {
		resp, err := c.Get(gw.URL + "/uploads/x.jpg/y.php")
		if err != nil {
			t.Fatal(err)
		}
		// The script is /uploads/x.jpg/y.php, which does not exist: the
		// gateway's own 404, and FPM never hears of x.jpg.
		b := readBody(t, resp, 404)
		if strings.Contains(b, "EXECUTED") {
			t.Fatalf("body %q: x.jpg ran as PHP", b)
		}
		if strings.Contains(fpm.AccessLog(), "x.jpg") {
			t.Fatalf("the request reached FPM:\n%s", fpm.AccessLog())
		}
	})

	t.Run("traversal", func(t *testing.T) {
		for _, p := range []string{"/../etc/passwd", "/sub/../../etc/passwd", "/%2e%2e/etc/passwd", "/%2E%2e/%2e%2E/etc/passwd",
			"/sub/%2e%2e/%2e%2e/etc/passwd", "/env.php%00.txt", "/..%2fetc/passwd", "/sub/..%5c..%5cetc/passwd"} {
			status, body := rawGet(t, gw.Addr, p)
			if status != 400 {
				t.Errorf("%s: status %d, want 400 (body %q)", p, status, body)
			}
			if strings.Contains(body, "root:") {
				t.Errorf("%s: /etc/passwd leaked", p)
			}
		}
	})

	t.Run("oversized headers", func(t *testing.T) {
		req, _ := http.NewRequest("GET", gw.URL+"/hello.php", nil)
		req.Header.Set("X-Big", strings.Repeat("h", 128<<10))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		readBody(t, resp, 431)
	})

	t.Run("body over the limit", func(t *testing.T) {
		body := make([]byte, 65<<20)
		resp, err := c.Post(gw.URL+"/md5.php", "application/octet-stream", bytes.NewReader(body))
		if err == nil {
			readBody(t, resp, 413)
		}
		// Chunked: the gateway reads up to the limit, then refuses.
		resp, err = c.Post(gw.URL+"/md5.php", "application/octet-stream", io.MultiReader(bytes.NewReader(body)))
		if err == nil {
			readBody(t, resp, 413)
		}
	})
}

// TestMissingScriptLogged: with no local copy of the docroot, FPM's own 404
// for a missing script is passed through and logged with the
// SCRIPT_FILENAME that was sent, since it means a docroot mismatch.
func TestMissingScriptLogged(t *testing.T) {
	fpmtest.Need(t)
	fpm := fpmtest.Start(t, fpmtest.Options{Addr: fpmtest.FreePort(t, "127.0.0.2")})
	pool := phpPool(fpm.Addr)
	pool.StaticRoot = ""
	gw := startGateway(t, "127.0.1.1", withPool(pool))
	resp, err := client(t).Get(gw.URL + "/not-there.php")
	if err != nil {
		t.Fatal(err)
	}
	if b := readBody(t, resp, 404); !strings.Contains(b, "File not found.") {
		t.Fatalf("body %q, want FPM's own 404", b)
	}
	want := fpmtest.PHPDir() + "/not-there.php"
	waitFor(t, "a log line naming "+want, 2*time.Second, func() bool { return strings.Contains(gw.Logs.String(), want) })
}

func TestBackendFailures(t *testing.T) {
	fpmtest.Need(t)

	t.Run("FPM down", func(t *testing.T) {
		// No backend can take the request: 503, and when to come back.
		down := fpmtest.FreePort(t, "127.0.0.2") // nothing listens there
		gw := startGateway(t, "127.0.1.1", withPool(phpPool(down)))
		resp, err := client(t).Get(gw.URL + "/hello.php")
		if err != nil {
			t.Fatal(err)
		}
		readBody(t, resp, 503)
		if resp.Header.Get("Retry-After") == "" {
			t.Fatal("503 without Retry-After")
		}
	})

	t.Run("FPM killed", func(t *testing.T) {
		// A backend that dies under a POST: 502, since a POST that may
		// have reached PHP is never sent again; the next request finds
		// no backend (503). A GET would have been retried.
		fpm := fpmtest.Start(t, fpmtest.Options{Addr: fpmtest.FreePort(t, "127.0.0.2")})
		gw := startGateway(t, "127.0.1.1", withPool(phpPool(fpm.Addr)))
		c := client(t)
		done := make(chan *http.Response, 1)
		go func() {
			resp, err := c.Post(gw.URL+"/sleep.php?s=5", "text/plain", strings.NewReader("x"))
			if err != nil {
				resp = &http.Response{StatusCode: -1, Body: io.NopCloser(strings.NewReader(err.Error()))}
			}
			done <- resp
		}()
		waitFor(t, "sleep.php to be running", 5*time.Second, func() bool {
			return strings.Contains(fpmStatus(t, fpm.Addr), "active processes:     2")
		})
		fpm.Kill()
		readBody(t, <-done, 502)

		resp, err := c.Get(gw.URL + "/hello.php")
		if err != nil {
			t.Fatal(err)
		}
		readBody(t, resp, 503)
	})

	t.Run("FPM slower than the timeout", func(t *testing.T) {
		fpm := fpmtest.Start(t, fpmtest.Options{Addr: fpmtest.FreePort(t, "127.0.0.2")})
		pool := phpPool(fpm.Addr)
		pool.ReadTimeout = 500 * time.Millisecond
		gw := startGateway(t, "127.0.1.1", withPool(pool))
		resp, err := client(t).Get(gw.URL + "/sleep.php?s=3")
		if err != nil {
			t.Fatal(err)
		}
		readBody(t, resp, 504)
	})

	t.Run("long stream outlives the read timeout", func(t *testing.T) {
		// Eight lines 300 ms apart: 2.1 s in all against a 1 s read timeout,
		// which counts between reads, not for the whole response.
		fpm := fpmtest.Start(t, fpmtest.Options{Addr: fpmtest.FreePort(t, "127.0.0.2")})
		pool := phpPool(fpm.Addr)
		pool.ReadTimeout = time.Second
		gw := startGateway(t, "127.0.1.1", withPool(pool))
		resp, err := client(t).Get(gw.URL + "/stream.php?n=8&ms=300")
		if err != nil {
			t.Fatal(err)
		}
		if b := readBody(t, resp, 200); !strings.HasSuffix(b, "line 7\n") {
			t.Fatalf("stream cut: %q", b)
		}
	})

	t.Run("second backend takes over", func(t *testing.T) {
		fpm := fpmtest.Start(t, fpmtest.Options{Addr: fpmtest.FreePort(t, "127.0.0.3")})
		down := fpmtest.FreePort(t, "127.0.0.2")
		gw := startGateway(t, "127.0.1.1", withPool(phpPool(down, fpm.Addr)))
		c := client(t)
		for i := 0; i < 20; i++ {
			resp, err := c.Post(gw.URL+"/md5.php", "text/plain", strings.NewReader("abc"))
			if err != nil {
				t.Fatal(err)
			}
			expectBody(t, resp, 200, fmt.Sprintf("%x 3\n", md5.Sum([]byte("abc"))))
		}
	})
}

// TestWorkerRecycling: FPM closes a connection when its worker reaches
// pm.max_requests. Not one request may fail for it.
func TestWorkerRecycling(t *testing.T) {
	fpmtest.Need(t)
	fpm := fpmtest.Start(t, fpmtest.Options{Addr: fpmtest.FreePort(t, "127.0.0.2"), MaxChildren: 4, MaxRequests: 5})
	pool := phpPool(fpm.Addr)
	pool.MaxConns = 4 // FPM's pm.max_children: requests wait in the gateway
	gw := startGateway(t, "127.0.1.1", withPool(pool))
	c := client(t)
	for i := 0; i < 2000; i++ {
		resp, err := c.Get(gw.URL + "/hello.php")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: status %d: %s", i, resp.StatusCode, readBody(t, resp, -1))
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	var wg sync.WaitGroup
	errs := make(chan string, 200)
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Post(gw.URL+"/md5.php", "text/plain", strings.NewReader("recycle"))
			if err != nil {
				errs <- err.Error()
				return
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				errs <- fmt.Sprintf("status %d: %s", resp.StatusCode, b)
			}
		}()
	}
	wg.Wait()
	close(errs)
	n := 0
	for e := range errs {
		if n < 5 {
			t.Error(e)
		}
		n++
	}
	if n > 0 {
		t.Fatalf("%d of 200 concurrent requests failed", n)
	}
}

// expectStreamed asks base for stream.php's five lines, 400 ms apart, and
// insists that the first arrives long before the script ends (1.6 s): the
// answer was streamed, not buffered.
func expectStreamed(t *testing.T, c *http.Client, base string) {
	t.Helper()
	start := time.Now()
	resp, err := c.Get(base + "/stream.php?n=5&ms=400")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	line, err := br.ReadString('\n')
	first := time.Since(start)
	if err != nil || line != "line 0\n" {
		t.Fatalf("first line %q, %v", line, err)
	}
	rest, _ := io.ReadAll(br)
	total := time.Since(start)
	if !strings.HasSuffix(string(rest), "line 4\n") {
		t.Fatalf("rest = %q", rest)
	}
	if first > total/2 {
		t.Fatalf("first line after %v of %v: the response was buffered", first, total)
	}
}

func readBody(t *testing.T, resp *http.Response, status int) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	if status >= 0 && resp.StatusCode != status {
		t.Fatalf("status %d, want %d; body %q", resp.StatusCode, status, b)
	}
	return string(b)
}

func expectBody(t *testing.T, resp *http.Response, status int, want string) {
	t.Helper()
	if got := readBody(t, resp, status); got != want {
		t.Fatalf("body %q, want %q", got, want)
	}
}

// rawGet sends path exactly as given, which net/http's client would clean.
func rawGet(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n", path)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp.StatusCode, string(b)
}
