package gateway

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestSpool(t *testing.T) {
	tests := []struct {
		name         string
		size         int
		memMax, max  int64
		wantMem      bool
		wantFile     bool
		wantTooLarge bool
	}{
		{"empty", 0, 16, 100, true, false, false},
		{"fits in memory", 16, 16, 100, true, false, false},
		{"spills to a file", 17, 16, 100, false, true, false},
		{"exactly the limit", 100, 16, 100, false, true, false},
		{"one over the limit", 101, 16, 100, false, false, true},
		{"far over the limit", 10 << 20, 16, 100, false, false, true},
		{"limit below memory", 11, 16, 10, false, false, true},
		{"large file", 300 << 10, 1 << 10, 1 << 20, false, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			data := bytes.Repeat([]byte("0123456789abcdef"), tt.size/16+1)[:tt.size]
			// One byte per Read, so that limits are hit mid-stream.
			src := iotest.HalfReader(bytes.NewReader(data))
			b, err := spool(src, tt.memMax, tt.max, dir)
			if tt.wantTooLarge {
				if !errors.Is(err, errTooLarge) {
					t.Fatalf("err %v, want errTooLarge", err)
				}
				if entries, _ := os.ReadDir(dir); len(entries) != 0 {
					t.Errorf("spool dir holds %d files", len(entries))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer b.close()
			if (b.mem != nil) != tt.wantMem || (b.file != nil) != tt.wantFile {
				t.Errorf("mem %v file %v, want %v %v", b.mem != nil, b.file != nil, tt.wantMem, tt.wantFile)
			}
			if b.size != int64(tt.size) || b.contentLength(nil) != strconv.Itoa(tt.size) {
				t.Errorf("size %d, CONTENT_LENGTH %q; want %d", b.size, b.contentLength(nil), tt.size)
			}
			// The file is unlinked at once: nothing to leave behind.
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Errorf("spool dir holds %d files while the body is open", len(entries))
			}
			// Replayable: every attempt reads the whole body.
			for attempt := 1; attempt <= 2; attempt++ {
				got, err := io.ReadAll(b.reader())
				if err != nil || !bytes.Equal(got, data) {
					t.Errorf("attempt %d: read %d bytes, %v; want %d", attempt, len(got), err, len(data))
				}
			}
			if !b.resendable() {
				t.Error("spooled body not resendable")
			}
		})
	}
}

// TestBodies sends bodies through the gateway to net/http/fcgi, which
// builds its request from CONTENT_LENGTH, and checks what arrives.
func TestBodies(t *testing.T) {
	leakCheck(t)
	addr := startFCGI(t, func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		sum := sha256.Sum256(b)
		fmt.Fprintf(w, "%d %d %s %v", r.ContentLength, len(b), hex.EncodeToString(sum[:8]), err)
	})
	pc := testPool(addr)
	pc.MaxBodyBytes = 1 << 20
	pc.BodyMemoryBytes = 1 << 10
	pc.SpoolDir = t.TempDir()
	tg := startGateway(t, pc, nil)

	for _, tt := range []struct {
		name    string
		size    int
		chunked bool
	}{
		{"known length, one record", 1000, false},
		{"known length, many records", 200 << 10, false},
		{"chunked, in memory", 1000, true},
		{"chunked, spooled to a file", 300 << 10, true},
		{"chunked, empty", 0, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data := bytes.Repeat([]byte("fcgigate"), tt.size/8+1)[:tt.size]
			var body io.Reader = bytes.NewReader(data)
			if tt.chunked {
				body = io.MultiReader(body) // hides the length: chunked
			}
			req, _ := http.NewRequest("POST", tg.url+"/upload.php", body)
			resp, got := tg.do(t, req)
			sum := sha256.Sum256(data)
			want := fmt.Sprintf("%d %d %s <nil>", tt.size, tt.size, hex.EncodeToString(sum[:8]))
			if resp.StatusCode != 200 || got != want {
				t.Errorf("got %d %q, want %q", resp.StatusCode, got, want)
			}
			if entries, _ := os.ReadDir(pc.SpoolDir); len(entries) != 0 {
				t.Errorf("spool dir holds %d files", len(entries))
			}
		})
	}
}

// TestTooLarge checks the 413s: a declared length over the limit is refused
// before anything is read, a chunked body as soon as it passes the limit;
// and neither reaches a backend.
func TestTooLarge(t *testing.T) {
	leakCheck(t)
	f := startFake(t, echo)
	pc := testPool(f.addr)
	pc.MaxBodyBytes = 100
	pc.BodyMemoryBytes = 10
	tg := startGateway(t, pc, nil)
	for _, tt := range []struct {
		name    string
		size    int
		chunked bool
		status  int
	}{
		{"known length at the limit", 100, false, 200},
		{"known length over", 101, false, 413},
		{"chunked at the limit", 100, true, 200},
		{"chunked over", 101, true, 413},
		{"chunked far over", 1 << 20, true, 413},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f.requests() // forget earlier ones
			before := f.accepted.Load()
			var body io.Reader = strings.NewReader(strings.Repeat("x", tt.size))
			if tt.chunked {
				body = io.MultiReader(body)
			}
			req, _ := http.NewRequest("POST", tg.url+"/upload.php", body)
			resp, err := tg.client.Do(req)
			if err != nil {
				// The gateway may close while a large body is still
				// being sent; the client may see that first.
				if tt.status == 413 {
					return
				}
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.status == 413 {
				if f.accepted.Load() != before || len(f.requests()) != 0 {
					t.Error("the backend was contacted")
				}
				if !resp.Close {
					t.Error("413 without Connection: close")
				}
			}
		})
	}
}

// TestUploadAbandoned checks that a client that goes away in the middle of
// a streamed body does not leave the backend waiting for the rest: the
// gateway closes the backend connection at once.
func TestUploadAbandoned(t *testing.T) {
	leakCheck(t)
	gotBody := make(chan struct{})
	closed := make(chan bool, 1)
	f := startFake(t, func(c *fakeConn) {
		// Read up to the first STDIN content; the body never ends.
		for {
			typ, b, err := c.readRecord()
			if err != nil {
				close(gotBody)
				closed <- false
				return
			}
			if typ == recStdin && len(b) > 0 {
				break
			}
		}
		close(gotBody)
		closed <- c.closedByPeer()
	})
	tg := startGateway(t, testPool(f.addr), nil)
	c, err := net.Dial("tcp", tg.addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(safety))
	io.WriteString(c, "POST /upload.php HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nonly ten b")
	<-gotBody // the body is streaming to the backend: go away
	c.Close()
	if !<-closed {
		t.Error("the backend connection was not closed")
	}
	e := waitLog(t, tg, "client went away", "request failed")
	if e["status"] != float64(statusClientClosed) || e["level"] != "DEBUG" {
		t.Errorf("logged %v, want status 499 at DEBUG", e)
	}
}

// waitLog polls the gateway's log until an entry with one of msgs appears.
func waitLog(t *testing.T, tg *testGateway, msgs ...string) map[string]any {
	t.Helper()
	deadline := time.Now().Add(safety)
	for delay := time.Millisecond; ; delay = min(2*delay, 50*time.Millisecond) {
		for _, m := range msgs {
			if es := tg.logs.find(m); len(es) > 0 {
				return es[0]
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log entry %q", msgs)
		}
		time.Sleep(delay)
	}
}

// TestAnswerBeforeBody: PHP may answer without reading the body. The
// client must get the answer while it is still sending, and the handler
// must not wait for the rest of the body.
func TestAnswerBeforeBody(t *testing.T) {
	leakCheck(t)
	f := startFake(t, func(c *fakeConn) {
		for {
			typ, _, err := c.readRecord()
			if err != nil {
				return
			}
			if typ == recStdin {
				break
			}
		}
		c.write(stdout("Status: 403 Forbidden\r\nContent-Type: text/plain\r\n\r\nno uploads"), endRequest(0))
		io.Copy(io.Discard, c.br)
	})
	tg := startGateway(t, testPool(f.addr), nil)
	c, err := net.Dial("tcp", tg.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(safety))
	io.WriteString(c, "POST /upload.php HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nthe first bytes of a large body")
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != 403 || string(b) != "no uploads" || err != nil {
		t.Errorf("got %d %q %v", resp.StatusCode, b, err)
	}
}
