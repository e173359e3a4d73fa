package gateway

import (
	"bufio"
	"encoding/binary"
	"io"
	"net"
	"testing"

	"github.com/fcgigate/fcgigate/fastcgi"
)

// apacheParams are the params Apache's mod_proxy_fcgi sends for a GET, in
// its order.
var apacheParams = []fastcgi.Param{
	{Name: "HTTP_HOST", Value: "127.0.0.1:8081"}, {Name: "HTTP_USER_AGENT", Value: "wrk"},
	{Name: "PATH", Value: "/usr/sbin:/usr/bin:/sbin:/bin"}, {Name: "SERVER_SIGNATURE", Value: ""},
	{Name: "SERVER_SOFTWARE", Value: "Apache/2.4.71 (Debian)"}, {Name: "SERVER_NAME", Value: "127.0.0.1"},
	{Name: "SERVER_ADDR", Value: "127.0.0.1"}, {Name: "SERVER_PORT", Value: "8081"},
	{Name: "REMOTE_ADDR", Value: "127.0.0.1"}, {Name: "DOCUMENT_ROOT", Value: "/srv/www"},
	{Name: "REQUEST_SCHEME", Value: "http"}, {Name: "CONTEXT_PREFIX", Value: ""},
	{Name: "CONTEXT_DOCUMENT_ROOT", Value: "/srv/www"}, {Name: "SERVER_ADMIN", Value: "[no address given]"},
	{Name: "SCRIPT_FILENAME", Value: "proxy:fcgi://127.0.1.1:9000/srv/www/hello.php"}, {Name: "REMOTE_PORT", Value: "51234"},
	{Name: "GATEWAY_INTERFACE", Value: "CGI/1.1"}, {Name: "SERVER_PROTOCOL", Value: "HTTP/1.1"},
	{Name: "REQUEST_METHOD", Value: "GET"}, {Name: "QUERY_STRING", Value: ""},
	{Name: "REQUEST_URI", Value: "/hello.php"}, {Name: "SCRIPT_NAME", Value: "/hello.php"},
}

// BenchmarkFastCGIFront measures GETs through the FastCGI front, sent as
// Apache sends them, over keep-alive connections, against a backend on
// loopback, with the sizes of BenchmarkServeHTTP.
func BenchmarkFastCGIFront(b *testing.B) {
	b.Run("tiny", func(b *testing.B) { benchmarkFastCGIFront(b, len("<html>hello</html>")) })
	b.Run("64KiB", func(b *testing.B) { benchmarkFastCGIFront(b, 64<<10) })
}

func benchmarkFastCGIFront(b *testing.B, size int) {
	addr := benchServe(b, benchGateway(b, size).ServeFastCGI)

	// BEGIN_REQUEST (keep the connection), params, their end, empty STDIN.
	var req []byte
	req = append(req, rec(1, []byte{0, 1, 1, 0, 0, 0, 0, 0})...)
	req = append(req, rec(recParams, fastcgi.EncodeParams(apacheParams))...)
	req = append(req, rec(recParams, nil)...)
	req = append(req, rec(recStdin, nil)...)
	b.ReportAllocs()
	b.SetBytes(int64(size))
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		br := bufio.NewReaderSize(c, 64<<10)
		var h [8]byte
		for pb.Next() {
			if _, err := c.Write(req); err != nil {
				b.Error(err)
				return
			}
			got := 0
			for {
				if _, err := io.ReadFull(br, h[:]); err != nil {
					b.Error(err)
					return
				}
				n := int(binary.BigEndian.Uint16(h[4:]))
				if h[1] == recStdout {
					got += n
				}
				if _, err := br.Discard(n + int(h[6])); err != nil {
					b.Error(err)
					return
				}
				if h[1] == recEnd {
					break
				}
			}
			if want := len(benchCGIHeader) + size; got < size || got > want {
				b.Errorf("got %d bytes of STDOUT", got)
				return
			}
		}
	})
}
