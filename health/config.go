package health

// config.go holds the Prober's Config, its defaults and their reasons, and
// its validation.

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Config configures a Prober. Start from DefaultConfig. A zero Interval,
// Timeout, Rise or Fall, and an empty PingPath or PingResponse, take their
// default; an empty StatusPath disables the status probe. The config is
// frozen once New has been called with it.
type Config struct {
	// PingPath is FPM's ping.path. Default "/fpm-ping", the path Debian's
	// pool file suggests.
	PingPath string

	// PingResponse is FPM's ping.response, the exact body a healthy FPM
	// answers the ping with (surrounding white space is ignored). Default
	// "pong", FPM's own default.
	PingResponse string

	// StatusPath is FPM's pm.status_path, asked for with ?json before each
	// ping to learn the backend's load. Default "/fpm-status", the path
	// Debian's pool file suggests. Empty disables the status probe: no load
	// is reported, and up and down still work.
	StatusPath string

	// Interval is the time between the starts of two probes of a target.
	// Default 1s: with Fall 2 a dead backend is taken out within about two
	// seconds, and a probe a second per backend per gateway costs FPM next
	// to nothing (two requests it answers without PHP). A probe that takes
	// longer than Interval is followed by the next one at once.
	Interval time.Duration

	// Timeout bounds each probe request, the dial included: the status
	// page, and then the ping. It must not exceed Interval. Default 1s, or
	// Interval if that is shorter: a
	// backend that leaves a probe waiting for a worker that long is too
	// busy to take more traffic, and a LAN backend that has not answered a
	// page FPM serves itself within a second is stuck (SIGSTOPped, swapping,
	// or partitioned).
	Timeout time.Duration

	// Rise is how many consecutive good probes bring a down target up.
	// Default 2: one lucky answer from a flapping backend is not enough,
	// and a restarted backend is back within two seconds.
	Rise int

	// Fall is how many consecutive failed probes take an up target down.
	// Default 2: one lost probe (a worker recycled by pm.max_requests at
	// the wrong moment) does not take a backend out, and a dead one is out
	// in about Fall*Interval. The passive signals and the breaker act on
	// the requests in between.
	Fall int

	// SourceAddress, if set, is the local IP the probes connect from, as
	// the pool's requests do (its source_address), so that a firewall
	// that cuts this gateway off from a backend cuts its probes too.
	SourceAddress string

	// Reporter receives the result of every probe. Nil discards them.
	Reporter Reporter

	// Now, if not nil, replaces time.Now for the times in results and
	// snapshots. The schedule of probes runs on real timers.
	Now func() time.Time
}

// Default values of Config; see the fields for the reasons.
const (
	DefaultPingPath     = "/fpm-ping"
	DefaultPingResponse = "pong"
	DefaultStatusPath   = "/fpm-status"
	DefaultInterval     = 1 * time.Second
	DefaultTimeout      = 1 * time.Second
	DefaultRise         = 2
	DefaultFall         = 2
)

// DefaultConfig returns a Config with every default filled in, the status
// probe included.
func DefaultConfig() Config {
	return Config{
		PingPath:     DefaultPingPath,
		PingResponse: DefaultPingResponse,
		StatusPath:   DefaultStatusPath,
		Interval:     DefaultInterval,
		Timeout:      DefaultTimeout,
		Rise:         DefaultRise,
		Fall:         DefaultFall,
	}
}

// withDefaults returns c with its zero fields filled in; StatusPath stays as
// it is.
func (c Config) withDefaults() Config {
	if c.PingPath == "" {
		c.PingPath = DefaultPingPath
	}
	if c.PingResponse == "" {
		c.PingResponse = DefaultPingResponse
	}
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
		if c.Interval > 0 {
			c.Timeout = min(c.Timeout, c.Interval)
		}
	}
	if c.Rise == 0 {
		c.Rise = DefaultRise
	}
	if c.Fall == 0 {
		c.Fall = DefaultFall
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate reports every problem with c, after zero fields have taken their
// defaults, joined into one error. Each message names the field.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("health: "+format, args...))
	}
	checkPath := func(name, p string) {
		if !strings.HasPrefix(p, "/") {
			bad("%s %q must start with /", name, p)
		}
		if strings.ContainsAny(p, "?# \t\r\n") {
			bad("%s %q must be a plain path, without a query, fragment or white space", name, p)
		}
	}
	checkPath("PingPath", c.PingPath)
	if c.StatusPath != "" {
		checkPath("StatusPath", c.StatusPath)
	}
	if strings.TrimSpace(c.PingResponse) == "" {
		bad("PingResponse must not be blank")
	}
	if c.Interval < 0 {
		bad("Interval %v must be positive", c.Interval)
	}
	if c.Timeout < 0 {
		bad("Timeout %v must be positive", c.Timeout)
	}
	if c.Interval > 0 && c.Timeout > c.Interval {
		bad("Timeout %v must not exceed Interval %v", c.Timeout, c.Interval)
	}
	if c.SourceAddress != "" && net.ParseIP(c.SourceAddress) == nil {
		bad("SourceAddress %q is not an IP address", c.SourceAddress)
	}
	if c.Rise < 0 {
		bad("Rise %d must be at least 1", c.Rise)
	}
	if c.Fall < 0 {
		bad("Fall %d must be at least 1", c.Fall)
	}
	return errors.Join(errs...)
}
