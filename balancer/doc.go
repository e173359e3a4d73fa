// Package balancer picks a backend for each request. A Pool holds Backends,
// each with an atomic count of requests in flight; Pick chooses the one with
// the fewest in flight, breaking ties at random, and never takes a lock: the
// backend list is published through an atomic.Pointer.
//
// The package does no I/O and imports nothing else of fcgigate.
package balancer
