package config

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fcgigate/fcgigate/discovery"
)

const discoveryFile = `[consul]
address = "https://consul.internal:8501"
datacenter = "dc2"
token_file = "/etc/fcgigate/consul.token"
wait_time = "1m"
stale = true
retry_min = "100ms"
retry_max = "5s"
min_interval = "20ms"
allow_empty = true
[consul.tls]
ca_file = "/etc/consul/ca.pem"
cert_file = "/etc/consul/client.pem"
key_file = "/etc/consul/client-key.pem"
server_name = "consul.internal"

[register]
enabled = true
service = "edge"
id = "edge-1"
address = "10.0.0.5"
tags = ["v1"]
meta = { zone = "a" }
check_interval = "5s"
check_timeout = "1s"
deregister_critical_after = "2m"

[admin]
listen = "127.0.0.1:8081"

[[pool]]
name = "app"
service = "php-app"
tags = ["blue", "php82"]
node_meta = { rack = "r1" }
document_root = "/srv/app"

[[pool]]
name = "static"
backends = ["127.0.0.2:9000"]
document_root = "/srv/app"
`

func TestParseDiscovery(t *testing.T) {
	f, err := parse("d.toml", []byte(discoveryFile), lookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	wantConsul := discovery.Config{
		Address:    "https://consul.internal:8501",
		Datacenter: "dc2",
		TokenFile:  "/etc/fcgigate/consul.token",
		TLS: discovery.TLSConfig{
			CAFile: "/etc/consul/ca.pem", CertFile: "/etc/consul/client.pem",
			KeyFile: "/etc/consul/client-key.pem", ServerName: "consul.internal",
		},
		WaitTime: time.Minute, AllowStale: true,
		RetryMin: 100 * time.Millisecond, RetryMax: 5 * time.Second, MinInterval: 20 * time.Millisecond,
		AllowEmpty: true,
	}
	if !reflect.DeepEqual(f.Consul, wantConsul) {
		t.Errorf("consul:\n got %+v\nwant %+v", f.Consul, wantConsul)
	}
	wantDiscover := map[string]discovery.Query{"app": {
		Service: "php-app", Tags: []string{"blue", "php82"}, NodeMeta: map[string]string{"rack": "r1"},
	}}
	if !reflect.DeepEqual(f.Discover, wantDiscover) {
		t.Errorf("discover: got %+v, want %+v", f.Discover, wantDiscover)
	}
	if p := f.Gateway.Pools[0]; p.Service != "php-app" || len(p.Backends) != 0 {
		t.Errorf("pool app: service %q, backends %v", p.Service, p.Backends)
	}
	wantReg := &discovery.Registration{
		Name: "edge", ID: "edge-1", Address: "10.0.0.5", Tags: []string{"v1"}, Meta: map[string]string{"zone": "a"},
		CheckInterval: 5 * time.Second, CheckTimeout: time.Second, DeregisterCriticalAfter: 2 * time.Minute,
	}
	if !reflect.DeepEqual(f.Register, wantReg) {
		t.Errorf("register:\n got %+v\nwant %+v", f.Register, wantReg)
	}
	if f.Admin.Listen != "127.0.0.1:8081" {
		t.Errorf("admin listen %q", f.Admin.Listen)
	}
}

func TestParseRegisterDefaults(t *testing.T) {
	f, err := parse("d.toml", []byte("[register]\nenabled = true\n[admin]\nlisten = \":8081\"\n"+minimalPool), lookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	if want := (discovery.Registration{}).Defaults(); f.Register == nil || !reflect.DeepEqual(*f.Register, want) {
		t.Errorf("register %+v, want %+v", f.Register, want)
	}
	if f.Discover != nil {
		t.Errorf("discover %v for a file without a service pool", f.Discover)
	}
}

func TestParseDiscoveryErrors(t *testing.T) {
	servicePool := strings.Replace(minimalPool, `backends = ["127.0.0.2:9000"]`, `service = "php-app"`, 1)
	tests := []struct{ name, file, want string }{
		{"backends and service", minimalPool + "service = \"php-app\"\n",
			`f.toml:5: pool "app": service: set either backends or service, not both`},
		{"neither", strings.Replace(minimalPool, "backends = [\"127.0.0.2:9000\"]\n", "", 1),
			`f.toml:1: pool "app": backends: at least one address is required (or a service to discover them)`},
		{"tags without service", minimalPool + "tags = [\"blue\"]\n",
			`f.toml:5: pool.tags: only with service: tags select the instances of a Consul service`},
		{"node_meta without service", minimalPool + "[pool.node_meta]\nrack = \"r1\"\n",
			`f.toml:5: pool.node_meta: only with service: node_meta selects the nodes of a Consul service`},
		{"bad service name", strings.Replace(servicePool, `"php-app"`, `"php/app"`, 1),
			`f.toml:3: pool.service: "php/app" is not a Consul service name`},
		{"empty tag", servicePool + "tags = [\"\"]\n",
			`f.toml:5: pool.tags: a tag must not be empty`},
		{"node_meta value", servicePool + "node_meta = { rack = 1 }\n",
			`f.toml:5: pool.node_meta.rack: want a string, got an integer (quote it: "1")`},
		{"wait_time", "[consul]\nwait_time = \"11m\"\n" + minimalPool,
			`f.toml:2: consul.wait_time: 11m0s is outside 0..10m0s`},
		{"tls pair", "[consul.tls]\ncert_file = \"c.pem\"\n" + minimalPool,
			`f.toml:2: consul.tls.cert_file: cert_file and key_file go together`},
		{"unknown consul key", "[consul]\nadress = \"x:1\"\n" + minimalPool,
			`f.toml:2: unknown key "adress" in [consul] (did you mean "address"?)`},
		{"register without admin", "[register]\nenabled = true\n" + minimalPool,
			`f.toml:2: register.enabled: needs [admin] listen: Consul checks the gateway's /healthz there`},
		{"register short deregister", "[admin]\nlisten = \"127.0.0.1:8081\"\n[register]\nenabled = true\nderegister_critical_after = \"30s\"\n" + minimalPool,
			`f.toml:5: register.deregister_critical_after: 30s is less than Consul's minimum of 1m`},
		{"bad admin listen", "[admin]\nlisten = \"8081\"\n" + minimalPool,
			`f.toml:2: admin.listen: address 8081: missing port in address`},
		{"weights of a service pool", servicePool + "[pool.weights]\n\"10.0.0.9\" = 2\n",
			`f.toml:5: pool "app": weights: "10.0.0.9": address 10.0.0.9: missing port in address`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parse("f.toml", []byte(tt.file), lookupEnv)
			if err == nil || err.Error() != tt.want {
				t.Errorf("error:\n got %v\nwant %s", err, tt.want)
			}
		})
	}
}

// TestExampleDiscoveryDefaults: the example file shows the defaults of
// [consul], [register] and [admin].
func TestExampleDiscoveryDefaults(t *testing.T) {
	f, err := Load("../deploy/fcgigate.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	if want := (discovery.Config{}).Defaults(); !reflect.DeepEqual(f.Consul, want) {
		t.Errorf("example [consul]:\n got %+v\nwant %+v", f.Consul, want)
	}
	if f.Register != nil || f.Admin != (Admin{}) || f.Discover != nil {
		t.Errorf("example: register %+v, admin %+v, discover %v; want none", f.Register, f.Admin, f.Discover)
	}
	// With enabled = true, the rest of [register] is the defaults.
	data, err := os.ReadFile("../deploy/fcgigate.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(data), "[register]\nenabled = false", "[register]\nenabled = true", 1)
	s = strings.Replace(s, "[admin]\nlisten = \"\"", "[admin]\nlisten = \"127.0.0.1:8081\"", 1)
	f, err = parse("example", []byte(s), lookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	if want := (discovery.Registration{Tags: []string{}}).Defaults(); f.Register == nil || !reflect.DeepEqual(*f.Register, want) {
		t.Errorf("example [register]:\n got %+v\nwant %+v", f.Register, want)
	}
}
