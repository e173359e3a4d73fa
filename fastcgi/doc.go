// Package fastcgi implements the FastCGI 1.0 wire protocol for the responder
// role: the record codec, name-value pairs, a client connection that streams
// a request body out and a response in without holding either whole in
// memory, and a keep-alive connection pool per backend address.
//
// A Conn carries one request at a time (request id 1), as PHP-FPM expects;
// FPM does not multiplex. Connections are not safe for concurrent requests.
//
// This package imports nothing else of fcgigate.
package fastcgi
