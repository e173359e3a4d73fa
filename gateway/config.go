package gateway

// config.go defines the gateway's configuration, its defaults with the
// reason for each, and its validation.

import (
	"errors"
	"fmt"
	"net"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/fcgigate/fcgigate/balancer"
)

// Config configures a Gateway. It is frozen once New has been called.
type Config struct {
	// Listen is the HTTP front's address. Default "127.0.0.1:8080".
	Listen string

	// ReadHeaderTimeout bounds reading a request's headers. Default 10s.
	ReadHeaderTimeout time.Duration
	// IdleTimeout closes client keep-alive connections idle this long.
	// Default 60s.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds a request's header block; larger ones get 431.
	// Default 64 KiB, four times nginx's default large buffer.
	MaxHeaderBytes int

	// ServerSoftware is sent as SERVER_SOFTWARE. Default "fcgigate".
	ServerSoftware string

	// FastCGIListen is the FastCGI front's address, "host:port", where a
	// web server sends requests with mod_proxy_fcgi or fastcgi_pass.
	// Default "": no FastCGI front. See ServeFastCGI.
	FastCGIListen string
	// AllowedClients are the networks ("127.0.0.0/8") and addresses
	// ("10.0.0.7") that may connect to the FastCGI front, like FPM's
	// listen.allowed_clients; any other client is closed at accept.
	// "0.0.0.0/0" and "::/0" allow all. Default ["127.0.0.0/8", "::1"]:
	// loopback only, since a FastCGI client chooses SCRIPT_FILENAME and
	// so which file PHP runs.
	AllowedClients []string
	// FastCGIReadTimeout bounds each wait for a record from a FastCGI
	// client while a request is being received, and each write to it.
	// Default 60s, as FPM's and nginx's read timeouts.
	FastCGIReadTimeout time.Duration
	// FastCGIIdleTimeout closes FastCGI client connections idle this long.
	// Default 60s; set the web server's keep-alive time for its backend
	// connections below it (Apache: ttl=, nginx: keepalive_timeout), so
	// that it never reuses one the gateway is closing.
	FastCGIIdleTimeout time.Duration

	// Pools are the backend pools. Until routing exists every request
	// goes to the first pool.
	Pools []PoolConfig
}

// PoolConfig configures one pool of FastCGI backends that share a docroot.
type PoolConfig struct {
	// Name identifies the pool in logs and metrics. Required, unique.
	Name string
	// Backends are the FPM addresses, "host:port". At least one, unless
	// Service is set.
	Backends []string
	// Service, instead of Backends, names the discovery source of the
	// pool's members (a Consul service, configured in package discovery):
	// the pool starts with no backend, requests get 503 until members
	// arrive, and SetBackends follows them as they come and go.
	Service string

	// DocumentRoot is the docroot as the FPM hosts see it; SCRIPT_FILENAME
	// is DocumentRoot + SCRIPT_NAME. Required, absolute.
	DocumentRoot string
	// StaticRoot, if set, is a local copy of the docroot: files in it that
	// are not PHP are served by the gateway, and it decides whether a path
	// exists before the front controller takes it (try_files). Empty: the
	// gateway serves no static files and sends every non-PHP path to the
	// front controller.
	StaticRoot string
	// Index are the index files tried for a path ending in "/". Default
	// ["index.php"].
	Index []string
	// FrontController is the script that takes paths that are neither a
	// file nor a .php script, like nginx's try_files $uri $uri/
	// /index.php?$args. Default "/index.php"; "-" disables it (404).
	FrontController string
	// Params are extra FastCGI params sent with every request, after the
	// CGI ones (like nginx's fastcgi_param).
	Params map[string]string
	// KeepClientDocroot, on the FastCGI front, passes DOCUMENT_ROOT and
	// SCRIPT_FILENAME on as the web server sent them. By default, when the
	// web server's DOCUMENT_ROOT differs from DocumentRoot, the gateway
	// rewrites DOCUMENT_ROOT, and the DOCUMENT_ROOT prefix of
	// SCRIPT_FILENAME and PATH_TRANSLATED, to DocumentRoot, so that the
	// web server's docroot need not be the FPM hosts'. (The file's
	// rewrite_docroot = false sets it.)
	KeepClientDocroot bool

	// DialTimeout bounds connecting to a backend. Default 2s.
	DialTimeout time.Duration
	// ReadTimeout bounds each wait for the backend, between two reads, so
	// a long stream is never cut while it keeps sending. Default 60s,
	// nginx's fastcgi_read_timeout.
	ReadTimeout time.Duration
	// WriteTimeout bounds each write to the backend. Default 60s.
	WriteTimeout time.Duration

	// MaxIdleConns is how many keep-alive connections to keep per backend.
	// Default 64, so that a busy gateway does not redial.
	MaxIdleConns int
	// IdleConnTimeout closes backend connections idle this long. Default 30s.
	IdleConnTimeout time.Duration
	// MaxRequestsPerConn closes a backend connection after this many
	// requests. Default 0: no limit.
	MaxRequestsPerConn int
	// MaxConns caps the connections to each backend; requests beyond it
	// wait in the gateway (up to ConnWaitTimeout, then 503) instead of in
	// FPM's listen backlog. FPM ties a worker to each keep-alive
	// connection, so set it to the backends' pm.max_children. Default 0:
	// no cap.
	MaxConns int
	// ConnWaitTimeout bounds the wait for a connection under MaxConns.
	// Default 5s.
	ConnWaitTimeout time.Duration

	// MaxBodyBytes is the largest request body accepted; larger gets 413.
	// Default 64 MiB.
	MaxBodyBytes int64
	// BodyMemoryBytes is how much of a body of unknown length is spooled in
	// memory before the rest goes to a temporary file. Default 1 MiB.
	BodyMemoryBytes int64
	// SpoolDir holds spooled bodies. Default os.TempDir().
	SpoolDir string

	// MaxAttempts bounds the tries of one request across backends.
	// Default 3.
	MaxAttempts int
	// TryTimeout bounds each attempt's wait for the response header; an
	// attempt past it has failed, and an idempotent request goes to
	// another backend. Default 0: only ReadTimeout applies.
	TryTimeout time.Duration
	// RetryTimeout bounds the wait for a response header across all
	// attempts of a request. Default 0: no bound beyond the attempts'.
	RetryTimeout time.Duration

	// Weights gives backends, by address, a weight other than 1: a
	// backend gets requests in proportion to its weight. 0 drains it.
	Weights map[string]int
	// Balancer configures the circuit breakers, slow start, the
	// per-backend limit and wait queue, and outlier ejection. Its zero
	// fields take the balancer's defaults; its MaxConcurrent defaults to
	// MaxConns.
	Balancer balancer.Config

	// Balance is how the pool counts a backend's load: "least-conn"
	// (the default), this gateway's requests in flight; or
	// "least-conn-cluster", those plus the requests in flight that the
	// other gateways of the cluster last reported (cmd feeds them through
	// the backends' load penalty; it needs [cluster]).
	Balance string
	// SourceAddress, if set, is the local IP that connections to the
	// backends come from, so that each gateway on a host with several
	// addresses is a distinct peer to firewalls. Empty: the kernel picks.
	SourceAddress string
}

// The values of PoolConfig.Balance.
const (
	BalanceLeastConn        = "least-conn"
	BalanceLeastConnCluster = "least-conn-cluster"
)

// Defaults returns c with every zero field set to its default.
func (c Config) Defaults() Config {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.ReadHeaderTimeout == 0 {
		c.ReadHeaderTimeout = 10 * time.Second
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 60 * time.Second
	}
	if c.MaxHeaderBytes == 0 {
		c.MaxHeaderBytes = 64 << 10
	}
	if c.ServerSoftware == "" {
		c.ServerSoftware = "fcgigate"
	}
	if len(c.AllowedClients) == 0 {
		c.AllowedClients = []string{"127.0.0.0/8", "::1"}
	}
	if c.FastCGIReadTimeout == 0 {
		c.FastCGIReadTimeout = 60 * time.Second
	}
	if c.FastCGIIdleTimeout == 0 {
		c.FastCGIIdleTimeout = 60 * time.Second
	}
	pools := make([]PoolConfig, len(c.Pools))
	for i, p := range c.Pools {
		pools[i] = p.Defaults()
	}
	c.Pools = pools
	return c
}

// Defaults returns p with every zero field set to its default.
func (p PoolConfig) Defaults() PoolConfig {
	if len(p.Index) == 0 {
		p.Index = []string{"index.php"}
	}
	if p.FrontController == "" {
		p.FrontController = "/index.php"
	}
	if p.DialTimeout == 0 {
		p.DialTimeout = 2 * time.Second
	}
	if p.ReadTimeout == 0 {
		p.ReadTimeout = 60 * time.Second
	}
	if p.WriteTimeout == 0 {
		p.WriteTimeout = 60 * time.Second
	}
	if p.MaxIdleConns == 0 {
		p.MaxIdleConns = 64
	}
	if p.IdleConnTimeout == 0 {
		p.IdleConnTimeout = 30 * time.Second
	}
	if p.ConnWaitTimeout == 0 {
		p.ConnWaitTimeout = 5 * time.Second
	}
	if p.MaxBodyBytes == 0 {
		p.MaxBodyBytes = 64 << 20
	}
	if p.BodyMemoryBytes == 0 {
		p.BodyMemoryBytes = 1 << 20
	}
	if p.MaxAttempts == 0 {
		p.MaxAttempts = 3
	}
	if p.Balance == "" {
		p.Balance = BalanceLeastConn
	}
	if p.Balancer.MaxConcurrent == 0 {
		p.Balancer.MaxConcurrent = p.MaxConns
	}
	p.Balancer = p.Balancer.Defaults()
	return p
}

// Validate reports the first thing wrong with c, naming the field.
func (c Config) Validate() error {
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if c.ReadHeaderTimeout < 0 || c.IdleTimeout < 0 {
		return errors.New("timeouts must not be negative")
	}
	if c.MaxHeaderBytes < 1024 {
		return fmt.Errorf("max_header_bytes: %d is less than 1024", c.MaxHeaderBytes)
	}
	if c.FastCGIListen != "" {
		if _, _, err := net.SplitHostPort(c.FastCGIListen); err != nil {
			return fmt.Errorf("fastcgi.listen: %w", err)
		}
	}
	if _, err := parseAllowList(c.AllowedClients); err != nil {
		return fmt.Errorf("fastcgi.allowed_clients: %w", err)
	}
	if c.FastCGIReadTimeout < 0 || c.FastCGIIdleTimeout < 0 {
		return errors.New("fastcgi.read_timeout and fastcgi.idle_timeout must not be negative")
	}
	if len(c.Pools) == 0 {
		return errors.New("no pool: at least one [[pool]] is required")
	}
	seen := map[string]bool{}
	for i, p := range c.Pools {
		if err := p.Validate(); err != nil {
			return fmt.Errorf("pool %d (%q): %w", i+1, p.Name, err)
		}
		if seen[p.Name] {
			return fmt.Errorf("pool %d: name %q is used twice", i+1, p.Name)
		}
		seen[p.Name] = true
	}
	return nil
}

// Validate reports the first thing wrong with p, naming the field.
func (p PoolConfig) Validate() error {
	if p.Name == "" {
		return errors.New("name is required")
	}
	switch {
	case p.Service != "" && len(p.Backends) > 0:
		return errors.New("service: set either backends or service, not both")
	case p.Service == "" && len(p.Backends) == 0:
		return errors.New("backends: at least one address is required (or a service to discover them)")
	}
	for _, b := range p.Backends {
		host, port, err := net.SplitHostPort(b)
		if err != nil {
			return fmt.Errorf("backends: %q: %w", b, err)
		}
		if host == "" || port == "" || port == "0" {
			return fmt.Errorf("backends: %q needs a host and a port", b)
		}
	}
	if !path.IsAbs(p.DocumentRoot) {
		return fmt.Errorf("document_root: %q is not an absolute path", p.DocumentRoot)
	}
	if p.StaticRoot != "" && !filepath.IsAbs(p.StaticRoot) {
		return fmt.Errorf("static_root: %q is not an absolute path", p.StaticRoot)
	}
	for _, ix := range p.Index {
		if ix == "" || strings.Contains(ix, "/") {
			return fmt.Errorf("index: %q must be a plain file name", ix)
		}
	}
	if p.FrontController != "-" && !strings.HasPrefix(p.FrontController, "/") {
		return fmt.Errorf("front_controller: %q must start with / (or be \"-\" to disable)", p.FrontController)
	}
	for _, d := range []struct {
		name string
		d    time.Duration
	}{{"dial_timeout", p.DialTimeout}, {"read_timeout", p.ReadTimeout}, {"write_timeout", p.WriteTimeout}, {"idle_conn_timeout", p.IdleConnTimeout}} {
		if d.d < 0 {
			return fmt.Errorf("%s: %v is negative", d.name, d.d)
		}
	}
	if p.ConnWaitTimeout < 0 {
		return fmt.Errorf("conn_wait_timeout: %v is negative", p.ConnWaitTimeout)
	}
	if p.MaxConns < 0 {
		return fmt.Errorf("max_conns: %d is negative", p.MaxConns)
	}
	if p.MaxBodyBytes < 0 {
		return fmt.Errorf("max_body_size: %d is negative", p.MaxBodyBytes)
	}
	if p.BodyMemoryBytes < 0 {
		return fmt.Errorf("body_memory_size: %d is negative", p.BodyMemoryBytes)
	}
	if p.MaxAttempts < 1 || p.MaxAttempts > 10 {
		return fmt.Errorf("max_attempts: %d is outside 1..10", p.MaxAttempts)
	}
	if p.TryTimeout < 0 || p.RetryTimeout < 0 {
		return errors.New("try_timeout and retry_timeout must not be negative")
	}
	for addr, w := range p.Weights {
		if p.Service != "" {
			// Discovered backends: any address may come.
			if _, _, err := net.SplitHostPort(addr); err != nil {
				return fmt.Errorf("weights: %q: %w", addr, err)
			}
		} else if !slices.Contains(p.Backends, addr) {
			return fmt.Errorf("weights: %q is not one of the backends", addr)
		}
		if w < 0 || w > balancer.MaxWeight {
			return fmt.Errorf("weights: %q: %d is outside 0..%d", addr, w, balancer.MaxWeight)
		}
	}
	switch p.Balance {
	case "", BalanceLeastConn, BalanceLeastConnCluster:
	default:
		return fmt.Errorf("balance: %q is not %q or %q", p.Balance, BalanceLeastConn, BalanceLeastConnCluster)
	}
	if p.SourceAddress != "" && net.ParseIP(p.SourceAddress) == nil {
		return fmt.Errorf("source_address: %q is not an IP address", p.SourceAddress)
	}
	if err := p.Balancer.Validate(); err != nil {
		return err
	}
	return nil
}
