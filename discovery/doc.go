// Package discovery tells the gateway which PHP-FPM backends each pool has,
// and tells Consul that the gateway is there.
//
// A pool's members come from a Source: a ServiceWatcher for a pool defined
// by a Consul service (name, tags that must all match, and an optional
// node-meta filter), or a Static list for a pool that names its addresses.
// Each Source owns one goroutine, its Run, and hands every new member set
// to a callback; cmd (through package wiring) turns that into
// gateway.SetBackends and the health prober's SetTargets.
//
// The ServiceWatcher runs Consul blocking queries on
// /v1/health/service/<name>?passing, following Consul's rules for them
// (developer.hashicorp.com/consul/api-docs/features/blocking):
//
//   - a return is not a change: an unchanged X-Consul-Index, or a member set
//     equal to the last one, is ignored;
//   - an index that goes backwards (Consul restarted without its data, or a
//     lagging server answered) resets the index to 0, so that the next query
//     reads afresh; so does a failed query, since a Consul that comes back
//     without its data would otherwise hold a query on the old index, which
//     it has not reached, for the whole wait time;
//   - queries are rate limited (Config.MinInterval), since a blocking query
//     returns at once on each change.
//
// Invariants:
//
//   - While Consul is unreachable, answers an error, or answers something
//     that is not a health listing (bad JSON, no X-Consul-Index), the last
//     good member set stays in force: nothing is delivered, and the
//     watcher retries with capped, jittered backoff.
//   - By default a member set that would empty a pool is not applied
//     either (Config.AllowEmpty): Consul losing its state looks just like
//     every backend failing at once, and the gateway's own prober already
//     takes dead backends out.
//   - A service entry without a usable address (empty, port 0, or the same
//     address as another entry) is left out, with one log line per distinct
//     entry for as long as it stays listed, not one per query.
//   - The ACL token is never logged: Config's LogValue leaves it out, and it
//     travels in the X-Consul-Token header, never in a URL.
//
// The Registrar registers the gateway as a Consul service with an HTTP check
// on the admin listener's /healthz, registers it again if the agent forgets
// it (an agent restarted in -dev mode), and deregisters it when its context
// ends, which is when the gateway starts to drain.
//
// The package imports nothing else of fcgigate.
package discovery
