package lab

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fcgigate/fcgigate/config"
)

// templates is deploy/bench, seen from the package directory that go test
// runs in.
var templates = TemplatesDir("..")

func render(t *testing.T, name string, data any) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "out")
	if err := renderTemplate(templates, name, dst, data); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(dst)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestNginxTemplate(t *testing.T) {
	base := NginxOptions{Listen: "127.0.0.1:8081", Upstream: "127.0.0.2:9001", DocRoot: "/srv/php", Dir: "/tmp/run", Workers: "auto"}
	tests := []struct {
		name      string
		keepalive int
		want      []string
		wantNot   []string
	}{
		{
			name: "keep-alive", keepalive: 32,
			want: []string{
				"daemon off;", "master_process on;", "worker_processes auto;", "pid /tmp/run/nginx.pid;",
				"error_log /tmp/run/error.log warn;", "access_log off;", "fastcgi_temp_path /tmp/run/fastcgi;",
				"server 127.0.0.2:9001;", "keepalive 32;", "fastcgi_keep_conn on;", "listen 127.0.0.1:8081;", "root /srv/php;",
				"fastcgi_param SCRIPT_FILENAME   $document_root$fastcgi_script_name;",
			},
		},
		{
			name: "a connection per request", keepalive: 0,
			want:    []string{"server 127.0.0.2:9001;", "fastcgi_pass php;"},
			wantNot: []string{"keepalive", "fastcgi_keep_conn"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := base
			o.Keepalive = tt.keepalive
			conf := render(t, "nginx.conf.tmpl", o)
			for _, w := range tt.want {
				if !strings.Contains(conf, w+"\n") {
					t.Errorf("nginx.conf lacks %q", w)
				}
			}
			for _, w := range tt.wantNot {
				for line := range strings.Lines(conf) {
					if l := strings.TrimSpace(line); strings.HasPrefix(l, w) {
						t.Errorf("nginx.conf has %q", l)
					}
				}
			}
		})
	}
}

func TestFPMTemplate(t *testing.T) {
	for _, root := range []bool{false, true} {
		data := struct {
			FPMOptions
			Root bool
		}{FPMOptions{Addr: "127.0.0.2:9001", DocRoot: "/srv/php", Dir: "/tmp/run", MaxChildren: 96}, root}
		conf := render(t, "php-fpm.conf.tmpl", data)
		for _, w := range []string{"listen = 127.0.0.2:9001", "chdir = /srv/php", "pm = static", "pm.max_children = 96",
			"error_log = /tmp/run/php-fpm.log", "daemonize = no", "log_level = notice"} {
			if !strings.Contains(conf, w+"\n") {
				t.Errorf("root=%v: php-fpm.conf lacks %q", root, w)
			}
		}
		if got := strings.Contains(conf, "user = root\n"); got != root {
			t.Errorf("root=%v: user = root present: %v", root, got)
		}
	}
}

func TestGatewayTemplate(t *testing.T) {
	o := GatewayOptions{Listen: "127.0.1.1:8080", Pool: `a "b"`, Backends: []string{"127.0.0.2:9001", "127.0.0.3:9001"},
		DocRoot: `/srv/p"hp`, LogLevel: "warn"}
	conf := render(t, "fcgigate.toml.tmpl", o)
	// fcgigate's own loader accepts it (it rejects unknown keys) and reads
	// back what went in.
	f, err := config.Parse("fcgigate.toml", []byte(conf))
	if err != nil {
		t.Fatalf("%v\n%s", err, conf)
	}
	g := f.Gateway
	if g.Listen != o.Listen || f.Log.Level != "warn" || len(g.Pools) != 1 ||
		g.Pools[0].Name != o.Pool || g.Pools[0].DocumentRoot != o.DocRoot ||
		strings.Join(g.Pools[0].Backends, ",") != strings.Join(o.Backends, ",") {
		t.Fatalf("loaded %+v from\n%s", f, conf)
	}
	if f.Procs != (config.Procs{}) {
		t.Errorf("without Procs: procs %v, want auto", f.Procs)
	}

	o.Procs = "auto+1"
	conf = render(t, "fcgigate.toml.tmpl", o)
	if f, err = config.Parse("fcgigate.toml", []byte(conf)); err != nil {
		t.Fatalf("%v\n%s", err, conf)
	}
	if f.Procs != (config.Procs{Plus: 1}) {
		t.Errorf("with Procs auto+1: procs %v\n%s", f.Procs, conf)
	}
}

func TestTomlString(t *testing.T) {
	for in, want := range map[string]string{
		"plain":     `"plain"`,
		`a"b`:       `"a\"b"`,
		`c:\x`:      `"c:\\x"`,
		"tab\there": `"tab\u0009here"`,
		"ünï":       `"ünï"`,
	} {
		if got := tomlString(in); got != want {
			t.Errorf("tomlString(%q) = %s, want %s", in, got, want)
		}
	}
}
