// Command pause is the pod sandbox's process for the test node
// (internal/kubetest): it holds the pod's namespaces, reaps the zombies
// of processes it adopts, and exits on SIGTERM or SIGINT. Built here
// because no registry (registry.k8s.io/pause) is reachable in CI's sandbox.
//
// The same image is the tests' one workload for failures a real node must
// produce: `pause exit N` exits with status N (CrashLoopBackOff), `pause
// alloc MIB` touches MIB MiB of memory, then waits (OOMKilled under a lower
// limit).
package main

import (
	"os"
	"os/signal"
	"strconv"
	"syscall"
)

func main() {
	if len(os.Args) == 3 {
		n, err := strconv.Atoi(os.Args[2])
		switch {
		case err != nil:
			os.Exit(2)
		case os.Args[1] == "exit":
			os.Exit(n)
		case os.Args[1] == "alloc":
			held := make([][]byte, 0, n)
			for range n {
				b := make([]byte, 1<<20)
				for i := range b {
					b[i] = 1
				}
				held = append(held, b)
			}
			defer func() { _ = held }()
		}
	}
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
