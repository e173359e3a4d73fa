package health

import (
	"bytes"
	"context"
	"encoding/base64"
	"log/slog"
	stdmaps "maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fcgigate/fcgigate/internal/syncbuf"
	"github.com/hashicorp/memberlist"
	"go.uber.org/goleak"
)

// logBuffer is a log sink safe for concurrent writes.
type logBuffer = syncbuf.Buffer

// testMember is one Gossip under test, with what its hooks saw.
type testMember struct {
	g    *Gossip
	logs *logBuffer

	mu       sync.Mutex // protects failures
	failures []string
	load     map[string]int
}

func (m *testMember) failed() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.failures)
}

// startMember starts a Gossip named name, on the mock network mn if not
// nil (else on 127.0.0.1 with a free port), and runs it until the test
// ends. cfg's other fields are kept.
func startMember(t *testing.T, mn *memberlist.MockNetwork, name string, cfg GossipConfig) *testMember {
	t.Helper()
	m := &testMember{logs: &logBuffer{}, load: map[string]int{}}
	cfg.Name = name
	if mn != nil {
		cfg.Transport = mn.NewTransport(name)
	}
	if cfg.Bind == "" {
		cfg.Bind = "127.0.0.1:0"
	}
	cfg.OnPeerFailure = func(b string) {
		m.mu.Lock()
		m.failures = append(m.failures, b)
		m.mu.Unlock()
	}
	cfg.Load = func() map[string]int {
		m.mu.Lock()
		defer m.mu.Unlock()
		return stdmaps.Clone(m.load)
	}
	cfg.RejoinInterval = 200 * time.Millisecond
	log := slog.New(slog.NewTextHandler(m.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	g, err := NewGossip(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	m.g = g
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { // ends when the test does
		defer close(done)
		g.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		g.Close() // a second time: a no-op
		if t.Failed() {
			t.Logf("%s log:\n%s", name, m.logs)
		}
	})
	return m
}

func poll(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestGossipSpreadsVerdictsAndLoad(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // registered first: runs after the members stop
	// On loopback rather than memberlist.MockNetwork: a mock transport
	// blocks its senders forever once a peer has shut down.
	var mn *memberlist.MockNetwork
	a := startMember(t, mn, "gw1", GossipConfig{})
	b := startMember(t, mn, "gw2", GossipConfig{Seeds: []string{a.g.Addr()}})
	c := startMember(t, mn, "gw3", GossipConfig{Seeds: []string{a.g.Addr()}})
	for _, m := range []*testMember{a, b, c} {
		poll(t, m.g.Name()+" sees three members", 5*time.Second, func() bool { return len(m.g.Members()) == 3 })
	}

	a.g.Publish("127.0.0.3:9000", StateDown, "dial: connection refused")
	for _, m := range []*testMember{b, c} {
		poll(t, m.g.Name()+" gets gw1's verdict", 2*time.Second, func() bool {
			v, ok := m.g.Cluster().Verdict("127.0.0.3:9000", "gw1")
			return ok && v.State == StateDown && v.Reason == "dial: connection refused"
		})
		poll(t, m.g.Name()+" asked to probe", time.Second, func() bool { return slices.Contains(m.failed(), "127.0.0.3:9000") })
		// One of three is no quorum: up here.
		if d := m.g.Cluster().Decide("127.0.0.3:9000"); !d.Up || d.DownVotes != 1 || d.Live != 3 || d.Quorum != 2 {
			t.Errorf("%s: Decide = %+v, want up, 1 vote of 3, quorum 2", m.g.Name(), d)
		}
	}
	b.g.Publish("127.0.0.3:9000", StateDown, "dial: connection refused")
	poll(t, "gw3 ejects on a quorum", 2*time.Second, func() bool {
		d := c.g.Cluster().Decide("127.0.0.3:9000")
		return !d.Up && d.Reason == "quorum"
	})
	// Publishing the same verdict again sends nothing new.
	v1, _ := a.g.Cluster().Verdict("127.0.0.3:9000", "gw1")
	a.g.Publish("127.0.0.3:9000", StateDown, "dial: connection refused")
	if v2, _ := a.g.Cluster().Verdict("127.0.0.3:9000", "gw1"); v2.Version != v1.Version {
		t.Errorf("republished an unchanged verdict: version %d → %d", v1.Version, v2.Version)
	}

	a.mu.Lock()
	a.load["127.0.0.2:9000"] = 5
	a.mu.Unlock()
	b.mu.Lock()
	b.load["127.0.0.2:9000"] = 2
	b.mu.Unlock()
	poll(t, "gw3 sees the peers' load", 2*time.Second, func() bool { return c.g.Cluster().PeerInFlight("127.0.0.2:9000") == 7 })
	a.g.SetConfigVersion("v42")
	poll(t, "gw2 sees gw1's config version", 2*time.Second, func() bool {
		for _, mv := range b.g.Cluster().View().Members {
			if mv.Name == "gw1" && mv.Config == "v42" {
				return true
			}
		}
		return false
	})

	// A gateway that joins now learns every verdict at once (push-pull).
	d := startMember(t, mn, "gw4", GossipConfig{Seeds: []string{c.g.Addr()}})
	poll(t, "gw4 has both verdicts", 2*time.Second, func() bool {
		_, ok1 := d.g.Cluster().Verdict("127.0.0.3:9000", "gw1")
		_, ok2 := d.g.Cluster().Verdict("127.0.0.3:9000", "gw2")
		return ok1 && ok2
	})

	// A gateway that leaves stops counting.
	b.g.Close()
	poll(t, "gw3 sees gw2 gone", 5*time.Second, func() bool { return len(c.g.Members()) == 3 })
	if d := c.g.Cluster().Decide("127.0.0.3:9000"); !d.Up || d.DownVotes != 1 {
		t.Errorf("after gw2 left: Decide = %+v, want up with gw1's vote only", d)
	}
	if !strings.Contains(c.logs.String(), `msg="gateway gone: dead or left" component=health.gossip name=gw2`) {
		t.Errorf("gw3 did not log gw2 leaving")
	}
}

func TestGossipDropsGarbage(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // registered first: runs after the members stop
	mn := &memberlist.MockNetwork{}
	a := startMember(t, mn, "gw1", GossipConfig{})
	d := (*delegate)(a.g)
	for _, b := range [][]byte{nil, {0}, []byte("V{"), []byte(`V{"b":"x","s":"down","o":"gw9","v":1}`), []byte("S{}")} {
		d.NotifyMsg(b)
	}
	d.MergeRemoteState([]byte("L{}"), false)
	d.MergeRemoteState([]byte{0xff, 0xfe}, true)
	if n := strings.Count(a.logs.String(), "dropped a gossip message"); n != 1 {
		t.Errorf("logged %d drops, want 1 (at most one a second)", n)
	}
	if vs := a.g.Cluster().Verdicts(); len(vs) != 0 {
		t.Errorf("garbage recorded: %+v", vs)
	}
}

func TestGossipRefutesOwnStaleVerdict(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // registered first: runs after the members stop
	mn := &memberlist.MockNetwork{}
	a := startMember(t, mn, "gw1", GossipConfig{})
	a.g.Publish("127.0.0.2:9000", StateUp, "")
	own, _ := a.g.Cluster().Verdict("127.0.0.2:9000", "gw1")
	// A peer brings back gw1's verdict from before a restart, newer by
	// version (a clock that went back): gw1 refutes it.
	stale := Verdict{Backend: "127.0.0.2:9000", State: StateDown, Observer: "gw1", Version: own.Version + 10}
	(*delegate)(a.g).NotifyMsg(encodeVerdict(stale))
	v, _ := a.g.Cluster().Verdict("127.0.0.2:9000", "gw1")
	if v.State != StateUp || v.Version <= stale.Version {
		t.Errorf("own verdict %+v, want up with a version above %d", v, stale.Version)
	}
}

func writeKeys(t *testing.T, path string, keys ...[]byte) {
	t.Helper()
	var b strings.Builder
	b.WriteString("# gossip keys, primary first\n")
	for _, k := range keys {
		b.WriteString(base64.StdEncoding.EncodeToString(k) + "\n")
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestGossipEncryption(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) }) // registered first: runs after the members stop
	keyA := bytes.Repeat([]byte{'a'}, 32)
	keyB := bytes.Repeat([]byte{'b'}, 16)
	dir := t.TempDir()
	fileA := filepath.Join(dir, "a.keys")
	writeKeys(t, fileA, keyA)
	fileA2 := filepath.Join(dir, "a2.keys")
	writeKeys(t, fileA2, keyA)
	fileB := filepath.Join(dir, "b.keys")
	writeKeys(t, fileB, keyB)

	a := startMember(t, nil, "gw1", GossipConfig{KeyringFile: fileA})
	b := startMember(t, nil, "gw2", GossipConfig{KeyringFile: fileA2, Seeds: []string{a.g.Addr()}})
	poll(t, "gw2 joins with the same key", 5*time.Second, func() bool { return len(a.g.Members()) == 2 })

	// A gateway with another key cannot join, and says why.
	c := startMember(t, nil, "gw3", GossipConfig{KeyringFile: fileB, Seeds: []string{a.g.Addr()}})
	poll(t, "gw3 logs its failure to join", 5*time.Second, func() bool {
		return strings.Contains(c.logs.String(), "cannot join some seeds") && strings.Contains(c.logs.String(), "check that keyring_file holds the cluster's key")
	})
	if n := len(a.g.Members()); n != 2 {
		t.Errorf("gw1 has %d members, want 2", n)
	}
	if !strings.Contains(a.logs.String(), "No installed keys could decrypt") {
		t.Logf("gw1's log does not name the decryption failure:\n%s", a.logs)
	}

	// Rotation to key B without a restart: install, switch, remove.
	writeKeys(t, fileA, keyA, keyB)
	writeKeys(t, fileA2, keyA, keyB)
	for _, m := range []*testMember{a, b} {
		if err := m.g.ReloadKeys(); err != nil {
			t.Fatal(err)
		}
	}
	writeKeys(t, fileA, keyB, keyA)
	writeKeys(t, fileA2, keyB, keyA)
	for _, m := range []*testMember{a, b} {
		if err := m.g.ReloadKeys(); err != nil {
			t.Fatal(err)
		}
	}
	writeKeys(t, fileA, keyB)
	writeKeys(t, fileA2, keyB)
	for _, m := range []*testMember{a, b} {
		if err := m.g.ReloadKeys(); err != nil {
			t.Fatal(err)
		}
		if keys := m.g.keyring.GetKeys(); len(keys) != 1 || !bytes.Equal(keys[0], keyB) {
			t.Errorf("%s keys after rotation: %d", m.g.Name(), len(keys))
		}
	}
	// Now gw3, with key B alone, gets in (its rejoin loop retries).
	poll(t, "gw3 joins after the rotation", 10*time.Second, func() bool { return len(a.g.Members()) == 3 })
	a.g.Publish("127.0.0.2:9000", StateDown, "x")
	poll(t, "gw3 gets verdicts with the new key", 3*time.Second, func() bool {
		_, ok := c.g.Cluster().Verdict("127.0.0.2:9000", "gw1")
		return ok
	})
}

func TestReadKeyFile(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct {
		name, text, err string
	}{
		{"ok", "# c\n\n" + base64.StdEncoding.EncodeToString(make([]byte, 16)) + "\n", ""},
		{"empty", "# nothing\n", "no key"},
		{"not base64", "!!!\n", ":1: not base64"},
		{"bad size", "\n" + base64.StdEncoding.EncodeToString(make([]byte, 10)) + "\n", ":2: key size must be 16, 24 or 32 bytes"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, tt.name)
			os.WriteFile(p, []byte(tt.text), 0o600)
			_, err := ReadKeyFile(p)
			if tt.err == "" && err != nil || tt.err != "" && (err == nil || !strings.Contains(err.Error(), tt.err)) {
				t.Errorf("ReadKeyFile: %v, want %q", err, tt.err)
			}
		})
	}
}
