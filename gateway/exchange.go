package gateway

// exchange.go holds the per-request state of a FastCGI exchange, reused
// across requests through a sync.Pool: the params, the fastcgi.Request, the
// reader of the response and the copy buffer.

import (
	"bufio"
	"bytes"
	"context"
	"log/slog"
	"sync"

	"github.com/fcgigate/fcgigate/fastcgi"
)

// exchange is one request's reusable state. It belongs to one handler at a
// time.
type exchange struct {
	log            *slog.Logger
	id             string // the request id
	backend        string // the backend of the current attempt, for the log
	scriptFilename string // as sent, for the log

	params []fastcgi.Param
	req    fastcgi.Request
	br     *bufio.Reader // reads the response's STDOUT
	// buf copies the body. It is larger than br's buffer, so reads bypass
	// it, and holds a 64 KiB answer with room to spare, so that one that
	// has arrived whole is sent in one write with a Content-Length.
	buf []byte

	stderr func([]byte) // logStderr, bound once per exchange
}

// copyBufSize is the size of exchange.buf: what one write to the client may
// carry, and the largest answer that gets a Content-Length of the gateway's.
const copyBufSize = 128 << 10

var exchangePool = sync.Pool{New: func() any {
	ex := &exchange{
		params: make([]fastcgi.Param, 0, 64),
		br:     bufio.NewReaderSize(nil, 8<<10),
		buf:    make([]byte, copyBufSize),
	}
	ex.stderr = ex.logStderr
	return ex
}}

func getExchange(log *slog.Logger, id string) *exchange {
	ex := exchangePool.Get().(*exchange)
	ex.log, ex.id = log, id
	return ex
}

func putExchange(ex *exchange) {
	clear(ex.params)
	ex.params = ex.params[:0]
	ex.req = fastcgi.Request{}
	ex.br.Reset(nil)
	ex.log, ex.id, ex.backend, ex.scriptFilename = nil, "", "", ""
	exchangePool.Put(ex)
}

// logStderr logs each line PHP wrote to STDERR, at warn, with the request
// id. It is the Request's Stderr hook, called on the handler's goroutine.
func (ex *exchange) logStderr(p []byte) {
	for len(p) > 0 {
		line := p
		if i := bytes.IndexByte(p, '\n'); i >= 0 {
			line, p = p[:i], p[i+1:]
		} else {
			p = nil
		}
		line = bytes.TrimRight(line, "\r")
		if len(line) == 0 {
			continue
		}
		ex.log.LogAttrs(context.Background(), slog.LevelWarn, "php stderr",
			slog.String("request_id", ex.id),
			slog.String("backend", ex.backend),
			slog.String("script_filename", ex.scriptFilename),
			slog.String("line", string(line)))
	}
}
