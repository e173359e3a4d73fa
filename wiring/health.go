package wiring

// health.go turns the health prober's results into the gateway's backend
// states: the one adapter between health and gateway, which may not import
// each other.

import (
	"github.com/fcgigate/fcgigate/gateway"
	"github.com/fcgigate/fcgigate/health"
)

// BackendState is what a probe result tells the gateway about a backend:
// up or down, whether the probe only timed out, and, from FPM's status
// page, the load penalty, the pool size and when FPM started.
func BackendState(r health.Result) gateway.BackendState {
	st := gateway.BackendState{Up: r.Up, TimedOut: r.TimedOut()}
	if r.Status != nil {
		st.Penalty = r.Status.Penalty()
		st.MaxConcurrent = r.Status.MaxConcurrent()
		st.Started = r.Status.StartTime
	}
	return st
}

// ProbeReporter returns a reporter that applies each probe result to the
// backend of pool on gw.
func ProbeReporter(gw *gateway.Gateway, pool string) health.Reporter {
	return health.ReporterFunc(func(r health.Result) {
		gw.SetBackendState(pool, r.Addr, BackendState(r))
	})
}
