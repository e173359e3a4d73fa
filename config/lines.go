// lines.go finds the line of every key in the file. The TOML decoder keeps
// key positions only privately, and only the last one for keys repeated in
// an array of tables, so we match the decoder's keys, which come in document
// order, against the text ourselves.

package config

import (
	"fmt"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
)

// entry is one key of the file, in document order.
type entry struct {
	key  toml.Key
	path string // the key with array-of-tables indexes: "pool[1].read_timeout"
	line int    // 0 if not found
}

// locator knows the line of each key path in one file.
type locator struct {
	entries []entry
	lines   map[string]int // path → line
}

func newLocator(data []byte, md toml.MetaData) *locator {
	src := scanLines(string(data))
	loc := &locator{lines: map[string]int{}}
	counts := map[string]int{} // top-level array of tables → entries so far
	cursor := 0                // line of the last key found
	for _, k := range md.Keys() {
		typ := md.Type(k...)
		table := typ == "Hash" || typ == "ArrayHash"
		if l := src.find(k, table, cursor); l > 0 {
			cursor = l
		}
		if len(k) == 1 && typ == "ArrayHash" {
			counts[k[0]]++
		}
		e := entry{key: k, path: indexedPath(k, counts), line: cursor}
		loc.entries = append(loc.entries, e)
		if _, dup := loc.lines[e.path]; !dup {
			loc.lines[e.path] = e.line
		}
	}
	return loc
}

// indexedPath is k as a path with the index of the current table of its
// top-level array of tables, if it is in one.
func indexedPath(k toml.Key, counts map[string]int) string {
	n := counts[k[0]]
	if n == 0 {
		return k.String()
	}
	head := fmt.Sprintf("%s[%d]", toml.Key{k[0]}, n-1)
	if len(k) == 1 {
		return head
	}
	return head + "." + toml.Key(k[1:]).String()
}

// line returns the line of path or, failing that, of the nearest enclosing
// table that has one: "pool[1].read_timeout", then "pool[1]", then "pool".
func (l *locator) line(path string) int {
	for path != "" {
		if n := l.lines[path]; n > 0 {
			return n
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

// srcLine is what a line of the file may define.
type srcLine struct {
	header []string   // the key of a [table] or [[array]] header line
	keys   [][]string // dotted keys assigned on the line, inline tables included
}

type source []srcLine

func scanLines(text string) source {
	var src source
	inMulti := "" // the delimiter of the multi-line string we are in, if any
	for _, raw := range strings.Split(text, "\n") {
		var sl srcLine
		// A line that opens or closes a multi-line string toggles inMulti;
		// nothing inside one defines a key.
		wasIn := inMulti != ""
		for _, d := range []string{`"""`, `'''`} {
			if (inMulti == "" || inMulti == d) && strings.Count(raw, d)%2 == 1 {
				if inMulti == "" {
					inMulti = d
				} else {
					inMulti = ""
				}
			}
		}
		if !wasIn {
			line := strings.TrimSpace(raw)
			if strings.HasPrefix(line, "[") {
				sl.header = parseHeader(line)
			} else {
				sl.keys = assignedKeys(line)
			}
		}
		src = append(src, sl)
	}
	return src
}

// find returns the first line at or after from that defines k, or 0. A table
// header must come after from; a plain key may share from's line (inline
// tables) and is not looked for past the next header.
func (src source) find(k toml.Key, table bool, from int) int {
	for n := max(from, 1); n <= len(src); n++ {
		sl := src[n-1]
		if sl.header != nil {
			if n > from && slices.Equal(sl.header, k) {
				return n
			}
			if n > from && !table {
				return 0
			}
			continue
		}
		for _, ks := range sl.keys {
			if isSuffix(ks, k) {
				return n
			}
		}
	}
	return 0
}

func isSuffix(s []string, k toml.Key) bool {
	return len(s) <= len(k) && slices.Equal(s, k[len(k)-len(s):])
}

// parseHeader returns the key of a "[a.b]" or "[[a]]" line, or nil if the
// line is not a header (a line of a multi-line array, say).
func parseHeader(line string) []string {
	inner := strings.TrimPrefix(line, "[")
	closing := "]"
	if strings.HasPrefix(inner, "[") {
		inner, closing = inner[1:], "]]"
	}
	key, rest, ok := dottedKey(inner)
	if !ok {
		return nil
	}
	rest = strings.TrimSpace(rest)
	if !strings.HasPrefix(rest, closing) {
		return nil
	}
	rest = strings.TrimSpace(rest[len(closing):])
	if rest != "" && !strings.HasPrefix(rest, "#") {
		return nil
	}
	return key
}

// assignedKeys returns the keys assigned on a line: the one at its start and
// those after each "{" or "," outside strings (inline tables).
func assignedKeys(line string) [][]string {
	var keys [][]string
	try := func(s string) {
		if k, rest, ok := dottedKey(s); ok && strings.HasPrefix(strings.TrimSpace(rest), "=") {
			keys = append(keys, k)
		}
	}
	try(line)
	var quote byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			if c == '\\' && quote == '"' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '#':
			return keys
		case c == '{' || c == ',':
			try(line[i+1:])
		}
	}
	return keys
}

// dottedKey reads a TOML key (bare or quoted parts joined by dots) from the
// start of s, and returns it and what follows.
func dottedKey(s string) (key []string, rest string, ok bool) {
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			return nil, "", false
		}
		var part string
		switch s[0] {
		case '"', '\'':
			end := strings.IndexByte(s[1:], s[0])
			if end < 0 {
				return nil, "", false
			}
			part, s = s[1:1+end], s[2+end:]
		default:
			n := 0
			for n < len(s) && isBare(s[n]) {
				n++
			}
			if n == 0 {
				return nil, "", false
			}
			part, s = s[:n], s[n:]
		}
		key = append(key, part)
		s = strings.TrimLeft(s, " \t")
		if !strings.HasPrefix(s, ".") {
			return key, s, true
		}
		s = s[1:]
	}
}

func isBare(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}
