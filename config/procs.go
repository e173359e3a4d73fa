package config

// procs.go reads [server] procs, the number of threads that run Go code at
// once (GOMAXPROCS).

import (
	"strconv"
	"strings"
)

// maxProcs bounds procs and the N of "auto+N".
const maxProcs = 1024

// Procs is [server] procs: "auto" (the zero value), a number, or
// "auto+N".
type Procs struct {
	// N, when not 0, is the number itself.
	N int
	// Plus is the N of "auto+N": that many more than auto.
	Plus int
}

// Resolve returns the number of procs given auto, what the Go runtime
// chose by itself (the GOMAXPROCS environment variable, else the CPUs the
// process may use), and reports false for "auto", which leaves the
// runtime's choice alone.
func (p Procs) Resolve(auto int) (int, bool) {
	switch {
	case p.N > 0:
		return p.N, true
	case p.Plus > 0:
		return auto + p.Plus, true
	}
	return auto, false
}

// String returns p as the configuration writes it.
func (p Procs) String() string {
	switch {
	case p.N > 0:
		return strconv.Itoa(p.N)
	case p.Plus > 0:
		return "auto+" + strconv.Itoa(p.Plus)
	}
	return "auto"
}

// procs reads v: an integer from 1 to maxProcs, "auto", or "auto+N".
func (b *builder) procs(path string, v any) Procs {
	const hint = `(a number such as 4, "auto" for the CPUs, or "auto+1" for one more)`
	switch x := v.(type) {
	case nil:
		return Procs{}
	case int64:
		if x < 1 || x > maxProcs {
			b.fail(path, "%d is out of range: want 1 to %d %s", x, maxProcs, hint)
			return Procs{}
		}
		return Procs{N: int(x)}
	case string:
		s := strings.TrimSpace(b.expand(path, x))
		if s == "auto" {
			return Procs{}
		}
		if rest, ok := strings.CutPrefix(s, "auto+"); ok {
			n, err := strconv.Atoi(rest)
			if err == nil && n >= 1 && n <= maxProcs {
				return Procs{Plus: n}
			}
		}
		b.fail(path, "%q is not a number of procs %s", x, hint)
		return Procs{}
	}
	b.fail(path, "want a number or a string %s, got %s", hint, typeOf(v))
	return Procs{}
}
