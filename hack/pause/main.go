// Command pause is the pod sandbox's process for the test node
// (internal/kubetest): it holds the pod's namespaces, reaps the zombies
// of processes it adopts, and exits on SIGTERM or SIGINT. Built here
// because no registry (registry.k8s.io/pause) is reachable in CI's sandbox.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 8)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sig {
		if s != syscall.SIGCHLD {
			return
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
