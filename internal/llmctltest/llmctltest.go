// Package llmctltest runs the real `llmctl` binary in end-to-end tests: it
// builds it once per test package, starts `llmctl serve` as a subprocess on
// random loopback ports, waits for /readyz, captures the admin key printed
// on first start, and stops it with SIGTERM (then SIGKILL).
//
// Use Main from TestMain so the built binary is removed afterwards:
//
//	func TestMain(m *testing.M) { os.Exit(llmctltest.Main(m)) }
package llmctltest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/llmctl/llmctl/internal/testenv"
)

// build holds the binary built for this test process (one test package).
type build struct {
	once sync.Once
	dir  string
	path string
	err  error
}

var bin build

// Main runs the tests (through testenv.Main, which stops PostgreSQL/Redis)
// and then removes the built binary.
func Main(m *testing.M) int {
	code := testenv.Main(m)
	if bin.dir != "" {
		os.RemoveAll(bin.dir)
	}
	return code
}

// moduleRoot is the repository root, found from this file's location.
func moduleRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("llmctltest: cannot locate source")
	}
	root := filepath.Join(filepath.Dir(file), "..", "..")
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", fmt.Errorf("llmctltest: module root: %w", err)
	}
	return root, nil
}

// Binary builds ./cmd/llmctl once per test process and returns its path.
func Binary(t testing.TB) string {
	t.Helper()
	bin.once.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			bin.err = err
			return
		}
		dir, err := os.MkdirTemp("", "llmctltest-")
		if err != nil {
			bin.err = err
			return
		}
		bin.dir = dir
		path := filepath.Join(dir, "llmctl")
		cmd := exec.Command("go", "build", "-o", path, "./cmd/llmctl")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			bin.err = fmt.Errorf("llmctltest: go build ./cmd/llmctl: %w\n%s", err, out)
			return
		}
		bin.path = path
	})
	if bin.err != nil {
		t.Fatal(bin.err)
	}
	return bin.path
}

// Options for Start.
type Options struct {
	// Args are appended after `serve --listen 127.0.0.1:0 --admin-listen
	// 127.0.0.1:0 --db sqlite:<tmp>` (a later flag wins; --backend adds).
	Args []string
	// DB replaces the default fresh SQLite file (e.g. testenv.PG(t).NewDatabase(t)).
	DB string
	// Env adds KEY=VALUE entries; LLMCTL_* from the test's environment are dropped.
	Env []string
	// NoWaitReady returns once listening, without waiting for /readyz
	// (for tests where no backend is healthy).
	NoWaitReady bool
	// StartTimeout bounds start-up; default 60s.
	StartTimeout time.Duration
}

// Server is a running `llmctl serve`.
type Server struct {
	URL      string // public API base, e.g. http://127.0.0.1:41234
	AdminURL string // admin listener base ("" when off)
	AdminKey string // printed on first start of an empty store, else ""
	DataDir  string // XDG_DATA_HOME given to the process

	cmd    *exec.Cmd
	stdout *testenv.Buffer
	stderr *testenv.Buffer
	done   chan struct{}
	err    error // exit status, valid after done
}

// Start runs `llmctl serve` and waits until it serves (and is ready, unless
// NoWaitReady). It is stopped when the test ends.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	path := Binary(t)
	dataDir := t.TempDir()
	db := o.DB
	if db == "" {
		db = "sqlite:" + filepath.Join(dataDir, "llmctl.db")
	}
	args := append([]string{"serve", "--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--db", db}, o.Args...)
	cmd := exec.Command(path, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "LLMCTL_") && !strings.HasPrefix(kv, "XDG_DATA_HOME=") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "XDG_DATA_HOME="+dataDir)
	cmd.Env = append(cmd.Env, o.Env...)
	s := &Server{DataDir: dataDir, cmd: cmd, stdout: &testenv.Buffer{}, stderr: &testenv.Buffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = s.stdout, s.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("llmctltest: start %s: %v", path, err)
	}
	go func() {
		s.err = cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() { s.Stop(t, 10*time.Second) })

	timeout := o.StartTimeout
	if timeout <= 0 {
		timeout = 60 * time.Second
	}
	deadline := time.Now().Add(timeout)
	for s.URL == "" {
		s.parseStdout()
		if s.URL != "" {
			break
		}
		select {
		case <-s.done:
			t.Fatalf("llmctl serve exited early: %v\nstdout:\n%s\nstderr:\n%s", s.err, s.Stdout(), s.Stderr())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("llmctl serve did not start within %s\nstderr:\n%s", timeout, s.Stderr())
		}
	}
	if !o.NoWaitReady {
		if err := s.WaitReady(time.Until(deadline)); err != nil {
			t.Fatalf("%v\nstderr:\n%s", err, s.Stderr())
		}
	}
	return s
}

// parseStdout reads the "admin key: …" and "serving: api=… admin=…" lines.
func (s *Server) parseStdout() {
	sc := bufio.NewScanner(strings.NewReader(s.stdout.String()))
	for sc.Scan() {
		line := sc.Text()
		if k, ok := strings.CutPrefix(line, "admin key: "); ok {
			s.AdminKey = strings.TrimSpace(k)
		}
		if rest, ok := strings.CutPrefix(line, "serving: "); ok {
			for _, f := range strings.Fields(rest) {
				if v, ok := strings.CutPrefix(f, "api="); ok {
					s.URL = v
				}
				if v, ok := strings.CutPrefix(f, "admin="); ok && v != "off" {
					s.AdminURL = v
				}
			}
		}
	}
}

// WaitReady polls /readyz until 200.
func (s *Server) WaitReady(timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("llmctltest: %s/readyz not ready within %s (last: %v)", s.URL, timeout, err)
		case <-s.done:
			return fmt.Errorf("llmctltest: llmctl serve exited: %v", s.err)
		case <-time.After(25 * time.Millisecond):
		}
	}
}

// Stdout and Stderr return what the process wrote so far.
func (s *Server) Stdout() string { return s.stdout.String() }

// Stderr returns the process's log output so far.
func (s *Server) Stderr() string { return s.stderr.String() }

// Done is closed when the process has exited.
func (s *Server) Done() <-chan struct{} { return s.done }

// ExitErr is the process's exit status, valid once Done is closed.
func (s *Server) ExitErr() error { return s.err }

// Signal sends sig to the process.
func (s *Server) Signal(sig os.Signal) error { return s.cmd.Process.Signal(sig) }

// Stop sends SIGTERM and waits up to grace for a clean exit, then SIGKILLs.
// It returns the exit status (nil for a clean exit). Safe to call twice.
func (s *Server) Stop(t testing.TB, grace time.Duration) error {
	select {
	case <-s.done:
		return s.err
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
		return s.err
	case <-time.After(grace):
		t.Logf("llmctltest: llmctl serve ignored SIGTERM for %s; killing", grace)
		_ = s.cmd.Process.Kill()
		<-s.done
		return fmt.Errorf("llmctltest: killed after %s: %w", grace, s.err)
	}
}

// Run runs the built binary with args (e.g. "keys", "create", …) and
// returns its stdout and stderr; err is non-nil on a non-zero exit.
func Run(t testing.TB, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	cmd := exec.Command(Binary(t), args...)
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err = cmd.Run()
	return out.String(), errOut.String(), err
}

// CreateKey runs `llmctl keys create --tenant TENANT -o json --db DB` plus
// extra flags and returns the key's id and secret.
func CreateKey(t testing.TB, db, tenant string, extra ...string) (id, key string) {
	t.Helper()
	out, errOut, err := Run(t, append([]string{"keys", "create", "--tenant", tenant, "-o", "json", "--db", db}, extra...)...)
	if err != nil {
		t.Fatalf("llmctl keys create: %v\n%s", err, errOut)
	}
	var k struct {
		ID  string `json:"id"`
		Key string `json:"key"`
	}
	if err := json.Unmarshal([]byte(out), &k); err != nil || k.Key == "" {
		t.Fatalf("llmctl keys create -o json: %v: %s", err, out)
	}
	return k.ID, k.Key
}
