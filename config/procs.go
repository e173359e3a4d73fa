package config

// procs.go reads [server] procs, the number of threads that run Go code at
// once (GOMAXPROCS).

import (
	"fmt"
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

// procsHint ends the errors of procs.
const procsHint = `(a number such as 4, "auto" for the CPUs, or "auto+1" for one more)`

// ParseProcs reads procs as the configuration writes it in a string:
// "auto", "auto+N", or a number from 1 to maxProcs. Space around it is
// ignored.
func ParseProcs(s string) (Procs, error) {
	s = strings.TrimSpace(s)
	if s == "auto" {
		return Procs{}, nil
	}
	if rest, ok := strings.CutPrefix(s, "auto+"); ok {
		if n, err := strconv.Atoi(rest); err == nil && n >= 1 && n <= maxProcs {
			return Procs{Plus: n}, nil
		}
	} else if n, err := strconv.Atoi(s); err == nil && n >= 1 && n <= maxProcs {
		return Procs{N: n}, nil
	}
	return Procs{}, fmt.Errorf("%q is not a number of procs %s", s, procsHint)
}

// procs reads v: an integer from 1 to maxProcs, or a string ParseProcs
// reads.
func (b *builder) procs(path string, v any) Procs {
	switch x := v.(type) {
	case nil:
		return Procs{}
	case int64:
		if x < 1 || x > maxProcs {
			b.fail(path, "%d is out of range: want 1 to %d %s", x, maxProcs, procsHint)
			return Procs{}
		}
		return Procs{N: int(x)}
	case string:
		// A number is written as one in TOML, not as a string.
		p, err := ParseProcs(b.expand(path, x))
		if err != nil || p.N > 0 {
			b.fail(path, "%q is not a number of procs %s", x, procsHint)
			return Procs{}
		}
		return p
	}
	b.fail(path, "want a number or a string %s, got %s", procsHint, typeOf(v))
	return Procs{}
}
