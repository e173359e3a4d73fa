package gateway

// paths.go checks a request's path and resolves it to what answers it: a
// PHP script with its PATH_INFO, a static file, a redirect to the
// directory's slash, the front controller, or an error. It follows nginx's
// `try_files $uri $uri/ /index.php?$args` behind a `\.php(/|$)` split.

import (
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// targetKind says what answers a request.
type targetKind uint8

const (
	targetScript     targetKind = iota // a PHP script, run by FPM
	targetStatic                       // a file under StaticRoot, served by the gateway
	targetRedirect                     // a directory named without its trailing slash: 301
	targetBadRequest                   // a path that could traverse or is malformed: 400
	targetNotFound                     // 404 from the gateway
)

// target is the resolution of a request path.
type target struct {
	kind targetKind
	// scriptName and pathInfo are SCRIPT_NAME and PATH_INFO of a script.
	scriptName, pathInfo string
	// file is a static file's path under StaticRoot, without the leading
	// slash; or, for a redirect, the path to redirect to.
	file string
}

// resolve decides what answers r.
func (p *pool) resolve(r *http.Request) target {
	upath, ok := checkPath(r.URL.Path, r.URL.RawPath)
	if !ok {
		return target{kind: targetBadRequest}
	}
	if script, info, ok := splitScript(upath); ok {
		if p.cfg.StaticRoot != "" && !p.isFile(script) {
			// A missing script is a 404 here, not the front
			// controller's business, as with nginx's
			// `try_files $fastcgi_script_name =404`.
			return target{kind: targetNotFound}
		}
		return target{kind: targetScript, scriptName: script, pathInfo: info}
	}
	if strings.HasSuffix(upath, "/") {
		return p.resolveDir(upath)
	}
	if p.cfg.StaticRoot != "" {
		if fi, err := os.Stat(p.local(upath)); err == nil {
			switch {
			case fi.IsDir():
				return target{kind: targetRedirect, file: upath + "/"}
			case fi.Mode().IsRegular() && staticAllowed(upath):
				return target{kind: targetStatic, file: upath[1:]}
			case fi.Mode().IsRegular():
				// PHP source or a hidden file: it exists, but is
				// never shown.
				return target{kind: targetNotFound}
			}
		}
	}
	return p.frontController()
}

// resolveDir resolves a path that ends in "/" through the index files: with
// StaticRoot, the first that exists; without, the first listed, if it is a
// script.
func (p *pool) resolveDir(dir string) target {
	if p.cfg.StaticRoot == "" {
		if ix := p.cfg.Index[0]; strings.HasSuffix(ix, ".php") {
			return target{kind: targetScript, scriptName: dir + ix}
		}
		return p.frontController()
	}
	for _, ix := range p.cfg.Index {
		name := dir + ix
		if !p.isFile(name) {
			continue
		}
		if strings.HasSuffix(ix, ".php") {
			return target{kind: targetScript, scriptName: name}
		}
		if staticAllowed(name) {
			return target{kind: targetStatic, file: name[1:]}
		}
	}
	return p.frontController()
}

// frontController is the target of a path that is neither a file nor a
// script. REQUEST_URI and QUERY_STRING stay the client's.
func (p *pool) frontController() target {
	if p.cfg.FrontController == "-" {
		return target{kind: targetNotFound}
	}
	return target{kind: targetScript, scriptName: p.cfg.FrontController}
}

// local returns the local file name of upath under StaticRoot. upath has
// passed checkPath, so the lexical join cannot leave the root; static.go
// opens files through an os.Root as well, which also stops symbolic links
// that lead out of it.
func (p *pool) local(upath string) string {
	return filepath.Join(p.cfg.StaticRoot, filepath.FromSlash(upath))
}

// isFile reports whether upath is a regular file under StaticRoot.
func (p *pool) isFile(upath string) bool {
	fi, err := os.Stat(p.local(upath))
	return err == nil && fi.Mode().IsRegular()
}

// splitScript splits upath after the first segment that ends in ".php":
// "/a.php/b/c" is the script "/a.php" with PATH_INFO "/b/c". It reports
// false if no segment ends in ".php". The script is always the whole path up
// to that segment, so "/uploads/x.jpg/y.php" is the script
// "/uploads/x.jpg/y.php", never "/uploads/x.jpg".
func splitScript(upath string) (script, pathInfo string, ok bool) {
	for i := 0; ; {
		j := strings.Index(upath[i:], ".php")
		if j < 0 {
			return "", "", false
		}
		end := i + j + len(".php")
		if end == len(upath) || upath[end] == '/' {
			return upath[:end], upath[end:], true
		}
		i = end
	}
}

// checkPath validates the decoded path upath, and raw, the path as the client
// encoded it when that differs (url.URL.RawPath), and returns upath cleaned:
// no empty or "." segments, with any trailing slash kept. It rejects a path
// that does not start with "/" and a path that, decoded once or twice,
// contains a ".." segment, a NUL or other control byte, or a backslash.
func checkPath(upath, raw string) (string, bool) {
	if upath == "" || upath[0] != '/' {
		return "", false
	}
	if !safePath(upath) || (raw != "" && !safePath(raw)) {
		return "", false
	}
	if !needsClean(upath) {
		return upath, true
	}
	clean := path.Clean(upath)
	if strings.HasSuffix(upath, "/") && clean != "/" {
		clean += "/"
	}
	return clean, true
}

// safePath reports whether s, and s with its percent-escapes decoded once
// more, is free of traversal: ".." segments, control bytes, backslashes.
// Decoding again catches double encoding ("%252e%252e" arrives as the
// literal "%2e%2e"), which an application that decodes again would follow.
func safePath(s string) bool {
	if !plainSafe(s) {
		return false
	}
	if strings.IndexByte(s, '%') < 0 {
		return true
	}
	return plainSafe(unescapeLenient(s))
}

// plainSafe checks s as it is.
func plainSafe(s string) bool {
	seg := 0 // start of the current segment
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c < 0x20 || c == 0x7f || c == '\\':
			return false
		case c == '/':
			if s[seg:i] == ".." {
				return false
			}
			seg = i + 1
		}
	}
	return s[seg:] != ".."
}

// unescapeLenient decodes the valid %XX escapes of s and keeps anything else
// as it is, where url.PathUnescape would give up on the whole string.
func unescapeLenient(s string) string {
	if u, err := url.PathUnescape(s); err == nil {
		return u
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b = append(b, unhex(s[i+1])<<4|unhex(s[i+2]))
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	return string(b)
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

// needsClean reports empty or "." segments.
func needsClean(s string) bool {
	return strings.Contains(s, "//") || strings.Contains(s, "/./") || strings.HasSuffix(s, "/.")
}

// staticAllowed reports whether the file at upath may be served as it is:
// never PHP source, in any case or with a backup suffix ("x.php~",
// "x.PHP", "x.php.bak", ".phtml", ".phar"), and never a dotfile or anything
// in a dot directory except /.well-known/.
func staticAllowed(upath string) bool {
	for seg := range strings.SplitSeq(upath[1:], "/") {
		if strings.HasPrefix(seg, ".") && seg != ".well-known" {
			return false
		}
	}
	name := upath[strings.LastIndexByte(upath, '/')+1:]
	if containsFold(name, ".php") {
		return false
	}
	ext := strings.ToLower(path.Ext(name))
	return ext != ".phtml" && ext != ".phar" && ext != ".pht"
}

// containsFold reports whether s contains the lower-case ASCII sub in any
// case.
func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}
