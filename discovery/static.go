package discovery

// static.go holds Static: the member source of a pool that lists its
// backends' addresses, so that a gateway runs without Consul.

import (
	"context"
	"slices"
	"sync/atomic"
)

// Static is a member source whose set never changes. It lets a caller
// treat every pool alike: each has a source whose Run delivers its members.
type Static struct {
	members []Member
	notify  func([]Member)
	running atomic.Bool
}

// NewStatic returns the source of the members at addrs ("host:port",
// empty and duplicate entries left out), which Run hands to notify.
func NewStatic(addrs []string, notify func([]Member)) *Static {
	s := &Static{notify: notify}
	for _, a := range addrs {
		if a != "" && !slices.ContainsFunc(s.members, func(m Member) bool { return m.Addr == a }) {
			s.members = append(s.members, Member{Addr: a})
		}
	}
	return s
}

// Run calls notify once with the members, then waits for ctx to be done and
// returns nil. It returns ErrRunning at once if it is already running.
func (s *Static) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer s.running.Store(false)
	s.notify(slices.Clone(s.members))
	<-ctx.Done()
	return nil
}
