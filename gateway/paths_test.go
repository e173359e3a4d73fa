package gateway

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSplitScript(t *testing.T) {
	tests := []struct {
		in, script, info string
		ok               bool
	}{
		{"/a.php", "/a.php", "", true},
		{"/a.php/b/c", "/a.php", "/b/c", true},
		{"/a.php/", "/a.php", "/", true},
		{"/dir/a.php/b.php/c", "/dir/a.php", "/b.php/c", true},
		{"/a.phpx/b.php/c", "/a.phpx/b.php", "/c", true},
		// Only a segment that ends in .php is a script, and all of the
		// path before it belongs to the script: never x.jpg.
		{"/uploads/x.jpg/y.php", "/uploads/x.jpg/y.php", "", true},
		{"/uploads/x.jpg/.php", "/uploads/x.jpg/.php", "", true},
		{"/a.php.jpg", "", "", false},
		{"/a.PHP", "", "", false},
		{"/blog/post", "", "", false},
		{"/", "", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			script, info, ok := splitScript(tt.in)
			if script != tt.script || info != tt.info || ok != tt.ok {
				t.Errorf("splitScript(%q) = %q, %q, %v; want %q, %q, %v", tt.in, script, info, ok, tt.script, tt.info, tt.ok)
			}
		})
	}
}

// TestCheckPath covers traversal in every encoding: as the decoded path
// (url.URL.Path) and the raw one (url.URL.RawPath) look after the server
// has parsed the request line.
func TestCheckPath(t *testing.T) {
	tests := []struct {
		name       string
		requestURI string // as sent
		want       string // cleaned path; "" for a 400
	}{
		{"plain", "/index.php", "/index.php"},
		{"path info", "/a.php/b/c", "/a.php/b/c"},
		{"dot dot", "/../etc/passwd", ""},
		{"dot dot inside", "/a/../b.php", ""},
		{"dot dot at the end", "/a/..", ""},
		{"encoded dot dot", "/%2e%2e/etc/passwd", ""},
		{"mixed case encoded dot dot", "/%2E%2e/etc/passwd", ""},
		{"half encoded dot dot", "/.%2e/etc/passwd", ""},
		{"double encoded dot dot", "/%252e%252e/etc/passwd", ""},
		{"encoded slash and dot dot", "/a%2f..%2fb.php", ""},
		{"NUL", "/a.php%00.jpg", ""},
		{"double encoded NUL", "/a.php%2500.jpg", ""},
		{"newline, CVE-2019-11043", "/a.php/%0aX", ""},
		{"backslash", "/a\\..\\b.php", ""},
		{"encoded backslash", "/a%5c..%5cb.php", ""},
		{"double encoded backslash", "/a%255c..%255cb.php", ""},
		{"dots in names are fine", "/a/..b/c../.../d.php", "/a/..b/c../.../d.php"},
		{"percent sign is fine", "/50%25off.php", "/50%off.php"},
		{"bad escape is fine", "/100%25zz.php", "/100%zz.php"},
		{"empty segments cleaned", "/a//b/./c.php", "/a/b/c.php"},
		{"trailing slash kept", "/a/./b/", "/a/b/"},
		{"root", "/", "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := url.ParseRequestURI(tt.requestURI)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := checkPath(u.Path, u.RawPath)
			if tt.want == "" {
				if ok {
					t.Errorf("checkPath(%q, %q) = %q, want it rejected", u.Path, u.RawPath, got)
				}
				return
			}
			if !ok || got != tt.want {
				t.Errorf("checkPath(%q, %q) = %q, %v; want %q", u.Path, u.RawPath, got, ok, tt.want)
			}
		})
	}
	if _, ok := checkPath("*", ""); ok {
		t.Error(`checkPath("*") accepted`)
	}
}

// TestTraversalOverHTTP sends traversal attempts on the wire, where no
// client can clean them up, and checks that each is a 400 that no backend
// saw.
func TestTraversalOverHTTP(t *testing.T) {
	leakCheck(t)
	f := startFake(t, answer("Content-Type: text/plain\r\n\r\nran"))
	tg := startGateway(t, testPool(f.addr), nil)
	for _, uri := range []string{
		"/../etc/passwd",
		"/a/../../index.php",
		"/%2e%2e/%2e%2e/etc/passwd",
		"/%2E%2e/index.php",
		"/x/%2e%2e/index.php",
		"/%252e%252e/index.php",
		"/index.php%00.jpg",
		"/index.php/%0a",
		"/a%5c..%5cindex.php",
	} {
		t.Run(uri, func(t *testing.T) {
			resp, body := tg.raw(t, "GET "+uri+" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("status %d %q, want 400", resp.StatusCode, body)
			}
		})
	}
	if n := f.accepted.Load(); n != 0 {
		t.Errorf("backend got %d connections, want none", n)
	}
}

// docroot makes a static root:
//
//	index.php  app.php  Foo.PHP  secret.php.bak  .env  robots.txt
//	img/logo.png  docs/index.html  empty/  uploads/x.jpg
//	.git/config  .well-known/acme  link-out -> a file outside the root
func docroot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	outside := filepath.Join(t.TempDir(), "passwd")
	files := map[string]string{
		"index.php":        "<?php echo 'index';",
		"app.php":          "<?php echo 'app';",
		"Foo.PHP":          "<?php echo 'source';",
		"secret.php.bak":   "<?php $password = 'x';",
		".env":             "DB_PASSWORD=x",
		"robots.txt":       "User-agent: *\n",
		"img/logo.png":     "\x89PNG\r\n\x1a\nfake",
		"docs/index.html":  "<h1>docs</h1>",
		"uploads/x.jpg":    "<?php system($_GET['c']);",
		".git/config":      "[core]",
		".well-known/acme": "token",
	}
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(root, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(outside, []byte("root:x:0:0"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "link-out")); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestResolve(t *testing.T) {
	root := docroot(t)
	script := func(name, info string) target {
		return target{kind: targetScript, scriptName: name, pathInfo: info}
	}
	static := func(file string) target { return target{kind: targetStatic, file: file} }
	notFound := target{kind: targetNotFound}
	tests := []struct {
		path       string
		withStatic target // StaticRoot set
		without    target // StaticRoot empty
	}{
		{"/", script("/index.php", ""), script("/index.php", "")},
		{"/index.php", script("/index.php", ""), script("/index.php", "")},
		{"/app.php/x/y", script("/app.php", "/x/y"), script("/app.php", "/x/y")},
		{"/missing.php", notFound, script("/missing.php", "")},
		{"/missing.php/x", notFound, script("/missing.php", "/x")},
		{"/uploads/x.jpg/y.php", notFound, script("/uploads/x.jpg/y.php", "")},
		{"/uploads/x.jpg", static("uploads/x.jpg"), script("/index.php", "")},
		{"/img/logo.png", static("img/logo.png"), script("/index.php", "")},
		{"/img/logo.png/more", script("/index.php", ""), script("/index.php", "")},
		{"/img", target{kind: targetRedirect, file: "/img/"}, script("/index.php", "")},
		{"/img/", script("/index.php", ""), script("/img/index.php", "")},
		{"/docs/", static("docs/index.html"), script("/docs/index.php", "")},
		{"/empty/", script("/index.php", ""), script("/empty/index.php", "")},
		{"/blog/post-1", script("/index.php", ""), script("/index.php", "")},
		{"/Foo.PHP", notFound, script("/index.php", "")},
		{"/secret.php.bak", notFound, script("/index.php", "")},
		{"/.env", notFound, script("/index.php", "")},
		{"/.git/config", notFound, script("/index.php", "")},
		{"/.well-known/acme", static(".well-known/acme"), script("/index.php", "")},
		{"/robots.txt", static("robots.txt"), script("/index.php", "")},
	}
	with := &pool{cfg: PoolConfig{StaticRoot: root, Index: []string{"index.php", "index.html"}}.Defaults()}
	without := &pool{cfg: PoolConfig{}.Defaults()}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			r := httptest.NewRequest("GET", tt.path, nil)
			if got := with.resolve(r); got != tt.withStatic {
				t.Errorf("with static root: %+v, want %+v", got, tt.withStatic)
			}
			if got := without.resolve(r); got != tt.without {
				t.Errorf("without static root: %+v, want %+v", got, tt.without)
			}
		})
	}
	t.Run("front controller off", func(t *testing.T) {
		for _, p := range []*pool{
			{cfg: PoolConfig{StaticRoot: root, FrontController: "-"}.Defaults()},
			{cfg: PoolConfig{FrontController: "-"}.Defaults()},
		} {
			r := httptest.NewRequest("GET", "/blog/post-1", nil)
			if got := p.resolve(r); got != notFound {
				t.Errorf("static root %q: %+v, want 404", p.cfg.StaticRoot, got)
			}
		}
	})
}

// TestStatic serves files from a static root next to a backend that says
// "php" for whatever reaches it.
func TestStatic(t *testing.T) {
	leakCheck(t)
	f := startFake(t, answer("Content-Type: text/plain\r\n\r\nphp"))
	pc := testPool(f.addr)
	pc.StaticRoot = docroot(t)
	pc.Index = []string{"index.php", "index.html"}
	tg := startGateway(t, pc, nil)

	tests := []struct {
		method, path string
		status       int
		body         string // "" for any
		header       map[string]string
	}{
		{"GET", "/img/logo.png", 200, "\x89PNG\r\n\x1a\nfake", map[string]string{"Content-Type": "image/png"}},
		{"HEAD", "/img/logo.png", 200, "", map[string]string{"Content-Length": "12"}},
		{"GET", "/robots.txt", 200, "User-agent: *\n", map[string]string{"Content-Type": "text/plain; charset=utf-8"}},
		{"GET", "/docs/", 200, "<h1>docs</h1>", nil},
		{"GET", "/docs?x=1", 301, "", map[string]string{"Location": "/docs/?x=1"}},
		{"POST", "/robots.txt", 405, "", map[string]string{"Allow": "GET, HEAD"}},
		{"GET", "/index.php", 200, "php", nil},
		{"GET", "/", 200, "php", nil},
		{"GET", "/nowhere", 200, "php", nil},
		{"GET", "/missing.php", 404, "", nil},
		{"GET", "/Foo.PHP", 404, "", nil},
		{"GET", "/secret.php.bak", 404, "", nil},
		{"GET", "/.env", 404, "", nil},
		{"GET", "/link-out", 404, "", nil},
		{"GET", "/empty", 301, "", map[string]string{"Location": "/empty/"}},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, tg.url+tt.path, nil)
			resp, body := tg.do(t, req)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d (body %q)", resp.StatusCode, tt.status, body)
			}
			if tt.body != "" && body != tt.body {
				t.Errorf("body %q, want %q", body, tt.body)
			}
			if strings.Contains(body, "<?php") || strings.Contains(body, "root:x") {
				t.Errorf("leaked %q", body)
			}
			for k, v := range tt.header {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
		})
	}

	t.Run("conditional and range", func(t *testing.T) {
		resp, _ := tg.get(t, "/robots.txt")
		etag := resp.Header.Get("Etag")
		if !strings.HasPrefix(etag, `"`) {
			t.Fatalf("ETag %q", etag)
		}
		req, _ := http.NewRequest("GET", tg.url+"/robots.txt", nil)
		req.Header.Set("If-None-Match", etag)
		if resp, _ := tg.do(t, req); resp.StatusCode != http.StatusNotModified {
			t.Errorf("If-None-Match: %d, want 304", resp.StatusCode)
		}
		req, _ = http.NewRequest("GET", tg.url+"/robots.txt", nil)
		req.Header.Set("Range", "bytes=0-3")
		if resp, body := tg.do(t, req); resp.StatusCode != http.StatusPartialContent || body != "User" {
			t.Errorf("Range: %d %q, want 206 \"User\"", resp.StatusCode, body)
		}
	})
}
