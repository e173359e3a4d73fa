package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/fcgigate/fcgigate/balancer"
	"github.com/fcgigate/fcgigate/discovery"
	"github.com/fcgigate/fcgigate/gateway"
	"github.com/fcgigate/fcgigate/health"
)

// env is a fixed environment for parse.
var env = map[string]string{"ROOT": "/srv/app", "EMPTY": "", "RT": "5s"}

func lookupEnv(k string) (string, bool) { v, ok := env[k]; return v, ok }

// minimalPool is the least a valid file needs, as lines 1-4.
const minimalPool = `[[pool]]
name = "app"
backends = ["127.0.0.2:9000"]
document_root = "/srv/app"
`

const fullFile = `# a full file
[server]
listen = "127.0.0.1:8081"
read_header_timeout = "11s"
idle_timeout = "61s"
max_header_bytes = "32KiB"
drain_timeout = "5s"
server_software = "fcgigate-test"
procs = "auto+1"

[fastcgi]
listen = "127.0.0.1:9000"
allowed_clients = ["10.0.0.0/8", "192.168.1.7"]
read_timeout = "20s"
idle_timeout = "40s"

[log]
level = "debug"
format = "json"

[[pool]]
name = "app"
backends = ["127.0.0.2:9000", "127.0.0.3:9000"]
document_root = "${ROOT}/public"
static_root = "/var/www/app"
index = ["index.php", "index.html"]
front_controller = "-"
rewrite_docroot = false
dial_timeout = "1s"
read_timeout = "${RT}"
write_timeout = "7s"
max_idle_conns = 4
idle_conn_timeout = "9s"
max_requests_per_conn = 500
max_conns = 8
conn_wait_timeout = "3s"
max_body_size = "10MB"
body_memory_size = 4096
spool_dir = "/var/spool/fcgigate"
max_attempts = 2
try_timeout = "2s"
retry_timeout = "4s"
slow_start = "30s"
max_queue = 64
queue_timeout = "1500ms"
[pool.weights]
"127.0.0.3:9000" = 3
[pool.params]
APP_ENV = "production"
"HTTP.QUOTED" = "$${literal}"
[pool.breaker]
consecutive_failures = 4
failure_ratio = 0.25
min_requests = 10
window = "20s"
open_time = "5s"
half_open_requests = 2
break_on_5xx = true
[pool.outlier]
consecutive_failures = 6
base_ejection = "3s"
max_ejection = "1m"
max_ejected_percent = 30
[pool.health]
interval = "500ms"
timeout = "400ms"
rise = 3
fall = 1
status_path = ""

[[pool]]
name = "legacy"
backends = ["10.0.0.1:9000"]
document_root = "/srv/legacy"
params = { PHP_VALUE = "memory_limit=256M" }
health = { enabled = false }
`

func TestParseFull(t *testing.T) {
	f, err := parse("full.toml", []byte(fullFile), lookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := &File{
		Gateway: gateway.Config{
			Listen:            "127.0.0.1:8081",
			ReadHeaderTimeout: 11 * time.Second,
			IdleTimeout:       61 * time.Second,
			MaxHeaderBytes:    32 << 10,
			ServerSoftware:    "fcgigate-test",

			FastCGIListen:      "127.0.0.1:9000",
			AllowedClients:     []string{"10.0.0.0/8", "192.168.1.7"},
			FastCGIReadTimeout: 20 * time.Second,
			FastCGIIdleTimeout: 40 * time.Second,
			Pools: []gateway.PoolConfig{{
				Name:               "app",
				Backends:           []string{"127.0.0.2:9000", "127.0.0.3:9000"},
				DocumentRoot:       "/srv/app/public",
				StaticRoot:         "/var/www/app",
				Index:              []string{"index.php", "index.html"},
				FrontController:    "-",
				Params:             map[string]string{"APP_ENV": "production", "HTTP.QUOTED": "${literal}"},
				KeepClientDocroot:  true,
				DialTimeout:        time.Second,
				ReadTimeout:        5 * time.Second,
				WriteTimeout:       7 * time.Second,
				MaxIdleConns:       4,
				IdleConnTimeout:    9 * time.Second,
				MaxRequestsPerConn: 500,
				MaxConns:           8,
				ConnWaitTimeout:    3 * time.Second,
				MaxBodyBytes:       10e6,
				BodyMemoryBytes:    4096,
				SpoolDir:           "/var/spool/fcgigate",
				MaxAttempts:        2,
				TryTimeout:         2 * time.Second,
				RetryTimeout:       4 * time.Second,
				Weights:            map[string]int{"127.0.0.3:9000": 3},
				Balance:            gateway.BalanceLeastConn,
				Balancer: balancer.Config{
					BreakerConsecutiveFailures: 4,
					BreakerFailureRatio:        0.25,
					BreakerMinRequests:         10,
					BreakerWindow:              20 * time.Second,
					BreakerOpenTime:            5 * time.Second,
					BreakerHalfOpenRequests:    2,
					Break5xx:                   true,
					SlowStart:                  30 * time.Second,
					MaxConcurrent:              8,
					MaxQueue:                   64,
					QueueTimeout:               1500 * time.Millisecond,
					Outlier: balancer.OutlierConfig{
						ConsecutiveFailures: 6,
						BaseEjection:        3 * time.Second,
						MaxEjection:         time.Minute,
						MaxEjectedPercent:   30,
					},
				},
			}, gateway.PoolConfig{
				Name:         "legacy",
				Backends:     []string{"10.0.0.1:9000"},
				DocumentRoot: "/srv/legacy",
				Params:       map[string]string{"PHP_VALUE": "memory_limit=256M"},
			}.Defaults()},
		},
		Log:          Log{Level: "debug", Format: "json"},
		DrainTimeout: 5 * time.Second,
		Procs:        Procs{Plus: 1},
		Consul:       discovery.Config{}.Defaults(),
		Health: map[string]health.Config{"app": func() health.Config {
			c := health.DefaultConfig()
			c.Interval, c.Timeout, c.Rise, c.Fall, c.StatusPath = 500*time.Millisecond, 400*time.Millisecond, 3, 1, ""
			return c
		}()},
	}
	if !reflect.DeepEqual(f, want) {
		t.Errorf("got  %+v\nwant %+v", f, want)
	}
}

func TestParseDefaults(t *testing.T) {
	f, err := parse("min.toml", []byte(minimalPool), lookupEnv)
	if err != nil {
		t.Fatal(err)
	}
	want := &File{
		Gateway: gateway.Config{Pools: []gateway.PoolConfig{{
			Name:         "app",
			Backends:     []string{"127.0.0.2:9000"},
			DocumentRoot: "/srv/app",
		}}}.Defaults(),
		Log:          Log{Level: "info", Format: "text"},
		DrainTimeout: 30 * time.Second,
		Consul:       discovery.Config{}.Defaults(),
		Health:       map[string]health.Config{"app": health.DefaultConfig()},
	}
	if !reflect.DeepEqual(f, want) {
		t.Errorf("got  %+v\nwant %+v", f, want)
	}
}

// TestParseErrors covers each kind of error. want is the whole error text:
// one line per error, each "file:line: message".
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, file, want string
	}{
		// Syntax.
		{"syntax", "[server]\nlisten = \n" + minimalPool,
			`f.toml:2: invalid TOML: expected value but found '\n' instead`},
		{"duplicate key", "[server]\nlisten = \"a:1\"\nlisten = \"b:1\"\n",
			`f.toml:3: invalid TOML: Key 'server.listen' has already been defined.`},

		// Unknown keys.
		{"unknown server key", "[server]\nlisen = \"127.0.0.1:80\"\n" + minimalPool,
			`f.toml:2: unknown key "lisen" in [server] (did you mean "listen"?)`},
		{"unknown key in second pool", minimalPool + minimalPool[:len(minimalPool)-1] + "\nbackend_timeout = \"1s\"\n",
			`f.toml:9: unknown key "backend_timeout" in [[pool]]`},
		{"key of wrong case", "[server]\nListen = \"127.0.0.1:80\"\n" + minimalPool,
			`f.toml:2: unknown key "Listen" in [server] (did you mean "listen"?)`},
		{"unknown table and its keys once", "[metrics]\naddr = \"x\"\nport = 1\n" + minimalPool,
			`f.toml:1: unknown table [metrics]`},
		{"unknown array of tables", "[[metrics]]\naddr = \"x\"\n" + minimalPool,
			`f.toml:1: unknown table [[metrics]]`},
		{"unknown top-level key", "listen = \"127.0.0.1:80\"\n" + minimalPool,
			`f.toml:1: unknown key "listen"`},
		{"unknown dotted key", minimalPool + "tls.cert = \"x\"\n",
			`f.toml:5: unknown key "tls.cert" in [[pool]] (did you mean "tags"?)`},
		{"unknown key in inline table", "log = { level = \"info\", fromat = \"json\" }\n" + minimalPool,
			`f.toml:1: unknown key "fromat" in [log] (did you mean "format"?)`},
		{"unknown keys each reported", "[server]\nlisen = \"x:1\"\n[log]\nlvl = \"info\"\n" + minimalPool + "foo = 1\n",
			"f.toml:2: unknown key \"lisen\" in [server] (did you mean \"listen\"?)\n" +
				"f.toml:4: unknown key \"lvl\" in [log] (did you mean \"level\"?)\n" +
				"f.toml:9: unknown key \"foo\" in [[pool]]"},

		// Bad values.
		{"bad duration", minimalPool + "read_timeout = \"5x\"\n",
			`f.toml:5: pool.read_timeout: "5x" is not a duration (use e.g. "30s")`},
		{"bad expanded duration", minimalPool + "read_timeout = \"${RT}x\"\n",
			`f.toml:5: pool.read_timeout: "${RT}x" ("5sx") is not a duration (use e.g. "30s")`},
		{"procs zero", "[server]\nprocs = 0\n" + minimalPool,
			`f.toml:2: server.procs: 0 is out of range: want 1 to 1024 (a number such as 4, "auto" for the CPUs, or "auto+1" for one more)`},
		{"procs not auto+N", "[server]\nprocs = \"cpus+1\"\n" + minimalPool,
			`f.toml:2: server.procs: "cpus+1" is not a number of procs (a number such as 4, "auto" for the CPUs, or "auto+1" for one more)`},
		{"procs auto+0", "[server]\nprocs = \"auto+0\"\n" + minimalPool,
			`f.toml:2: server.procs: "auto+0" is not a number of procs (a number such as 4, "auto" for the CPUs, or "auto+1" for one more)`},
		{"procs of wrong type", "[server]\nprocs = 1.5\n" + minimalPool,
			`f.toml:2: server.procs: want a number or a string (a number such as 4, "auto" for the CPUs, or "auto+1" for one more), got a float`},
		{"duration as integer", "[server]\nidle_timeout = 60\n" + minimalPool,
			`f.toml:2: server.idle_timeout: 60 is not a duration (use e.g. "30s")`},
		{"duration of wrong type", "[server]\ndrain_timeout = true\n" + minimalPool,
			`f.toml:2: server.drain_timeout: want a duration string (use e.g. "30s"), got a boolean`},
		{"negative duration", minimalPool + "dial_timeout = \"-1s\"\n",
			`f.toml:5: pool.dial_timeout: "-1s" must not be negative`},
		{"bad size", minimalPool + "max_body_size = \"64MB!\"\n",
			`f.toml:5: pool.max_body_size: "64MB!" is not a size (use bytes, or e.g. "64KiB", "1MiB", "1GiB")`},
		{"negative size", minimalPool + "body_memory_size = -1\n",
			`f.toml:5: pool.body_memory_size: -1 must not be negative`},
		{"size as float", "[server]\nmax_header_bytes = 1.5\n" + minimalPool,
			`f.toml:2: server.max_header_bytes: want a size (use bytes, or e.g. "64KiB", "1MiB", "1GiB"), got a float`},
		{"string for string", "[server]\nlisten = 8080\n" + minimalPool,
			`f.toml:2: server.listen: want a string, got an integer`},
		{"string for array", strings.Replace(minimalPool, `["127.0.0.2:9000"]`, `"127.0.0.2:9000"`, 1),
			`f.toml:3: pool.backends: want an array of strings, got a string`},
		{"array element", strings.Replace(minimalPool, `["127.0.0.2:9000"]`, `["127.0.0.2:9000", 9001]`, 1),
			`f.toml:3: pool.backends[1]: want a string, got an integer`},
		{"integer", minimalPool + "max_attempts = \"3\"\n",
			`f.toml:5: pool.max_attempts: want an integer, got a string`},
		{"negative integer", minimalPool + "max_idle_conns = -2\n",
			`f.toml:5: pool.max_idle_conns: -2 must not be negative`},
		{"table value", "[server.listen]\nhost = \"x\"\n" + minimalPool,
			`f.toml:1: server.listen: want a string, got a table`},
		{"param not a string", minimalPool + "[pool.params]\nAPP_DEBUG = true\n",
			`f.toml:6: pool.params.APP_DEBUG: want a string, got a boolean (quote it: "true")`},
		{"params not a table", minimalPool + "params = \"x\"\n",
			`f.toml:5: pool.params: want a table of strings, got a string`},
		{"log level", "[log]\nlevel = \"verbose\"\n" + minimalPool,
			`f.toml:2: log.level: "verbose" is not one of debug, info, warn, error`},
		{"log format", "[log]\nformat = \"logfmt\"\n" + minimalPool,
			`f.toml:2: log.format: "logfmt" is not one of text, json`},
		{"table given a value", "server = 1\n" + minimalPool,
			`f.toml:1: server: want a table, written [server]`},
		{"pool given a value", "pool = 1\n",
			`f.toml:1: pool: want an array of tables, written [[pool]]`},

		// Environment.
		{"unset variable", strings.Replace(minimalPool, `"/srv/app"`, `"${NOPE}/public"`, 1),
			`f.toml:4: pool.document_root: "${NOPE}/public": environment variable NOPE is not set`},
		{"bad variable name", strings.Replace(minimalPool, `"/srv/app"`, `"${1X}"`, 1),
			`f.toml:4: pool.document_root: "${1X}": "1X" is not a variable name`},
		{"unclosed variable", strings.Replace(minimalPool, `"/srv/app"`, `"${ROOT"`, 1),
			`f.toml:4: pool.document_root: "${ROOT": "${" without a closing "}" (write "$${" for a literal "${")`},

		// Validation, placed on the key's line or the table's.
		{"relative document_root", strings.Replace(minimalPool, `"/srv/app"`, `"srv/app"`, 1),
			`f.toml:4: pool "app": document_root: "srv/app" is not an absolute path`},
		{"defaulted key at pool line", "[server]\n" + strings.Replace(minimalPool, "name = \"app\"\n", "", 1),
			`f.toml:2: pool #1: name is required`},
		{"empty variable", strings.Replace(minimalPool, `"/srv/app"`, `"${EMPTY}"`, 1),
			`f.toml:4: pool "app": document_root: "" is not an absolute path`},
		{"backend without port", strings.Replace(minimalPool, `"127.0.0.2:9000"`, `"127.0.0.2"`, 1),
			`f.toml:3: pool "app": backends: "127.0.0.2": address 127.0.0.2: missing port in address`},
		{"max_attempts out of range", minimalPool + "max_attempts = 11\n",
			`f.toml:5: pool "app": max_attempts: 11 is outside 1..10`},
		{"each bad pool", minimalPool + "front_controller = \"index.php\"\n" + minimalPool + "index = [\"a/b.php\"]\n",
			"f.toml:5: pool \"app\": front_controller: \"index.php\" must start with / (or be \"-\" to disable)\n" +
				"f.toml:10: pool \"app\": index: \"a/b.php\" must be a plain file name"},
		{"duplicate pool name", minimalPool + "\n" + minimalPool,
			`f.toml:7: pool "app": name is used twice (first at line 2)`},
		{"bad listen", "[server]\nlisten = \"localhost\"\n" + minimalPool,
			`f.toml:2: server.listen: address localhost: missing port in address`},
		{"small header limit", "[server]\nmax_header_bytes = \"512B\"\n" + minimalPool,
			`f.toml:2: server.max_header_bytes: 512 is less than 1024`},
		{"no pool", "[server]\nlisten = \"127.0.0.1:80\"\n",
			`f.toml: no pool: at least one [[pool]] is required`},

		// [fastcgi] and rewrite_docroot.
		{"bad fastcgi listen", "[fastcgi]\nlisten = \"9000\"\n" + minimalPool,
			`f.toml:2: fastcgi.listen: address 9000: missing port in address`},
		{"bad allowed client", "[fastcgi]\nlisten = \"127.0.0.1:9000\"\nallowed_clients = [\"127.0.0.1\", \"localhost\"]\n" + minimalPool,
			`f.toml:3: fastcgi.allowed_clients: "localhost" is not an IP address or CIDR network`},
		{"allowed clients not an array", "[fastcgi]\nallowed_clients = \"127.0.0.1\"\n" + minimalPool,
			`f.toml:2: fastcgi.allowed_clients: want an array of strings, got a string`},
		{"fastcgi duration", "[fastcgi]\nidle_timeout = 5\n" + minimalPool,
			`f.toml:2: fastcgi.idle_timeout: 5 is not a duration (use e.g. "30s")`},
		{"unknown fastcgi key", "[fastcgi]\nallowed_client = []\n" + minimalPool,
			`f.toml:2: unknown key "allowed_client" in [fastcgi] (did you mean "allowed_clients"?)`},
		{"rewrite_docroot not a boolean", minimalPool + "rewrite_docroot = \"no\"\n",
			`f.toml:5: pool.rewrite_docroot: want true or false, got a string`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := parse("f.toml", []byte(tt.file), lookupEnv)
			if err == nil {
				t.Fatalf("no error; got %+v", f)
			}
			if f != nil {
				t.Errorf("got a File with the error")
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n got %s\nwant %s", err, tt.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Errorf("%T is not a *config.Error", err)
			}
		})
	}
}

// TestLines checks that keys are found on their lines whatever the layout.
func TestLines(t *testing.T) {
	file := `# comment with lisen = 1
[server] # trailing comment
  "listen" = "127.0.0.1:80"

[[pool]]
name = "a"
backends = [
  "127.0.0.2:9000",
  "127.0.0.3:9000",
]
document_root = "/a"
[pool.params]
NOTE = """
bogus = "not a key"
[server]
"""

[[ pool ]]
name = "b"
backends = ["127.0.0.4:9000"]
document_root = "/b"
bogus = 1
`
	_, err := parse("f.toml", []byte(file), lookupEnv)
	want := `f.toml:22: unknown key "bogus" in [[pool]]`
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
}

func TestExpand(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain", "plain"},
		{"${ROOT}", "/srv/app"},
		{"${ROOT}/public/${RT}", "/srv/app/public/5s"},
		{"$${ROOT}", "${ROOT}"},
		{"$ROOT and $ and $$", "$ROOT and $ and $$"},
		{"a${EMPTY}b", "ab"},
	}
	for _, tt := range tests {
		b := &builder{loc: &locator{}, getenv: lookupEnv}
		if got := b.expand("k", tt.in); got != tt.want || len(b.errs) > 0 {
			t.Errorf("expand(%q) = %q, %v; want %q", tt.in, got, b.errs, tt.want)
		}
	}
}

func TestParseSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"512", 512, true},
		{"512B", 512, true},
		{"64KiB", 64 << 10, true},
		{"64 kib", 64 << 10, true},
		{"1MiB", 1 << 20, true},
		{"2GiB", 2 << 30, true},
		{"64KB", 64000, true},
		{"1MB", 1e6, true},
		{"1GB", 1e9, true},
		{"", 0, false},
		{"KiB", 0, false},
		{"-1", 0, false},
		{"1.5MiB", 0, false},
		{"64K", 0, false},
		{"9223372036854775807", 1<<63 - 1, true},
		{"9223372036854775807KiB", 0, false},
		{"99999999999999999999", 0, false},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		if got != tt.want || (err == nil) != tt.ok {
			t.Errorf("parseSize(%q) = %d, %v; want %d, ok %v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fcgigate.toml")
	if err := os.WriteFile(path, []byte(minimalPool+"read_timeout = \"5x\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if want := path + `:5: pool.read_timeout: "5x" is not a duration (use e.g. "30s")`; err == nil || err.Error() != want {
		t.Errorf("got %v, want %s", err, want)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "missing.toml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: got %v, want os.ErrNotExist", err)
	}
}

// TestDeployFiles checks that the shipped configs parse and validate, and
// that the example file shows exactly the defaults.
func TestDeployFiles(t *testing.T) {
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("FCGIGATE_ROOT", root)
	files, err := filepath.Glob("../deploy/*.toml")
	if err != nil || len(files) < 2 {
		t.Fatalf("deploy files: %v %v", files, err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			f, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			switch filepath.Base(path) {
			case "demo.toml":
				public := filepath.Join(root, "deploy/app/public")
				if p := f.Gateway.Pools[0]; p.DocumentRoot != public || p.StaticRoot != public {
					t.Errorf("demo roots: %q, %q; want %q", p.DocumentRoot, p.StaticRoot, public)
				}
			case "fcgigate.example.toml":
				// Zero every key that has no default; what is left must be
				// the defaults.
				got := f.Gateway
				p := &got.Pools[0]
				if len(p.Params) != 0 {
					t.Errorf("example sets params %v", p.Params)
				}
				p.Name, p.Backends, p.DocumentRoot, p.Params = "", nil, "", nil
				want := gateway.Config{Pools: []gateway.PoolConfig{{}}}.Defaults()
				if !reflect.DeepEqual(got, want) || f.DrainTimeout != defaultDrainTimeout || f.Log != (Log{"info", "text"}) {
					t.Errorf("example is not the defaults:\n got %+v\nwant %+v", got, want)
				}
			}
		})
	}
}

func TestProcs(t *testing.T) {
	tests := []struct {
		value string
		want  Procs
		auto  int
		n     int
		set   bool
		str   string
	}{
		{"", Procs{}, 2, 2, false, "auto"},
		{`procs = "auto"`, Procs{}, 2, 2, false, "auto"},
		{`procs = 3`, Procs{N: 3}, 2, 3, true, "3"},
		{`procs = "auto+1"`, Procs{Plus: 1}, 2, 3, true, "auto+1"},
		{`procs = " auto+2 "`, Procs{Plus: 2}, 4, 6, true, "auto+2"},
	}
	for _, tt := range tests {
		f, err := Parse("f.toml", []byte("[server]\n"+tt.value+"\n"+minimalPool))
		if err != nil {
			t.Fatalf("%s: %v", tt.value, err)
		}
		if f.Procs != tt.want {
			t.Errorf("%s: Procs = %+v, want %+v", tt.value, f.Procs, tt.want)
		}
		if n, set := f.Procs.Resolve(tt.auto); n != tt.n || set != tt.set {
			t.Errorf("%s: Resolve(%d) = %d, %v; want %d, %v", tt.value, tt.auto, n, set, tt.n, tt.set)
		}
		if s := f.Procs.String(); s != tt.str {
			t.Errorf("%s: String() = %q, want %q", tt.value, s, tt.str)
		}
	}
}
