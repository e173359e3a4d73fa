package wiring

import (
	"context"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/fcgigate/fcgigate/config"
	"github.com/fcgigate/fcgigate/discovery"
	"github.com/fcgigate/fcgigate/gateway"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestStaticAndAdmin: a static pool's members reach OnMembers, and the admin
// listener answers /healthz until ctx ends, then 503 until Close.
func TestStaticAndAdmin(t *testing.T) {
	pc := gateway.PoolConfig{Name: "php", Backends: []string{"127.0.0.2:9000", "127.0.0.3:9000"}, DocumentRoot: "/srv"}
	cfg := gateway.Config{Pools: []gateway.PoolConfig{pc}}
	gw, err := gateway.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer gw.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := map[string][]string{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l, err := Start(ctx, Options{
		Config:  &config.File{Gateway: cfg.Defaults()},
		Gateway: gw,
		Admin:   ln,
		OnMembers: func(pool string, addrs []string) {
			mu.Lock()
			got[pool] = addrs
			mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		addrs := got["php"]
		mu.Unlock()
		if slices.Equal(addrs, pc.Backends) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("OnMembers got %v, want %v", addrs, pc.Backends)
		}
		time.Sleep(time.Millisecond) // polling a condition no event reports
	}
	c := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	healthz := func() (int, string) {
		resp, err := c.Get("http://" + ln.Addr().String() + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := healthz(); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	cancel()
	if code, _ := healthz(); code != 503 {
		t.Errorf("/healthz once stopping: %d, want 503", code)
	}
	l.Close()
	l.Close()
	if _, err := c.Get("http://" + ln.Addr().String() + "/healthz"); err == nil {
		t.Errorf("admin listener still serving after Close")
	}
}

func TestNewRegistrar(t *testing.T) {
	c, err := discovery.NewClient(discovery.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	admin, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	_, adminPort, _ := net.SplitHostPort(admin.Addr().String())
	tests := []struct {
		front, address string
		wantID         string
	}{
		{"127.0.1.1:8080", "", "fcgigate-127.0.1.1-8080"},
		{"10.0.0.5:80", "edge.example", "fcgigate-edge.example-80"},
	}
	for _, tt := range tests {
		front, _ := net.ResolveTCPAddr("tcp", tt.front)
		r, err := newRegistrar(c, discovery.Registration{Address: tt.address}.Defaults(), Options{Front: front, Admin: admin}, nil)
		if err != nil {
			t.Errorf("%s: %v", tt.front, err)
			continue
		}
		if r.ID() != tt.wantID {
			t.Errorf("%s: ID %q, want %q", tt.front, r.ID(), tt.wantID)
		}
	}
	// On every address: Consul takes the node's address; the check URL is
	// the admin listener's.
	front, _ := net.ResolveTCPAddr("tcp", "0.0.0.0:8080")
	if _, err := newRegistrar(c, discovery.Registration{}, Options{Front: front}, nil); err == nil {
		t.Errorf("no admin listener: no error")
	}
	r, err := newRegistrar(c, discovery.Registration{ID: "gw1"}, Options{Front: front, Admin: admin}, nil)
	if err != nil || r.ID() != "gw1" {
		t.Errorf("0.0.0.0 front: %v, %v", r, err)
	}
	if url, _ := discovery.CheckURL(admin.Addr().String()); url != "http://127.0.0.1:"+adminPort+"/healthz" {
		t.Errorf("check URL %q", url)
	}
}
