// Package testenv starts real, throwaway services for tests: PostgreSQL and
// Redis from the Debian packages, each on a random loopback port in a temp
// dir, one instance per test binary (so one per test package).
//
// Under plain `go test` a missing service skips the test. `make test` sets
// LLMCTL_TEST_REQUIRE_SERVICES=1, under which a missing service fails it:
// CI must never go green by skipping.
package testenv

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// RequireEnv names the variable that turns a missing service into a failure.
const RequireEnv = "LLMCTL_TEST_REQUIRE_SERVICES"

// Required reports whether missing services must fail tests.
func Required() bool { return os.Getenv(RequireEnv) == "1" }

// Unavailable skips t, or fails it when services are required.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatalf("%s (required: %s=1)", msg, RequireEnv)
	}
	t.Skip(msg)
}

// registry holds the per-process instances. A test binary is one package, so
// process-wide is exactly "one per test package"; Main stops them on exit.
type registry struct {
	mu    sync.Mutex
	pg    *Postgres
	pgErr error
	rd    *Redis
	rdErr error
	root  string
}

var reg registry

// Main runs the package's tests and then stops every service started for
// them. Call it from TestMain: os.Exit(testenv.Main(m)).
func Main(m *testing.M) int {
	code := m.Run()
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if reg.pg != nil {
		reg.pg.shutdown()
	}
	if reg.rd != nil {
		reg.rd.shutdown()
	}
	if reg.root != "" {
		os.RemoveAll(reg.root)
	}
	return code
}

// tempRoot is one directory for this process's services, readable by the
// unprivileged user PostgreSQL runs as when tests run as root.
func tempRoot() (string, error) {
	if reg.root != "" {
		return reg.root, nil
	}
	dir, err := os.MkdirTemp("", "llmctl-testenv-")
	if err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	reg.root = dir
	return dir, nil
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// lookBin finds a server binary on PATH or in the Debian package's directory.
func lookBin(name string, extraDirs ...string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, d := range extraDirs {
		matches, _ := filepath.Glob(filepath.Join(d, name))
		for i := len(matches) - 1; i >= 0; i-- { // highest version last in glob order
			if st, err := os.Stat(matches[i]); err == nil && !st.IsDir() {
				return matches[i], nil
			}
		}
	}
	return "", fmt.Errorf("%s not found on PATH", name)
}
