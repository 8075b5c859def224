// Command llmctl is one binary to check, deploy, serve and watch LLMs on an
// edge K3s box. This package is wiring only: cobra flags are bound onto
// option structs and handed to the pkg/ libraries that do the work.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

func main() {
	ctx, stop := notifyContext(os.Stderr, os.Exit)
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

// notifyContext is a context that the first SIGINT/SIGTERM ends (serve
// drains, then stops); a second one exits at once, non-zero (128 + the
// signal's number, e.g. 130 for Ctrl-C), for an operator who will not wait
// for the grace period. The ledger's spool is crash-safe: what was not
// flushed is replayed on the next start.
func notifyContext(stderr io.Writer, exit func(int)) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-sigs:
			cancel()
		case <-done:
			return
		}
		select {
		case sig := <-sigs:
			code := 1
			if s, ok := sig.(syscall.Signal); ok {
				code = 128 + int(s)
			}
			fmt.Fprintf(stderr, "llmctl: second %s: forced exit without waiting for open requests (a billing spool left behind is replayed on the next start)\n", sig)
			exit(code)
		case <-done:
		}
	}()
	var once sync.Once
	return ctx, func() {
		once.Do(func() {
			signal.Stop(sigs)
			close(done)
			cancel()
		})
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
