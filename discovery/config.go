package discovery

// config.go defines how to reach Consul: Config, its defaults with the
// reason for each, its validation, and the resolution of the ACL token.

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"
)

// Config says how to reach the Consul agent and how to query it. It is
// shared by the watchers and the Registrar of one Client, and frozen once
// NewClient has been called.
type Config struct {
	// Address is the agent's HTTP API: "host:port", or with a scheme,
	// "https://host:8501" or "unix:///run/consul/http.sock". Default
	// "127.0.0.1:8500": the local agent, which is where Consul wants its
	// clients to ask (it caches, and forwards to the servers).
	Address string
	// Datacenter to query; empty: the agent's own.
	Datacenter string

	// Token is the ACL token. If empty, it is read from TokenFile (its
	// contents, trimmed); if that is empty too, from the environment
	// variable CONSUL_HTTP_TOKEN (or the file named by
	// CONSUL_HTTP_TOKEN_FILE). Empty: no token (the agent's default
	// token applies). It is never logged.
	Token     string
	TokenFile string

	// TLS configures HTTPS to the agent. Setting any of its files makes
	// the scheme https, as does an "https://" Address.
	TLS TLSConfig

	// WaitTime bounds how long a blocking query waits for a change. It is
	// only the idle maximum: Consul answers at once when the result
	// changes, so it does not delay propagation. Default 30s: short
	// enough that a connection that died without a reset (a paused agent,
	// a NAT that forgot it) is found within about 40s, long enough that
	// an idle watcher costs Consul two queries a minute. At most 10m,
	// Consul's own limit.
	WaitTime time.Duration
	// AllowStale lets any Consul server answer, not only the leader
	// (?stale). It spreads the reads of many gateways over the servers,
	// at the price of answers that may lag the leader by a few
	// milliseconds, and that a server cut off from the leader keeps
	// giving. Default false: Consul's default consistency mode.
	AllowStale bool

	// RetryMin and RetryMax bound the wait before retrying a query that
	// failed: it starts at RetryMin and doubles with each failure in a
	// row, up to RetryMax, each wait being a random share (a half to all)
	// of that. Defaults 250ms and 1s: the agent runs on the gateway's host,
	// a refused connection costs it nothing, and picking up changes soon
	// after it comes back matters more. Against remote servers shared by
	// many gateways, raise RetryMax.
	RetryMin time.Duration
	RetryMax time.Duration
	// MinInterval is the least time between the starts of two queries of
	// one watcher. A blocking query returns as soon as its result
	// changes, so under constant churn (a flapping check) this bounds a
	// watcher to 1/MinInterval queries a second; it delays a change by at
	// most that much. Default 50ms.
	MinInterval time.Duration

	// AllowEmpty lets a watcher apply an answer with no passing instance
	// after one that had some, emptying the pool. By default (false) that
	// answer is logged and the last members are kept, as when Consul is
	// unreachable: Consul losing its state (a server restarted without
	// its data) or a check broken across a whole pool look just like every
	// backend failing at once, and the gateway's health prober already
	// takes backends that are really down out of the pool. Set it for a
	// pool that you scale to zero through Consul.
	AllowEmpty bool
}

// TLSConfig configures HTTPS to the Consul agent.
type TLSConfig struct {
	// CAFile is a PEM file of the CAs that sign the agent's certificate;
	// empty: the system's roots.
	CAFile string
	// CertFile and KeyFile are the client certificate and its key, PEM,
	// for an agent that verifies incoming connections. Both or neither.
	CertFile string
	KeyFile  string
	// ServerName is the name expected in the agent's certificate; empty:
	// the host of Address.
	ServerName string
	// InsecureSkipVerify accepts any certificate. For tests only.
	InsecureSkipVerify bool
}

// enabled reports whether any TLS setting is made.
func (t TLSConfig) enabled() bool {
	return t.CAFile != "" || t.CertFile != "" || t.KeyFile != "" || t.ServerName != "" || t.InsecureSkipVerify
}

// Defaults of Config; see its fields for the reasons.
const (
	DefaultAddress     = "127.0.0.1:8500"
	DefaultWaitTime    = 30 * time.Second
	DefaultRetryMin    = 250 * time.Millisecond
	DefaultRetryMax    = time.Second
	DefaultMinInterval = 50 * time.Millisecond

	// maxWaitTime is Consul's own limit on a blocking query's wait.
	maxWaitTime = 10 * time.Minute
)

// Defaults returns c with every zero field set to its default.
func (c Config) Defaults() Config {
	if c.Address == "" {
		c.Address = DefaultAddress
	}
	if c.WaitTime == 0 {
		c.WaitTime = DefaultWaitTime
	}
	if c.RetryMin == 0 {
		c.RetryMin = DefaultRetryMin
	}
	if c.RetryMax == 0 {
		c.RetryMax = max(DefaultRetryMax, c.RetryMin)
	}
	if c.MinInterval == 0 {
		c.MinInterval = DefaultMinInterval
	}
	return c
}

// Validate reports the first thing wrong with c, starting with the name of
// the field's key in the configuration file.
func (c Config) Validate() error {
	if c.Address != "" {
		if scheme, _, ok := strings.Cut(c.Address, "://"); ok && scheme != "http" && scheme != "https" && scheme != "unix" {
			return fmt.Errorf("address: %q: unknown scheme %q (want http, https or unix)", c.Address, scheme)
		}
	}
	if c.WaitTime < 0 || c.WaitTime > maxWaitTime {
		return fmt.Errorf("wait_time: %v is outside 0..%v", c.WaitTime, maxWaitTime)
	}
	if c.RetryMin < 0 || c.RetryMax < 0 {
		return errors.New("retry_min: retry_min and retry_max must not be negative")
	}
	if c.RetryMax != 0 && c.RetryMax < c.RetryMin {
		return fmt.Errorf("retry_max: %v is less than retry_min %v", c.RetryMax, c.RetryMin)
	}
	if c.MinInterval < 0 {
		return fmt.Errorf("min_interval: %v is negative", c.MinInterval)
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		return errors.New("tls.cert_file: cert_file and key_file go together")
	}
	return nil
}

// LogValue logs c without its token.
func (c Config) LogValue() slog.Value {
	attrs := []slog.Attr{slog.String("address", c.Address)}
	if c.Datacenter != "" {
		attrs = append(attrs, slog.String("datacenter", c.Datacenter))
	}
	if c.Token != "" || c.TokenFile != "" {
		attrs = append(attrs, slog.String("token", "(set)"))
	}
	if c.TLS.enabled() {
		attrs = append(attrs, slog.Bool("tls", true))
	}
	attrs = append(attrs, slog.Duration("wait_time", c.WaitTime), slog.Bool("stale", c.AllowStale))
	return slog.GroupValue(attrs...)
}

// token returns the ACL token: Token, else TokenFile's contents. An empty
// result leaves it to the API client, which reads CONSUL_HTTP_TOKEN_FILE
// and CONSUL_HTTP_TOKEN. Errors name the file, never its contents.
func (c Config) token() (string, error) {
	if c.Token != "" || c.TokenFile == "" {
		return c.Token, nil
	}
	b, err := os.ReadFile(c.TokenFile)
	if err != nil {
		return "", fmt.Errorf("token_file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}
