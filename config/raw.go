// raw.go holds the file's layout as decoded from TOML, before any value is
// checked, and the schema of known keys derived from it.

package config

import (
	"reflect"
	"strings"
)

// The raw structs mirror the TOML layout. Every leaf is any, so that a value
// of the wrong type becomes an error of ours, with its key and line, instead
// of the decoder's first-error-wins message. A nil leaf was not in the file.
type rawFile struct {
	Server  rawServer  `toml:"server"`
	FastCGI rawFastCGI `toml:"fastcgi"`
	Log     rawLog     `toml:"log"`
	Pool    []rawPool  `toml:"pool"`
	Cluster rawCluster `toml:"cluster"`
	// Consul discovery and self-registration (discovery.go).
	Consul   rawConsul   `toml:"consul"`
	Register rawRegister `toml:"register"`
	Admin    rawAdmin    `toml:"admin"`
}

// rawCluster is [cluster], the gossip among gateways.
type rawCluster struct {
	Enabled     any `toml:"enabled"`
	Name        any `toml:"name"`
	Bind        any `toml:"bind"`
	Advertise   any `toml:"advertise"`
	Seeds       any `toml:"seeds"`
	KeyringFile any `toml:"keyring_file"`
	Quorum      any `toml:"quorum"`
}

type rawServer struct {
	Listen            any `toml:"listen"`
	ReadHeaderTimeout any `toml:"read_header_timeout"`
	IdleTimeout       any `toml:"idle_timeout"`
	MaxHeaderBytes    any `toml:"max_header_bytes"`
	DrainTimeout      any `toml:"drain_timeout"`
	ServerSoftware    any `toml:"server_software"`
	Procs             any `toml:"procs"`
}

// rawFastCGI is [fastcgi], the FastCGI front.
type rawFastCGI struct {
	Listen         any `toml:"listen"`
	AllowedClients any `toml:"allowed_clients"`
	ReadTimeout    any `toml:"read_timeout"`
	IdleTimeout    any `toml:"idle_timeout"`
}

type rawLog struct {
	Level  any `toml:"level"`
	Format any `toml:"format"`
}

type rawPool struct {
	Name               any        `toml:"name"`
	Backends           any        `toml:"backends"`
	Service            any        `toml:"service"`
	Tags               any        `toml:"tags"`
	NodeMeta           rawParams  `toml:"node_meta"`
	DocumentRoot       any        `toml:"document_root"`
	StaticRoot         any        `toml:"static_root"`
	Index              any        `toml:"index"`
	FrontController    any        `toml:"front_controller"`
	Params             rawParams  `toml:"params"`
	RewriteDocroot     any        `toml:"rewrite_docroot"`
	DialTimeout        any        `toml:"dial_timeout"`
	ReadTimeout        any        `toml:"read_timeout"`
	WriteTimeout       any        `toml:"write_timeout"`
	MaxIdleConns       any        `toml:"max_idle_conns"`
	IdleConnTimeout    any        `toml:"idle_conn_timeout"`
	MaxRequestsPerConn any        `toml:"max_requests_per_conn"`
	MaxConns           any        `toml:"max_conns"`
	ConnWaitTimeout    any        `toml:"conn_wait_timeout"`
	MaxBodySize        any        `toml:"max_body_size"`
	BodyMemorySize     any        `toml:"body_memory_size"`
	SpoolDir           any        `toml:"spool_dir"`
	MaxAttempts        any        `toml:"max_attempts"`
	TryTimeout         any        `toml:"try_timeout"`
	RetryTimeout       any        `toml:"retry_timeout"`
	Weights            rawParams  `toml:"weights"`
	SlowStart          any        `toml:"slow_start"`
	MaxQueue           any        `toml:"max_queue"`
	QueueTimeout       any        `toml:"queue_timeout"`
	Breaker            rawBreaker `toml:"breaker"`
	Outlier            rawOutlier `toml:"outlier"`
	Health             rawHealth  `toml:"health"`
	Balance            any        `toml:"balance"`
	SourceAddress      any        `toml:"source_address"`
}

// rawBreaker is [pool.breaker].
type rawBreaker struct {
	ConsecutiveFailures any `toml:"consecutive_failures"`
	FailureRatio        any `toml:"failure_ratio"`
	MinRequests         any `toml:"min_requests"`
	Window              any `toml:"window"`
	OpenTime            any `toml:"open_time"`
	HalfOpenRequests    any `toml:"half_open_requests"`
	BreakOn5xx          any `toml:"break_on_5xx"`
}

// rawOutlier is [pool.outlier].
type rawOutlier struct {
	ConsecutiveFailures any `toml:"consecutive_failures"`
	BaseEjection        any `toml:"base_ejection"`
	MaxEjection         any `toml:"max_ejection"`
	MaxEjectedPercent   any `toml:"max_ejected_percent"`
}

// rawHealth is [pool.health].
type rawHealth struct {
	Enabled      any `toml:"enabled"`
	PingPath     any `toml:"ping_path"`
	PingResponse any `toml:"ping_response"`
	StatusPath   any `toml:"status_path"`
	Interval     any `toml:"interval"`
	Timeout      any `toml:"timeout"`
	Rise         any `toml:"rise"`
	Fall         any `toml:"fall"`
}

// rawConsul is [consul], how to reach the Consul agent.
type rawConsul struct {
	Address     any    `toml:"address"`
	Datacenter  any    `toml:"datacenter"`
	TokenFile   any    `toml:"token_file"`
	WaitTime    any    `toml:"wait_time"`
	Stale       any    `toml:"stale"`
	RetryMin    any    `toml:"retry_min"`
	RetryMax    any    `toml:"retry_max"`
	MinInterval any    `toml:"min_interval"`
	AllowEmpty  any    `toml:"allow_empty"`
	TLS         rawTLS `toml:"tls"`
}

// rawTLS is [consul.tls].
type rawTLS struct {
	CAFile             any `toml:"ca_file"`
	CertFile           any `toml:"cert_file"`
	KeyFile            any `toml:"key_file"`
	ServerName         any `toml:"server_name"`
	InsecureSkipVerify any `toml:"insecure_skip_verify"`
}

// rawRegister is [register], the gateway's own entry in Consul.
type rawRegister struct {
	Enabled                 any       `toml:"enabled"`
	Service                 any       `toml:"service"`
	ID                      any       `toml:"id"`
	Address                 any       `toml:"address"`
	Tags                    any       `toml:"tags"`
	Meta                    rawParams `toml:"meta"`
	CheckInterval           any       `toml:"check_interval"`
	CheckTimeout            any       `toml:"check_timeout"`
	DeregisterCriticalAfter any       `toml:"deregister_critical_after"`
}

// rawAdmin is [admin], the admin listener.
type rawAdmin struct {
	Listen any `toml:"listen"`
}

// rawParams holds [pool.params] as decoded, whatever its type, so that a
// non-table or a non-string value is reported by us with its line. As a
// toml.Unmarshaler it also marks every key under it as decoded.
type rawParams struct{ v any }

func (p *rawParams) UnmarshalTOML(v any) error {
	p.v = v
	return nil
}

// node is one table of the schema. A leaf has neither fields nor free set.
type node struct {
	fields map[string]*node // known keys of a table or array of tables
	free   bool             // a table whose keys are the user's ([pool.params])
}

// schema is the tree of known keys, read from the raw structs' tags so that
// the two cannot drift apart.
var schema = schemaOf(reflect.TypeFor[rawFile]())

func schemaOf(t reflect.Type) *node {
	if t == reflect.TypeFor[rawParams]() {
		return &node{free: true}
	}
	switch t.Kind() {
	case reflect.Struct:
		n := &node{fields: map[string]*node{}}
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			n.fields[name] = schemaOf(f.Type)
		}
		return n
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Struct {
			return schemaOf(t.Elem())
		}
	}
	return &node{}
}

// lookup walks key down the schema. It returns known when every part of key
// is a known key (or lies in a free table), inLeaf when key lies inside a
// leaf's value (a table given where a string belongs: the value's own error
// covers it), and otherwise the index of the first unknown part and the table
// that lacks it.
func lookup(key []string) (status keyStatus, at int, table *node) {
	n := schema
	for i, part := range key {
		switch {
		case n.free:
			return known, 0, nil
		case n.fields == nil:
			return inLeaf, 0, nil
		}
		c, ok := n.fields[part]
		if !ok {
			return unknown, i, n
		}
		n = c
	}
	return known, 0, nil
}

type keyStatus int

const (
	known keyStatus = iota
	inLeaf
	unknown
)
