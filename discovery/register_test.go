package discovery

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// TestRegistrar: registers with an HTTP check, retries while the agent
// fails, registers again when the agent has lost the registration, and
// deregisters when its context ends.
func TestRegistrar(t *testing.T) {
	f := newFakeConsul(t)
	c, err := NewClient(Config{Address: f.addr(), Token: "reg-token"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	log, logs := newLog()
	r, err := NewRegistrar(c, Registration{
		Address:  "127.0.1.1",
		Port:     8080,
		Tags:     []string{"edge"},
		CheckURL: "http://127.0.1.1:8081/healthz",
	}, log)
	if err != nil {
		t.Fatal(err)
	}
	if r.ID() != "fcgigate-127.0.1.1-8080" {
		t.Errorf("ID %q", r.ID())
	}
	clk := newFakeClock()
	r.clk = clk
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }() // ends when ctx is cancelled

	register := func(status int) {
		t.Helper()
		req := f.next(t)
		if req.Method != "PUT" || req.Path != "/v1/agent/service/register" || req.Query.Get("replace-existing-checks") != "true" || req.Token != "reg-token" {
			t.Fatalf("request %s %s %v token %q; want the registration", req.Method, req.Path, req.Query, req.Token)
		}
		var reg struct {
			ID, Name, Address string
			Port              int
			Tags              []string
			Check             struct{ HTTP, Method, Interval, Timeout, DeregisterCriticalServiceAfter string }
		}
		if err := json.Unmarshal([]byte(req.Body), &reg); err != nil {
			t.Fatalf("registration %q: %v", req.Body, err)
		}
		ck := reg.Check
		if reg.ID != "fcgigate-127.0.1.1-8080" || reg.Name != "fcgigate" || reg.Address != "127.0.1.1" || reg.Port != 8080 ||
			len(reg.Tags) != 1 || ck.HTTP != "http://127.0.1.1:8081/healthz" || ck.Method != "GET" ||
			ck.Interval != "10s" || ck.Timeout != "2s" || ck.DeregisterCriticalServiceAfter != "1m0s" {
			t.Errorf("registration %s", req.Body)
		}
		f.answer(t, response{status: status})
	}
	read := func(hash, newHash string, status int) {
		t.Helper()
		req := f.next(t)
		if req.Method != "GET" || req.Path != "/v1/agent/service/fcgigate-127.0.1.1-8080" || req.Query.Get("hash") != hash {
			t.Fatalf("request %s %s %v; want a read of the registration on hash %q", req.Method, req.Path, req.Query, hash)
		}
		body := `{"ID":"fcgigate-127.0.1.1-8080","Service":"fcgigate"}`
		if status == 404 {
			body = "unknown service ID"
		}
		f.answer(t, response{status: status, hash: newHash, body: body})
	}

	register(500) // the agent fails: retried
	register(200)
	read("", "h1", 200)
	read("h1", "h1", 200) // the wait ended unchanged
	read("h1", "", 404)   // the agent restarted without its data
	register(200)
	read("", "h2", 200)
	req := f.next(t) // blocks on h2 until the context ends
	if req.Query.Get("hash") != "h2" {
		t.Errorf("blocking read on hash %q, want h2", req.Query.Get("hash"))
	}
	cancel()
	req = f.next(t)
	if req.Method != "PUT" || req.Path != "/v1/agent/service/deregister/fcgigate-127.0.1.1-8080" {
		t.Errorf("request %s %s; want the deregistration", req.Method, req.Path)
	}
	f.answer(t, response{})
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("Run did not return")
	}
	for _, line := range []string{"Consul registration failed: retrying", "registered in Consul ", "registering again", "registered in Consul again", "deregistered from Consul"} {
		if n := logs.count(line); n != 1 {
			t.Errorf("%d log lines with %q, want 1", n, line)
		}
	}
	if strings.Contains(logs.String(), "reg-token") {
		t.Errorf("token in the log:\n%s", logs)
	}
	if got := clk.takeSleeps(DefaultMinInterval); len(got) != 1 || got[0] != 187500*time.Microsecond {
		t.Errorf("backoff %v, want one of 187.5ms", got)
	}
}

func TestRegistrationValidate(t *testing.T) {
	c, err := NewClient(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ok := Registration{Port: 8080, CheckURL: "http://127.0.0.1:8081/healthz"}
	tests := []struct {
		name string
		edit func(*Registration)
		want string
	}{
		{"ok", func(*Registration) {}, ""},
		{"no port", func(r *Registration) { r.Port = 0 }, "port 0"},
		{"no check URL", func(r *Registration) { r.CheckURL = "" }, "check URL"},
		{"bad name", func(r *Registration) { r.Name = "a/b" }, "service:"},
		{"short deregister", func(r *Registration) { r.DeregisterCriticalAfter = 10 * time.Second }, "deregister_critical_after"},
	}
	for _, tt := range tests {
		r := ok
		tt.edit(&r)
		_, err := NewRegistrar(c, r, nil)
		if (err == nil) != (tt.want == "") || err != nil && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestCheckURL(t *testing.T) {
	for in, want := range map[string]string{
		"127.0.0.1:8081": "http://127.0.0.1:8081/healthz",
		":8081":          "http://127.0.0.1:8081/healthz",
		"0.0.0.0:8081":   "http://127.0.0.1:8081/healthz",
		"[::]:8081":      "http://[::1]:8081/healthz",
		"10.1.2.3:9":     "http://10.1.2.3:9/healthz",
	} {
		if got, err := CheckURL(in); got != want || err != nil {
			t.Errorf("CheckURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}
