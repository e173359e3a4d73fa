// Package gateway is fcgigate's HTTP front. It turns each HTTP request into
// a FastCGI responder request for a PHP-FPM backend picked from a balancer
// pool, and streams the answer back. Its FastCGI front (fcgifront.go,
// ServeFastCGI) takes FastCGI requests from a web server instead, and sends
// them through the same pools, balancer and retries, with their params and
// answers passed through.
//
// Serve runs its own HTTP/1.x server (h1.go) rather than net/http's: one
// goroutine per connection, no read in the background per request, PHP's
// reason phrase written as it is. Gateway stays an http.Handler, and works
// under any other server too.
//
// A request goes through these steps:
//
//   - paths.go decodes the path once and rejects what could traverse: ".."
//     segments, NUL and other control bytes, backslashes, and their
//     percent-encoded or double-encoded forms are a 400. It then resolves
//     the path the way nginx's `try_files $uri $uri/ /index.php?$args`
//     does: a script is the path up to the first segment that ends in
//     ".php", and the rest is PATH_INFO. Index files serve paths that end in
//     "/", and the front controller takes everything else.
//   - static.go serves files from StaticRoot that are neither PHP nor
//     hidden. It never lists a directory.
//   - spool.go streams a body of known length to the backend as the
//     client sends it. A body of unknown length (chunked) is spooled to
//     memory, then to an unlinked temporary file, so that FPM always gets
//     CONTENT_LENGTH. A body over MaxBodyBytes is a 413 before any backend
//     is contacted.
//   - cgi.go builds the CGI/1.1 params.
//   - retry.go picks a backend and tries it, and retries on another where
//     that is safe.
//   - response.go parses the CGI header block and relays status, header and
//     body, record by record, flushing whenever no more output is waiting.
//   - errors.go maps failures to 502, 503 and 504.
//
// A request of the FastCGI front skips the first four steps: the web server
// has resolved the path and built the params. fcgifront.go passes them on,
// minus HTTP_PROXY and with DOCUMENT_ROOT rewritten to the pool's, streams
// STDIN to the backend, and relays STDOUT, STDERR and the application status
// as they come; a failure before any byte of the answer is answered with a
// CGI Status of 502, 503 or 504. allow.go holds the client allow-list.
//
// Invariants:
//
//   - Nothing is sent to a backend before the path has been checked and the
//     body is known to fit within MaxBodyBytes.
//   - A request is retried only before any byte of its response has gone to
//     the client. After a dial error, a stale keep-alive connection or a
//     rejection by FPM it is retried whatever its method, provided its body
//     can be sent again. Otherwise only idempotent methods are retried.
//   - Once the response header has been sent, a backend failure aborts the
//     response (panic(http.ErrAbortHandler)), so a client never takes a
//     truncated body for a whole one.
//   - The client's Proxy header never becomes HTTP_PROXY, and a header whose
//     name holds anything but letters, digits and '-' never reaches PHP. The
//     FastCGI front drops an HTTP_PROXY param that a web server passes on.
//   - The FastCGI front serves only clients in AllowedClients (loopback by
//     default); the others are closed at accept and counted.
//   - PHP's Status header is never forwarded. A reason phrase that differs
//     from the standard one reaches the client through Serve's server;
//     under another server (net/http's, which cannot write one) the
//     standard phrase replaces it, and a debug line says so.
package gateway
