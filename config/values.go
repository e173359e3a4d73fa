// values.go turns decoded TOML values into typed settings: strings with
// ${VAR} expansion, durations, sizes, counts, lists and params. Each reports
// a bad value with its key and line and returns the zero value.

package config

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// builder converts one file's raw values, collecting every error.
type builder struct {
	file   string
	loc    *locator
	getenv func(string) (string, bool)
	errs   []error
}

// fail records an error at path ("pool[1].read_timeout"), shown without the
// array index since the line tells which pool.
func (b *builder) fail(path, format string, args ...any) {
	b.errs = append(b.errs, &Error{
		File: b.file,
		Line: b.loc.line(path),
		Msg:  display(path) + ": " + fmt.Sprintf(format, args...),
	})
}

var tableIndex = regexp.MustCompile(`^([^.\[]+)\[\d+\]`)

// display is path as the user knows it: "pool[1].backends[0]" → "pool.backends[0]".
func display(path string) string { return tableIndex.ReplaceAllString(path, "$1") }

// str returns v as a string with ${VAR} expanded; "" if v is absent.
func (b *builder) str(path string, v any) string {
	if v == nil {
		return ""
	}
	s, ok := v.(string)
	if !ok {
		b.fail(path, "want a string, got %s", typeOf(v))
		return ""
	}
	return b.expand(path, s)
}

func (b *builder) strs(path string, v any) []string {
	if v == nil {
		return nil
	}
	list, ok := v.([]any)
	if !ok {
		b.fail(path, "want an array of strings, got %s", typeOf(v))
		return nil
	}
	out := make([]string, 0, len(list))
	for i, e := range list {
		out = append(out, b.str(fmt.Sprintf("%s[%d]", path, i), e))
	}
	return out
}

// oneOf returns v, which must be one of allowed, or def if v is absent.
func (b *builder) oneOf(path string, v any, def string, allowed ...string) string {
	if v == nil {
		return def
	}
	s := b.str(path, v)
	for _, a := range allowed {
		if s == a {
			return s
		}
	}
	if _, isString := v.(string); isString {
		b.fail(path, "%q is not one of %s", s, strings.Join(allowed, ", "))
	}
	return def
}

func (b *builder) duration(path string, v any) time.Duration {
	if v == nil {
		return 0
	}
	const hint = `(use e.g. "30s")`
	s, ok := v.(string)
	if !ok {
		if _, isInt := v.(int64); isInt {
			b.fail(path, "%v is not a duration %s", v, hint)
		} else {
			b.fail(path, "want a duration string %s, got %s", hint, typeOf(v))
		}
		return 0
	}
	x := b.expand(path, s)
	d, err := time.ParseDuration(x)
	switch {
	case err != nil:
		b.fail(path, "%s is not a duration %s", quoteExpanded(s, x), hint)
		return 0
	case d < 0:
		b.fail(path, "%s must not be negative", quoteExpanded(s, x))
		return 0
	}
	return d
}

// size returns v, an integer or a string like "64KiB", in bytes.
func (b *builder) size(path string, v any) int64 {
	const hint = `(use bytes, or e.g. "64KiB", "1MiB", "1GiB")`
	switch v := v.(type) {
	case nil:
		return 0
	case int64:
		if v < 0 {
			b.fail(path, "%d must not be negative", v)
			return 0
		}
		return v
	case string:
		x := b.expand(path, v)
		n, err := parseSize(x)
		if err != nil {
			b.fail(path, "%s is not a size %s", quoteExpanded(v, x), hint)
			return 0
		}
		return n
	default:
		b.fail(path, "want a size %s, got %s", hint, typeOf(v))
		return 0
	}
}

func (b *builder) sizeInt(path string, v any) int {
	n := b.size(path, v)
	if n > math.MaxInt {
		b.fail(path, "%d is too large", n)
		return 0
	}
	return int(n)
}

// count returns v, a non-negative integer.
func (b *builder) count(path string, v any) int {
	if v == nil {
		return 0
	}
	n, ok := v.(int64)
	switch {
	case !ok:
		b.fail(path, "want an integer, got %s", typeOf(v))
		return 0
	case n < 0:
		b.fail(path, "%d must not be negative", n)
		return 0
	case n > math.MaxInt:
		b.fail(path, "%d is too large", n)
		return 0
	}
	return int(n)
}

// params returns the table v as FastCGI params, whose values are strings.
func (b *builder) params(path string, v any) map[string]string {
	if v == nil {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		b.fail(path, "want a table of strings, got %s", typeOf(v))
		return nil
	}
	out := make(map[string]string, len(m))
	for k, val := range m {
		kp := path + "." + toml.Key{k}.String()
		s, ok := val.(string)
		if !ok {
			b.fail(kp, "want a string, got %s (quote it: \"%v\")", typeOf(val), val)
			continue
		}
		out[k] = b.expand(kp, s)
	}
	return out
}

// expand replaces ${NAME} in s with the environment variable NAME and "$${"
// with "${".
func (b *builder) expand(path, s string) string {
	if !strings.Contains(s, "${") {
		return s
	}
	var out strings.Builder
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "$${"):
			out.WriteString("${")
			i += 3
		case strings.HasPrefix(s[i:], "${"):
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				b.fail(path, `%q: "${" without a closing "}" (write "$${" for a literal "${")`, s)
				return ""
			}
			name := s[i+2 : i+2+end]
			if !isEnvName(name) {
				b.fail(path, "%q: %q is not a variable name", s, name)
				return ""
			}
			val, ok := b.getenv(name)
			if !ok {
				b.fail(path, "%q: environment variable %s is not set", s, name)
				return ""
			}
			out.WriteString(val)
			i += 3 + end
		default:
			out.WriteByte(s[i])
			i++
		}
	}
	return out.String()
}

// quoteExpanded quotes s, and x, what s expanded to, if that differs.
func quoteExpanded(s, x string) string {
	if s == x {
		return strconv.Quote(s)
	}
	return fmt.Sprintf("%q (%q)", s, x)
}

func isEnvName(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return false
		}
	}
	return s != ""
}

// sizeUnits are the multipliers of the units parseSize accepts, in lower case.
var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30,
	"kb": 1e3, "mb": 1e6, "gb": 1e9,
}

// parseSize parses a non-negative integer with an optional unit: "512",
// "64KiB", "1 MiB", "10MB".
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("size %q: no number", s)
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	mult, ok := sizeUnits[strings.ToLower(strings.TrimSpace(s[i:]))]
	if !ok {
		return 0, fmt.Errorf("size %q: unknown unit", s)
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	return n * mult, nil
}

// typeOf names a decoded TOML value's type for messages.
func typeOf(v any) string {
	switch v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case time.Time:
		return "a date-time"
	case []any, []map[string]any:
		return "an array"
	case map[string]any:
		return "a table"
	}
	return fmt.Sprintf("a %T", v)
}

// boolean returns v, a TOML boolean, or def if v is absent.
func (b *builder) boolean(path string, v any, def bool) bool {
	if v == nil {
		return def
	}
	x, ok := v.(bool)
	if !ok {
		b.fail(path, "want true or false, got %s", typeOf(v))
		return def
	}
	return x
}

// ratio returns v, a number from 0 to 1.
func (b *builder) ratio(path string, v any) float64 {
	var x float64
	switch v := v.(type) {
	case nil:
		return 0
	case float64:
		x = v
	case int64:
		x = float64(v)
	default:
		b.fail(path, "want a number from 0 to 1, got %s", typeOf(v))
		return 0
	}
	if x < 0 || x > 1 {
		b.fail(path, "%v is outside 0..1", x)
		return 0
	}
	return x
}

// weights returns [pool.weights], a table of backend address to weight.
func (b *builder) weights(path string, v any) map[string]int {
	if v == nil {
		return nil
	}
	m, ok := v.(map[string]any)
	if !ok {
		b.fail(path, "want a table of \"address\" = weight, got %s", typeOf(v))
		return nil
	}
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]int, len(m))
	for k, val := range m {
		out[k] = b.count(path+"."+toml.Key{k}.String(), val)
	}
	return out
}
