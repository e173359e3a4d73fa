// Package health decides whether each PHP-FPM backend is up, and how loaded
// it is, by probing it over FastCGI.
//
// A Prober asks every target, each Config.Interval, for FPM's status page as
// JSON (pm.status_path?json, if Config.StatusPath is set) and then for its
// ping page (ping.path, which must answer ping.response). FPM answers both
// itself, without running PHP, so a probe costs no script execution; but they
// are answered by an FPM worker, so a probe waits in the same listen queue as
// requests do. A backend whose workers are all busy for longer than
// Config.Timeout therefore fails its probes: it cannot serve a new request in
// that time either. (The gateway tells that apart from its own idle
// keep-alive connections holding the workers: see
// gateway.Gateway.SetBackendState.) The status page is asked for first because FPM marks a
// worker idle only after it has answered: read right after the ping, the
// status page would often count the ping's worker as busy.
//
// The probe decides up and down: Config.Fall consecutive failed probes take
// an up target down, Config.Rise consecutive good ones bring a down target
// up. A probe fails when the backend does not answer a request (dial error,
// timeout, protocol error) or the ping answers anything but 200 and
// ping.response. A target starts up, before its first probe, so that a
// gateway serves at once when it starts or when discovery adds a backend;
// Consul only lists backends whose own checks pass, and a backend that is
// dead after all costs at most Fall probes, while the balancer's breaker and
// the retry of failed dials cover the requests in between.
//
// The status page only feeds load (FPMStatus.Penalty, FPMStatus.MaxConcurrent).
// A status page that answers but not as expected (404 because pm.status_path
// differs, or a body that is not FPM's JSON) is reported and logged but
// never takes a backend down, since it means a configuration mismatch rather
// than a dead backend. Other gateways' probes and requests that have just
// been answered may still count as active processes.
//
// Every probe is reported to Config.Reporter; cmd connects the reports to
// the balancer's backends with a small adapter, since health does not import
// the balancer.
//
// Gossip (gossip.go) makes the gateways of a cluster one: a memberlist
// member per gateway spreads its verdict on each backend (up, suspect,
// down), its requests in flight per backend and its config version, and
// Cluster (cluster.go) merges what the others spread. A gateway's own
// probes decide its own routing; a backend that a quorum of the live
// gateways finds down is taken out on all of them; a peer's failure
// report makes the others probe at once, and a failed probe then confirms
// it. The encoding is in message.go, the keyring file in keyring.go.
//
// Invariants:
//   - Each target is probed by one goroutine owned by Run, one probe at a
//     time; all of them stop before Run returns, and a removed target's
//     goroutine stops before SetTargets returns.
//   - Probes use a connection pool of their own per target and never keep a
//     connection open between requests: FPM binds a worker to a kept-alive
//     connection until the client closes it, so a kept-alive probe
//     connection would take a worker away from serving (and always find it
//     ready, hiding saturation).
//   - A probe cut short because Run's context ended or its target was
//     removed is neither counted nor reported.
//
// This package imports nothing else of fcgigate but fastcgi.
package health
