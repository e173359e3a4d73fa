package discovery

// register.go holds the Registrar: the gateway's own entry in Consul, kept
// there while the gateway runs and withdrawn when it stops.

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hashicorp/consul/api"
)

// Registration is how the gateway appears in Consul's catalog.
type Registration struct {
	// Name is the service name. Default "fcgigate".
	Name string
	// ID identifies this gateway among the agent's services. Default
	// Name-host-port, host being Address or, if that is empty, the
	// machine's host name: unique for gateways that do not share a host
	// and port.
	ID string
	// Address and Port are where clients reach the gateway's HTTP front.
	// Address empty: the agent's node address. Port is required.
	Address string
	Port    int
	// Tags and Meta are the instance's tags and metadata.
	Tags []string
	Meta map[string]string

	// CheckURL is the http(s) URL of the gateway's /healthz, on its admin
	// listener, that the agent checks. Required.
	CheckURL string
	// CheckInterval is how often the agent checks it. Default 10s,
	// Consul's usual; the agent checks no more often than every second.
	CheckInterval time.Duration
	// CheckTimeout bounds each check. Default 2s: /healthz answers at
	// once unless the gateway is in trouble.
	CheckTimeout time.Duration
	// DeregisterCriticalAfter makes Consul remove the instance once its
	// check has been critical this long, so that a gateway that died
	// without deregistering (SIGKILL, a lost host) leaves the catalog.
	// Default 1m, Consul's minimum; its reaper runs every 30s, so the
	// removal may come that much later.
	DeregisterCriticalAfter time.Duration
}

// Defaults of Registration; see its fields for the reasons.
const (
	DefaultServiceName             = "fcgigate"
	DefaultCheckInterval           = 10 * time.Second
	DefaultCheckTimeout            = 2 * time.Second
	DefaultDeregisterCriticalAfter = time.Minute
)

// Defaults returns r with every zero field but ID set to its default. The
// ID's default depends on the host name: see (*Registrar).ID.
func (r Registration) Defaults() Registration {
	if r.Name == "" {
		r.Name = DefaultServiceName
	}
	if r.CheckInterval == 0 {
		r.CheckInterval = DefaultCheckInterval
	}
	if r.CheckTimeout == 0 {
		r.CheckTimeout = DefaultCheckTimeout
	}
	if r.DeregisterCriticalAfter == 0 {
		r.DeregisterCriticalAfter = DefaultDeregisterCriticalAfter
	}
	return r
}

// Validate reports the first thing wrong with r, starting with the name of
// the field's key in the configuration file. Port and CheckURL, which
// come from the listeners, are checked by NewRegistrar.
func (r Registration) Validate() error {
	if strings.ContainsAny(r.Name, "/?#% \t\r\n") {
		return fmt.Errorf("service: %q is not a Consul service name", r.Name)
	}
	if strings.ContainsAny(r.ID, "/?#% \t\r\n") {
		return fmt.Errorf("id: %q is not a Consul service ID", r.ID)
	}
	if r.Address != "" && strings.ContainsAny(r.Address, "/ \t") {
		return fmt.Errorf("address: %q is not a host name or IP address", r.Address)
	}
	if r.CheckInterval < 0 || r.CheckTimeout < 0 || r.DeregisterCriticalAfter < 0 {
		return errors.New("check_interval: check_interval, check_timeout and deregister_critical_after must not be negative")
	}
	if r.DeregisterCriticalAfter != 0 && r.DeregisterCriticalAfter < time.Minute {
		return fmt.Errorf("deregister_critical_after: %v is less than Consul's minimum of 1m", r.DeregisterCriticalAfter)
	}
	return nil
}

// Registrar keeps the gateway registered in Consul while its Run runs.
type Registrar struct {
	c   *Client
	reg Registration // with defaults and ID
	log *slog.Logger
	clk clock

	running atomic.Bool
}

// NewRegistrar returns a Registrar of r, with its defaults applied, through
// c. A nil log means slog.Default().
func NewRegistrar(c *Client, r Registration, log *slog.Logger) (*Registrar, error) {
	r = r.Defaults()
	if err := r.Validate(); err != nil {
		return nil, fmt.Errorf("discovery: register: %w", err)
	}
	if r.Port <= 0 || r.Port > 65535 {
		return nil, fmt.Errorf("discovery: register: port %d is outside 1..65535", r.Port)
	}
	if u, err := url.Parse(r.CheckURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("discovery: register: check URL %q is not an http(s) URL", r.CheckURL)
	}
	if r.ID == "" {
		host := r.Address
		if host == "" {
			host, _ = os.Hostname()
		}
		host = strings.NewReplacer(":", "-", "[", "", "]", "", "/", "-").Replace(host)
		r.ID = r.Name + "-" + host + "-" + strconv.Itoa(r.Port)
	}
	if log == nil {
		log = slog.Default()
	}
	return &Registrar{
		c:   c,
		reg: r,
		log: log.With("component", "discovery.registrar", "service", r.Name, "id", r.ID),
		clk: realClock{},
	}, nil
}

// ID returns the service ID under which the gateway registers.
func (r *Registrar) ID() string { return r.reg.ID }

// Run registers the gateway, retrying with backoff while the agent cannot
// be reached, then watches the registration and makes it again whenever
// the agent has lost it (an agent restarted without its data). When ctx is
// done it deregisters, giving the agent up to 5s, and returns nil. It
// returns ErrRunning at once if it is already running.
func (r *Registrar) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer r.running.Store(false)
	registered := false
	defer func() {
		if registered {
			r.deregister(ctx)
		}
	}()
	var (
		hash     string // X-Consul-ContentHash of our registration, to block on
		failures int
		started  time.Time
		first    = true
	)
	for {
		if !started.IsZero() {
			if r.clk.Sleep(ctx, r.c.cfg.MinInterval-r.clk.Now().Sub(started)) != nil {
				return nil
			}
		}
		started = r.clk.Now()
		var err error
		if !registered {
			err = r.register(ctx)
			if err == nil {
				registered, hash = true, ""
				if first {
					r.log.Info("registered in Consul", "address", r.reg.Address, "port", r.reg.Port, "check", r.reg.CheckURL)
				} else {
					r.log.Info("registered in Consul again")
				}
				first = false
			}
		} else {
			hash, err = r.watch(ctx, hash)
			var se api.StatusError
			if errors.As(err, &se) && se.Code == 404 {
				r.log.Warn("the Consul agent no longer has this gateway's registration (restarted without its data?): registering again")
				registered, err = false, nil
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			failures++
			if failures == 1 {
				r.log.Warn("Consul registration failed: retrying", "err", err)
			} else {
				r.log.Debug("Consul registration failed again", "failures", failures, "err", err)
			}
			if r.clk.Sleep(ctx, backoff(failures, r.c.cfg.RetryMin, r.c.cfg.RetryMax, r.clk.Rand())) != nil {
				return nil
			}
			continue
		}
		failures = 0
	}
}

// register registers the gateway with the agent, replacing the checks of
// an earlier registration under the same ID.
func (r *Registrar) register(ctx context.Context) error {
	reg := &api.AgentServiceRegistration{
		ID:      r.reg.ID,
		Name:    r.reg.Name,
		Tags:    r.reg.Tags,
		Port:    r.reg.Port,
		Address: r.reg.Address,
		Meta:    r.reg.Meta,
		Check: &api.AgentServiceCheck{
			CheckID:                        "service:" + r.reg.ID,
			Name:                           r.reg.Name + " /healthz",
			HTTP:                           r.reg.CheckURL,
			Method:                         "GET",
			Interval:                       r.reg.CheckInterval.String(),
			Timeout:                        r.reg.CheckTimeout.String(),
			DeregisterCriticalServiceAfter: r.reg.DeregisterCriticalAfter.String(),
		},
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := r.c.api.Agent().ServiceRegisterOpts(reg, api.ServiceRegisterOpts{ReplaceExistingChecks: true}.WithContext(rctx)); err != nil {
		return fmt.Errorf("register %s: %w", r.reg.ID, err)
	}
	return nil
}

// watch waits until the registration differs from hash (or the wait time
// passes) and returns its new hash. A registration the agent no longer
// has is a 404 api.StatusError.
func (r *Registrar) watch(ctx context.Context, hash string) (string, error) {
	wait := r.c.cfg.WaitTime
	wctx, cancel := context.WithTimeout(ctx, wait+wait/16+5*time.Second)
	defer cancel()
	q := &api.QueryOptions{WaitHash: hash, WaitTime: wait}
	_, meta, err := r.c.api.Agent().Service(r.reg.ID, q.WithContext(wctx))
	if err != nil {
		return hash, fmt.Errorf("read registration %s: %w", r.reg.ID, err)
	}
	return meta.LastContentHash, nil
}

// deregister removes the registration, giving the agent up to 5s even
// though ctx is done.
func (r *Registrar) deregister(ctx context.Context) {
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	q := (&api.QueryOptions{}).WithContext(dctx)
	if err := r.c.api.Agent().ServiceDeregisterOpts(r.reg.ID, q); err != nil {
		r.log.Warn("could not deregister from Consul; it removes the entry once its check has been critical for deregister_critical_after",
			"after", r.reg.DeregisterCriticalAfter, "err", err)
		return
	}
	r.log.Info("deregistered from Consul")
}

// CheckURL returns the URL of /healthz on the admin listener at addr, as the
// local agent reaches it: an unspecified host (":8081", "0.0.0.0:8081")
// becomes the loopback address.
func CheckURL(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		host = "127.0.0.1"
		if ip != nil && ip.To4() == nil {
			host = "::1"
		}
	}
	return "http://" + net.JoinHostPort(host, port) + "/healthz", nil
}
