package lab

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/fcgigate/fcgigate/config"
)

func TestApacheTemplate(t *testing.T) {
	dir := t.TempDir()
	data := struct {
		ApacheOptions
		Modules string
		Root    bool
		Workers int
	}{ApacheOptions{Listen: "127.0.0.1:8081", Backend: "127.0.1.1:9001", DocRoot: dir, Dir: dir, Processes: 2, Threads: 64}, ApacheModules, true, 128}
	conf := render(t, "apache.conf.tmpl", data)
	for _, w := range []string{"Listen 127.0.0.1:8081", `DocumentRoot "` + dir + `"`, `    SetHandler "proxy:fcgi://127.0.1.1:9001"`,
		`<Proxy "fcgi://127.0.1.1:9001" enablereuse=on flushpackets=on timeout=60 max=64>`, "ThreadsPerChild 64", "MaxRequestWorkers 128",
		"User nobody", `ErrorLog "` + dir + `/error.log"`} {
		if !strings.Contains(conf, w+"\n") {
			t.Errorf("httpd.conf lacks %q", w)
		}
	}
	// Apache itself accepts it, where it is installed.
	bin, err := ApacheBinary()
	if err != nil {
		t.Logf("no apache2 to check the syntax with: %v", err)
		return
	}
	path := filepath.Join(dir, "httpd.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "-f", path, "-t").CombinedOutput(); err != nil {
		t.Errorf("%s -t: %v\n%s", bin, err, out)
	}
}

func TestGatewayTemplateFastCGI(t *testing.T) {
	o := GatewayOptions{Listen: "127.0.1.1:8080", FastCGIListen: "127.0.1.1:9000", Pool: "lab", Backends: []string{"127.0.0.2:9001"},
		DocRoot: "/srv/php", LogLevel: "warn"}
	conf := render(t, "fcgigate.toml.tmpl", o)
	f, err := config.Parse("fcgigate.toml", []byte(conf))
	if err != nil {
		t.Fatalf("%v\n%s", err, conf)
	}
	if f.Gateway.FastCGIListen != o.FastCGIListen || f.Gateway.Listen != o.Listen {
		t.Fatalf("loaded %+v from\n%s", f.Gateway, conf)
	}
}

func TestRatioPairs(t *testing.T) {
	if ps := ratioPairs([]string{ProxyNginx, ProxyFcgigate}); len(ps) != 1 || ps[0] != [2]string{ProxyFcgigate, ProxyNginx} {
		t.Errorf("nginx scenario: %v", ps)
	}
	want := [][2]string{{ProxyApacheFcgigate, ProxyApache}, {ProxyApacheRelay, ProxyApache}}
	if ps := ratioPairs(apacheProxies); !slices.Equal(ps, want) {
		t.Errorf("apache scenario: %v, want %v", ps, want)
	}
}
