package test

import (
	"fmt"
	"testing"
	"time"

	"github.com/fcgigate/fcgigate/test/consultest"
)

// TestClusterJoinsThroughConsul: gateways with no seeds of their own
// register in Consul with their cluster member address, and find and join
// each other through it.
func TestClusterJoinsThroughConsul(t *testing.T) {
	consultest.Need(t)
	agent := consultest.Start(t)
	cs := newClusterSetup(t, 4)
	extra := func(n int) string {
		return fmt.Sprintf(`[consul]
address = %q
[admin]
listen = "127.0.1.%d:0"
[register]
enabled = true
check_interval = "500ms"
`, agent.HTTPAddr, n)
	}
	start := time.Now()
	for n := 1; n <= 3; n++ {
		cs.start(t, n, gwOptions{noSeeds: true, extra: extra(n)})
	}
	waitMembers(t, cs.gws, 30*time.Second)
	t.Logf("three gateways without seeds formed one cluster through Consul %v after the first started", time.Since(start).Round(time.Millisecond))
}
