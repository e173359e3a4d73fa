// discovery.go reads what concerns Consul: each pool's service, tags and
// node_meta, and the [consul], [register] and [admin] tables.

package config

import (
	"fmt"
	"net"
	"strings"

	"github.com/fcgigate/fcgigate/discovery"
)

// Admin is [admin]: the admin listener, which serves /healthz.
type Admin struct {
	// Listen is its address, "host:port". Default "": no admin listener.
	Listen string
}

// discovery fills f.Consul, f.Discover, f.Register and f.Admin from raw;
// f.Gateway.Pools must be built, in the order of raw.Pool.
func (b *builder) discovery(raw *rawFile, f *File) {
	c, t := raw.Consul, raw.Consul.TLS
	f.Consul = discovery.Config{
		Address:    b.str("consul.address", c.Address),
		Datacenter: b.str("consul.datacenter", c.Datacenter),
		TokenFile:  b.str("consul.token_file", c.TokenFile),
		TLS: discovery.TLSConfig{
			CAFile:             b.str("consul.tls.ca_file", t.CAFile),
			CertFile:           b.str("consul.tls.cert_file", t.CertFile),
			KeyFile:            b.str("consul.tls.key_file", t.KeyFile),
			ServerName:         b.str("consul.tls.server_name", t.ServerName),
			InsecureSkipVerify: b.boolean("consul.tls.insecure_skip_verify", t.InsecureSkipVerify, false),
		},
		WaitTime:    b.duration("consul.wait_time", c.WaitTime),
		AllowStale:  b.boolean("consul.stale", c.Stale, false),
		RetryMin:    b.duration("consul.retry_min", c.RetryMin),
		RetryMax:    b.duration("consul.retry_max", c.RetryMax),
		MinInterval: b.duration("consul.min_interval", c.MinInterval),
		AllowEmpty:  b.boolean("consul.allow_empty", c.AllowEmpty, false),
	}.Defaults()
	if err := f.Consul.Validate(); err != nil {
		b.failKey("consul", err)
	}

	for i, p := range raw.Pool {
		if i >= len(f.Gateway.Pools) {
			break
		}
		at := fmt.Sprintf("pool[%d]", i)
		pc := f.Gateway.Pools[i]
		tags := b.strs(at+".tags", p.Tags)
		meta := b.params(at+".node_meta", p.NodeMeta.v)
		if pc.Service == "" {
			if p.Tags != nil {
				b.fail(at+".tags", "only with service: tags select the instances of a Consul service")
			}
			if p.NodeMeta.v != nil {
				b.fail(at+".node_meta", "only with service: node_meta selects the nodes of a Consul service")
			}
			continue
		}
		q := discovery.Query{Service: pc.Service, Tags: tags, NodeMeta: meta}
		if err := q.Validate(); err != nil {
			b.failKey(at, err)
			continue
		}
		if f.Discover == nil {
			f.Discover = map[string]discovery.Query{}
		}
		f.Discover[pc.Name] = q
	}

	f.Admin.Listen = b.str("admin.listen", raw.Admin.Listen)
	if f.Admin.Listen != "" {
		if _, _, err := net.SplitHostPort(f.Admin.Listen); err != nil {
			b.fail("admin.listen", "%v", err)
		}
	}

	r := raw.Register
	reg := discovery.Registration{
		Name:                    b.str("register.service", r.Service),
		ID:                      b.str("register.id", r.ID),
		Address:                 b.str("register.address", r.Address),
		Tags:                    b.strs("register.tags", r.Tags),
		Meta:                    b.params("register.meta", r.Meta.v),
		CheckInterval:           b.duration("register.check_interval", r.CheckInterval),
		CheckTimeout:            b.duration("register.check_timeout", r.CheckTimeout),
		DeregisterCriticalAfter: b.duration("register.deregister_critical_after", r.DeregisterCriticalAfter),
	}.Defaults()
	if !b.boolean("register.enabled", r.Enabled, false) {
		return
	}
	if err := reg.Validate(); err != nil {
		b.failKey("register", err)
		return
	}
	if f.Admin.Listen == "" {
		b.fail("register.enabled", "needs [admin] listen: Consul checks the gateway's /healthz there")
		return
	}
	f.Register = &reg
}

// failKey records err, a Validate error whose message starts with a key of
// the table at path ("consul", "pool[1]", "register"), on that key's line.
func (b *builder) failKey(path string, err error) {
	msg := err.Error()
	if k, rest, ok := strings.Cut(msg, ": "); ok && k != "" && strings.Trim(k, "abcdefghijklmnopqrstuvwxyz_.") == "" {
		b.fail(path+"."+k, "%s", rest)
		return
	}
	b.fail(path, "%s", msg)
}
