package lab

import (
	"net"
	"strings"
	"testing"
)

// Three sockets of a listener on 127.0.0.2:40507 with 25 connections
// waiting (0x19), its server side of one connection and the client side
// of two, and a second listener on 127.0.0.1:8080.
const procNetTCP = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0200007F:9E3B 00000000:0000 0A 00000000:00000019 00:00000000 00000000     0        0 123 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 124 1 0000000000000000 100 0 0 10 0
   2: 0200007F:9E3B 0100007F:D2A4 01 00000000:00000000 00:00000000 00000000     0        0 125 1 0000000000000000 20 4 30 10 -1
   3: 0100007F:D2A4 0200007F:9E3B 01 00000000:00000000 00:00000000 00000000     0        0 126 1 0000000000000000 20 4 30 10 -1
   4: 0100007F:D2A6 0200007F:9E3B 01 00000000:00000000 00:00000000 00000000     0        0 127 1 0000000000000000 20 4 30 10 -1
   5: 0100007F:D2A8 0200007F:9E3B 06 00000000:00000000 00:00000000 00000000     0        0 0 1 0000000000000000 20 4 30 10 -1
`

func TestParseListenerStats(t *testing.T) {
	tests := []struct {
		local string
		want  ListenerStats
		err   bool
	}{
		{local: "0200007F:9E3B", want: ListenerStats{Conns: 2, AcceptQueue: 25}},
		{local: "0100007F:1F90", want: ListenerStats{}},
		{local: "0300007F:9E3B", err: true}, // no such listener
	}
	for _, tt := range tests {
		t.Run(tt.local, func(t *testing.T) {
			got, err := parseListenerStats(strings.NewReader(procNetTCP), tt.local)
			if (err != nil) != tt.err || got != tt.want {
				t.Fatalf("parseListenerStats = %+v, %v; want %+v, err %v", got, err, tt.want, tt.err)
			}
		})
	}
}

func TestProcNetAddr(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.2:40507": "0200007F:9E3B",
		"127.0.1.1:8080":  "0101007F:1F90",
	} {
		if got, err := procNetAddr(addr); err != nil || got != want {
			t.Errorf("procNetAddr(%q) = %q, %v; want %q", addr, got, err, want)
		}
	}
}

// TestReadListenerStatsLive listens on a loopback port of its own, which
// needs no server.
func TestReadListenerStatsLive(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The kernel has established the connection; nobody accepted it.
	want := ListenerStats{Conns: 1, AcceptQueue: 1}
	if got, err := ReadListenerStats(ln.Addr().String()); err != nil || got != want {
		t.Fatalf("ReadListenerStats = %+v, %v; want %+v", got, err, want)
	}
}
