package consultest

import (
	"context"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// TestAgent starts an agent, registers a service, kills the agent and
// starts it again: the service is gone, as after a crash in -dev mode.
func TestAgent(t *testing.T) {
	a := Start(t)
	a.Register(&api.AgentServiceRegistration{ID: "s1", Name: "php", Address: "127.0.0.2", Port: 9000,
		Check: &api.AgentServiceCheck{CheckID: "s1-ttl", TTL: "10m", Status: api.HealthPassing}})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if es, err := a.Passing(ctx, "php"); err != nil || len(es) != 1 || es[0].Service.Port != 9000 {
		t.Fatalf("passing instances %v, %v; want the one registered", es, err)
	}
	a.SetTTL("s1-ttl", api.HealthCritical, "down")
	if es, err := a.Passing(ctx, "php"); err != nil || len(es) != 0 {
		t.Errorf("passing instances %v, %v after the check failed; want none", es, err)
	}
	a.Kill()
	if a.Running() {
		t.Fatal("running after Kill")
	}
	a.Restart()
	if es, err := a.Passing(ctx, "php"); err != nil || len(es) != 0 {
		t.Errorf("passing instances %v, %v after a restart; want none", es, err)
	}
}
