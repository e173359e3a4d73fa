package discovery

// client.go holds Client: one connection setup to the Consul agent, shared
// by the watchers and the Registrar.

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
)

// Client talks to one Consul agent. Make one with NewClient; its methods
// are safe for concurrent use. Close it when every watcher and Registrar
// using it has returned.
type Client struct {
	cfg Config // with defaults; frozen
	api *api.Client
	tr  *http.Transport
}

// NewClient returns a Client for cfg, with its defaults applied, once cfg is
// valid and its token file read. It does not contact Consul: a watcher
// started while Consul is down keeps retrying.
func NewClient(cfg Config) (*Client, error) {
	cfg = cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	token, err := cfg.token()
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	tr := &http.Transport{
		// Loopback addresses, where the agent usually is, are never
		// proxied.
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   5 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		// One long-lived connection per watcher, plus the Registrar's.
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 10 * time.Second,
	}
	tlsCfg := api.TLSConfig{
		Address:            cfg.TLS.ServerName,
		CAFile:             cfg.TLS.CAFile,
		CertFile:           cfg.TLS.CertFile,
		KeyFile:            cfg.TLS.KeyFile,
		InsecureSkipVerify: cfg.TLS.InsecureSkipVerify,
	}
	// Our own http.Client, so that the CONSUL_CACERT and similar variables
	// do not change what the configuration says.
	hc, err := api.NewHttpClient(tr, tlsCfg)
	if err != nil {
		return nil, fmt.Errorf("discovery: tls: %w", err)
	}
	scheme := "http"
	if cfg.TLS.enabled() || strings.HasPrefix(cfg.Address, "https://") {
		scheme = "https"
	}
	c, err := api.NewClient(&api.Config{
		Address:    cfg.Address,
		Scheme:     scheme,
		Datacenter: cfg.Datacenter,
		Token:      token,
		HttpClient: hc,
		TLSConfig:  tlsCfg,
	})
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	return &Client{cfg: cfg, api: c, tr: tr}, nil
}

// Config returns the Client's Config, with its defaults filled in.
func (c *Client) Config() Config { return c.cfg }

// Close closes the idle connections to the agent. It is safe to call more
// than once.
func (c *Client) Close() error {
	c.tr.CloseIdleConnections()
	return nil
}
