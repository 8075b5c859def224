package preflight

import (
	"context"
	"fmt"
)

// Verdict is the outcome of one check.
type Verdict string

// Verdicts, from best to worst; skip means the check did not apply.
const (
	Pass Verdict = "pass"
	Warn Verdict = "warn"
	Fail Verdict = "fail"
	Skip Verdict = "skip"
)

// Category groups checks along the chain host → GPU → runtime → cluster → model.
type Category string

// Categories in the order the chain is walked and the report is printed.
const (
	CatHost    Category = "host"
	CatGPU     Category = "gpu"
	CatRuntime Category = "runtime"
	CatCluster Category = "cluster"
	CatModel   Category = "model"
)

// Categories lists every category in report order.
func Categories() []Category {
	return []Category{CatHost, CatGPU, CatRuntime, CatCluster, CatModel}
}

// Check is one independent unit: it reads what it needs from the Env and
// returns an Outcome. A check never returns an error; what went wrong is its
// verdict and evidence.
type Check struct {
	ID       string
	Category Category
	Title    string
	Run      func(ctx context.Context, e *Env) Outcome
}

// Outcome is what a check found.
type Outcome struct {
	Verdict Verdict
	// Message is the one-line finding ("K3s containerd has no nvidia runtime").
	Message string
	// Evidence is what was read, one fact per line ("/proc/sys/kernel/osrelease: 6.6.0").
	Evidence []string
	// Remedy is the fix, in words or commands; empty when nothing is wrong.
	Remedy string
	// Fix is an automatic remedy `--fix` may apply; nil when there is none
	// or it is not safe to automate.
	Fix *Fix
}

// Result is a check's outcome with its identity, as reported.
type Result struct {
	ID       string   `json:"id"`
	Category Category `json:"category"`
	Title    string   `json:"title"`
	Verdict  Verdict  `json:"verdict"`
	Message  string   `json:"message"`
	Evidence []string `json:"evidence,omitempty"`
	Remedy   string   `json:"remedy,omitempty"`
	// FixID names the automatic fix `--fix` offers for this result.
	FixID string `json:"fix,omitempty"`
	fix   *Fix
}

// Fix returns the automatic fix attached to the result, if any.
func (r Result) Fix() *Fix { return r.fix }

// Fix is a safe, confirmable change: shown first, applied only when the user
// agrees, and never editing a file without a backup.
type Fix struct {
	ID string
	// Summary says what will change, in one line.
	Summary string
	// Preview is the exact content or object that will be written.
	Preview string
	Apply   func(ctx context.Context) (string, error)
}

// Helpers keep check bodies short and their verdicts explicit.

func pass(msg string, ev ...string) Outcome {
	return Outcome{Verdict: Pass, Message: msg, Evidence: ev}
}

func skip(msg string, ev ...string) Outcome {
	return Outcome{Verdict: Skip, Message: msg, Evidence: ev}
}

func warn(msg, remedy string, ev ...string) Outcome {
	return Outcome{Verdict: Warn, Message: msg, Remedy: remedy, Evidence: ev}
}

func fail(msg, remedy string, ev ...string) Outcome {
	return Outcome{Verdict: Fail, Message: msg, Remedy: remedy, Evidence: ev}
}

func evf(format string, a ...any) string { return fmt.Sprintf(format, a...) }

// worse returns the more severe of two verdicts (skip counts as best).
func worse(a, b Verdict) Verdict {
	rank := map[Verdict]int{Skip: 0, Pass: 1, Warn: 2, Fail: 3}
	if rank[b] > rank[a] {
		return b
	}
	return a
}
