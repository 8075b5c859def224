package kubetest

import "syscall"

// sysProcAttr kills a control-plane process when the test binary dies, so a
// crashed test leaves nothing running.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
