package gateway

// spool.go prepares a request's body for the backend. A body of known
// length is streamed as the client sends it; a body of unknown length is
// spooled, in memory up to BodyMemoryBytes and then in a temporary file, so
// that FPM gets its CONTENT_LENGTH. A spooled body can be sent again for a
// retry; a streamed one only while nothing of it has been read.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// errTooLarge reports a body over MaxBodyBytes.
var errTooLarge = errors.New("gateway: request body too large")

// reqBody is a request body as sent to backends. Exactly one of stream, mem
// and file is set.
type reqBody struct {
	size   int64
	stream *streamBody   // read once, from the client, while the backend answers
	mem    *bytes.Buffer // spooled in memory, from memPool
	file   *os.File      // spooled to an unlinked temporary file
}

// readBody returns r's body as it will be sent, or nil if there is none. A
// body over the pool's MaxBodyBytes is errTooLarge before any of it is read
// when its length is known, and as soon as the spool passes the limit when
// it is not.
func (p *pool) readBody(r *http.Request) (*reqBody, error) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 {
		return nil, nil
	}
	if r.ContentLength > 0 {
		if r.ContentLength > p.cfg.MaxBodyBytes {
			return nil, errTooLarge
		}
		return &reqBody{size: r.ContentLength, stream: &streamBody{r: r.Body}}, nil
	}
	return spool(r.Body, p.cfg.BodyMemoryBytes, p.cfg.MaxBodyBytes, p.cfg.SpoolDir)
}

// memPool holds the buffers of bodies spooled in memory.
var memPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxPooledMem bounds the buffers kept in memPool, so that one large body
// does not pin its memory for good.
const maxPooledMem = 4 << 20

// spool reads src to its end: up to memMax bytes in memory, the rest in a
// temporary file in dir (os.TempDir() if empty). It returns errTooLarge once
// more than max bytes arrive, without reading further.
func spool(src io.Reader, memMax, max int64, dir string) (*reqBody, error) {
	memMax = min(memMax, max)
	buf := memPool.Get().(*bytes.Buffer)
	buf.Reset()
	if _, err := buf.ReadFrom(io.LimitReader(src, memMax+1)); err != nil {
		putMem(buf)
		return nil, fmt.Errorf("gateway: read request body: %w", err)
	}
	if int64(buf.Len()) <= memMax {
		return &reqBody{size: int64(buf.Len()), mem: buf}, nil
	}
	if int64(buf.Len()) > max {
		putMem(buf)
		return nil, errTooLarge
	}
	f, err := os.CreateTemp(dir, "fcgigate-body-*")
	if err != nil {
		putMem(buf)
		return nil, fmt.Errorf("gateway: spool request body: %w", err)
	}
	// Unlink it at once: the descriptor keeps the data for as long as
	// the request needs it, and nothing is left behind, even by a crash.
	os.Remove(f.Name())
	n, err := f.Write(buf.Bytes())
	putMem(buf)
	if err == nil {
		var m int64
		m, err = io.Copy(f, io.LimitReader(src, max-int64(n)+1))
		n += int(m)
		if err != nil {
			err = fmt.Errorf("gateway: read request body: %w", err)
		}
	} else {
		err = fmt.Errorf("gateway: spool request body: %w", err)
	}
	if err == nil && int64(n) > max {
		err = errTooLarge
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return &reqBody{size: int64(n), file: f}, nil
}

func putMem(b *bytes.Buffer) {
	if b.Cap() <= maxPooledMem {
		b.Reset()
		memPool.Put(b)
	}
}

// contentLength returns CONTENT_LENGTH: the size of the body, "0" for a
// request that declared an empty one, and "" for one without, as nginx's
// $content_length.
func (b *reqBody) contentLength(r *http.Request) string {
	if b != nil {
		return strconv.FormatInt(b.size, 10)
	}
	if _, ok := r.Header["Content-Length"]; ok || len(r.TransferEncoding) > 0 {
		return "0"
	}
	return ""
}

// reader returns a reader of the whole body for one attempt: the stream
// itself, or a fresh reader of the spool, so that the attempts before
// cannot have moved it.
func (b *reqBody) reader() io.Reader {
	switch {
	case b.stream != nil:
		return b.stream
	case b.mem != nil:
		return bytes.NewReader(b.mem.Bytes())
	default:
		return io.NewSectionReader(b.file, 0, b.size)
	}
}

// resendable reports whether the body can be sent again. It is called once
// the last attempt's body writer has stopped.
func (b *reqBody) resendable() bool {
	return b == nil || b.stream == nil || !b.stream.touched.Load()
}

// streaming reports a streamed body of which the client has not yet sent
// all.
func (b *reqBody) streaming() bool {
	return b != nil && b.stream != nil && !b.stream.done.Load()
}

// abandon ends a streamed body that the client is still sending, once the
// response no longer needs it: the body writer may be blocked reading from
// the client, and Response.Close waits for it. The body cannot be sent again.
func (b *reqBody) abandon(rc *http.ResponseController) {
	if !b.streaming() {
		return
	}
	b.stream.touched.Store(true)
	switch {
	case b.stream.abandon != nil:
		b.stream.abandon()
	case rc != nil:
		rc.SetReadDeadline(aLongTimeAgo)
	}
}

// aLongTimeAgo is a deadline in the past, which ends a pending read at once.
var aLongTimeAgo = time.Unix(1, 0)

// close releases the spool.
func (b *reqBody) close() {
	if b == nil {
		return
	}
	if b.mem != nil {
		putMem(b.mem)
		b.mem = nil
	}
	if b.file != nil {
		b.file.Close()
		b.file = nil
	}
}

// streamBody is a client's body streamed to the backend by the fastcgi
// client's body writer, which reads it concurrently with the handler.
type streamBody struct {
	r io.Reader
	// touched is set once a Read has returned data: the body cannot be
	// sent again.
	touched atomic.Bool
	// done is set once the whole body has been read.
	done atomic.Bool
	// cancel, if set, is called when reading from the client fails: the
	// backend would otherwise wait for the rest of the body, and the
	// gateway for an answer, until a timeout.
	cancel context.CancelFunc
	// abandon, if set, ends a pending Read at once; it is how abandon
	// stops the FastCGI front's STDIN. Without it, the HTTP connection's
	// read deadline does.
	abandon func()
}

func (s *streamBody) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 {
		s.touched.Store(true)
	}
	switch {
	case err == io.EOF:
		s.done.Store(true)
	case err != nil && s.cancel != nil:
		s.cancel()
	}
	return n, err
}
