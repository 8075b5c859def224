package store

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Driver names a storage backend.
type Driver string

// The supported drivers.
const (
	Postgres Driver = "postgres"
	SQLite   Driver = "sqlite"
)

// ParseDSN splits a `--db` value into its driver and target: `postgres://…`
// (or `postgresql://…`) is passed to pgx as is; `sqlite:PATH` names a file.
func ParseDSN(dsn string) (Driver, string, error) {
	switch {
	case strings.HasPrefix(dsn, "postgres://"), strings.HasPrefix(dsn, "postgresql://"):
		return Postgres, dsn, nil
	case strings.HasPrefix(dsn, "sqlite:"):
		path := strings.TrimPrefix(dsn, "sqlite:")
		path = strings.TrimPrefix(path, "//")
		if path == "" {
			return "", "", fmt.Errorf("database %q: sqlite needs a file path (sqlite:PATH)", dsn)
		}
		if strings.ContainsAny(path, "?#") {
			return "", "", fmt.Errorf("database %q: sqlite path must not contain '?' or '#'", dsn)
		}
		return SQLite, path, nil
	case dsn == "":
		return "", "", fmt.Errorf("database DSN is empty (want postgres://… or sqlite:PATH)")
	default:
		return "", "", fmt.Errorf("database %q: unsupported scheme (want postgres://… or sqlite:PATH)", redactDSN(dsn))
	}
}

// DataDir is llmctl's XDG data directory: $XDG_DATA_HOME/llmctl, else
// ~/.local/share/llmctl.
func DataDir() (string, error) {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" && filepath.IsAbs(d) {
		return filepath.Join(d, "llmctl"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("locate data dir: %w", err)
	}
	return filepath.Join(home, ".local", "share", "llmctl"), nil
}

// DefaultDSN is the embedded default database: SQLite in the data dir.
func DefaultDSN() (string, error) {
	dir, err := DataDir()
	if err != nil {
		return "", err
	}
	return "sqlite:" + filepath.Join(dir, "llmctl.db"), nil
}

// redactDSN hides a password in a URL-shaped DSN for error messages.
func redactDSN(dsn string) string {
	at := strings.LastIndex(dsn, "@")
	scheme := strings.Index(dsn, "://")
	if at < 0 || scheme < 0 || at < scheme {
		return dsn
	}
	userinfo := dsn[scheme+3 : at]
	if i := strings.Index(userinfo, ":"); i >= 0 {
		return dsn[:scheme+3] + userinfo[:i] + ":xxxxx" + dsn[at:]
	}
	return dsn
}
