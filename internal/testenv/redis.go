package testenv

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// Redis is a throwaway redis-server owned by this test process.
type Redis struct {
	Port int
	dir  string
	bin  string
	proc *exec.Cmd
	done chan struct{}
}

// RD returns the process's Redis, starting it on first use.
func RD(t testing.TB) *Redis {
	t.Helper()
	reg.mu.Lock()
	defer reg.mu.Unlock()
	if reg.rd == nil && reg.rdErr == nil {
		reg.rd, reg.rdErr = startRedis()
	}
	if reg.rdErr != nil {
		Unavailable(t, "redis: %v", reg.rdErr)
	}
	return reg.rd
}

func startRedis() (*Redis, error) {
	bin, err := lookBin("redis-server")
	if err != nil {
		return nil, fmt.Errorf("%w (apt-get install redis-server)", err)
	}
	root, err := tempRoot()
	if err != nil {
		return nil, err
	}
	r := &Redis{bin: bin, dir: filepath.Join(root, "redis")}
	if err := os.MkdirAll(r.dir, 0o700); err != nil {
		return nil, err
	}
	if r.Port, err = FreePort(); err != nil {
		return nil, err
	}
	if err := r.Start(); err != nil {
		return nil, err
	}
	return r, nil
}

// Addr is host:port for clients.
func (r *Redis) Addr() string { return "127.0.0.1:" + strconv.Itoa(r.Port) }

// URL is a redis:// URL for clients.
func (r *Redis) URL() string { return "redis://" + r.Addr() + "/0" }

// Start (re)starts the server on its port and waits for PING.
func (r *Redis) Start() error {
	c := exec.Command(r.bin, "--port", strconv.Itoa(r.Port), "--bind", "127.0.0.1",
		"--dir", r.dir, "--save", "", "--appendonly", "no", "--daemonize", "no",
		"--logfile", filepath.Join(r.dir, "redis.log"))
	if err := c.Start(); err != nil {
		return fmt.Errorf("start redis-server: %w", err)
	}
	r.proc = c
	r.done = make(chan struct{})
	go func(done chan struct{}) { _ = c.Wait(); close(done) }(r.done)
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		if r.ping() == nil {
			return nil
		}
		select {
		case <-r.done:
			log, _ := os.ReadFile(filepath.Join(r.dir, "redis.log"))
			return fmt.Errorf("redis-server exited: %s", tail(string(log), 2000))
		case <-time.After(30 * time.Millisecond):
		}
	}
	return fmt.Errorf("redis-server did not answer PING on %s", r.Addr())
}

// Stop kills the server (SIGKILL: an outage, not a clean shutdown) and waits.
func (r *Redis) Stop() error {
	if r.proc == nil {
		return nil
	}
	_ = r.proc.Process.Kill()
	<-r.done
	r.proc = nil
	return nil
}

func (r *Redis) shutdown() { _ = r.Stop() }

func (r *Redis) ping() error {
	conn, err := net.DialTimeout("tcp", r.Addr(), time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("unexpected PING reply %q", line)
	}
	return nil
}
