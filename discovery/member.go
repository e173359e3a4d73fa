package discovery

// member.go defines Member and turns Consul's health entries into members,
// setting aside the entries that have no usable address.

import (
	"cmp"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/consul/api"
)

// Member is one backend of a pool.
type Member struct {
	// Addr is "host:port": the service's address, else its node's, with
	// the service's port.
	Addr string
	// Node is the Consul node the instance runs on; empty for a static
	// member.
	Node string
	// Tags and Meta are the service instance's; nil for a static member.
	Tags []string
	Meta map[string]string
}

// badEntry is a service entry left out of the member set, and why.
type badEntry struct {
	node, id, addr string
	reason         string
}

// key identifies the entry and its fault, so that each is logged once.
func (b badEntry) key() string {
	return b.reason + "\x00" + b.node + "\x00" + b.id + "\x00" + b.addr
}

// membersOf returns the members that entries list, sorted by address, and
// the entries left out. Entries are taken in the order of node name and
// service ID, so that which of two entries with the same address is kept
// does not depend on Consul's order.
func membersOf(entries []*api.ServiceEntry) ([]Member, []badEntry) {
	sorted := slices.Clone(entries)
	slices.SortStableFunc(sorted, func(a, b *api.ServiceEntry) int {
		return cmp.Or(cmp.Compare(nodeName(a), nodeName(b)), cmp.Compare(serviceID(a), serviceID(b)))
	})
	members := make([]Member, 0, len(sorted))
	var bad []badEntry
	owner := map[string]string{} // address -> "node/id" of the entry that has it
	for _, e := range sorted {
		m, reason := memberOf(e)
		if reason == "" {
			if first, dup := owner[m.Addr]; dup {
				reason = "duplicate address (also " + first + ")"
			} else {
				owner[m.Addr] = nodeName(e) + "/" + serviceID(e)
			}
		}
		if reason != "" {
			bad = append(bad, badEntry{node: nodeName(e), id: serviceID(e), addr: m.Addr, reason: reason})
			continue
		}
		members = append(members, m)
	}
	slices.SortFunc(members, func(a, b Member) int { return strings.Compare(a.Addr, b.Addr) })
	return members, bad
}

// memberOf returns the member e lists, or why it lists none. The member's
// Addr is set as far as it could be worked out, for the log.
func memberOf(e *api.ServiceEntry) (Member, string) {
	if e == nil || e.Service == nil {
		return Member{}, "no service in the entry"
	}
	s := e.Service
	host := strings.TrimSpace(s.Address)
	if host == "" && e.Node != nil {
		host = strings.TrimSpace(e.Node.Address)
	}
	m := Member{Node: nodeName(e), Tags: slices.Clone(s.Tags)}
	if len(s.Meta) > 0 {
		m.Meta = make(map[string]string, len(s.Meta))
		for k, v := range s.Meta {
			m.Meta[k] = v
		}
	}
	if host != "" {
		m.Addr = net.JoinHostPort(host, strconv.Itoa(s.Port))
	}
	switch {
	case host == "":
		return m, "empty address"
	case strings.Contains(host, ":") && net.ParseIP(host) == nil,
		strings.ContainsAny(host, "/ \t"):
		return m, "address is not a host name or IP address"
	case s.Port == 0:
		return m, "port 0"
	case s.Port < 0 || s.Port > 65535:
		return m, "port out of range"
	}
	return m, ""
}

func nodeName(e *api.ServiceEntry) string {
	if e == nil || e.Node == nil {
		return ""
	}
	return e.Node.Node
}

func serviceID(e *api.ServiceEntry) string {
	if e == nil || e.Service == nil {
		return ""
	}
	return e.Service.ID
}

// Addrs returns the addresses of ms, in order.
func Addrs(ms []Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.Addr
	}
	return out
}
