package store_test

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/store"
)

// withUmask runs the rest of the test under umask m (process-wide: no
// parallel tests in this package).
func withUmask(t *testing.T, m int) {
	old := syscall.Umask(m)
	t.Cleanup(func() { syscall.Umask(old) })
}

func openLogged(t *testing.T, path, tenant string) (store.Store, *testenv.Buffer) {
	t.Helper()
	var logs testenv.Buffer
	s, err := store.Open(context.Background(), "sqlite:"+path, store.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	// A write makes SQLite create its -wal and -shm files.
	if _, err := s.CreateTenant(context.Background(), tenant, billing.Limits{}); err != nil {
		t.Fatal(err)
	}
	return s, &logs
}

func wantMode(t *testing.T, path string, want fs.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode() & (fs.ModePerm | fs.ModeSticky); got != want {
		t.Errorf("%s: mode %#o, want %#o", filepath.Base(path), got, want)
	}
}

// A new database is private whatever the umask: 022 (SQLite alone would
// make it 0644) and 277 (which would leave it unwritable).
func TestSQLiteCreatedPrivate(t *testing.T) {
	for _, umask := range []int{0o022, 0o277} {
		t.Run(fmt.Sprintf("umask%03o", umask), func(t *testing.T) {
			withUmask(t, umask)
			dir := filepath.Join(t.TempDir(), "data", "llmctl")
			path := filepath.Join(dir, "llmctl.db")
			s, logs := openLogged(t, path, "acme")
			defer s.Close()
			wantMode(t, dir, 0o700)
			for _, p := range []string{path, path + "-wal", path + "-shm"} {
				wantMode(t, p, 0o600)
			}
			if strings.Contains(logs.String(), "WARN") {
				t.Errorf("a fresh database logged a warning:\n%s", logs)
			}
		})
	}
}

// An existing database left readable by others (an older llmctl made it
// 0644 in a 0755 directory) is tightened on open, with a warning saying what
// was found; the data is intact, and the next open is quiet.
func TestSQLiteTightensLooseModes(t *testing.T) {
	withUmask(t, 0o022)
	dir := filepath.Join(t.TempDir(), "llmctl")
	path := filepath.Join(dir, "llmctl.db")
	s, _ := openLogged(t, path, "first")
	s.Close()
	loose := []string{path, path + "-wal", path + "-shm"}
	if err := os.WriteFile(path+"-wal", nil, 0o644); err != nil { // Close checkpoints the WAL away; an unclean stop leaves it
		t.Fatal(err)
	}
	for _, p := range loose {
		if err := os.Chmod(p, 0o644); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}

	s, logs := openLogged(t, path, "second")
	defer s.Close()
	wantMode(t, dir, 0o700)
	for _, p := range loose {
		wantMode(t, p, 0o600)
	}
	out := logs.String()
	for _, want := range []string{
		`level=WARN msg="database directory was open to other users; tightened" path=` + dir + " was=0755 now=0700",
		`level=WARN msg="database file was open to other users; tightened" path=` + path + " was=0644 now=0600",
		`path=` + path + "-wal was=0644",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	if _, err := s.GetTenant(context.Background(), "first"); err != nil {
		t.Fatalf("data after tightening: %v", err)
	}
	s.Close()
	s, logs = openLogged(t, path, "third")
	defer s.Close()
	if strings.Contains(logs.String(), "WARN") {
		t.Errorf("second open warned again:\n%s", logs)
	}
}

// A database put straight into a shared directory — sticky like /tmp, or
// holding other programs' files like /var/lib — gets a private file and a
// warning, but the directory is not chmod-ed: others rely on it.
func TestSQLiteLeavesSharedDirAlone(t *testing.T) {
	withUmask(t, 0o022)
	for _, tc := range []struct {
		name   string
		mode   fs.FileMode
		other  string
		reason string
	}{
		{"sticky", 0o777 | fs.ModeSticky, "", "reason=\"sticky directory shared by users\""},
		{"other-files", 0o755, "other.conf", "reason=\"holds other files (other.conf)\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if tc.other != "" {
				if err := os.WriteFile(filepath.Join(dir, tc.other), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Chmod(dir, tc.mode); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "llmctl.db")
			s, logs := openLogged(t, path, "acme")
			defer s.Close()
			wantMode(t, dir, tc.mode)
			wantMode(t, path, 0o600)
			if !strings.Contains(logs.String(), `msg="database directory is open to other users and left as is`) || !strings.Contains(logs.String(), tc.reason) {
				t.Errorf("no warning about the shared directory with %s:\n%s", tc.reason, logs)
			}
		})
	}
}
