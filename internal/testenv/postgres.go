package testenv

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a throwaway PostgreSQL cluster owned by this test process.
type Postgres struct {
	Port    int
	dataDir string
	sockDir string
	bin     string
	cred    *syscall.Credential
	dbSeq   atomic.Int64
}

// PG returns the process's PostgreSQL, starting it on first use.
func PG(t testing.TB) *Postgres {
	t.Helper()
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if reg.pg == nil && reg.pgErr == nil {
		reg.pg, reg.pgErr = startPostgres()
	}
	if reg.pgErr != nil {
		Unavailable(t, "postgresql: %v", reg.pgErr)
	}
	return reg.pg
}

func startPostgres() (*Postgres, error) {
	dirs := []string{"/usr/lib/postgresql/*/bin"}
	initdb, err := lookBin("initdb", dirs...)
	if err != nil {
		return nil, fmt.Errorf("%w (apt-get install postgresql)", err)
	}
	root, err := tempRoot()
	if err != nil {
		return nil, err
	}
	p := &Postgres{bin: filepath.Dir(initdb)}
	p.dataDir = filepath.Join(root, "pgdata")
	p.sockDir = filepath.Join(root, "pgsock")
	for _, d := range []string{p.dataDir, p.sockDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	// PostgreSQL refuses to run as root; drop to the package's postgres user.
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root and no postgres user to drop to: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		for _, d := range []string{p.dataDir, p.sockDir} {
			if err := os.Chown(d, uid, gid); err != nil {
				return nil, err
			}
		}
	}
	if out, err := p.cmd(initdb, "-D", p.dataDir, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8", "--locale=C").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w: %s", err, out)
	}
	conf := "listen_addresses = '127.0.0.1'\nunix_socket_directories = '" + p.sockDir + "'\n" +
		"fsync = on\nsynchronous_commit = on\nmax_connections = 300\nshared_buffers = 128MB\n"
	if err := appendFile(filepath.Join(p.dataDir, "postgresql.conf"), conf); err != nil {
		return nil, err
	}
	port, err := FreePort()
	if err != nil {
		return nil, err
	}
	p.Port = port
	if err := p.Start(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Postgres) cmd(name string, args ...string) *exec.Cmd {
	c := exec.Command(name, args...)
	c.Env = append(os.Environ(), "LC_ALL=C")
	if p.cred != nil {
		c.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	}
	return c
}

// Start (re)starts the server on its port and waits until it accepts connections.
func (p *Postgres) Start() error {
	logFile := filepath.Join(p.sockDir, "postgres.log")
	c := p.cmd(filepath.Join(p.bin, "pg_ctl"), "-D", p.dataDir, "-l", logFile, "-w", "-t", "60",
		"-o", fmt.Sprintf("-p %d", p.Port), "start")
	if out, err := c.CombinedOutput(); err != nil {
		log, _ := os.ReadFile(logFile)
		return fmt.Errorf("pg_ctl start: %w: %s\n%s", err, out, tail(string(log), 2000))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		conn, err := pgx.Connect(ctx, p.DSN("postgres"))
		if err == nil {
			conn.Close(ctx)
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("postgres did not accept connections: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop stops the server. immediate uses `-m immediate`: a crash, no checkpoint.
func (p *Postgres) Stop(immediate bool) error {
	mode := "fast"
	if immediate {
		mode = "immediate"
	}
	out, err := p.cmd(filepath.Join(p.bin, "pg_ctl"), "-D", p.dataDir, "-m", mode, "-w", "stop").CombinedOutput()
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %w: %s", err, out)
	}
	return nil
}

func (p *Postgres) shutdown() { _ = p.Stop(true) }

// DSN returns a connection string for database db.
func (p *Postgres) DSN(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", p.Port, db)
}

// NewDatabase creates a fresh, empty database for one test and returns its DSN.
func (p *Postgres) NewDatabase(t testing.TB) string {
	t.Helper()
	name := fmt.Sprintf("t%d_%d", os.Getpid(), p.dbSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, p.DSN("postgres"))
	if err != nil {
		t.Fatalf("connect to test postgres: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		t.Fatalf("create database: %v", err)
	}
	return p.DSN(name)
}

func appendFile(path, s string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(s); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
