// binary.go finds the php-fpm binary and the docroot of the end-to-end tests.

package fpmtest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// ErrNoFPM is returned by Binary when no php-fpm binary can be found.
var ErrNoFPM = errors.New("fpmtest: php-fpm not found (install php8.2-fpm: scripts/deps.sh)")

// binaryNames are tried in order, first in $PATH, then in the sbin
// directories, which are often missing from a non-root user's $PATH.
var binaryNames = []string{"php-fpm8.2", "php-fpm"}

var sbinDirs = []string{"/usr/sbin", "/usr/local/sbin", "/sbin"}

// Binary returns the path of php-fpm8.2 (or php-fpm), looked up in $PATH and
// then in /usr/sbin, /usr/local/sbin and /sbin.
func Binary() (string, error) {
	for _, name := range binaryNames {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	for _, dir := range sbinDirs {
		for _, name := range binaryNames {
			p := filepath.Join(dir, name)
			if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
				return p, nil
			}
		}
	}
	return "", ErrNoFPM
}

// Need skips the test under -short, since it starts real processes, and when
// php-fpm is missing, unless the environment variable CI is set: under CI a
// missing php-fpm fails the test.
func Need(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts php-fpm; skipped with -short")
	}
	if _, err := Binary(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v; CI is set, so this is a failure", err)
		}
		t.Skipf("%v; skipping (set CI=1 to make this a failure)", err)
	}
}

// PHPDir returns the absolute path of the repository's test/php directory,
// the docroot of the end-to-end tests. It is found from this source file's
// location, so it works from any package's test binary.
func PHPDir() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		panic("fpmtest: runtime.Caller failed")
	}
	return filepath.Join(filepath.Dir(file), "..", "php")
}

// RepoRoot returns the absolute path of the repository root.
func RepoRoot() string {
	return filepath.Clean(filepath.Join(PHPDir(), "..", ".."))
}
