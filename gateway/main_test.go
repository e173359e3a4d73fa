package gateway

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the run if any test leaves a goroutine behind: a
// connection, a body writer or a server loop that nobody stopped.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
