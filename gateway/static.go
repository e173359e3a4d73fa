package gateway

// static.go serves the files under StaticRoot that are not PHP, through an
// os.Root, so that neither a path nor a symbolic link can lead out of it.

import (
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
)

// serveStatic serves file, a path under StaticRoot that resolve found to be
// a regular file that may be shown. It answers GET and HEAD, with ranges
// and conditional requests through http.ServeContent, and an ETag in
// nginx's form.
func (g *Gateway) serveStatic(w http.ResponseWriter, r *http.Request, p *pool, file string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header()["Allow"] = []string{"GET, HEAD"}
		writeError(w, http.StatusMethodNotAllowed)
		return
	}
	// The root is opened for each request rather than once, so that a
	// deploy that swaps a symbolic link to the docroot takes effect.
	root, err := os.OpenRoot(p.cfg.StaticRoot)
	if err != nil {
		g.log.LogAttrs(r.Context(), slog.LevelError, "cannot open static root",
			slog.String("pool", p.cfg.Name), slog.Any("err", err))
		writeError(w, http.StatusInternalServerError)
		return
	}
	defer root.Close()
	f, err := root.Open(filepath.FromSlash(file))
	if err != nil {
		// Gone since resolve saw it, or a link out of the root.
		writeError(w, http.StatusNotFound)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		writeError(w, http.StatusNotFound)
		return
	}
	w.Header()["Etag"] = []string{etag(fi)}
	http.ServeContent(w, r, fi.Name(), fi.ModTime(), f)
}

// etag is nginx's ETag: the modification time and size in hex.
func etag(fi os.FileInfo) string {
	b := make([]byte, 0, 40)
	b = append(b, '"')
	b = strconv.AppendInt(b, fi.ModTime().Unix(), 16)
	b = append(b, '-')
	b = strconv.AppendInt(b, fi.Size(), 16)
	b = append(b, '"')
	return string(b)
}
