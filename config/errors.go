// errors.go defines the located error that every problem in a file becomes.

package config

import "fmt"

// Error is one problem in a configuration file. Parse and Load return either
// a single *Error or, when several keys are wrong, the errors.Join of several;
// errors.As finds the first.
type Error struct {
	File string // the name given to Parse, or the path given to Load
	Line int    // 1-based; 0 when no single line is at fault (no [[pool]] at all)
	Msg  string // what is wrong, starting with the key when there is one
	Err  error  // the underlying cause, if any (a toml.ParseError, a Validate error)
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Msg)
}

func (e *Error) Unwrap() error { return e.Err }
