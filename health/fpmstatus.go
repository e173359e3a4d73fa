package health

// fpmstatus.go parses FPM's status page as printed for ?json, and derives
// from it the load signals the balancer uses.

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// ErrStatusFormat reports a status page that is not the JSON object FPM
// prints for pm.status_path?json: not JSON, truncated, a field of the wrong
// type, a required field missing or a negative count.
var ErrStatusFormat = errors.New("health: malformed FPM status")

// FPMStatus is one reading of an FPM pool's status page. The JSON tags are
// FPM's own names for the fields (ParseFPMStatus reads FPM's format; encoding
// an FPMStatus writes StartTime in RFC 3339). The probe that read it is itself one
// of the active processes, and not one of the idle ones.
type FPMStatus struct {
	Pool               string    `json:"pool"`
	ProcessManager     string    `json:"process manager"` // "static", "dynamic" or "ondemand"
	StartTime          time.Time `json:"start time"`      // a Unix time in FPM's JSON
	AcceptedConn       int64     `json:"accepted conn"`
	ListenQueue        int       `json:"listen queue"` // connections waiting for a worker now
	MaxListenQueue     int       `json:"max listen queue"`
	ListenQueueLen     int       `json:"listen queue len"` // the socket's backlog size
	IdleProcesses      int       `json:"idle processes"`
	ActiveProcesses    int       `json:"active processes"`
	TotalProcesses     int       `json:"total processes"`
	MaxActiveProcesses int       `json:"max active processes"`
	MaxChildrenReached int       `json:"max children reached"`
	SlowRequests       int64     `json:"slow requests"`
}

// rawStatus mirrors the JSON object; pointers tell a missing field from a
// zero one.
type rawStatus struct {
	Pool               *string `json:"pool"`
	ProcessManager     *string `json:"process manager"`
	StartTime          *int64  `json:"start time"`
	AcceptedConn       *int64  `json:"accepted conn"`
	ListenQueue        *int    `json:"listen queue"`
	MaxListenQueue     *int    `json:"max listen queue"`
	ListenQueueLen     *int    `json:"listen queue len"`
	IdleProcesses      *int    `json:"idle processes"`
	ActiveProcesses    *int    `json:"active processes"`
	TotalProcesses     *int    `json:"total processes"`
	MaxActiveProcesses *int    `json:"max active processes"`
	MaxChildrenReached *int    `json:"max children reached"`
	SlowRequests       *int64  `json:"slow requests"`
}

// ParseFPMStatus parses the body of pm.status_path?json. The process counts
// and the listen queue are required, as the load signals rest on them; the
// other fields are zero when missing (FPM has printed all of them since PHP
// 5.4). Unknown fields, such as "start since", are ignored. Any error wraps
// ErrStatusFormat; no input makes it panic.
func ParseFPMStatus(b []byte) (FPMStatus, error) {
	var r rawStatus
	if err := json.Unmarshal(b, &r); err != nil {
		return FPMStatus{}, fmt.Errorf("%w: %v", ErrStatusFormat, err)
	}
	var missing []string
	need := func(name string, p *int) int {
		if p == nil {
			missing = append(missing, fmt.Sprintf("%q", name))
			return 0
		}
		return *p
	}
	s := FPMStatus{
		Pool:               deref(r.Pool),
		ProcessManager:     deref(r.ProcessManager),
		AcceptedConn:       deref(r.AcceptedConn),
		ListenQueue:        need("listen queue", r.ListenQueue),
		MaxListenQueue:     deref(r.MaxListenQueue),
		ListenQueueLen:     deref(r.ListenQueueLen),
		IdleProcesses:      need("idle processes", r.IdleProcesses),
		ActiveProcesses:    need("active processes", r.ActiveProcesses),
		TotalProcesses:     need("total processes", r.TotalProcesses),
		MaxActiveProcesses: deref(r.MaxActiveProcesses),
		MaxChildrenReached: deref(r.MaxChildrenReached),
		SlowRequests:       deref(r.SlowRequests),
	}
	if len(missing) > 0 {
		return FPMStatus{}, fmt.Errorf("%w: missing %v", ErrStatusFormat, missing)
	}
	if r.StartTime != nil {
		s.StartTime = time.Unix(*r.StartTime, 0)
	}
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"accepted conn", s.AcceptedConn},
		{"listen queue", int64(s.ListenQueue)},
		{"max listen queue", int64(s.MaxListenQueue)},
		{"listen queue len", int64(s.ListenQueueLen)},
		{"idle processes", int64(s.IdleProcesses)},
		{"active processes", int64(s.ActiveProcesses)},
		{"total processes", int64(s.TotalProcesses)},
		{"max active processes", int64(s.MaxActiveProcesses)},
		{"max children reached", int64(s.MaxChildrenReached)},
		{"slow requests", s.SlowRequests},
	} {
		if f.v < 0 {
			return FPMStatus{}, fmt.Errorf("%w: %q is %d", ErrStatusFormat, f.name, f.v)
		}
	}
	return s, nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// Busy returns the workers busy with requests other than the probe that read
// s.
func (s FPMStatus) Busy() int { return max(s.ActiveProcesses-1, 0) }

// Penalty returns the backend's load as extra requests in flight, for a
// least-in-flight balancer to add to its own count of the backend so that a
// loaded backend gets less traffic: one for each connection waiting in the
// listen queue, which FPM reads from the kernel. The idle and active counts
// are left out: under load FPM 8.2's scoreboard over-counts active workers
// (a pool of 4 reported 54 active), so "no idle worker" shows up at random
// and would steer traffic at random.
func (s FPMStatus) Penalty() int { return max(s.ListenQueue, 0) }

// MaxConcurrent returns how many requests the backend can run at once,
// for the default concurrency limit of its balancer backend: the total
// processes with pm = static. It returns 0 (unknown: leave the limit unset)
// with pm = dynamic or ondemand, where the total is only how many workers
// run now and pm.max_children, which FPM does not report, may be higher.
//
// It also returns 0 unless the pool was at rest when it answered (no other
// worker busy, nothing queued): under load FPM 8.2's scoreboard counts
// workers more than once (we saw "total processes: 55" from a pool of 4),
// while at rest its count is exact. Readings under load are no guide.
func (s FPMStatus) MaxConcurrent() int {
	if s.ProcessManager == "static" && s.ActiveProcesses <= 1 && s.ListenQueue == 0 && s.TotalProcesses <= s.IdleProcesses+1 {
		return s.TotalProcesses
	}
	return 0
}
