package health

import (
	"encoding/json"
	"testing"
	"time"
)

// fakeClock is a clock that tests move by hand.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time      { return c.t }
func (c *fakeClock) add(d time.Duration) { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock           { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }
func verdict(obs string, s VerdictState, v uint64) Verdict {
	return Verdict{Backend: "b:1", State: s, Observer: obs, Version: v}
}

func TestDecide(t *testing.T) {
	type vote struct {
		obs   string
		state VerdictState
	}
	tests := []struct {
		name    string
		members []string // live peers besides gw1
		gone    []string // peers that left
		quorum  int
		votes   []vote
		up      bool
		reason  string
	}{
		{name: "no verdicts", members: []string{"gw2", "gw3"}, up: true},
		{name: "own down", members: []string{"gw2", "gw3"}, votes: []vote{{"gw1", StateDown}}, reason: "own probes"},
		{name: "one peer down, own up: a partition of that peer", members: []string{"gw2", "gw3"},
			votes: []vote{{"gw1", StateUp}, {"gw2", StateDown}}, up: true},
		{name: "one peer down, own probe failed: confirmed", members: []string{"gw2", "gw3"},
			votes: []vote{{"gw1", StateSuspect}, {"gw2", StateDown}}, reason: "confirmed"},
		{name: "peer suspect only", members: []string{"gw2", "gw3"},
			votes: []vote{{"gw1", StateSuspect}, {"gw2", StateSuspect}}, up: true},
		{name: "majority down, own up", members: []string{"gw2", "gw3"},
			votes: []vote{{"gw1", StateUp}, {"gw2", StateDown}, {"gw3", StateDown}}, reason: "quorum"},
		{name: "majority of 5 needs 3", members: []string{"gw2", "gw3", "gw4", "gw5"},
			votes: []vote{{"gw2", StateDown}, {"gw3", StateDown}}, up: true},
		{name: "down votes of gone gateways do not count", members: []string{"gw2"}, gone: []string{"gw3", "gw4"},
			votes: []vote{{"gw1", StateUp}, {"gw3", StateDown}, {"gw4", StateDown}}, up: true},
		{name: "fixed quorum 1", members: []string{"gw2", "gw3"}, quorum: 1,
			votes: []vote{{"gw1", StateUp}, {"gw2", StateDown}}, reason: "quorum"},
		{name: "alone: own evidence", votes: []vote{{"gw1", StateDown}}, reason: "own probes"},
		{name: "unknown observer ignored", members: []string{"gw2", "gw3"},
			votes: []vote{{"gw9", StateDown}, {"gw8", StateDown}}, up: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewCluster("gw1", tt.quorum, 0, nil)
			for _, m := range tt.members {
				c.SetMember(m, m+":7946", true)
			}
			for _, m := range tt.gone {
				c.SetMember(m, m+":7946", true)
				c.SetMember(m, m+":7946", false)
			}
			for i, v := range tt.votes {
				c.Observe(verdict(v.obs, v.state, uint64(i+1)))
			}
			d := c.Decide("b:1")
			if d.Up != tt.up || d.Reason != tt.reason {
				t.Errorf("Decide = %+v, want up %v reason %q", d, tt.up, tt.reason)
			}
		})
	}
}

func TestObserveVersions(t *testing.T) {
	c := NewCluster("gw1", 0, 0, nil)
	if rec, fail := c.Observe(verdict("gw2", StateUp, 5)); !rec || fail {
		t.Errorf("first up: %v %v", rec, fail)
	}
	if rec, fail := c.Observe(verdict("gw2", StateDown, 6)); !rec || !fail {
		t.Errorf("up→down: %v %v, want a new failure", rec, fail)
	}
	if rec, fail := c.Observe(verdict("gw2", StateSuspect, 7)); !rec || fail {
		t.Errorf("down→suspect: %v %v, want no new failure", rec, fail)
	}
	if rec, _ := c.Observe(verdict("gw2", StateUp, 6)); rec {
		t.Error("an older version was recorded")
	}
	if rec, _ := c.Observe(verdict("gw2", StateUp, 7)); rec {
		t.Error("the same version was recorded twice")
	}
	if v, _ := c.Verdict("b:1", "gw2"); v.State != StateSuspect {
		t.Errorf("verdict %+v, want the newest (suspect)", v)
	}
	if rec, fail := c.Observe(verdict("gw3", StateDown, 1)); !rec || !fail {
		t.Errorf("first verdict down: %v %v, want a new failure", rec, fail)
	}
}

func TestPeerInFlightAges(t *testing.T) {
	clk := newFakeClock()
	c := NewCluster("gw1", 0, 2*time.Second, clk.now)
	c.SetMember("gw2", "a:1", true)
	c.SetMember("gw3", "a:2", true)
	c.SetLoad(LoadDigest{Node: "gw2", Seq: 1, InFlight: map[string]int{"b:1": 3}})
	c.SetLoad(LoadDigest{Node: "gw3", Seq: 1, InFlight: map[string]int{"b:1": 2, "b:2": 1}})
	c.SetLoad(LoadDigest{Node: "gw1", Seq: 1, InFlight: map[string]int{"b:1": 100}}) // own: ignored
	if n := c.PeerInFlight("b:1"); n != 5 {
		t.Errorf("PeerInFlight = %d, want 5", n)
	}
	c.SetLoad(LoadDigest{Node: "gw2", Seq: 0, InFlight: map[string]int{"b:1": 9}}) // older
	if n := c.PeerInFlight("b:1"); n != 5 {
		t.Errorf("after an older digest: %d, want 5", n)
	}
	clk.add(1500 * time.Millisecond)
	c.SetLoad(LoadDigest{Node: "gw3", Seq: 2, InFlight: map[string]int{"b:1": 1}})
	clk.add(1 * time.Second) // gw2's digest is 2.5s old, gw3's 1s
	if n := c.PeerInFlight("b:1"); n != 1 {
		t.Errorf("after gw2's digest aged out: %d, want 1", n)
	}
	c.SetMember("gw3", "a:2", false)
	if n := c.PeerInFlight("b:1"); n != 0 {
		t.Errorf("after gw3 left: %d, want 0", n)
	}
	// A restarted gw2 starts its Seq again: taken once the old one aged out.
	c.SetLoad(LoadDigest{Node: "gw2", Seq: 1, InFlight: map[string]int{"b:1": 4}})
	if n := c.PeerInFlight("b:1"); n != 4 {
		t.Errorf("restarted gw2: %d, want 4", n)
	}
}

func TestViewJSON(t *testing.T) {
	clk := newFakeClock()
	c := NewCluster("gw1", 0, 0, clk.now)
	c.SetMember("gw2", "127.0.1.2:7946", true)
	c.setOwnConfig("abc")
	c.Observe(Verdict{Backend: "127.0.0.3:9000", State: StateDown, Reason: "refused", Observer: "gw2", Version: 2})
	c.Observe(Verdict{Backend: "127.0.0.3:9000", State: StateDown, Reason: "refused", Observer: "gw1", Version: 3})
	c.SetLoad(LoadDigest{Node: "gw2", Seq: 1, Config: "abc", InFlight: map[string]int{"127.0.0.2:9000": 2}})
	v := c.View()
	if len(v.Members) != 2 || v.Members[0].Name != "gw1" || v.Members[0].Config != "abc" || v.Members[1].Load["127.0.0.2:9000"] != 2 {
		t.Errorf("members: %+v", v.Members)
	}
	if len(v.Backends) != 1 || v.Backends[0].Up || v.Backends[0].DownVotes != 2 || len(v.Backends[0].Verdicts) != 2 {
		t.Errorf("backends: %+v", v.Backends)
	}
	if _, err := json.Marshal(v); err != nil {
		t.Error(err)
	}
}
