//go:build !linux

package kubetest

import "os/exec"

// spawner starts processes directly: Pdeathsig is Linux-only.
type spawner struct{}

func newSpawner() *spawner                 { return &spawner{} }
func (*spawner) start(cmd *exec.Cmd) error { return cmd.Start() }
func (*spawner) close()                    {}
