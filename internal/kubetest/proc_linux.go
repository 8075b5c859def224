package kubetest

import (
	"os/exec"
	"runtime"
	"syscall"
)

// spawner starts the control-plane processes with Pdeathsig, so a crashed
// test leaves nothing running. Pdeathsig fires when the *thread* that forked
// the child exits, not the process, and the Go runtime retires an OS thread
// whenever a goroutine exits while locked to it — which tests that enter a
// network namespace do on purpose (pkg/top/kube). A child forked from such a
// thread was SIGKILLed mid-test (etcd, seen in a full make test). So every
// fork happens on one goroutine locked to its thread for the cluster's life.
type spawner struct{ reqs chan spawnReq }

type spawnReq struct {
	cmd *exec.Cmd
	err chan error
}

func newSpawner() *spawner {
	s := &spawner{reqs: make(chan spawnReq)}
	go func() {
		runtime.LockOSThread()
		// Unlocked on close: the thread goes back to the pool, not away,
		// so nothing it forked is signalled by its exit.
		defer runtime.UnlockOSThread()
		for r := range s.reqs {
			r.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			r.err <- r.cmd.Start()
		}
	}()
	return s
}

func (s *spawner) start(cmd *exec.Cmd) error {
	r := spawnReq{cmd: cmd, err: make(chan error, 1)}
	s.reqs <- r
	return <-r.err
}

// close is called once the processes have been stopped.
func (s *spawner) close() { close(s.reqs) }
