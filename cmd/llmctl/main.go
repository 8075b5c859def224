// Command llmctl is one binary to check, deploy, serve and watch LLMs on an
// edge K3s box. This package is wiring only: cobra flags are bound onto
// option structs and handed to the pkg/ libraries that do the work.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRootCmd(ctx, defaultStreams()).ExecuteContext(ctx)
	stop()
	if err != nil {
		var ec exitCoder
		if errors.As(err, &ec) {
			if msg := ec.Error(); msg != "" {
				fmt.Fprintln(os.Stderr, "Error:", msg)
			}
			os.Exit(ec.ExitCode())
		}
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}

// exitCoder lets a command choose its exit status (doctor: 1 on any failure)
// without calling os.Exit deep inside the code.
type exitCoder interface {
	error
	ExitCode() int
}

// exitError is an error with an explicit exit code; an empty message prints nothing.
type exitError struct {
	code int
	msg  string
}

func (e exitError) Error() string { return e.msg }
func (e exitError) ExitCode() int { return e.code }
