// relay.go starts nginx's stream module as a bare TCP relay, the reference
// hop of the Apache scenario.

package lab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// RelayOptions configures one TCP relay.
type RelayOptions struct {
	Listen  string // "127.0.0.x:port"; required
	Backend string // where connections are relayed; required
	// Dir receives nginx.conf and the error log. Required.
	Dir string
	// Templates holds relay.conf.tmpl (see TemplatesDir). Required.
	Templates string
	// CPUs pins the relay's master and workers to these CPUs, a list as
	// taskset -c takes it ("0", "0-1"). Empty: no pinning, any CPU.
	CPUs string
}

// Workers is the relay's worker_processes: one per CPU it is pinned to, or
// "auto" (one per core) when it is not pinned. nginx's auto counts the
// machine's CPUs, not the ones it may run on, so pinned it would start
// more workers than it has cores.
func (o RelayOptions) Workers() string {
	if o.CPUs == "" {
		return "auto"
	}
	return strconv.Itoa(cpuCount(o.CPUs))
}

// relayModule is where Debian's libnginx-mod-stream (a dependency of its
// nginx package) puts the stream module.
const relayModule = "/usr/lib/nginx/modules/ngx_stream_module.so"

// StartRelay starts nginx with only a stream server relaying o.Listen to
// o.Backend, and returns once o.Listen accepts connections.
func StartRelay(ctx context.Context, o RelayOptions) (*Nginx, error) {
	for _, a := range []string{o.Listen, o.Backend} {
		if err := checkLoopback(a); err != nil {
			return nil, fmt.Errorf("start relay: %w", err)
		}
	}
	if o.Dir == "" || o.Templates == "" {
		return nil, fmt.Errorf("start relay: Dir and Templates are required")
	}
	if _, err := os.Stat(relayModule); err != nil {
		return nil, fmt.Errorf("start relay: nginx's stream module: %w (apt-get install libnginx-mod-stream)", err)
	}
	bin, err := NginxBinary()
	if err != nil {
		return nil, fmt.Errorf("start relay: %w", err)
	}
	conf := filepath.Join(o.Dir, "nginx.conf")
	if err := renderTemplate(o.Templates, "relay.conf.tmpl", conf, o); err != nil {
		return nil, fmt.Errorf("start relay: %w", err)
	}
	return startNginxConf(ctx, bin, o.Dir, conf, o.Listen, o.CPUs)
}
