// Package balancer picks a PHP-FPM backend for each request.
//
// A Pool holds Backends. Pick (and Acquire, which can wait) chooses the
// backend with the fewest requests in flight per unit of weight (in a pool
// of more than 32, among a random sample of 32: see below), ties broken at
// random, among those that can take a request: healthy (as the prober
// says through SetHealthy), not ejected by outlier detection, below their
// concurrency limit, and whose circuit breaker is closed or admits a trial
// request. The request is counted in flight on the backend chosen; Done
// ends it and tells the breaker and outlier detection whether the backend
// failed.
//
// Each backend has one gobreaker circuit breaker, which trips on
// consecutive failures or on a failure ratio over a rolling window, stays
// open for a while, then lets a few trial requests through. A backend
// that fails requests in a row is also ejected for a time that doubles when
// it is ejected again soon, but never more than a share of the pool at
// once. A backend that joins or comes back ramps up to its full weight
// (slow start). The prober adds a load penalty to a backend whose FPM has
// requests queued or no idle worker, and may set its concurrency limit;
// beyond it, Acquire waits in a bounded FIFO queue per pool.
//
// Invariants:
//   - Pick takes no lock and allocates nothing: the backend list is
//     published through an atomic.Pointer, and each backend's state is in
//     atomics (flags, weight and load penalty share one word). It reads the
//     clock only when a backend is in slow start, ejected or has its breaker
//     open. It takes a lock only to admit a trial request through a breaker
//     that is not closed. It scans every backend, about 2ns each, in a
//     pool of up to 32, so the pick there is exact. In a larger pool it
//     scans 32 consecutive backends from a random offset and takes the
//     least loaded of those, falling back to the whole pool only when none
//     of them can take the request: least-in-flight among a random sample
//     approximates the global choice closely (the "power of d choices")
//     at a cost that does not grow with the pool; the price is that a
//     backend gets at most 32/n of the picks (see sampleSize).
//   - Acquire is Pick while nobody waits; waiting takes the queue's lock
//     and allocates a waiter and a timer.
//   - Done takes the backend's breaker lock to report to gobreaker, which
//     counts outcomes when requests end, and the queue's lock only when
//     requests wait.
//   - Time comes from Config.Now (open times, ejections, slow start), so
//     tests drive it with a fake clock; only the breaker's failure window
//     and the queue timeout run on the real clock. Nothing runs in the
//     background: no goroutine, no timer outlives the call that made it.
//
// The package does no I/O and imports nothing else of fcgigate.
package balancer
