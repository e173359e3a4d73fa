//go:build tools

// Package tools pins the Consul agent that the tests and the demo run. It is
// a module of its own so that Consul's dependencies never reach fcgigate's
// go.mod. Build with `make consul`, which writes bin/consul.
package tools

import _ "github.com/hashicorp/consul"
