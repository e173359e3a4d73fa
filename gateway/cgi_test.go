package gateway

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/fcgigate/fcgigate/fastcgi"
)

// TestParams checks the params that reach the backend, byte for byte, for
// requests that exercise each rule: the split path, the front controller,
// raw REQUEST_URI, bodies, httpoxy, underscore headers and joined headers.
func TestParams(t *testing.T) {
	leakCheck(t)
	f := startFake(t, answer("Content-Type: text/plain\r\n\r\nok"))
	pc := testPool(f.addr)
	pc.Params = map[string]string{"APP_ENV": "test", "HTTPS_PORT": "443"}
	tg := startGateway(t, pc, nil)
	_, gwPort, _ := net.SplitHostPort(tg.addr)

	// absent is a param that must not be sent.
	const absent = "\x00absent"
	tests := []struct {
		name   string
		method string
		uri    string // as on the request line
		header [][2]string
		body   string
		want   map[string]string
	}{{
		name:   "path info",
		method: "GET",
		uri:    "/info.php/a/b?x=1&y=2",
		header: [][2]string{{"Host", "example.com:8080"}},
		want: map[string]string{
			"SCRIPT_FILENAME":   "/srv/www/info.php",
			"SCRIPT_NAME":       "/info.php",
			"PATH_INFO":         "/a/b",
			"PATH_TRANSLATED":   "/srv/www/a/b",
			"QUERY_STRING":      "x=1&y=2",
			"REQUEST_URI":       "/info.php/a/b?x=1&y=2",
			"DOCUMENT_URI":      "/info.php/a/b",
			"DOCUMENT_ROOT":     "/srv/www",
			"REQUEST_METHOD":    "GET",
			"CONTENT_TYPE":      "",
			"CONTENT_LENGTH":    "",
			"SERVER_PROTOCOL":   "HTTP/1.1",
			"REQUEST_SCHEME":    "http",
			"HTTPS":             absent,
			"GATEWAY_INTERFACE": "CGI/1.1",
			"SERVER_SOFTWARE":   "fcgigate",
			"SERVER_NAME":       "example.com",
			"SERVER_ADDR":       "127.0.0.1",
			"SERVER_PORT":       gwPort,
			"REMOTE_ADDR":       "127.0.0.1",
			"REDIRECT_STATUS":   "200",
			"HTTP_HOST":         "example.com:8080",
			"APP_ENV":           "test",
		},
	}, {
		name:   "no path info",
		method: "GET",
		uri:    "/index.php",
		want: map[string]string{
			"SCRIPT_NAME":     "/index.php",
			"PATH_INFO":       "",
			"PATH_TRANSLATED": absent,
			"DOCUMENT_URI":    "/index.php",
			"QUERY_STRING":    "",
		},
	}, {
		name:   "front controller keeps the URI and query",
		method: "GET",
		uri:    "/blog/post-1?page=2&sort=a%20b",
		want: map[string]string{
			"SCRIPT_FILENAME": "/srv/www/index.php",
			"SCRIPT_NAME":     "/index.php",
			"PATH_INFO":       "",
			"REQUEST_URI":     "/blog/post-1?page=2&sort=a%20b",
			"QUERY_STRING":    "page=2&sort=a%20b",
			"DOCUMENT_URI":    "/index.php",
		},
	}, {
		name:   "index of a directory",
		method: "GET",
		uri:    "/shop/?id=7",
		want: map[string]string{
			"SCRIPT_NAME":  "/shop/index.php",
			"REQUEST_URI":  "/shop/?id=7",
			"QUERY_STRING": "id=7",
		},
	}, {
		name:   "REQUEST_URI stays raw, SCRIPT_NAME is decoded",
		method: "GET",
		uri:    "/caf%C3%A9%20menu.php/x%2Fy?q=%41",
		want: map[string]string{
			"SCRIPT_NAME":  "/café menu.php",
			"PATH_INFO":    "/x/y",
			"REQUEST_URI":  "/caf%C3%A9%20menu.php/x%2Fy?q=%41",
			"QUERY_STRING": "q=%41",
		},
	}, {
		name:   "body goes as CONTENT_TYPE and CONTENT_LENGTH only",
		method: "POST",
		uri:    "/form.php",
		header: [][2]string{{"Content-Type", "application/x-www-form-urlencoded"}},
		body:   "a=1&b=2",
		want: map[string]string{
			"REQUEST_METHOD":      "POST",
			"CONTENT_TYPE":        "application/x-www-form-urlencoded",
			"CONTENT_LENGTH":      "7",
			"HTTP_CONTENT_TYPE":   absent,
			"HTTP_CONTENT_LENGTH": absent,
		},
	}, {
		name:   "declared empty body",
		method: "POST",
		uri:    "/form.php",
		header: [][2]string{{"Content-Length", "0"}},
		want:   map[string]string{"CONTENT_LENGTH": "0"},
	}, {
		name:   "httpoxy: Proxy never becomes HTTP_PROXY",
		method: "GET",
		uri:    "/index.php",
		header: [][2]string{{"Proxy", "http://evil.example:3128"}},
		want:   map[string]string{"HTTP_PROXY": absent},
	}, {
		name:   "underscore header cannot pose as a dashed one",
		method: "GET",
		uri:    "/index.php",
		header: [][2]string{{"X_Forwarded_For", "6.6.6.6"}, {"X-Forwarded-For", "10.0.0.1"}},
		want:   map[string]string{"HTTP_X_FORWARDED_FOR": "10.0.0.1"},
	}, {
		name:   "underscore header alone is dropped",
		method: "GET",
		uri:    "/index.php",
		header: [][2]string{{"X_Forwarded_For", "6.6.6.6"}, {"X_Custom", "1"}},
		want:   map[string]string{"HTTP_X_FORWARDED_FOR": absent, "HTTP_X_CUSTOM": absent},
	}, {
		name:   "repeated headers are joined",
		method: "GET",
		uri:    "/index.php",
		header: [][2]string{
			{"Accept", "text/html"}, {"Accept", "application/json"},
			{"Cookie", "a=1"}, {"Cookie", "b=2; c=3"},
			{"X-Custom-Thing", "one"}, {"X-Custom-Thing", "two"},
		},
		want: map[string]string{
			"HTTP_ACCEPT":         "text/html, application/json",
			"HTTP_COOKIE":         "a=1; b=2; c=3",
			"HTTP_X_CUSTOM_THING": "one, two",
		},
	}, {
		name:   "Authorization reaches PHP",
		method: "GET",
		uri:    "/index.php",
		header: [][2]string{{"Authorization", "Basic dXNlcjpwYXNz"}},
		want:   map[string]string{"HTTP_AUTHORIZATION": "Basic dXNlcjpwYXNz"},
	}, {
		name:   "IPv6 host",
		method: "GET",
		uri:    "/index.php",
		header: [][2]string{{"Host", "[::1]:8080"}},
		want:   map[string]string{"SERVER_NAME": "[::1]", "HTTP_HOST": "[::1]:8080"},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var req strings.Builder
			req.WriteString(tt.method + " " + tt.uri + " HTTP/1.1\r\n")
			hasHost := false
			for _, h := range tt.header {
				hasHost = hasHost || h[0] == "Host"
				req.WriteString(h[0] + ": " + h[1] + "\r\n")
			}
			if !hasHost {
				req.WriteString("Host: " + tg.addr + "\r\n")
			}
			if tt.body != "" {
				req.WriteString("Content-Length: " + strconv.Itoa(len(tt.body)) + "\r\n")
			}
			req.WriteString("Connection: close\r\n\r\n" + tt.body)
			resp, body := tg.raw(t, req.String())
			if resp.StatusCode != 200 || body != "ok" {
				t.Fatalf("got %d %q", resp.StatusCode, body)
			}
			rs := f.requests()
			if len(rs) != 1 {
				t.Fatalf("backend got %d requests, want 1", len(rs))
			}
			got := rs[0]
			for name, want := range tt.want {
				v, ok := got.params[name]
				switch {
				case want == absent && ok:
					t.Errorf("%s = %q, want it absent", name, v)
				case want != absent && !ok:
					t.Errorf("%s absent, want %q", name, want)
				case want != absent && v != want:
					t.Errorf("%s = %q, want %q", name, v, want)
				}
			}
			if got.params["REQUEST_ID"] == "" || got.params["REQUEST_ID"] != resp.Header.Get("X-Request-Id") {
				t.Errorf("REQUEST_ID %q, X-Request-Id %q: want the same id", got.params["REQUEST_ID"], resp.Header.Get("X-Request-Id"))
			}
			if got.params["REMOTE_PORT"] == "" {
				t.Error("REMOTE_PORT is empty")
			}
			if string(got.stdin) != tt.body {
				t.Errorf("stdin %q, want %q", got.stdin, tt.body)
			}
			// The pool's params come last, so that they override.
			if n := len(got.names); n < 2 || got.names[n-2] != "APP_ENV" || got.names[n-1] != "HTTPS_PORT" {
				t.Errorf("params end with %q, want the pool's APP_ENV, HTTPS_PORT", got.names[max(0, n-2):])
			}
			for name := range got.params {
				if strings.Count(strings.Join(got.names, "\n")+"\n", name+"\n") != 1 {
					t.Errorf("param %s sent more than once", name)
				}
			}
		})
	}
}

func TestHTTPParamName(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"User-Agent", "HTTP_USER_AGENT", true},
		{"x-custom-thing", "HTTP_X_CUSTOM_THING", true},
		{"X-Forwarded-For", "HTTP_X_FORWARDED_FOR", true},
		{"X_Forwarded_For", "", false},
		{"X.Dotted", "", false},
		{"Proxy", "", true},
		{"proxy", "", true},
		{"Content-Type", "", true},
		{"Content-Length", "", true},
		{"Host", "", true},
		{"", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := httpParamName(tt.in)
			if got != tt.want || ok != tt.ok {
				t.Errorf("httpParamName(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
			}
			if want, ok := httpParamNames[http.CanonicalHeaderKey(tt.in)]; ok && tt.ok && want != tt.want {
				t.Errorf("table has %q for %q, want %q", want, tt.in, tt.want)
			}
		})
	}
}

func TestSplitHostPort(t *testing.T) {
	tests := []struct{ in, host, port string }{
		{"127.0.0.1:8080", "127.0.0.1", "8080"},
		{"[::1]:443", "::1", "443"},
		{"[::1]", "[::1]", ""},
		{"example.com", "example.com", ""},
	}
	for _, tt := range tests {
		host, port := splitHostPort(tt.in)
		if host != tt.host || port != tt.port {
			t.Errorf("splitHostPort(%q) = %q, %q; want %q, %q", tt.in, host, port, tt.host, tt.port)
		}
	}
}

// BenchmarkParams measures building the params of a typical browser
// request; the goal is a handful of allocations, none per header.
func BenchmarkParams(b *testing.B) {
	p := &pool{cfg: PoolConfig{}.Defaults(), docRoot: "/srv/www"}
	r := httptest.NewRequest("GET", "http://example.com/app.php/x?y=1", nil)
	for k, v := range map[string]string{
		"Accept":          "text/html,application/xhtml+xml",
		"Accept-Encoding": "gzip, deflate, br",
		"Accept-Language": "en-GB,en;q=0.9",
		"Cookie":          "session=abc123",
		"User-Agent":      "Mozilla/5.0",
		"Referer":         "http://example.com/",
	} {
		r.Header.Set(k, v)
	}
	t := &target{kind: targetScript, scriptName: "/app.php", pathInfo: "/x"}
	buf := make([]fastcgi.Param, 0, 64)
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = p.appendParams(buf[:0], r, &cgiRequest{target: t, id: "0123456789abcdef", software: "fcgigate"})
	}
}
