// Package syncbuf holds Buffer, a bytes.Buffer safe for concurrent use: the
// log sink that tests read while the servers under test write to it.
package syncbuf

import (
	"bytes"
	"sync"
)

// Buffer collects writes from any goroutine. The zero value is ready.
type Buffer struct {
	mu sync.Mutex // protects b
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what has been written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
