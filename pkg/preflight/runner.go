package preflight

import (
	"context"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"time"
)

// RunOptions bound a run.
type RunOptions struct {
	// Concurrency is how many checks run at once (default 8).
	Concurrency int
	// CheckTimeout bounds each check, including the facts it waits for
	// (default 4 s: a dead API server costs one call timeout, not one per check).
	CheckTimeout time.Duration
}

// Select keeps the checks named by only (ids or categories; empty keeps all)
// minus those named by skip. An unknown name is an error, so a typo does not
// silently run nothing.
func Select(checks []Check, only, skip []string) ([]Check, error) {
	known := map[string]bool{}
	for _, c := range checks {
		known[c.ID] = true
		known[string(c.Category)] = true
	}
	for _, n := range slices.Concat(only, skip) {
		if !known[n] {
			return nil, fmt.Errorf("unknown check or category %q (see `llmctl doctor --list`)", n)
		}
	}
	match := func(c Check, names []string) bool {
		return slices.Contains(names, c.ID) || slices.Contains(names, string(c.Category))
	}
	var out []Check
	for _, c := range checks {
		if len(only) > 0 && !match(c, only) {
			continue
		}
		if match(c, skip) {
			continue
		}
		out = append(out, c)
	}
	return out, nil
}

// Run runs the checks concurrently, at most opt.Concurrency at a time, each
// under its own deadline, and returns the report in the checks' order. A check
// that panics or overruns its deadline fails; the others are unaffected.
func Run(ctx context.Context, e *Env, checks []Check, opt RunOptions) Report {
	e.init()
	if opt.Concurrency <= 0 {
		opt.Concurrency = 8
	}
	if opt.CheckTimeout <= 0 {
		opt.CheckTimeout = 2*e.CallTimeout + 500*time.Millisecond
	}
	results := make([]Result, len(checks))
	sem := make(chan struct{}, opt.Concurrency)
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			results[i] = runOne(ctx, e, c, opt.CheckTimeout)
		}()
	}
	wg.Wait()
	return NewReport(results)
}

func runOne(ctx context.Context, e *Env, c Check, timeout time.Duration) Result {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	done := make(chan Outcome, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- fail(fmt.Sprintf("check crashed: %v", p),
					"this is a bug in llmctl; please report it with the output of `llmctl doctor -o json`",
					firstLine(string(debug.Stack())))
			}
		}()
		done <- c.Run(ctx, e)
	}()
	var o Outcome
	select {
	case o = <-done:
	case <-ctx.Done():
		// The check ignored its context; report it and move on rather than
		// letting one stuck call hold the whole run.
		o = fail(fmt.Sprintf("did not finish within %s", timeout),
			"something this check reads is hanging (NVML, the API server or a filesystem); see the evidence of the other checks")
	}
	r := Result{
		ID: c.ID, Category: c.Category, Title: c.Title,
		Verdict: o.Verdict, Message: o.Message, Evidence: o.Evidence,
		Remedy: strings.TrimSpace(o.Remedy), fix: o.Fix,
	}
	if o.Fix != nil && (o.Verdict == Fail || o.Verdict == Warn) {
		r.FixID = o.Fix.ID
	} else {
		r.fix = nil
	}
	return r
}
