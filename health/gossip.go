package health

// gossip.go holds Gossip: this gateway's member of the gateway cluster
// (hashicorp/memberlist), which spreads this gateway's verdicts and load
// and feeds what the others spread into a Cluster. Its Config comes first,
// with the memberlist timings and why.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	stdlog "log"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// GossipConfig configures a Gossip. A zero field takes its default; the
// config is frozen once NewGossip has been called with it.
type GossipConfig struct {
	// Name names this gateway in the cluster; unique. Default: the
	// advertise address, unique by construction.
	Name string
	// Bind is the address, "ip:port", the member listens on, TCP and UDP.
	// Default "0.0.0.0:7946", memberlist's port. A port of 0 takes a free
	// one (tests).
	Bind string
	// Advertise is the address the others reach it at. Default: Bind, or
	// the host's address when Bind is 0.0.0.0.
	Advertise string
	// Seeds are gateways to join, "host:port"; this gateway's own address
	// may be among them. Empty: start alone and wait to be joined. See
	// Gossip.SetSeeds to change them later (Consul discovery).
	Seeds []string
	// KeyringFile, if set, turns on encryption with the keys in it (see
	// ReadKeyFile). Gossip re-reads it when it changes.
	KeyringFile string
	// Quorum is how many live gateways must report a backend down for it
	// to be ejected on every gateway. 0: a majority of the live ones,
	// this one included.
	Quorum int

	// LoadInterval is how often this gateway sends its load digest, at
	// most. Default 200ms: requests to PHP take tens to hundreds of
	// milliseconds, so fresher load would change little, and a digest
	// to each peer five times a second is cheap (one UDP packet each).
	LoadInterval time.Duration
	// LoadTTL is how long a peer's digest counts. Default 2s: ten digests
	// missed, so a peer that is gone stops weighing on the balance within
	// two seconds, long before memberlist declares it dead.
	LoadTTL time.Duration
	// RejoinInterval is how often the seeds that are not members are
	// joined again, so that the cluster heals by itself after a
	// partition. Default 2s: a join is one TCP exchange per missing seed,
	// and a healed partition is whole again within a few seconds.
	RejoinInterval time.Duration

	// OnPeerFailure, if not nil, is called when a peer newly reports a
	// backend suspect or down; cmd asks the prober to probe it at once.
	// It is called from memberlist's receive loop: it must not block.
	OnPeerFailure func(backend string)
	// OnChange, if not nil, is called when a peer's verdict changed or a
	// gateway joined or left: decisions may have changed. It must not
	// block.
	OnChange func()
	// Load, if not nil, returns this gateway's requests in flight by
	// backend address, for its digests. Nil sends empty digests.
	Load func() map[string]int

	// Transport replaces memberlist's UDP and TCP transport (tests use
	// memberlist.MockNetwork). Nil: the network, on Bind.
	Transport memberlist.Transport
	// Now, if not nil, replaces time.Now for load ages.
	Now func() time.Time
}

// Defaults of GossipConfig; see the fields for the reasons.
const (
	DefaultGossipBind     = "0.0.0.0:7946"
	DefaultLoadInterval   = 200 * time.Millisecond
	DefaultLoadTTL        = 2 * time.Second
	DefaultRejoinInterval = 2 * time.Second
)

func (c GossipConfig) withDefaults() GossipConfig {
	if c.Bind == "" {
		c.Bind = DefaultGossipBind
	}
	if c.Advertise == "" {
		c.Advertise = c.Bind
	}
	if c.LoadInterval <= 0 {
		c.LoadInterval = DefaultLoadInterval
	}
	if c.LoadTTL <= 0 {
		c.LoadTTL = DefaultLoadTTL
	}
	if c.RejoinInterval <= 0 {
		c.RejoinInterval = DefaultRejoinInterval
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports every problem with c, joined into one error.
func (c GossipConfig) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("health: gossip: "+format, args...)) }
	checkAddr := func(name, a string) {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			bad("%s %q: %v", name, a, err)
			return
		}
		if net.ParseIP(host) == nil {
			bad("%s %q: want an IP address", name, a)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			bad("%s %q: bad port", name, a)
		}
	}
	checkAddr("bind", c.Bind)
	checkAddr("advertise", c.Advertise)
	for _, s := range c.Seeds {
		if _, _, err := net.SplitHostPort(s); err != nil {
			bad("seed %q: %v", s, err)
		}
	}
	if c.Quorum < 0 {
		bad("quorum %d must not be negative", c.Quorum)
	}
	if len(c.Name) > maxAddr {
		bad("name longer than %d bytes", maxAddr)
	}
	return errors.Join(errs...)
}

// Gossip is this gateway's member of the gateway cluster. NewGossip binds
// it; Run joins the seeds and spreads load; Close leaves. Its methods are
// safe for concurrent use.
type Gossip struct {
	cfg     GossipConfig
	log     *slog.Logger
	cluster *Cluster
	keyring *memberlist.Keyring // nil without encryption
	ml      *memberlist.Memberlist
	queue   *memberlist.TransmitLimitedQueue

	mu       sync.Mutex // protects seeds, own, version, config, keyStamp
	seeds    []string
	own      map[string]Verdict // this gateway's last verdict by backend
	version  uint64             // last verdict version used
	config   string             // config version, sent with the digests
	keyStamp string             // size and mtime of KeyringFile when last read

	badLogged atomic.Int64 // Unix ns of the last "bad message" log line
	closeOnce sync.Once
	closeErr  error
}

// NewGossip creates this gateway's member, bound to cfg.Bind (or on
// cfg.Transport), alone until Run joins the seeds. A nil log means
// slog.Default(). The caller must Close it.
func NewGossip(cfg GossipConfig, log *slog.Logger) (*Gossip, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.Default()
	}
	if cfg.Name == "" {
		cfg.Name = cfg.Advertise
	}
	g := &Gossip{
		cfg:   cfg,
		log:   log.With("component", "health.gossip"),
		seeds: append([]string(nil), cfg.Seeds...),
		own:   map[string]Verdict{},
	}
	g.cluster = NewCluster(cfg.Name, cfg.Quorum, cfg.LoadTTL, cfg.Now)

	mc := lanConfig()
	mc.Name = cfg.Name
	mc.BindAddr, mc.BindPort = splitAddr(cfg.Bind)
	mc.AdvertiseAddr, mc.AdvertisePort = splitAddr(cfg.Advertise)
	if mc.AdvertiseAddr == "0.0.0.0" {
		mc.AdvertiseAddr = "" // memberlist picks the host's address
	}
	mc.Transport = cfg.Transport
	if mc.Transport == nil {
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{mc.BindAddr},
			BindPort:  mc.BindPort,
			Logger:    stdlog.New(&logBridge{log: g.log}, "", 0),
		})
		if err != nil {
			return nil, fmt.Errorf("health: gossip on %s: %w", cfg.Bind, err)
		}
		if mc.BindPort == 0 {
			mc.BindPort = nt.GetAutoBindPort()
			if mc.AdvertisePort == 0 {
				mc.AdvertisePort = mc.BindPort
			}
		}
		mc.Transport = &sourceTransport{NetTransport: nt, source: net.ParseIP(mc.BindAddr)}
	}
	mc.Delegate = (*delegate)(g)
	mc.Events = (*events)(g)
	mc.Logger = stdlog.New(&logBridge{log: g.log}, "", 0)
	if cfg.KeyringFile != "" {
		keys, err := ReadKeyFile(cfg.KeyringFile)
		if err != nil {
			return nil, err
		}
		g.keyring, err = memberlist.NewKeyring(keys, keys[0])
		if err != nil {
			return nil, fmt.Errorf("health: keyring: %w", err)
		}
		g.keyStamp = fileStamp(cfg.KeyringFile)
		mc.Keyring = g.keyring
		mc.GossipVerifyIncoming, mc.GossipVerifyOutgoing = true, true
	}
	g.queue = &memberlist.TransmitLimitedQueue{NumNodes: g.numMembers, RetransmitMult: mc.RetransmitMult}
	ml, err := memberlist.Create(mc)
	if err != nil {
		if cfg.Transport == nil {
			mc.Transport.Shutdown()
		}
		return nil, fmt.Errorf("health: gossip on %s: %w", cfg.Bind, err)
	}
	g.ml = ml
	g.log.Info("gossip member started", "name", cfg.Name, "bind", cfg.Bind, "advertise", ml.LocalNode().Address(), "encrypted", g.keyring != nil)
	return g, nil
}

// lanConfig is memberlist's LAN preset, faster, so that a gateway that
// dies is known dead everywhere within 5 seconds (DefaultLANConfig takes
// about 6 to 10): the gateways of one cluster sit on one LAN, where a
// round trip takes well under a millisecond, so probes can be frequent
// and their timeout short without false alarms.
//
// The time to declare a gateway dead is about: the wait until it is
// probed (up to ProbeInterval times the members, but memberlist probes
// them in a shuffled round robin, so 0.5s to 1s in a small cluster), plus
// ProbeTimeout and the indirect probes, plus the suspicion timeout,
// SuspicionMult * max(1, log10(members)) * ProbeInterval = 2s up to 10
// gateways, 4s at 100. Total: about 3 seconds.
func lanConfig() *memberlist.Config {
	c := memberlist.DefaultLANConfig()
	c.ProbeInterval = 500 * time.Millisecond  // twice LAN's rate: a dead peer is probed sooner
	c.ProbeTimeout = 250 * time.Millisecond   // a LAN round trip is ~0.1ms; a loaded host's GC pauses fit
	c.SuspicionMult = 4                       // 4 * 0.5s = 2s to refute a suspicion, LAN's 4 probe rounds
	c.SuspicionMaxTimeoutMult = 2             // with confirmations from many peers, at most 4s (LAN: 6 * 4s)
	c.GossipInterval = 100 * time.Millisecond // verdicts reach every peer within a few hundred ms
	c.GossipNodes = 3
	c.RetransmitMult = 4
	c.PushPullInterval = 10 * time.Second // full state sync, catches anything gossip lost (LAN: 30s)
	c.GossipToTheDeadTime = 10 * time.Second
	c.TCPTimeout = 2 * time.Second          // joins and push-pull on a LAN; a cut-off seed fails fast
	c.DeadNodeReclaimTime = 5 * time.Second // a restarted gateway may come back at once under its name
	return c
}

func splitAddr(a string) (string, int) {
	host, port, _ := net.SplitHostPort(a) // checked by Validate
	n, _ := strconv.Atoi(port)
	return host, n
}

// Cluster returns the merged view that this member feeds.
func (g *Gossip) Cluster() *Cluster { return g.cluster }

// Name returns this gateway's name in the cluster.
func (g *Gossip) Name() string { return g.cfg.Name }

// Addr returns the address the others reach this member at.
func (g *Gossip) Addr() string { return g.ml.LocalNode().Address() }

// SetSeeds replaces the seeds: the gateways joined by Run and rejoined
// when they are not members. Consul discovery calls it with the addresses
// of the fcgigate instances registered there.
func (g *Gossip) SetSeeds(seeds []string) {
	g.mu.Lock()
	g.seeds = append([]string(nil), seeds...)
	g.mu.Unlock()
}

// Join joins the gateways at addrs now, and returns how many answered.
func (g *Gossip) Join(addrs []string) (int, error) {
	n, err := g.ml.Join(addrs)
	if err != nil {
		err = fmt.Errorf("health: gossip: join %v: %w", addrs, err)
		if g.keyring != nil {
			err = fmt.Errorf("%w (encryption is on: a peer that cannot decrypt what we send, or whose messages we cannot, closes the connection; check that keyring_file holds the cluster's key)", err)
		}
	}
	return n, err
}

// Publish sets this gateway's own verdict on backend and spreads it, if
// it differs from the last one published (state or reason).
func (g *Gossip) Publish(backend string, state VerdictState, reason string) {
	if len(reason) > maxReason {
		reason = reason[:maxReason]
	}
	g.mu.Lock()
	if old, ok := g.own[backend]; ok && old.State == state && old.Reason == reason {
		g.mu.Unlock()
		return
	}
	v := Verdict{Backend: backend, State: state, Reason: reason, Observer: g.cfg.Name, Version: g.nextVersionLocked()}
	g.own[backend] = v
	g.mu.Unlock()
	g.cluster.Observe(v)
	g.broadcast(v)
}

// nextVersionLocked returns a verdict version above every one used
// before, by this process or, since it follows the clock, an earlier one
// under the same name.
func (g *Gossip) nextVersionLocked() uint64 {
	g.version = max(g.version+1, uint64(time.Now().UnixNano()))
	return g.version
}

// SetConfigVersion sets the config and route version this gateway reports
// with its load digests.
func (g *Gossip) SetConfigVersion(v string) {
	if len(v) > maxConfigVers {
		v = v[:maxConfigVers]
	}
	g.mu.Lock()
	g.config = v
	g.mu.Unlock()
	g.cluster.setOwnConfig(v)
}

// ReloadKeys re-reads KeyringFile and installs its keys: new ones are
// added, the first becomes primary, the others are removed. It fails when
// encryption is off (it is turned on only at start).
func (g *Gossip) ReloadKeys() error {
	if g.keyring == nil {
		return errors.New("health: gossip: encryption is off; keyring_file takes effect at start")
	}
	stamp := fileStamp(g.cfg.KeyringFile)
	keys, err := ReadKeyFile(g.cfg.KeyringFile)
	if err != nil {
		return err
	}
	added, removed, err := installKeys(g.keyring, keys)
	g.mu.Lock()
	g.keyStamp = stamp
	g.mu.Unlock()
	if err != nil {
		return err
	}
	g.log.Info("gossip keyring reloaded", "file", g.cfg.KeyringFile, "keys", len(keys), "added", added, "removed", removed)
	return nil
}

// Run joins the seeds, then until ctx is done sends this gateway's load
// digest every LoadInterval, rejoins the seeds that are not members, and
// reloads the keyring file when it changes. Then it leaves the cluster
// (Close) and returns nil.
func (g *Gossip) Run(ctx context.Context) error {
	defer g.Close()
	g.rejoin()
	load := time.NewTicker(g.cfg.LoadInterval)
	defer load.Stop()
	rejoin := time.NewTimer(g.cfg.RejoinInterval)
	defer rejoin.Stop()
	failures := 0
	var seq uint64
	var last []byte
	var lastSent time.Time
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-load.C:
			seq++
			last, lastSent = g.sendLoad(seq, last, lastSent)
		case <-rejoin.C:
			if g.rejoin() {
				failures = 0
			} else {
				failures++
			}
			// Back off while seeds stay unreachable: 2s, 4s, at most
			// 2.5 times the interval (5s), so a healed partition is
			// whole again within about 5s.
			rejoin.Reset(min(g.cfg.RejoinInterval*time.Duration(1+failures), g.cfg.RejoinInterval*5/2))
			g.checkKeyFile()
		}
	}
}

// sendLoad sends this gateway's load digest to every peer: when it
// changed, and at least every LoadTTL/2 so that it does not age out. last
// is the digest sent last, at lastSent; it returns the new ones.
func (g *Gossip) sendLoad(seq uint64, last []byte, lastSent time.Time) ([]byte, time.Time) {
	d := LoadDigest{Node: g.cfg.Name, Seq: seq, InFlight: map[string]int{}}
	if g.cfg.Load != nil {
		for addr, n := range g.cfg.Load() {
			if n > 0 && validAddr(addr) {
				d.InFlight[addr] = min(n, maxInFlight)
			}
		}
	}
	g.mu.Lock()
	d.Config = g.config
	g.mu.Unlock()
	cmp := encodeLoad(LoadDigest{Node: d.Node, Config: d.Config, InFlight: d.InFlight}) // without Seq
	now := time.Now()
	if bytes.Equal(cmp, last) && now.Sub(lastSent) < g.cfg.LoadTTL/2 {
		return last, lastSent
	}
	msg := encodeLoad(d)
	for _, n := range g.ml.Members() {
		if n.Name == g.cfg.Name {
			continue
		}
		var err error
		if len(msg) <= 1200 {
			err = g.ml.SendBestEffort(n, msg)
		} else {
			err = g.ml.SendReliable(n, msg)
		}
		if err != nil {
			g.log.Debug("cannot send load digest", "to", n.Name, "err", err)
		}
	}
	return cmp, now
}

// rejoin joins the seeds that are not live members. It reports false if
// some seed was missing and none could be joined.
func (g *Gossip) rejoin() bool {
	g.mu.Lock()
	seeds := append([]string(nil), g.seeds...)
	g.mu.Unlock()
	if len(seeds) == 0 {
		return true
	}
	have := map[string]bool{g.ml.LocalNode().Address(): true, g.cfg.Bind: true, g.cfg.Advertise: true}
	for _, n := range g.ml.Members() {
		have[n.Address()] = true
	}
	var missing []string
	for _, s := range seeds {
		if !have[s] {
			missing = append(missing, s)
		}
	}
	if len(missing) == 0 {
		return true
	}
	n, err := g.Join(missing)
	if n > 0 {
		g.log.Info("joined gateways", "seeds", missing, "answered", n, "members", g.ml.NumMembers())
	}
	if err != nil {
		g.log.Warn("cannot join some seeds", "seeds", missing, "answered", n, "err", err)
	}
	return n > 0
}

// checkKeyFile reloads the keyring when its file changed.
func (g *Gossip) checkKeyFile() {
	if g.keyring == nil {
		return
	}
	stamp := fileStamp(g.cfg.KeyringFile)
	g.mu.Lock()
	same := stamp == g.keyStamp
	g.mu.Unlock()
	if same {
		return
	}
	if err := g.ReloadKeys(); err != nil {
		g.log.Error("cannot reload the gossip keyring; keeping the keys in use", "err", err)
	}
}

func fileStamp(path string) string {
	fi, err := os.Stat(path)
	if err != nil {
		return ""
	}
	return fmt.Sprintf("%d/%d", fi.Size(), fi.ModTime().UnixNano())
}

// Members returns the names of the live gateways, this one included.
func (g *Gossip) Members() []string {
	var out []string
	for _, n := range g.ml.Members() {
		out = append(out, n.Name)
	}
	return out
}

// Close leaves the cluster, telling the others (for up to a second), and
// stops the member. It is safe to call more than once.
func (g *Gossip) Close() error {
	g.closeOnce.Do(func() {
		if err := g.ml.Leave(time.Second); err != nil {
			g.log.Debug("leave", "err", err)
		}
		g.closeErr = g.ml.Shutdown()
		g.log.Info("left the gateway cluster")
	})
	return g.closeErr
}

func (g *Gossip) numMembers() int { return g.ml.NumMembers() }

// broadcast queues v for gossip, replacing a queued older verdict of the
// same observer on the same backend.
func (g *Gossip) broadcast(v Verdict) {
	g.queue.QueueBroadcast(&verdictBroadcast{key: v.Observer + " " + v.Backend, msg: encodeVerdict(v)})
}

// received handles a verdict from a peer, directly or through push-pull.
func (g *Gossip) received(v Verdict) (changed bool) {
	if v.Observer == g.cfg.Name {
		// Our own verdict, from before a restart or older: refute it
		// with our current one if it is not that.
		g.mu.Lock()
		own, ok := g.own[v.Backend]
		refute := ok && v.Version >= own.Version
		if refute {
			own.Version = max(g.nextVersionLocked(), v.Version+1)
			g.version = own.Version
			g.own[v.Backend] = own
		}
		g.mu.Unlock()
		if refute {
			g.cluster.Observe(own)
			g.broadcast(own)
		}
		return false
	}
	recorded, failure := g.cluster.Observe(v)
	if !recorded {
		return false
	}
	g.broadcast(v) // pass it on: the originator reaches only some peers
	if failure && g.cfg.OnPeerFailure != nil {
		g.log.Debug("peer reports a backend failing", "backend", v.Backend, "observer", v.Observer, "state", v.State, "reason", v.Reason)
		g.cfg.OnPeerFailure(v.Backend)
	}
	return true
}

func (g *Gossip) changed() {
	if g.cfg.OnChange != nil {
		g.cfg.OnChange()
	}
}

// dropped logs a message that did not decode, at most once a second.
func (g *Gossip) dropped(err error, n int) {
	now := time.Now().UnixNano()
	last := g.badLogged.Load()
	if now-last < int64(time.Second) || !g.badLogged.CompareAndSwap(last, now) {
		return
	}
	g.log.Warn("dropped a gossip message from a peer", "bytes", n, "err", err)
}

// verdictBroadcast is one verdict in the broadcast queue.
type verdictBroadcast struct {
	key string // observer and backend
	msg []byte
}

func (b *verdictBroadcast) Invalidates(o memberlist.Broadcast) bool {
	ob, ok := o.(*verdictBroadcast)
	return ok && ob.key == b.key
}
func (b *verdictBroadcast) Name() string    { return b.key }
func (b *verdictBroadcast) Message() []byte { return b.msg }
func (b *verdictBroadcast) Finished()       {}

// sourceTransport is memberlist's network transport, but its TCP
// connections (joins, push-pull, fallback pings) come from the bind
// address, as its UDP packets do, so that a gateway is one address to
// firewalls. An unspecified bind address (0.0.0.0) leaves the choice to
// the kernel.
type sourceTransport struct {
	*memberlist.NetTransport
	source net.IP
}

func (t *sourceTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

func (t *sourceTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	d := net.Dialer{Timeout: timeout}
	if t.source != nil && !t.source.IsUnspecified() {
		d.LocalAddr = &net.TCPAddr{IP: t.source}
	}
	return d.Dial("tcp", a.Addr)
}

// delegate is Gossip as a memberlist.Delegate.
type delegate Gossip

func (d *delegate) NodeMeta(limit int) []byte { return nil }

// NotifyMsg handles a verdict or a load digest from a peer. It does not
// block: the cluster's lock is held briefly, and the hooks must not block.
func (d *delegate) NotifyMsg(buf []byte) {
	g := (*Gossip)(d)
	m, err := decode(buf)
	switch {
	case err != nil:
		g.dropped(err, len(buf))
	case m.verdict != nil:
		if g.received(*m.verdict) {
			g.changed()
		}
	case m.load != nil:
		g.cluster.SetLoad(*m.load)
	default:
		g.dropped(fmt.Errorf("%w: state outside push-pull", errBadMessage), len(buf))
	}
}

func (d *delegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.queue.GetBroadcasts(overhead, limit)
}

// LocalState sends every verdict known, ours and the peers', so a gateway
// that joins or rejoins learns the cluster's verdicts at once.
func (d *delegate) LocalState(join bool) []byte {
	return encodeState(d.cluster.Verdicts())
}

func (d *delegate) MergeRemoteState(buf []byte, join bool) {
	g := (*Gossip)(d)
	m, err := decode(buf)
	if err == nil && m.state == nil {
		err = fmt.Errorf("%w: push-pull state of another kind", errBadMessage)
	}
	if err != nil {
		g.dropped(err, len(buf))
		return
	}
	if join {
		g.log.Info("received the cluster's verdicts", "verdicts", len(m.state))
	}
	news := false
	for _, v := range m.state {
		if g.received(v) {
			news = true
		}
	}
	if news {
		g.changed()
	}
}

// events is Gossip as a memberlist.EventDelegate.
type events Gossip

func (e *events) NotifyJoin(n *memberlist.Node) {
	g := (*Gossip)(e)
	if n.Name == g.cfg.Name {
		return
	}
	if g.cluster.SetMember(n.Name, n.Address(), true) {
		g.log.Info("gateway joined", "name", n.Name, "addr", n.Address())
		g.changed()
	}
}

func (e *events) NotifyLeave(n *memberlist.Node) {
	g := (*Gossip)(e)
	if g.cluster.SetMember(n.Name, n.Address(), false) {
		g.log.Warn("gateway gone: dead or left", "name", n.Name, "addr", n.Address())
		g.changed()
	}
}

func (e *events) NotifyUpdate(*memberlist.Node) {}

// logBridge turns memberlist's log lines ("[WARN] memberlist: ...") into
// slog records at their level.
type logBridge struct{ log *slog.Logger }

func (b *logBridge) Write(p []byte) (int, error) {
	line := string(bytes.TrimRight(p, "\n"))
	level := slog.LevelInfo
	for _, l := range []struct {
		prefix string
		level  slog.Level
	}{{"[DEBUG] ", slog.LevelDebug}, {"[INFO] ", slog.LevelInfo}, {"[WARN] ", slog.LevelWarn}, {"[ERR] ", slog.LevelError}, {"[ERROR] ", slog.LevelError}} {
		if rest, ok := strings.CutPrefix(line, l.prefix); ok {
			line, level = rest, l.level
			break
		}
	}
	b.log.Log(context.Background(), level, line)
	return len(p), nil
}
