// Package fastcgi implements the FastCGI 1.0 wire protocol for the responder
// role: the record codec, name-value pairs, a client connection that streams
// a request body out and a response in without holding either whole in
// memory, and a keep-alive connection pool per backend address.
//
// A Conn carries one request at a time (request id 1), as PHP-FPM expects;
// FPM does not multiplex. Connections are not safe for concurrent requests.
//
// Server is the other side, for the gateway's FastCGI front: it serves
// keep-alive connections with multiplexed requests, answers FCGI_GET_VALUES
// and unknown management records, cancels a request on
// FCGI_ABORT_REQUEST, ignores records for inactive request ids (as the
// specification says), closes a connection gracefully (its write side
// first, then what the client still sends is read and dropped), and drains
// (Drain).
//
// This package imports nothing else of fcgigate.
package fastcgi
