package gateway

// admin.go holds the handler of the admin listener, which is separate from
// the HTTP front so that the front's paths all belong to the application.

import (
	"io"
	"net/http"
)

// AdminHandler returns the handler of the admin listener. It serves
//
//	GET /healthz   200 "ok" while ready reports true, else 503 "stopping"
//
// and 404 for any other path. ready is nil for always; cmd passes a
// function that turns false once the gateway starts to drain, so that
// Consul's check of /healthz and any load balancer in front stop sending
// traffic before the front closes.
func (g *Gateway) AdminHandler(ready func() bool) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Cache-Control", "no-store")
		if ready != nil && !ready() {
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "stopping\n")
			return
		}
		io.WriteString(w, "ok\n")
	})
	return mux
}
