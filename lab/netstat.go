// netstat.go reads, from /proc/net/tcp, how busy a TCP listener is: the
// connections open to it and how many of them wait in its accept queue.
// For php-fpm that tells whether every connection a proxy holds has a
// worker.

package lab

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
)

// TCP states as /proc/net/tcp writes them in its st column.
const (
	tcpEstablished = "01"
	tcpListen      = "0A"
)

// ListenerStats describes a listener on a loopback address at one moment.
type ListenerStats struct {
	// Conns is the number of established connections to it, counted from
	// the clients' side: the connections the proxies hold open, accepted
	// or not.
	Conns int
	// AcceptQueue is the number of connections the kernel has established
	// that the server has not accepted yet (the listener's rx_queue).
	AcceptQueue int
}

// procNetAddr renders an IPv4 "ip:port" as /proc/net/tcp writes it: the
// address as a host-order (little-endian on the machines we run on)
// 32-bit hex number, the port as big hex, e.g. "0200007F:9E3B" for
// 127.0.0.2:40507.
func procNetAddr(addr string) (string, error) {
	ap, err := net.ResolveTCPAddr("tcp4", addr)
	if err != nil {
		return "", err
	}
	ip := ap.IP.To4()
	if ip == nil {
		return "", fmt.Errorf("%s: not IPv4", addr)
	}
	le := binary.LittleEndian.Uint32(ip)
	var be [4]byte
	binary.BigEndian.PutUint32(be[:], le)
	return fmt.Sprintf("%s:%04X", strings.ToUpper(hex.EncodeToString(be[:])), ap.Port), nil
}

// parseListenerStats reads a /proc/net/tcp table for the listener on
// local (in procNetAddr form).
func parseListenerStats(r io.Reader, local string) (ListenerStats, error) {
	var st ListenerStats
	found := false
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		// sl local_address rem_address st tx_queue:rx_queue ...
		f := bytes.Fields(sc.Bytes())
		if len(f) < 5 {
			continue
		}
		switch {
		case string(f[1]) == local && string(f[3]) == tcpListen:
			_, rx, ok := bytes.Cut(f[4], []byte{':'})
			if !ok {
				return ListenerStats{}, fmt.Errorf("/proc/net/tcp: bad queue field %q", f[4])
			}
			n, err := strconv.ParseUint(string(rx), 16, 32)
			if err != nil {
				return ListenerStats{}, fmt.Errorf("/proc/net/tcp: bad rx_queue %q: %w", rx, err)
			}
			st.AcceptQueue, found = int(n), true
		case string(f[2]) == local && string(f[3]) == tcpEstablished:
			st.Conns++
		}
	}
	if err := sc.Err(); err != nil {
		return ListenerStats{}, err
	}
	if !found {
		return ListenerStats{}, fmt.Errorf("/proc/net/tcp: no listener on %s", local)
	}
	return st, nil
}

// ReadListenerStats returns the stats of the TCP listener on addr
// ("127.0.0.2:9000") in this network namespace.
func ReadListenerStats(addr string) (ListenerStats, error) {
	local, err := procNetAddr(addr)
	if err != nil {
		return ListenerStats{}, err
	}
	f, err := os.Open("/proc/net/tcp")
	if err != nil {
		return ListenerStats{}, err
	}
	defer f.Close()
	return parseListenerStats(f, local)
}
