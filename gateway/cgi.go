package gateway

// cgi.go builds the CGI/1.1 params of a request, as PHP's FPM SAPI reads
// them, with as few allocations as the strings allow: most values are
// substrings of the request's own, and the HTTP_* names of common headers
// come from a table.

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/fcgigate/fcgigate/fastcgi"
)

// cgiRequest is what the params of one request are built from besides the
// request itself.
type cgiRequest struct {
	target        *target
	id            string // REQUEST_ID
	contentLength string // CONTENT_LENGTH
	software      string // SERVER_SOFTWARE
}

// appendParams appends the params of r to ps and returns SCRIPT_FILENAME for
// the log. The order: the CGI variables, HTTP_HOST and one HTTP_* per
// header, then the pool's own params, which FPM lets override the rest.
func (p *pool) appendParams(ps []fastcgi.Param, r *http.Request, c *cgiRequest) ([]fastcgi.Param, string) {
	t := c.target
	scriptFilename := p.docRoot + t.scriptName
	documentURI := t.scriptName
	if t.pathInfo != "" {
		documentURI += t.pathInfo
	}
	requestURI := r.RequestURI
	if requestURI == "" || requestURI[0] != '/' {
		// A request made in-process, or in absolute form
		// ("GET http://host/x HTTP/1.1"): PHP wants the path.
		requestURI = r.URL.RequestURI()
	}
	serverAddr, serverPort := localAddr(r.Context())
	remoteAddr, remotePort := splitHostPort(r.RemoteAddr)
	serverName := hostName(r.Host)
	if serverName == "" {
		serverName = serverAddr
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}

	ps = append(ps,
		fastcgi.Param{Name: "SCRIPT_FILENAME", Value: scriptFilename},
		fastcgi.Param{Name: "SCRIPT_NAME", Value: t.scriptName},
		fastcgi.Param{Name: "PATH_INFO", Value: t.pathInfo},
	)
	if t.pathInfo != "" {
		ps = append(ps, fastcgi.Param{Name: "PATH_TRANSLATED", Value: p.docRoot + t.pathInfo})
	}
	ps = append(ps,
		fastcgi.Param{Name: "QUERY_STRING", Value: r.URL.RawQuery},
		fastcgi.Param{Name: "REQUEST_URI", Value: requestURI},
		fastcgi.Param{Name: "DOCUMENT_URI", Value: documentURI},
		fastcgi.Param{Name: "DOCUMENT_ROOT", Value: p.docRoot},
		fastcgi.Param{Name: "REQUEST_METHOD", Value: r.Method},
		fastcgi.Param{Name: "CONTENT_TYPE", Value: headerValue(r.Header, "Content-Type")},
		fastcgi.Param{Name: "CONTENT_LENGTH", Value: c.contentLength},
		fastcgi.Param{Name: "SERVER_PROTOCOL", Value: r.Proto},
		fastcgi.Param{Name: "REQUEST_SCHEME", Value: scheme},
	)
	if r.TLS != nil {
		ps = append(ps, fastcgi.Param{Name: "HTTPS", Value: "on"})
	}
	ps = append(ps,
		fastcgi.Param{Name: "GATEWAY_INTERFACE", Value: "CGI/1.1"},
		fastcgi.Param{Name: "SERVER_SOFTWARE", Value: c.software},
		fastcgi.Param{Name: "SERVER_NAME", Value: serverName},
		fastcgi.Param{Name: "SERVER_ADDR", Value: serverAddr},
		fastcgi.Param{Name: "SERVER_PORT", Value: serverPort},
		fastcgi.Param{Name: "REMOTE_ADDR", Value: remoteAddr},
		fastcgi.Param{Name: "REMOTE_PORT", Value: remotePort},
		fastcgi.Param{Name: "REDIRECT_STATUS", Value: "200"},
		fastcgi.Param{Name: "REQUEST_ID", Value: c.id},
	)
	if r.Host != "" {
		ps = append(ps, fastcgi.Param{Name: "HTTP_HOST", Value: r.Host})
	}
	for name, values := range r.Header {
		if len(values) == 0 {
			continue
		}
		pname, ok := httpParamNames[name]
		if !ok {
			if pname, ok = httpParamName(name); !ok {
				continue
			}
		}
		if pname == "" {
			continue // sent as a CGI variable, or never (Proxy)
		}
		value := values[0]
		if len(values) > 1 {
			sep := ", "
			if name == "Cookie" {
				sep = "; "
			}
			value = strings.Join(values, sep)
		}
		ps = append(ps, fastcgi.Param{Name: pname, Value: value})
	}
	return append(ps, p.extra...), scriptFilename
}

// headerValue returns the first value of the canonical key k, without the
// canonicalisation of http.Header.Get.
func headerValue(h http.Header, k string) string {
	if v := h[k]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// httpParamName returns the HTTP_* param that carries the header name: upper
// case, with '-' as '_'. It reports false for a name that holds anything but
// ASCII letters, digits and '-', like nginx's ignore_invalid_headers: above
// all '_', so that "X_Forwarded_For" cannot pose as X-Forwarded-For once
// both are HTTP_X_FORWARDED_FOR. Headers that PHP gets as CGI variables, and
// Proxy (httpoxy: it would become HTTP_PROXY, which PHP code takes for the
// proxy setting), give "".
func httpParamName(name string) (string, bool) {
	if name == "" {
		return "", false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			return "", false
		}
	}
	switch http.CanonicalHeaderKey(name) {
	case "Proxy", "Content-Type", "Content-Length", "Host":
		return "", true
	}
	b := make([]byte, 0, len("HTTP_")+len(name))
	b = append(b, "HTTP_"...)
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c == '-':
			b = append(b, '_')
		case 'a' <= c && c <= 'z':
			b = append(b, c-'a'+'A')
		default:
			b = append(b, c)
		}
	}
	return string(b), true
}

// httpParamNames holds the param names of common request headers, keyed by
// their canonical form, so that the hot path need not build them.
var httpParamNames = func() map[string]string {
	m := map[string]string{}
	for _, h := range []string{
		"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language",
		"Authorization", "Cache-Control", "Connection", "Content-Length",
		"Content-Type", "Cookie", "Dnt", "Expect", "Forwarded", "If-Match",
		"If-Modified-Since", "If-None-Match", "If-Range",
		"If-Unmodified-Since", "Origin", "Pragma", "Priority", "Proxy",
		"Range", "Referer", "Sec-Ch-Ua", "Sec-Ch-Ua-Mobile",
		"Sec-Ch-Ua-Platform", "Sec-Fetch-Dest", "Sec-Fetch-Mode",
		"Sec-Fetch-Site", "Sec-Fetch-User", "Te", "Upgrade",
		"Upgrade-Insecure-Requests", "User-Agent", "Via",
		"X-Csrf-Token", "X-Forwarded-For", "X-Forwarded-Host",
		"X-Forwarded-Port", "X-Forwarded-Proto", "X-Real-Ip",
		"X-Request-Id", "X-Requested-With",
	} {
		m[h], _ = httpParamName(h)
	}
	return m
}()

// connInfo is the local address of an accepted connection, formatted once
// per connection by Serve rather than once per request.
type connInfo struct {
	addr, port string
}

// connInfoKey is the context key of a *connInfo.
type connInfoKey struct{}

// withConnInfo is Serve's http.Server.ConnContext.
func withConnInfo(ctx context.Context, c net.Conn) context.Context {
	addr, port := splitHostPort(c.LocalAddr().String())
	return context.WithValue(ctx, connInfoKey{}, &connInfo{addr: addr, port: port})
}

// localAddr returns SERVER_ADDR and SERVER_PORT: the local address of the
// connection that carried the request.
func localAddr(ctx context.Context) (addr, port string) {
	if ci, ok := ctx.Value(connInfoKey{}).(*connInfo); ok {
		return ci.addr, ci.port
	}
	if a, ok := ctx.Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ta, ok := a.(*net.TCPAddr); ok {
			return ta.IP.String(), strconv.Itoa(ta.Port)
		}
		return splitHostPort(a.String())
	}
	return "", ""
}

// splitHostPort splits "host:port" or "[v6]:port" without allocating; a
// string without a port is all host.
func splitHostPort(hp string) (host, port string) {
	i := strings.LastIndexByte(hp, ':')
	if i < 0 || strings.IndexByte(hp[i:], ']') >= 0 {
		return hp, ""
	}
	host, port = hp[:i], hp[i+1:]
	if len(host) >= 2 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	return host, port
}

// hostName returns the Host header without its port; an IPv6 literal keeps
// its brackets, as nginx's $host does.
func hostName(h string) string {
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i > 0 {
			return h[:i+1]
		}
		return h
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 {
		return h[:i]
	}
	return h
}
