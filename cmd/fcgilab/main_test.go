package main

import (
	"context"
	"strings"
	"testing"
)

// TestBenchSplitFlag checks that -split reaches the lab and is refused
// outside the apache scenario, before anything starts: ctx
// is cancelled already, so that a run which got past the check would end
// at once too.
func TestBenchSplitFlag(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		args []string
		err  string
	}{
		{[]string{"-split"}, "need the apache scenario (-scenario apache)"},
		{[]string{"-split", "-scenario", "slowpool"}, `not scenario "slowpool"`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			err := bench(ctx, append(tt.args, "-out", t.TempDir()))
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Fatalf("bench %q: %v; want an error with %q", tt.args, err, tt.err)
			}
		})
	}
}
