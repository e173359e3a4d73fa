package health

// cluster.go holds Cluster: what the gateways of a cluster have told each
// other (each gateway's verdict on each backend, its load digest and its
// config version), the set of live gateways, and the merge rule that turns
// them into this gateway's decision on each backend. It does no I/O: Gossip
// feeds it.

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// VerdictState is one gateway's verdict on one backend.
type VerdictState string

// The verdicts. Only StateDown counts towards a quorum; StateSuspect (the
// last probe failed, or the backend only timed out, which a saturated
// backend does too) makes the peers probe the backend at once, and takes
// it out on a peer only once that peer's own probe fails as well.
const (
	StateUp      VerdictState = "up"
	StateSuspect VerdictState = "suspect"
	StateDown    VerdictState = "down"
)

func (s VerdictState) valid() bool { return s == StateUp || s == StateSuspect || s == StateDown }

// Verdict is what one gateway (Observer) last found of one backend.
// Version grows with each verdict of one observer on one backend, across
// restarts (it starts from the clock), so the newest verdict wins wherever
// the verdicts meet.
type Verdict struct {
	Backend  string       `json:"backend"`
	State    VerdictState `json:"state"`
	Reason   string       `json:"reason,omitempty"`
	Observer string       `json:"observer"`
	Version  uint64       `json:"version"`
}

// LoadDigest is one gateway's requests in flight on each backend, by
// backend address, and the config version it runs.
type LoadDigest struct {
	Node     string         `json:"node"`
	Seq      uint64         `json:"seq"`
	Config   string         `json:"config,omitempty"`
	InFlight map[string]int `json:"in_flight"`
}

// Decision is this gateway's routing decision on one backend, and why.
type Decision struct {
	Up bool
	// Reason is empty when Up; else "own probes", "confirmed" (this
	// gateway's own probe failed after a peer reported the backend down)
	// or "quorum" (DownVotes live gateways reported it down).
	Reason    string
	DownVotes int // live gateways, this one included, whose verdict is down
	Live      int // live gateways, this one included
	Quorum    int // down votes that eject the backend everywhere
}

// Cluster is the merged view of a gateway cluster, as this gateway (Self)
// sees it. Its methods are safe for concurrent use.
type Cluster struct {
	self    string
	quorum  int // 0: majority of the live gateways
	loadTTL time.Duration
	now     func() time.Time

	mu        sync.Mutex                     // protects the maps below
	members   map[string]*member             // by name, this gateway included
	verdicts  map[string]map[string]Verdict  // backend → observer → verdict
	loads     map[string]*receivedLoadDigest // by node
	ownConfig string                         // this gateway's config version
}

type member struct {
	name, addr string
	live       bool
	since      time.Time // when live last changed
}

type receivedLoadDigest struct {
	d  LoadDigest
	at time.Time // when it arrived, on our clock: the sender's may differ
}

// NewCluster returns the view of gateway self, alone and live. quorum is
// the number of down verdicts from live gateways that eject a backend
// everywhere, 0 for a majority of the live ones; loadTTL is how long a
// peer's load digest counts (0: 2s); a nil now means time.Now.
func NewCluster(self string, quorum int, loadTTL time.Duration, now func() time.Time) *Cluster {
	if loadTTL <= 0 {
		loadTTL = DefaultLoadTTL
	}
	if now == nil {
		now = time.Now
	}
	c := &Cluster{
		self: self, quorum: quorum, loadTTL: loadTTL, now: now,
		members:  map[string]*member{},
		verdicts: map[string]map[string]Verdict{},
		loads:    map[string]*receivedLoadDigest{},
	}
	c.members[self] = &member{name: self, live: true, since: now()}
	return c
}

// Self returns this gateway's name.
func (c *Cluster) Self() string { return c.self }

// SetMember records that gateway name, at addr, is live or not (dead or
// left). It reports whether that changed.
func (c *Cluster) SetMember(name, addr string, live bool) bool {
	if name == c.self {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.members[name]
	if m == nil {
		m = &member{name: name}
		c.members[name] = m
	} else if m.live == live && m.addr == addr {
		return false
	}
	changed := m.live != live
	m.addr, m.live = addr, live
	if changed {
		m.since = c.now()
	}
	return changed
}

// Observe records v if it is newer than what is known of its observer on
// its backend. It reports whether it was recorded, and whether it is a new
// failure report: a verdict other than up where the observer said up, or
// nothing, before.
func (c *Cluster) Observe(v Verdict) (recorded, failure bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	byObs := c.verdicts[v.Backend]
	if byObs == nil {
		byObs = map[string]Verdict{}
		c.verdicts[v.Backend] = byObs
	}
	old, had := byObs[v.Observer]
	if had && old.Version >= v.Version {
		return false, false
	}
	byObs[v.Observer] = v
	return true, v.State != StateUp && (!had || old.State == StateUp)
}

// Verdict returns observer's verdict on backend, if any.
func (c *Cluster) Verdict(backend, observer string) (Verdict, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.verdicts[backend][observer]
	return v, ok
}

// Verdicts returns every verdict known, sorted by backend and observer.
func (c *Cluster) Verdicts() []Verdict {
	c.mu.Lock()
	var out []Verdict
	for _, byObs := range c.verdicts {
		for _, v := range byObs {
			out = append(out, v)
		}
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b Verdict) int {
		if n := strings.Compare(a.Backend, b.Backend); n != 0 {
			return n
		}
		return strings.Compare(a.Observer, b.Observer)
	})
	return out
}

// SetLoad records a peer's load digest, unless an older one (by Seq) than
// the one held; a digest with a lower Seq from a node that restarted is
// taken after the held one has aged out.
func (c *Cluster) SetLoad(d LoadDigest) {
	if d.Node == c.self {
		return
	}
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if old := c.loads[d.Node]; old != nil && old.d.Seq >= d.Seq && now.Sub(old.at) <= c.loadTTL {
		return
	}
	c.loads[d.Node] = &receivedLoadDigest{d: d, at: now}
}

// PeerInFlight returns the requests in flight on backend that the live
// peers last reported, counting only digests younger than the load TTL.
func (c *Cluster) PeerInFlight(backend string) int {
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for node, l := range c.loads {
		if m := c.members[node]; m == nil || !m.live || now.Sub(l.at) > c.loadTTL {
			continue
		}
		n += l.d.InFlight[backend]
	}
	return n
}

// Decide returns this gateway's decision on backend:
//
//   - its own verdict down: down ("own probes");
//   - its own verdict suspect and some live peer's verdict down: down
//     ("confirmed": the peer's report made this gateway probe, and the
//     probe failed);
//   - down verdicts from a quorum of the live gateways, this one counted:
//     down ("quorum"), whatever this gateway found;
//   - otherwise up. A peer alone, or a minority, reporting the backend
//     down changes nothing here unless this gateway's own probe fails too:
//     a gateway cut off from a backend does not eject it elsewhere.
func (c *Cluster) Decide(backend string) Decision {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := Decision{Up: true}
	for _, m := range c.members {
		if m.live {
			d.Live++
		}
	}
	d.Quorum = c.quorum
	if d.Quorum <= 0 {
		d.Quorum = d.Live/2 + 1
	}
	own := c.verdicts[backend][c.self]
	peerDown := false
	for obs, v := range c.verdicts[backend] {
		if v.State != StateDown {
			continue
		}
		if m := c.members[obs]; m == nil || !m.live {
			continue
		}
		d.DownVotes++
		if obs != c.self {
			peerDown = true
		}
	}
	switch {
	case own.State == StateDown:
		d.Up, d.Reason = false, "own probes"
	case own.State == StateSuspect && peerDown:
		d.Up, d.Reason = false, "confirmed"
	case d.DownVotes >= d.Quorum:
		d.Up, d.Reason = false, "quorum"
	}
	return d
}

// ClusterView is the whole cluster as this gateway sees it, for the admin
// API: one call, plain data, JSON-friendly.
type ClusterView struct {
	Self     string        `json:"self"`
	Quorum   string        `json:"quorum"` // "majority" or a number
	Members  []MemberView  `json:"members"`
	Backends []BackendView `json:"backends"`
}

// MemberView is one gateway of the cluster.
type MemberView struct {
	Name   string    `json:"name"`
	Addr   string    `json:"addr,omitempty"`
	State  string    `json:"state"` // "alive", or "gone" (dead or left)
	Since  time.Time `json:"since"`
	Config string    `json:"config,omitempty"` // the config version it last reported
	// Load is its last load digest (requests in flight by backend), nil
	// when none arrived or it is older than the load TTL; LoadAge is its
	// age.
	Load    map[string]int `json:"load,omitempty"`
	LoadAge time.Duration  `json:"load_age,omitempty"`
}

// BackendView is one backend: every gateway's verdict on it and this
// gateway's decision.
type BackendView struct {
	Addr         string    `json:"addr"`
	Up           bool      `json:"up"`
	Reason       string    `json:"reason,omitempty"`
	DownVotes    int       `json:"down_votes"`
	Verdicts     []Verdict `json:"verdicts"`
	PeerInFlight int       `json:"peer_in_flight"`
}

// View returns the cluster as this gateway sees it, sorted by name and
// address.
func (c *Cluster) View() ClusterView {
	now := c.now()
	v := ClusterView{Self: c.self, Quorum: "majority"}
	if c.quorum > 0 {
		v.Quorum = strconv.Itoa(c.quorum)
	}
	c.mu.Lock()
	for _, m := range c.members {
		mv := MemberView{Name: m.name, Addr: m.addr, State: "gone", Since: m.since}
		if m.live {
			mv.State = "alive"
		}
		if m.name == c.self {
			mv.Config = c.ownConfig
		}
		if l := c.loads[m.name]; l != nil {
			mv.Config = l.d.Config
			if age := now.Sub(l.at); age <= c.loadTTL {
				mv.Load, mv.LoadAge = maps.Clone(l.d.InFlight), age
			}
		}
		v.Members = append(v.Members, mv)
	}
	backends := make([]string, 0, len(c.verdicts))
	for b := range c.verdicts {
		backends = append(backends, b)
	}
	c.mu.Unlock()
	slices.SortFunc(v.Members, func(a, b MemberView) int { return strings.Compare(a.Name, b.Name) })
	slices.Sort(backends)
	all := c.Verdicts()
	for _, b := range backends {
		d := c.Decide(b)
		bv := BackendView{Addr: b, Up: d.Up, Reason: d.Reason, DownVotes: d.DownVotes, PeerInFlight: c.PeerInFlight(b)}
		for _, vd := range all {
			if vd.Backend == b {
				bv.Verdicts = append(bv.Verdicts, vd)
			}
		}
		v.Backends = append(v.Backends, bv)
	}
	return v
}

// setOwnConfig records the config version of this gateway, shown in View.
func (c *Cluster) setOwnConfig(version string) {
	c.mu.Lock()
	c.ownConfig = version
	c.mu.Unlock()
}
