package config

import (
	"reflect"
	"testing"

	"github.com/fcgigate/fcgigate/gateway"
	"github.com/fcgigate/fcgigate/health"
)

func TestParseCluster(t *testing.T) {
	f, err := parse("f.toml", []byte(`[cluster]
enabled = true
name = "gw1"
bind = "127.0.1.1:7946"
advertise = "10.0.0.1:7946"
seeds = ["127.0.1.2:7946", "gw3.example:7946"]
keyring_file = "/etc/fcgigate/gossip.keys"
quorum = 2
`+minimalPool+`balance = "least-conn-cluster"
source_address = "127.0.1.1"
[pool.health]
interval = "2s"
`), lookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := &health.GossipConfig{Name: "gw1", Bind: "127.0.1.1:7946", Advertise: "10.0.0.1:7946",
		Seeds: []string{"127.0.1.2:7946", "gw3.example:7946"}, KeyringFile: "/etc/fcgigate/gossip.keys", Quorum: 2}
	if !reflect.DeepEqual(f.Cluster, want) {
		t.Errorf("cluster:\n got %+v\nwant %+v", f.Cluster, want)
	}
	p := f.Gateway.Pools[0]
	if p.Balance != gateway.BalanceLeastConnCluster || p.SourceAddress != "127.0.1.1" {
		t.Errorf("pool balance %q source %q", p.Balance, p.SourceAddress)
	}
	if hc := f.Health["app"]; hc.SourceAddress != "127.0.1.1" {
		t.Errorf("probes' source address %q, want the pool's", hc.SourceAddress)
	}

	f, err = parse("f.toml", []byte("[cluster]\nquorum = \"majority\"\nbind = \"127.0.0.1:0\"\n"+minimalPool), lookupEnv)
	if err != nil || f.Cluster != nil || f.Gateway.Pools[0].Balance != gateway.BalanceLeastConn {
		t.Errorf("disabled cluster: %+v %v", f, err)
	}
}

func TestParseClusterErrors(t *testing.T) {
	tests := []struct{ name, file, want string }{
		{"bad bind", "[cluster]\nenabled = true\nbind = \"localhost:7946\"\n" + minimalPool,
			`f.toml:3: cluster.bind: "localhost:7946" is not ip:port`},
		{"bad quorum", "[cluster]\nenabled = true\nquorum = \"most\"\n" + minimalPool,
			`f.toml:3: cluster.quorum: want "majority" or a number of gateways from 1 to 1000, got most`},
		{"zero quorum", "[cluster]\nenabled = true\nquorum = 0\n" + minimalPool,
			`f.toml:3: cluster.quorum: want "majority" or a number of gateways from 1 to 1000, got 0`},
		{"bad seed", "[cluster]\nenabled = true\nseeds = [\"127.0.1.2\"]\n" + minimalPool,
			`f.toml:3: cluster.seeds[0]: "127.0.1.2" is not host:port`},
		{"cluster balance without cluster", minimalPool + "balance = \"least-conn-cluster\"\n",
			`f.toml:5: pool.balance: "least-conn-cluster" needs the gossip of [cluster] (enabled = true)`},
		{"unknown balance", minimalPool + "balance = \"round-robin\"\n",
			`f.toml:5: pool.balance: "round-robin" is not one of least-conn, least-conn-cluster`},
		{"bad source address", minimalPool + "source_address = \"127.0.1.1:0\"\n",
			`f.toml:5: pool.source_address: "127.0.1.1:0" is not an IP address`},
		{"unknown cluster key", "[cluster]\nseed = []\n" + minimalPool,
			`f.toml:2: unknown key "seed" in [cluster] (did you mean "seeds"?)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parse("f.toml", []byte(tt.file), lookupEnv)
			if err == nil {
				t.Fatalf("no error; got %+v", f)
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n got %s\nwant %s", err, tt.want)
			}
		})
	}
}
