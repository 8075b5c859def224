package kubetest

import (
	"errors"
	"os/exec"
	"runtime"
	"syscall"
	"testing"
	"time"
)

var errMainThread = errors.New("on the main thread")

// alive reports whether cmd's process is still running (not yet reaped).
func alive(cmd *exec.Cmd) bool {
	var ws syscall.WaitStatus
	pid, err := syscall.Wait4(cmd.Process.Pid, &ws, syscall.WNOHANG, nil)
	return err == nil && pid == 0
}

// The hazard the spawner exists for, then the spawner surviving it: a child
// forked with Pdeathsig on a thread the runtime later retires is killed; a
// child forked by the spawner outlives any number of retired threads.
func TestSpawnerSurvivesRetiredThreads(t *testing.T) {
	// Hazard: fork on a locked thread, then let the goroutine exit locked.
	direct := exec.Command("sleep", "30")
	done := make(chan error)
	release := make(chan struct{})
	defer close(release)
	for started := false; !started; {
		go func() {
			runtime.LockOSThread()
			if syscall.Gettid() == syscall.Getpid() {
				// The main thread is never retired (the runtime wedges it
				// instead): keep it occupied and let the loop try again.
				done <- errMainThread
				<-release
				runtime.UnlockOSThread()
				return
			}
			// Never unlocked: this thread is retired when we return.
			direct.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
			done <- direct.Start()
		}()
		switch err := <-done; err {
		case nil:
			started = true
		case errMainThread:
		default:
			t.Fatal(err)
		}
	}
	defer direct.Process.Kill()
	deadline := time.Now().Add(5 * time.Second)
	for alive(direct) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if alive(direct) {
		t.Fatal("premise failed: a Pdeathsig child survived its forking thread's exit")
	}

	s := newSpawner()
	defer s.close()
	child := exec.Command("sleep", "30")
	if err := s.start(child); err != nil {
		t.Fatal(err)
	}
	defer func() { child.Process.Kill(); child.Wait() }()
	for i := 0; i < 50; i++ { // retire threads the way the netns tests do
		ch := make(chan struct{})
		go func() { runtime.LockOSThread(); close(ch) }()
		<-ch
	}
	time.Sleep(200 * time.Millisecond)
	if !alive(child) {
		t.Fatal("a spawner child was killed when other threads were retired")
	}
}
