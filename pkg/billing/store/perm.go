package store

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"syscall"
)

// The SQLite database holds key hashes and the ledger: only its owner may
// read it. SQLite itself creates a new file 0644 (less the umask) and gives
// its -wal and -shm files the database file's mode.
const (
	sqliteDirMode  fs.FileMode = 0o700
	sqliteFileMode fs.FileMode = 0o600
)

// Option adjusts Open, Migrate and OpenSQLite.
type Option func(*options)

type options struct {
	log  *slog.Logger
	pool Pool
}

// WithLogger sends the opener's warnings (permissions found too open and
// tightened) to l instead of slog.Default().
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

func newOptions(opts []Option) options {
	o := options{log: slog.Default()}
	for _, f := range opts {
		f(&o)
	}
	return o
}

// secureSQLite makes the database's directory 0700 and the database file and
// its -wal, -shm and -journal siblings 0600 before SQLite opens them. A new
// file or directory gets its mode set explicitly, whatever the umask; an
// existing one readable by others is tightened, with a warning saying what
// was found. A directory shared with others (see sharedDir) is left as it
// is, with a warning: chmod-ing it would break them, and the 0600 file is
// still private.
func secureSQLite(path string, log *slog.Logger) error {
	if path == ":memory:" { // no file
		return nil
	}
	dir := filepath.Dir(path)
	switch _, err := os.Stat(dir); {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(dir, sqliteDirMode); err != nil {
			return fmt.Errorf("create database dir: %w", err)
		}
		if err := os.Chmod(dir, sqliteDirMode); err != nil { // the umask may have taken bits the owner needs
			return fmt.Errorf("create database dir: %w", err)
		}
	case err != nil:
		return fmt.Errorf("database dir: %w", err)
	default:
		tighten(dir, sqliteDirMode, "database directory", log, func(fi fs.FileInfo) string { return sharedDir(dir, filepath.Base(path), fi) })
	}

	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, sqliteFileMode)
	switch {
	case err == nil:
		// New: an empty file SQLite initialises; chmod so the umask cannot
		// leave it unwritable, and -wal/-shm then inherit 0600.
		err = f.Chmod(sqliteFileMode)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("create database file: %w", err)
		}
	case !errors.Is(err, fs.ErrExist):
		return fmt.Errorf("create database file: %w", err)
	}
	for _, p := range []string{path, path + "-wal", path + "-shm", path + "-journal"} {
		tighten(p, sqliteFileMode, "database file", log, nil)
	}
	return nil
}

// tighten sets path to mode when other users may read it, and says what it
// found. what names it in the log ("database file", "database directory");
// shared, when not nil, gives a reason to leave it as it is.
func tighten(path string, mode fs.FileMode, what string, log *slog.Logger, shared func(fs.FileInfo) string) {
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o077 == 0 {
		return // absent (a sibling SQLite has not made yet) or already private
	}
	if shared == nil {
		shared = func(fs.FileInfo) string { return "" }
	}
	if reason := shared(fi); reason != "" {
		log.Warn(what+" is open to other users and left as is; the database file is 0600, but put it in a directory of its own",
			"path", path, "mode", modeString(fi), "reason", reason)
		return
	}
	if err := os.Chmod(path, mode); err != nil {
		log.Warn(what+" is open to other users and could not be tightened", "path", path, "mode", modeString(fi), "err", err)
		return
	}
	log.Warn(what+" was open to other users; tightened", "path", path, "was", modeString(fi), "now", fmt.Sprintf("%#o", mode))
}

// sharedDir says why the database's directory is not ours to chmod, or ""
// when it is: a sticky directory (/tmp), one owned by another user, or one
// holding anything but the database's files and the ledger's spool (say
// /var/lib, where 0700 would lock other services out).
func sharedDir(dir, db string, fi fs.FileInfo) string {
	if fi.Mode()&fs.ModeSticky != 0 {
		return "sticky directory shared by users"
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Sprintf("owned by uid %d", st.Uid)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err.Error()
	}
	ours := []string{db, db + "-wal", db + "-shm", db + "-journal", "spool"}
	for _, e := range entries {
		if !slices.Contains(ours, e.Name()) {
			return fmt.Sprintf("holds other files (%s)", e.Name())
		}
	}
	return ""
}

func modeString(fi fs.FileInfo) string { return fmt.Sprintf("%#o", fi.Mode().Perm()) }
