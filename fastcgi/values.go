package fastcgi

// values.go asks a backend for its limits with FCGI_GET_VALUES.

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"
)

// Names of the variables FCGI_GET_VALUES asks for.
const (
	MaxConns  = "FCGI_MAX_CONNS"  // connections the backend accepts at once
	MaxReqs   = "FCGI_MAX_REQS"   // requests it serves at once
	MpxsConns = "FCGI_MPXS_CONNS" // "1" if it multiplexes connections
)

// GetValues sends FCGI_GET_VALUES for names on nc and returns the variables
// the backend knows. PHP-FPM answers FCGI_MAX_CONNS and FCGI_MAX_REQS with
// its pm.max_children, and then closes the connection.
func GetValues(ctx context.Context, nc net.Conn, names []string) (map[string]string, error) {
	if dl, ok := ctx.Deadline(); ok {
		nc.SetDeadline(dl)
		defer nc.SetDeadline(time.Time{})
	}
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	var q []byte
	for _, n := range names {
		q = AppendParam(q, n, "")
	}
	if _, err := nc.Write(appendRecordID(nil, typeGetValues, 0, q)); err != nil {
		return nil, fmt.Errorf("fastcgi: get values from %s: %w", nc.RemoteAddr(), err)
	}
	rr := &recordReader{r: nc}
	for {
		rec, err := rr.next()
		if err != nil {
			return nil, fmt.Errorf("fastcgi: get values from %s: %w", nc.RemoteAddr(), err)
		}
		switch rec.h.Type {
		case typeGetValuesResult:
			ps, err := DecodeParams(rec.Content)
			if err != nil {
				return nil, err
			}
			m := make(map[string]string, len(ps))
			for _, p := range ps {
				m[p.Name] = p.Value
			}
			return m, nil
		case typeUnknownType:
			return nil, fmt.Errorf("fastcgi: %s does not know FCGI_GET_VALUES", nc.RemoteAddr())
		}
		// Anything else is not for us; keep reading.
	}
}

// maxConnsOf returns the positive FCGI_MAX_CONNS in vs, or 0.
func maxConnsOf(vs map[string]string) int {
	n, err := strconv.Atoi(vs[MaxConns])
	if err != nil || n <= 0 {
		return 0
	}
	return n
}
