// file.go defines File and reads one from TOML: decode, convert, default,
// validate.

package config

import (
	"errors"
	"fmt"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/fcgigate/fcgigate/balancer"
	"github.com/fcgigate/fcgigate/discovery"
	"github.com/fcgigate/fcgigate/gateway"
	"github.com/fcgigate/fcgigate/health"
)

// File is a parsed, defaulted and validated configuration file.
type File struct {
	// Gateway is [server], [fastcgi] and the [[pool]] tables.
	Gateway gateway.Config
	// Log is [log].
	Log Log
	// DrainTimeout is how long a stopping gateway waits for requests in
	// flight ([server] drain_timeout). Default 30s: most PHP requests end
	// well within it, and systemd's default stop timeout is 90s.
	DrainTimeout time.Duration
	// Procs is [server] procs: how many threads run Go code at once
	// (GOMAXPROCS). The zero value is "auto".
	Procs Procs
	// Health holds each pool's [pool.health], by pool name; a pool whose
	// probes are disabled (enabled = false) has no entry.
	Health map[string]health.Config
	// Cluster is [cluster], the gossip among gateways; nil unless
	// enabled = true.
	Cluster *health.GossipConfig

	// Consul is [consul], with its defaults, for the pools that have a
	// service and for Register (discovery.go).
	Consul discovery.Config
	// Discover holds the Consul query of each pool that has a service
	// instead of backends, by pool name.
	Discover map[string]discovery.Query
	// Register is [register], with its defaults; nil unless enabled. Its
	// Port and CheckURL come from the listeners when the gateway starts.
	Register *discovery.Registration
	// Admin is [admin].
	Admin Admin
}

// Log configures the process's logger.
type Log struct {
	// Level is "debug", "info", "warn" or "error". Default "info".
	Level string
	// Format is "text" (logfmt-like) or "json". Default "text".
	Format string
}

// defaultDrainTimeout is File.DrainTimeout's default.
const defaultDrainTimeout = 30 * time.Second

// Load reads and parses the file at path; errors name path as given.
func Load(path string) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(path, data)
}

// Parse parses data, the contents of the file called name (used in errors
// only), expanding ${VAR} from the process environment. The error is a
// *Error, or the errors.Join of several when more than one key is wrong.
func Parse(name string, data []byte) (*File, error) {
	return parse(name, data, os.LookupEnv)
}

func parse(name string, data []byte, getenv func(string) (string, bool)) (*File, error) {
	var raw rawFile
	md, err := toml.Decode(string(data), &raw)
	if err != nil {
		return nil, decodeError(name, err)
	}
	b := &builder{file: name, loc: newLocator(data, md), getenv: getenv}
	b.unknownKeys(md)
	f := b.build(&raw)
	if len(b.errs) == 0 {
		f.Gateway = f.Gateway.Defaults()
		if f.DrainTimeout == 0 {
			f.DrainTimeout = defaultDrainTimeout
		}
		b.validate(f.Gateway)
	}
	switch len(b.errs) {
	case 0:
		return f, nil
	case 1:
		return nil, b.errs[0]
	}
	return nil, errors.Join(b.errs...)
}

func (b *builder) build(raw *rawFile) *File {
	s := raw.Server
	f := &File{
		Gateway: gateway.Config{
			Listen:            b.str("server.listen", s.Listen),
			ReadHeaderTimeout: b.duration("server.read_header_timeout", s.ReadHeaderTimeout),
			IdleTimeout:       b.duration("server.idle_timeout", s.IdleTimeout),
			MaxHeaderBytes:    b.sizeInt("server.max_header_bytes", s.MaxHeaderBytes),
			ServerSoftware:    b.str("server.server_software", s.ServerSoftware),

			FastCGIListen:      b.str("fastcgi.listen", raw.FastCGI.Listen),
			AllowedClients:     b.strs("fastcgi.allowed_clients", raw.FastCGI.AllowedClients),
			FastCGIReadTimeout: b.duration("fastcgi.read_timeout", raw.FastCGI.ReadTimeout),
			FastCGIIdleTimeout: b.duration("fastcgi.idle_timeout", raw.FastCGI.IdleTimeout),
		},
		Log: Log{
			Level:  b.oneOf("log.level", raw.Log.Level, "info", "debug", "info", "warn", "error"),
			Format: b.oneOf("log.format", raw.Log.Format, "text", "text", "json"),
		},
		DrainTimeout: b.duration("server.drain_timeout", s.DrainTimeout),
		Procs:        b.procs("server.procs", s.Procs),
	}
	for i, p := range raw.Pool {
		at := fmt.Sprintf("pool[%d].", i)
		pc := b.pool(at, p)
		f.Gateway.Pools = append(f.Gateway.Pools, pc)
		if hc, on := b.health(at+"health.", p.Health); on {
			if f.Health == nil {
				f.Health = map[string]health.Config{}
			}
			hc.SourceAddress = pc.SourceAddress
			f.Health[pc.Name] = hc
		}
	}
	f.Cluster = b.cluster(raw.Cluster)
	b.discovery(raw, f)
	for i, pc := range f.Gateway.Pools {
		if pc.Balance == gateway.BalanceLeastConnCluster && f.Cluster == nil {
			b.fail(fmt.Sprintf("pool[%d].balance", i), "%q needs the gossip of [cluster] (enabled = true)", pc.Balance)
		}
	}
	return f
}

func (b *builder) pool(at string, p rawPool) gateway.PoolConfig {
	return gateway.PoolConfig{
		Name:               b.str(at+"name", p.Name),
		Backends:           b.strs(at+"backends", p.Backends),
		Service:            b.str(at+"service", p.Service),
		DocumentRoot:       b.str(at+"document_root", p.DocumentRoot),
		StaticRoot:         b.str(at+"static_root", p.StaticRoot),
		Index:              b.strs(at+"index", p.Index),
		FrontController:    b.str(at+"front_controller", p.FrontController),
		Params:             b.params(at+"params", p.Params.v),
		KeepClientDocroot:  !b.boolean(at+"rewrite_docroot", p.RewriteDocroot, true),
		DialTimeout:        b.duration(at+"dial_timeout", p.DialTimeout),
		ReadTimeout:        b.duration(at+"read_timeout", p.ReadTimeout),
		WriteTimeout:       b.duration(at+"write_timeout", p.WriteTimeout),
		MaxIdleConns:       b.count(at+"max_idle_conns", p.MaxIdleConns),
		IdleConnTimeout:    b.duration(at+"idle_conn_timeout", p.IdleConnTimeout),
		MaxRequestsPerConn: b.count(at+"max_requests_per_conn", p.MaxRequestsPerConn),
		MaxConns:           b.count(at+"max_conns", p.MaxConns),
		ConnWaitTimeout:    b.duration(at+"conn_wait_timeout", p.ConnWaitTimeout),
		MaxBodyBytes:       b.size(at+"max_body_size", p.MaxBodySize),
		BodyMemoryBytes:    b.size(at+"body_memory_size", p.BodyMemorySize),
		SpoolDir:           b.str(at+"spool_dir", p.SpoolDir),
		MaxAttempts:        b.count(at+"max_attempts", p.MaxAttempts),
		TryTimeout:         b.duration(at+"try_timeout", p.TryTimeout),
		RetryTimeout:       b.duration(at+"retry_timeout", p.RetryTimeout),
		Weights:            b.weights(at+"weights", p.Weights.v),
		Balance:            b.oneOf(at+"balance", p.Balance, gateway.BalanceLeastConn, gateway.BalanceLeastConn, gateway.BalanceLeastConnCluster),
		SourceAddress:      b.ip(at+"source_address", p.SourceAddress),
		Balancer: balancer.Config{
			BreakerConsecutiveFailures: b.count(at+"breaker.consecutive_failures", p.Breaker.ConsecutiveFailures),
			BreakerFailureRatio:        b.ratio(at+"breaker.failure_ratio", p.Breaker.FailureRatio),
			BreakerMinRequests:         b.count(at+"breaker.min_requests", p.Breaker.MinRequests),
			BreakerWindow:              b.duration(at+"breaker.window", p.Breaker.Window),
			BreakerOpenTime:            b.duration(at+"breaker.open_time", p.Breaker.OpenTime),
			BreakerHalfOpenRequests:    b.count(at+"breaker.half_open_requests", p.Breaker.HalfOpenRequests),
			Break5xx:                   b.boolean(at+"breaker.break_on_5xx", p.Breaker.BreakOn5xx, false),
			SlowStart:                  b.duration(at+"slow_start", p.SlowStart),
			MaxQueue:                   b.count(at+"max_queue", p.MaxQueue),
			QueueTimeout:               b.duration(at+"queue_timeout", p.QueueTimeout),
			Outlier: balancer.OutlierConfig{
				ConsecutiveFailures: b.count(at+"outlier.consecutive_failures", p.Outlier.ConsecutiveFailures),
				BaseEjection:        b.duration(at+"outlier.base_ejection", p.Outlier.BaseEjection),
				MaxEjection:         b.duration(at+"outlier.max_ejection", p.Outlier.MaxEjection),
				MaxEjectedPercent:   b.count(at+"outlier.max_ejected_percent", p.Outlier.MaxEjectedPercent),
			},
		},
	}
}

// health returns [pool.health] as a health.Config, and whether probing is
// enabled (the default).
func (b *builder) health(at string, h rawHealth) (health.Config, bool) {
	c := health.DefaultConfig()
	if s := b.str(at+"ping_path", h.PingPath); s != "" {
		c.PingPath = s
	}
	if s := b.str(at+"ping_response", h.PingResponse); s != "" {
		c.PingResponse = s
	}
	if h.StatusPath != nil {
		c.StatusPath = b.str(at+"status_path", h.StatusPath) // "" disables it
	}
	if d := b.duration(at+"interval", h.Interval); d > 0 {
		c.Interval = d
	}
	if d := b.duration(at+"timeout", h.Timeout); d > 0 {
		c.Timeout = d
	}
	if n := b.count(at+"rise", h.Rise); n > 0 {
		c.Rise = n
	}
	if n := b.count(at+"fall", h.Fall); n > 0 {
		c.Fall = n
	}
	return c, b.boolean(at+"enabled", h.Enabled, true)
}

// cluster returns [cluster] as a health.GossipConfig, or nil when it is
// not enabled.
func (b *builder) cluster(c rawCluster) *health.GossipConfig {
	g := &health.GossipConfig{
		Name:        b.str("cluster.name", c.Name),
		Bind:        b.ipPort("cluster.bind", c.Bind),
		Advertise:   b.ipPort("cluster.advertise", c.Advertise),
		Seeds:       b.strs("cluster.seeds", c.Seeds),
		KeyringFile: b.str("cluster.keyring_file", c.KeyringFile),
		Quorum:      b.quorum("cluster.quorum", c.Quorum),
	}
	for i, s := range g.Seeds {
		if _, _, err := net.SplitHostPort(s); err != nil && s != "" {
			b.fail(fmt.Sprintf("cluster.seeds[%d]", i), "%q is not host:port", s)
		}
	}
	if !b.boolean("cluster.enabled", c.Enabled, false) {
		return nil
	}
	return g
}

// ip returns v, an IP address, or "" if absent.
func (b *builder) ip(path string, v any) string {
	s := b.str(path, v)
	if s != "" && net.ParseIP(s) == nil {
		b.fail(path, "%q is not an IP address", s)
		return ""
	}
	return s
}

// ipPort returns v, "ip:port", or "" if absent.
func (b *builder) ipPort(path string, v any) string {
	s := b.str(path, v)
	if s == "" {
		return ""
	}
	host, port, err := net.SplitHostPort(s)
	n, perr := strconv.Atoi(port)
	if err != nil || net.ParseIP(host) == nil || perr != nil || n < 0 || n > 65535 {
		b.fail(path, "%q is not ip:port", s)
		return ""
	}
	return s
}

// quorum returns v, "majority" (0) or a count of at least 1.
func (b *builder) quorum(path string, v any) int {
	switch v := v.(type) {
	case nil:
		return 0
	case string:
		if b.expand(path, v) == "majority" {
			return 0
		}
	case int64:
		if v >= 1 && v <= 1000 {
			return int(v)
		}
	}
	b.fail(path, "want \"majority\" or a number of gateways from 1 to 1000, got %v", v)
	return 0
}

// unknownKeys reports each key the decoder left undecoded, and each key it
// matched to a field only by ignoring case ("Listen"), with its line.
func (b *builder) unknownKeys(md toml.MetaData) {
	undecoded := map[string]bool{}
	for _, k := range md.Undecoded() {
		undecoded[k.String()] = true
	}
	var reported []string // paths reported, whose keys below are not
	for _, e := range b.loc.entries {
		status, at, table := lookup(e.key)
		if status == inLeaf || status == known && !undecoded[e.key.String()] {
			continue
		}
		if hasAncestor(reported, e.path) {
			continue
		}
		reported = append(reported, e.path)
		if status == known { // undecoded although we know it: should not happen
			at = len(e.key) - 1
		}
		name := toml.Key(e.key[at:]).String()
		var msg string
		switch {
		case at == 0 && len(e.key) == 1 && md.Type(e.key...) == "Hash":
			msg = fmt.Sprintf("unknown table [%s]", name)
		case at == 0 && len(e.key) == 1 && md.Type(e.key...) == "ArrayHash":
			msg = fmt.Sprintf("unknown table [[%s]]", name)
		case at == 0:
			msg = fmt.Sprintf("unknown key %q", name)
		default:
			msg = fmt.Sprintf("unknown key %q in %s", name, tableName(e.key[:at]))
		}
		if table != nil {
			if s := suggest(e.key[at], table); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
		}
		b.errs = append(b.errs, &Error{File: b.file, Line: e.line, Msg: msg})
	}
}

func hasAncestor(paths []string, p string) bool {
	for _, a := range paths {
		if strings.HasPrefix(p, a+".") {
			return true
		}
	}
	return false
}

// tableName writes a table key as its header: [server], [[pool]], [pool.params].
func tableName(k []string) string {
	if len(k) == 1 && k[0] == "pool" {
		return "[[pool]]"
	}
	return "[" + toml.Key(k).String() + "]"
}

// suggest returns the known key of table closest to name, if it is close:
// the same but for case, or at most two edits away.
func suggest(name string, table *node) string {
	best, bestD := "", 3
	for k := range table.fields {
		d := editDistance(strings.ToLower(name), k)
		if d < bestD || d == bestD && k < best {
			best, bestD = k, d
		}
	}
	if bestD > 2 || bestD >= len(name) {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// validate runs the gateway's own validation and places each error on the
// line of the key it names, or of its [[pool]] or [server] table. Each pool
// is validated on its own so that every bad pool is reported; the whole
// Config last, for what lies outside the pools.
func (b *builder) validate(cfg gateway.Config) {
	firstName := map[string]int{} // pool name → index of its first pool
	for i, p := range cfg.Pools {
		at := fmt.Sprintf("pool[%d]", i)
		label := fmt.Sprintf("pool %q", p.Name)
		if p.Name == "" {
			label = fmt.Sprintf("pool #%d", i+1)
		}
		if err := p.Validate(); err != nil {
			b.errs = append(b.errs, &Error{
				File: b.file,
				Line: b.loc.line(at + keyOf(err, schema.fields["pool"])),
				Msg:  label + ": " + err.Error(),
				Err:  err,
			})
			continue
		}
		if j, dup := firstName[p.Name]; dup {
			b.errs = append(b.errs, &Error{
				File: b.file,
				Line: b.loc.line(at + ".name"),
				Msg:  fmt.Sprintf("%s: name is used twice (first at line %d)", label, b.loc.line(fmt.Sprintf("pool[%d].name", j))),
			})
			continue
		}
		firstName[p.Name] = i
	}
	if len(b.errs) > 0 {
		return
	}
	err := cfg.Validate()
	if err == nil {
		return
	}
	e := &Error{File: b.file, Msg: err.Error(), Err: err}
	if k := keyOf(err, schema.fields["server"]); k != "" {
		e.Line = b.loc.line("server" + k)
		e.Msg = "server" + k + ": " + strings.TrimPrefix(e.Msg, k[1:]+": ")
	} else if k, _, ok := strings.Cut(e.Msg, ":"); ok && strings.HasPrefix(k, "fastcgi.") {
		e.Line = b.loc.line(k) // the message already names the key
	} else if m := poolNumber.FindStringSubmatch(e.Msg); m != nil {
		n, _ := strconv.Atoi(m[1])
		e.Line = b.loc.line(fmt.Sprintf("pool[%d]", n-1))
	}
	b.errs = append(b.errs, e)
}

var poolNumber = regexp.MustCompile(`^pool (\d+)\b`)

// keyOf returns ".key" if err's message starts with "key:" for a key of
// table, else "".
func keyOf(err error, table *node) string {
	k, _, ok := strings.Cut(err.Error(), ":")
	if _, known := table.fields[k]; ok && known {
		return "." + k
	}
	return ""
}

// decodeError places a TOML decoding error on its line.
func decodeError(file string, err error) error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return &Error{File: file, Line: pe.Position.Line, Msg: "invalid TOML: " + pe.Message, Err: err}
	}
	// A table given a value of another type ("server = 1", "pool = 1"): the
	// decoder reports it as "toml: line N (last key "k"): ...".
	e := &Error{File: file, Msg: strings.TrimPrefix(err.Error(), "toml: "), Err: err}
	if m := decoderLine.FindStringSubmatch(err.Error()); m != nil {
		e.Line, _ = strconv.Atoi(m[1])
		e.Msg = m[2] + ": " + m[3]
		switch n := schema.fields[m[2]]; {
		case m[2] == "pool":
			e.Msg = "pool: want an array of tables, written [[pool]]"
		case n != nil && n.fields != nil:
			e.Msg = fmt.Sprintf("%s: want a table, written [%s]", m[2], m[2])
		}
	}
	return e
}

var decoderLine = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]*)"\): (.*)$`)
