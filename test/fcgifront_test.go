package test

// fcgifront_test.go: the FastCGI front end to end. Real Apache 2.4
// (mod_proxy_fcgi, event MPM, enablereuse=on) and cgi-fcgi are its clients,
// three real php-fpm pools its backends; every request case gives the same
// answer as Apache talking to php-fpm directly. Also: a backend killed
// under load, the allow-list, and garbage on the front socket.

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/fcgigate/fcgigate/fastcgi"
	"github.com/fcgigate/fcgigate/gateway"
	"github.com/fcgigate/fcgigate/test/apachetest"
	"github.com/fcgigate/fcgigate/test/fpmtest"
)

// serveFront serves g's FastCGI front on host (a 127.x address) until the
// test ends, and returns its address.
func serveFront(t *testing.T, g *gateway.Gateway, host string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- g.ServeFastCGI(ctx, ln, 5*time.Second) }() // returns when ctx is cancelled
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("ServeFastCGI: %v", err)
		}
	})
	return ln.Addr().String()
}

// frontRig is three FPM pools on 127.0.0.2-4 (FPM_NAME b1, b2, b3) behind
// an in-process gateway's FastCGI front on 127.0.1.1, Apache in front of
// that (via), and Apache in front of the first FPM directly (direct).
type frontRig struct {
	fpms   []*fpmtest.FPM
	gw     *testGateway
	g      *gateway.Gateway
	front  string
	via    *apachetest.Apache
	direct *apachetest.Apache
}

func startFrontRig(t *testing.T, mode apachetest.Mode) *frontRig {
	t.Helper()
	fpmtest.Need(t)
	apachetest.Need(t)
	r := &frontRig{}
	pool := phpPool()
	pool.StaticRoot = ""
	for i := range 3 {
		f := fpmtest.Start(t, fpmtest.Options{
			Addr:        fpmtest.FreePort(t, fmt.Sprintf("127.0.0.%d", i+2)),
			MaxChildren: 8,
			Extra:       map[string]string{"env[FPM_NAME]": fmt.Sprintf("b%d", i+1)},
		})
		r.fpms = append(r.fpms, f)
		pool.Backends = append(pool.Backends, f.Addr)
	}
	r.gw, r.g = startGatewayG(t, "127.0.1.1", withPool(pool))
	r.front = serveFront(t, r.g, "127.0.1.1")
	r.via = apachetest.Start(t, apachetest.Options{Addr: fpmtest.FreePort(t, "127.0.0.1"), Backend: r.front, DocRoot: fpmtest.PHPDir(), Mode: mode})
	r.direct = apachetest.Start(t, apachetest.Options{Addr: fpmtest.FreePort(t, "127.0.0.1"), Backend: r.fpms[0].Addr, DocRoot: fpmtest.PHPDir(), Mode: mode})
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("Apache via fcgigate, error log:\n%s", r.via.ErrorLog())
			t.Logf("Apache direct, error log:\n%s", r.direct.ErrorLog())
		}
	})
	return r
}

// reply is an HTTP answer reduced to what must be the same whichever way
// it came: the status line, the header fields PHP set, and the body, with
// what depends on the connection (ports, times) taken out of env.php's
// report, and a large body as its md5.
type reply struct {
	Status string
	Header http.Header
	Body   string
}

// comparedHeaders are the response fields compared. Date, Server and the
// framing (Content-Length or chunked) are Apache's own choice.
var comparedHeaders = []string{"Content-Type", "Location", "Set-Cookie", "X-Accel-Buffering"}

// request is one request case, sent the same way to both Apaches.
type request struct {
	method, path string
	header       http.Header
	body         func() io.Reader // nil: no body
	chunked      bool             // send the body without a Content-Length
}

func (rq request) send(t *testing.T, c *http.Client, base string) reply {
	t.Helper()
	var body io.Reader
	if rq.body != nil {
		body = rq.body()
	}
	req, err := http.NewRequest(rq.method, base+rq.path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range rq.header {
		req.Header[k] = vs
	}
	if rq.chunked {
		req.ContentLength = -1
		req.Body = io.NopCloser(io.MultiReader(body)) // hides the length
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", rq.method, base+rq.path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading the body: %v", rq.method, base+rq.path, err)
	}
	r := reply{Status: resp.Status, Header: http.Header{}, Body: string(b)}
	for _, k := range comparedHeaders {
		if vs := resp.Header.Values(k); len(vs) > 0 {
			r.Header[k] = vs
		}
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		r.Body = normalizeEnv(t, b)
	} else if len(b) > 64<<10 {
		r.Body = fmt.Sprintf("%d bytes, md5 %x", len(b), md5.Sum(b))
	}
	return r
}

// normalizeEnv takes out of env.php's report what differs between two
// Apaches and two requests: ports, the Host header, request times.
func normalizeEnv(t *testing.T, b []byte) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("env.php answer is not JSON: %v\n%s", err, b)
	}
	if s, ok := m["server"].(map[string]any); ok {
		for _, k := range []string{"REMOTE_PORT", "REQUEST_TIME", "REQUEST_TIME_FLOAT", "FPM_NAME"} {
			delete(s, k)
		}
		for _, k := range []string{"SERVER_PORT", "HTTP_HOST", "SERVER_NAME"} {
			if _, ok := s[k]; ok {
				s[k] = "(apache)"
			}
		}
	}
	if h, ok := m["headers"].(map[string]any); ok {
		h["Host"] = "(apache)"
	}
	out, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// serverVar returns $_SERVER[k] from a normalized env.php report.
func serverVar(body, k string) string {
	var e phpEnv
	json.Unmarshal([]byte(body), &e)
	return e.server(k)
}

// TestApacheFront runs the request cases of the HTTP front through Apache
// and the FastCGI front, and through Apache and php-fpm directly: the two
// must give the same answers.
func TestApacheFront(t *testing.T) {
	r := startFrontRig(t, apachetest.SetHandler)
	c := client(t)

	upload := make([]byte, 5<<20)
	for i := range upload {
		upload[i] = byte(i * 7)
	}
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	mw.WriteField("title", "a file")
	fw, _ := mw.CreateFormFile("upload", "data.bin")
	fileContent := bytes.Repeat([]byte{0, 1, 2, 255}, 100000)
	fw.Write(fileContent)
	mw.Close()
	bigMD5 := md5.New()
	pad := strings.Repeat(".", 65525) + "\n"
	for i := range 20 * 16 {
		fmt.Fprintf(bigMD5, "%010d%s", i, pad)
	}
	reader := func(b []byte) func() io.Reader { return func() io.Reader { return bytes.NewReader(b) } }
	putBody := bytes.Repeat([]byte("put!"), 1000)

	tests := []struct {
		name  string
		req   request
		check func(t *testing.T, got reply) // what the answer must be, beyond equal
	}{
		{"GET with query and headers", request{method: "GET", path: "/env.php?a=1&b=two%20words",
			header: http.Header{"Cookie": {"a=1; b=2"}, "X-Multi": {"one", "two"}, "Proxy": {"http://evil.example:8080"}}},
			func(t *testing.T, got reply) {
				if serverVar(got.Body, "QUERY_STRING") != "a=1&b=two%20words" || serverVar(got.Body, "HTTP_PROXY") != "" ||
					serverVar(got.Body, "SCRIPT_NAME") != "/env.php" || serverVar(got.Body, "HTTP_COOKIE") != "a=1; b=2" {
					t.Errorf("env: %s", got.Body)
				}
			}},
		{"HEAD", request{method: "HEAD", path: "/hello.php"},
			func(t *testing.T, got reply) {
				if got.Status != "200 OK" || got.Body != "" {
					t.Errorf("HEAD: %q, %d body bytes", got.Status, len(got.Body))
				}
			}},
		{"POST form", request{method: "POST", path: "/env.php",
			header: http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
			body:   reader([]byte(url.Values{"name": {"Zoë"}, "n": {"42"}}.Encode()))},
			func(t *testing.T, got reply) {
				var e phpEnv
				if json.Unmarshal([]byte(got.Body), &e); e.Post["name"] != "Zoë" || e.Post["n"] != "42" {
					t.Errorf("$_POST = %v", e.Post)
				}
			}},
		{"POST JSON", request{method: "POST", path: "/env.php",
			header: http.Header{"Content-Type": {"application/json"}}, body: reader([]byte(`{"hello":"world"}`))},
			func(t *testing.T, got reply) {
				var e phpEnv
				if json.Unmarshal([]byte(got.Body), &e); e.InputLen != 17 || e.InputMD5 != fmt.Sprintf("%x", md5.Sum([]byte(`{"hello":"world"}`))) {
					t.Errorf("php://input: %d bytes, md5 %s", e.InputLen, e.InputMD5)
				}
			}},
		{"PUT", request{method: "PUT", path: "/md5.php", body: reader(putBody)},
			func(t *testing.T, got reply) {
				if want := fmt.Sprintf("%x %d\n", md5.Sum(putBody), len(putBody)); got.Body != want {
					t.Errorf("body %q, want %q", got.Body, want)
				}
			}},
		{"5 MB chunked upload", request{method: "POST", path: "/md5.php", body: reader(upload), chunked: true,
			header: http.Header{"Content-Type": {"application/octet-stream"}}},
			func(t *testing.T, got reply) {
				if want := fmt.Sprintf("%x %d\n", md5.Sum(upload), len(upload)); got.Body != want {
					t.Errorf("body %q, want %q", got.Body, want)
				}
			}},
		{"multipart upload", request{method: "POST", path: "/env.php", body: reader(form.Bytes()),
			header: http.Header{"Content-Type": {mw.FormDataContentType()}}},
			func(t *testing.T, got reply) {
				var e phpEnv
				json.Unmarshal([]byte(got.Body), &e)
				f, _ := e.Files["upload"].(map[string]any)
				if e.Post["title"] != "a file" || f["md5"] != fmt.Sprintf("%x", md5.Sum(fileContent)) {
					t.Errorf("post %v, file %v", e.Post, f)
				}
			}},
		{"20MB response", request{method: "GET", path: "/big.php?mb=20"},
			func(t *testing.T, got reply) {
				if want := fmt.Sprintf("%d bytes, md5 %x", 20<<20, bigMD5.Sum(nil)); got.Body != want {
					t.Errorf("body %s, want %s", got.Body, want)
				}
			}},
		{"PATH_INFO", request{method: "GET", path: "/env.php/extra/path?q=1"},
			func(t *testing.T, got reply) {
				if serverVar(got.Body, "PATH_INFO") != "/extra/path" || serverVar(got.Body, "SCRIPT_NAME") != "/env.php" {
					t.Errorf("PATH_INFO %q SCRIPT_NAME %q", serverVar(got.Body, "PATH_INFO"), serverVar(got.Body, "SCRIPT_NAME"))
				}
			}},
		{"missing script", request{method: "GET", path: "/nope.php"},
			func(t *testing.T, got reply) {
				if got.Status != "404 Not Found" || !strings.Contains(got.Body, "File not found.") {
					t.Errorf("%q %q", got.Status, got.Body)
				}
			}},
		{"index", request{method: "GET", path: "/sub/"},
			func(t *testing.T, got reply) {
				if !strings.Contains(got.Body, "sub index") {
					t.Errorf("body %q", got.Body)
				}
			}},
	}
	for _, tc := range []struct{ query, line string }{
		{"code=201&location=/made", "201 Created"},
		{"code=303&location=/other", "303 See Other"},
		{"location=/moved", "302 Found"},
		{"code=299&reason=Custom%20Reason", "299 Custom Reason"},
		{"code=404&reason=Nope%20Not%20Here", "404 Nope Not Here"},
		{"code=503", "503 Service Unavailable"},
	} {
		tests = append(tests, struct {
			name  string
			req   request
			check func(t *testing.T, got reply)
		}{"status " + tc.query, request{method: "GET", path: "/status.php?" + tc.query},
			func(t *testing.T, got reply) {
				if got.Status != tc.line || len(got.Header["Set-Cookie"]) != 3 ||
					strings.Contains(tc.query, "location") != (got.Header.Get("Location") != "") {
					t.Errorf("%q, header %v", got.Status, got.Header)
				}
			}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			via := tt.req.send(t, c, r.via.URL)
			direct := tt.req.send(t, c, r.direct.URL)
			if !reflect.DeepEqual(via, direct) {
				t.Errorf("through fcgigate:\n%+v\ndirectly:\n%+v", trim(via), trim(direct))
			}
			tt.check(t, via)
		})
	}

	for _, way := range []struct {
		name string
		a    *apachetest.Apache
	}{{"directly", r.direct}, {"through fcgigate", r.via}} {
		a := way.a
		t.Run("streamed response "+way.name, func(t *testing.T) { expectStreamed(t, c, a.URL) })
	}

	t.Run("without enablereuse", func(t *testing.T) {
		// Apache then asks for no FCGI_KEEP_CONN, and the front closes
		// each connection after its answer, while Apache may still be
		// sending the end of STDIN.
		a := apachetest.Start(t, apachetest.Options{Addr: fpmtest.FreePort(t, "127.0.0.1"), Backend: r.front, DocRoot: fpmtest.PHPDir(), NoReuse: true})
		for _, tt := range tests {
			if strings.HasPrefix(tt.name, "status") {
				continue
			}
			for range 3 {
				if via, direct := tt.req.send(t, c, a.URL), tt.req.send(t, c, r.direct.URL); !reflect.DeepEqual(via, direct) {
					t.Errorf("%s: through fcgigate:\n%+v\ndirectly:\n%+v", tt.name, trim(via), trim(direct))
				}
			}
		}
	})

	t.Run("STDERR reaches Apache's error log", func(t *testing.T) {
		got := request{method: "GET", path: "/stderr.php"}.send(t, c, r.via.URL)
		if got.Body != "ok" {
			t.Fatalf("body %q", got.Body)
		}
		waitFor(t, "PHP's error_log line in Apache's error log", 5*time.Second, func() bool {
			return strings.Contains(r.via.ErrorLog(), "stderr.php via error_log")
		})
	})

	t.Run("FPM's 404 logged with SCRIPT_FILENAME", func(t *testing.T) {
		want := "script_filename=proxy:fcgi://" + r.front + fpmtest.PHPDir() + "/nope.php"
		waitFor(t, "the gateway's warning", 5*time.Second, func() bool { return strings.Contains(r.gw.Logs.String(), want) })
	})
}

// trim shortens a reply's body for a failure message.
func trim(r reply) reply {
	if len(r.Body) > 2000 {
		r.Body = r.Body[:2000] + "..."
	}
	return r
}

// TestApacheFrontProxyPassMatch: the ProxyPassMatch setup, which maps the
// URL to a script without looking at Apache's file system, gives the same
// answers too; with a docroot of Apache's own that holds no PHP, the
// gateway rewrites it to the FPM hosts'.
func TestApacheFrontProxyPassMatch(t *testing.T) {
	r := startFrontRig(t, apachetest.ProxyPassMatch)
	c := client(t)
	for _, rq := range []request{
		{method: "GET", path: "/env.php?x=1"},
		{method: "GET", path: "/env.php/extra/path"},
		{method: "POST", path: "/md5.php", body: func() io.Reader { return strings.NewReader("abc") }},
		{method: "GET", path: "/status.php?code=201&location=/made"},
		{method: "GET", path: "/nope.php"},
	} {
		via, direct := rq.send(t, c, r.via.URL), rq.send(t, c, r.direct.URL)
		if !reflect.DeepEqual(via, direct) {
			t.Errorf("%s %s: through fcgigate:\n%+v\ndirectly:\n%+v", rq.method, rq.path, trim(via), trim(direct))
		}
	}

	elsewhere := t.TempDir()
	os.Chmod(elsewhere, 0o755)
	a := apachetest.Start(t, apachetest.Options{Addr: fpmtest.FreePort(t, "127.0.0.1"), Backend: r.front, DocRoot: elsewhere, Mode: apachetest.ProxyPassMatch})
	got := request{method: "GET", path: "/env.php/p?x=1"}.send(t, c, a.URL)
	if got.Status != "200 OK" || serverVar(got.Body, "DOCUMENT_ROOT") != fpmtest.PHPDir() ||
		serverVar(got.Body, "SCRIPT_FILENAME") != fpmtest.PHPDir()+"/env.php" || serverVar(got.Body, "PATH_INFO") != "/p" {
		t.Errorf("Apache's docroot %s, rewritten: %s\n%.2000s", elsewhere, got.Status, got.Body)
	}
}

// TestApacheFrontKillBackend: kill -9 one of three FPM pools while Apache
// sends GETs through the FastCGI front: not one GET fails.
func TestApacheFrontKillBackend(t *testing.T) {
	r := startFrontRig(t, apachetest.SetHandler)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	killed := make(chan time.Time, 1)
	go func() { // kills b2 one second into the load
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			close(killed)
			return
		}
		r.fpms[1].Kill()
		killed <- time.Now()
	}()
	res := load(ctx, t, r.via.URL, 12, 100000, func(int) (string, string) { return "GET", "/whoami.php?ms=10" })
	killedAt, ok := <-killed
	if !ok {
		t.Fatal("the load ended before the kill")
	}
	byBackend := map[string]int{}
	failed := 0
	for _, x := range res {
		if x.status != 200 {
			failed++
			if failed <= 5 {
				t.Errorf("GET failed: %d %q %s", x.status, x.backend, x.err)
			}
			continue
		}
		if x.start.After(killedAt) {
			byBackend[x.backend]++
		}
	}
	t.Logf("%d GETs through Apache and fcgigate, %d failed; after the kill: %v", len(res), failed, byBackend)
	if failed > 0 {
		t.Errorf("%d GETs failed", failed)
	}
	if byBackend["b1"] == 0 || byBackend["b3"] == 0 {
		t.Errorf("after the kill, answers by backend %v: the other two should share the load", byBackend)
	}
}

// frontGateway starts a gateway for the pool of the given FPMs, with cfg's
// other settings, serving its FastCGI front on 127.0.1.1.
func frontGateway(t *testing.T, cfg gateway.Config, pool gateway.PoolConfig) (*testGateway, *gateway.Gateway, string) {
	t.Helper()
	cfg.Pools = []gateway.PoolConfig{pool}
	gw, g := startGatewayG(t, "127.0.1.1", cfg)
	return gw, g, serveFront(t, g, "127.0.1.1")
}

// cgiFCGI runs `cgi-fcgi -bind -connect addr` with env as its whole
// environment (which it sends as the params) and stdin as the body, and
// returns what it printed: the CGI answer.
func cgiFCGI(t *testing.T, addr string, env map[string]string, stdin string) string {
	t.Helper()
	bin, err := exec.LookPath("cgi-fcgi")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("cgi-fcgi not found (install libfcgi-bin: scripts/deps.sh); CI is set, so this is a failure")
		}
		t.Skip("cgi-fcgi not found (install libfcgi-bin: scripts/deps.sh); skipping (set CI=1 to make this a failure)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-bind", "-connect", addr)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cgi-fcgi: %v\nstderr: %s\nstdout: %s", err, stderr.String(), out)
	}
	return string(out)
}

// cgiEnv is the environment of a cgi-fcgi request for script.
func cgiEnv(docroot, method, script, query string) map[string]string {
	return map[string]string{
		"GATEWAY_INTERFACE": "CGI/1.1",
		"SERVER_PROTOCOL":   "HTTP/1.1",
		"REQUEST_METHOD":    method,
		"DOCUMENT_ROOT":     docroot,
		"SCRIPT_FILENAME":   docroot + script,
		"SCRIPT_NAME":       script,
		"REQUEST_URI":       script + "?" + query,
		"QUERY_STRING":      query,
		"SERVER_NAME":       "cgi-fcgi.test",
		"REMOTE_ADDR":       "127.0.0.1",
	}
}

// TestCgiFcgiClient: libfcgi's cgi-fcgi, a second client written by
// others, gets PHP's answers through the FastCGI front, and the docroot
// rewrite lets its docroot differ from the FPM hosts'.
func TestCgiFcgiClient(t *testing.T) {
	fpmtest.Need(t)
	fpm := fpmtest.Start(t, fpmtest.Options{Addr: fpmtest.FreePort(t, "127.0.0.2")})
	pool := phpPool(fpm.Addr)
	_, _, front := frontGateway(t, gateway.Config{}, pool)
	dir := fpmtest.PHPDir()

	body := func(out string) string {
		_, b, ok := strings.Cut(out, "\r\n\r\n")
		if !ok {
			t.Fatalf("no CGI header in %q", out)
		}
		return b
	}
	t.Run("GET", func(t *testing.T) {
		env := cgiEnv(dir, "GET", "/env.php", "a=1&b=two")
		env["HTTP_PROXY"] = "http://evil.example:8080"
		env["HTTP_X_TEST"] = "yes"
		out := cgiFCGI(t, front, env, "")
		var e phpEnv
		if err := json.Unmarshal([]byte(body(out)), &e); err != nil {
			t.Fatalf("%v: %q", err, out)
		}
		if e.Get["b"] != "two" || e.server("HTTP_X_TEST") != "yes" || e.server("SERVER_NAME") != "cgi-fcgi.test" {
			t.Errorf("env: %v %v", e.Get, e.Server)
		}
		if _, ok := e.Server["HTTP_PROXY"]; ok {
			t.Errorf("HTTP_PROXY reached PHP")
		}
	})
	t.Run("POST body", func(t *testing.T) {
		payload := strings.Repeat("cgi-fcgi body ", 10000)
		env := cgiEnv(dir, "POST", "/md5.php", "")
		env["CONTENT_LENGTH"] = fmt.Sprint(len(payload))
		env["CONTENT_TYPE"] = "application/octet-stream"
		if got, want := body(cgiFCGI(t, front, env, payload)), fmt.Sprintf("%x %d\n", md5.Sum([]byte(payload)), len(payload)); got != want {
			t.Errorf("md5.php: %q, want %q", got, want)
		}
	})
	t.Run("status", func(t *testing.T) {
		out := cgiFCGI(t, front, cgiEnv(dir, "GET", "/status.php", "code=201&location=/made"), "")
		if !strings.HasPrefix(out, "Status: 201 Created\r\n") || !strings.Contains(out, "Location: /made\r\n") {
			t.Errorf("answer %q", out)
		}
	})
	t.Run("docroot rewritten", func(t *testing.T) {
		out := cgiFCGI(t, front, cgiEnv("/var/www/elsewhere", "GET", "/env.php", "x=1"), "")
		var e phpEnv
		if err := json.Unmarshal([]byte(body(out)), &e); err != nil {
			t.Fatalf("%v: %q", err, out)
		}
		if e.server("SCRIPT_FILENAME") != dir+"/env.php" || e.server("DOCUMENT_ROOT") != dir {
			t.Errorf("SCRIPT_FILENAME %q DOCUMENT_ROOT %q", e.server("SCRIPT_FILENAME"), e.server("DOCUMENT_ROOT"))
		}
	})
	t.Run("docroot kept", func(t *testing.T) {
		keep := phpPool(fpm.Addr)
		keep.KeepClientDocroot = true
		gw, _, front := frontGateway(t, gateway.Config{}, keep)
		out := cgiFCGI(t, front, cgiEnv("/var/www/elsewhere", "GET", "/env.php", "x=1"), "")
		if !strings.HasPrefix(out, "Status: 404 Not Found\r\n") || body(out) != "File not found.\n" {
			t.Errorf("answer %q, want FPM's 404", out)
		}
		waitFor(t, "the gateway's warning", 5*time.Second, func() bool {
			return strings.Contains(gw.Logs.String(), "script_filename=/var/www/elsewhere/env.php")
		})
	})
}

// TestFastCGIFrontAllowList: a client outside allowed_clients is closed at
// accept, logged and counted; one inside is served.
func TestFastCGIFrontAllowList(t *testing.T) {
	fpmtest.Need(t)
	fpm := fpmtest.Start(t, fpmtest.Options{Addr: fpmtest.FreePort(t, "127.0.0.2")})
	gw, g, front := frontGateway(t, gateway.Config{AllowedClients: []string{"127.0.0.5/32"}}, phpPool(fpm.Addr))

	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}}
	nc, err := d.Dial("tcp", front)
	if err != nil {
		t.Fatal(err)
	}
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	c := fastcgi.NewConn(nc, false)
	_, err = c.Do(context.Background(), &fastcgi.Request{Params: cgiParams("/hello.php")})
	c.Close()
	if err == nil {
		t.Error("a client from 127.0.0.1 got an answer")
	}
	if n := g.RefusedClients(); n != 1 {
		t.Errorf("RefusedClients() = %d, want 1", n)
	}
	waitFor(t, "the refusal logged", 5*time.Second, func() bool {
		return strings.Contains(gw.Logs.String(), "fastcgi client refused") && strings.Contains(gw.Logs.String(), "client=127.0.0.1:")
	})

	if got := frontGet(t, front, "127.0.0.5", "/hello.php"); !strings.HasSuffix(got, "\r\n\r\nhello") {
		t.Errorf("allowed client got %q", got)
	}
}

// cgiParams are the params of a GET of script in the test docroot.
func cgiParams(script string) []fastcgi.Param {
	return []fastcgi.Param{
		{Name: "REQUEST_METHOD", Value: "GET"}, {Name: "SCRIPT_FILENAME", Value: fpmtest.PHPDir() + script},
		{Name: "SCRIPT_NAME", Value: script}, {Name: "REQUEST_URI", Value: script},
		{Name: "DOCUMENT_ROOT", Value: fpmtest.PHPDir()}, {Name: "SERVER_PROTOCOL", Value: "HTTP/1.1"},
	}
}

// frontGet sends a GET of script to the front from the address from and
// returns the CGI answer.
func frontGet(t *testing.T, front, from, script string) string {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
	nc, err := d.Dial("tcp", front)
	if err != nil {
		t.Fatal(err)
	}
	c := fastcgi.NewConn(nc, false)
	defer c.Close()
	return fcgiGet(t, c, script)
}

// fcgiGet sends a GET of script on c and returns the CGI answer.
func fcgiGet(t *testing.T, c *fastcgi.Conn, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Do(ctx, &fastcgi.Request{Params: cgiParams(script), ReadTimeout: 10 * time.Second})
	if err != nil {
		t.Fatalf("GET %s: %v", script, err)
	}
	defer resp.Close()
	b, err := io.ReadAll(resp)
	if err != nil {
		t.Fatalf("GET %s: %v", script, err)
	}
	return string(b)
}

// TestFastCGIFrontGarbage: a client that breaks the protocol or stalls
// mid-record has its connection closed with a log line; another client's
// keep-alive connection goes on serving, and no goroutine is left behind.
func TestFastCGIFrontGarbage(t *testing.T) {
	fpmtest.Need(t)
	fpm := fpmtest.Start(t, fpmtest.Options{Addr: fpmtest.FreePort(t, "127.0.0.2")})
	gw, _, front := frontGateway(t, gateway.Config{FastCGIReadTimeout: 300 * time.Millisecond}, phpPool(fpm.Addr))

	good, err := net.Dial("tcp", front)
	if err != nil {
		t.Fatal(err)
	}
	goodConn := fastcgi.NewConn(good, true)
	defer goodConn.Close()
	if got := fcgiGet(t, goodConn, "/hello.php"); !strings.HasSuffix(got, "hello") {
		t.Fatalf("before: %q", got)
	}
	ignore := goleak.IgnoreCurrent()

	record := func(typ byte, content []byte) []byte {
		pad := -len(content) & 7
		h := []byte{1, typ, 0, 1, byte(len(content) >> 8), byte(len(content)), byte(pad), 0}
		return append(append(h, content...), make([]byte, pad)...)
	}
	begin := record(1, []byte{0, 1, 1, 0, 0, 0, 0, 0})
	params := record(4, fastcgi.EncodeParams(cgiParams("/hello.php")))
	join := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	var huge []byte
	for range 17 { // 17 × 64 KiB of params: over the 1 MiB limit
		huge = append(huge, record(4, bytes.Repeat([]byte{0}, 65528))...)
	}
	tests := []struct {
		name, log string
		in        []byte
	}{
		{"bad version", "broke the protocol", []byte{2, 1, 0, 1, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0}},
		{"params over the limit", "broke the protocol", join(begin, huge)},
		{"param length past its record", "broke the protocol", join(begin, record(4, []byte{0x80, 0, 0x10, 0, 1, 'A'}), record(4, nil))},
		{"begin of the wrong length", "broke the protocol", record(1, make([]byte, 16))},
		{"begin twice", "broke the protocol", join(begin, begin)},
		{"stdin before the params end", "broke the protocol", join(begin, params, record(5, []byte("x")))},
		{"stdout from the client", "broke the protocol", join(begin, params, record(4, nil), record(6, []byte("x")))},
		{"stops mid-record", "broke the protocol", join(begin, params[:20])},
		{"stops mid-header", "too slow", join(begin, params[:3])},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := strings.Count(gw.Logs.String(), "fastcgi client "+tt.log)
			nc, err := net.Dial("tcp", front)
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(10 * time.Second))
			nc.Write(tt.in) // the front may close before it has read all
			out, err := io.ReadAll(nc)
			if isDeadline(err) {
				t.Fatalf("the connection stayed open (read %q)", out)
			}
			if bytes.Contains(out, []byte("hello")) {
				t.Errorf("garbage got an answer: %q", out)
			}
			waitFor(t, "a log line", 5*time.Second, func() bool {
				return strings.Count(gw.Logs.String(), "fastcgi client "+tt.log) > before
			})
		})
	}
	// The good connection is unaffected.
	if got := fcgiGet(t, goodConn, "/hello.php"); !strings.HasSuffix(got, "hello") {
		t.Fatalf("after: %q", got)
	}
	goleak.VerifyNone(t, ignore)
}

func isDeadline(err error) bool {
	ne, ok := err.(net.Error)
	return ok && ne.Timeout()
}
