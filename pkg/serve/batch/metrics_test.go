package batch_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/llmctl/llmctl/pkg/serve"
	"github.com/llmctl/llmctl/pkg/serve/batch"
)

// TestBatchMetrics: batches by status, lines recorded by result, the
// progress of an unfinished batch, and the batch share and headroom of a
// model's slots (llmctl_batch_slots; no interactive traffic, so the auto
// headroom is 0), as scraped from the gateway's registry.
func TestBatchMetrics(t *testing.T) {
	dsn := sqliteDSN(t)
	reg := prometheus.NewRegistry()
	e := newEnv(t, dsn, batch.Limits{}, func(o *batch.Options) { o.Concurrency = 1 })
	e.regateway(t, dsn, func(o *serve.Options) {
		o.Registry = reg
		o.Remotes[0].MaxConc = 2 // batch share 0.5: one slot for batch lines
	})
	e.svcOpts.Registerer = reg
	c := e.client(e.keyA)
	// A batch that completes (2 answered, 1 failed), then one that holds its
	// line's slot for a while.
	done := create(t, c, upload(t, c, chatLine("a", "double-model", "x")+"\n"+chatLine("b", "double-model", "no status=400")+"\n"+
		chatLine("c", "double-model", "y")).ID)
	defer e.startWorker()()
	e.waitStatus(t, done.ID, batch.StatusCompleted)
	slow := create(t, c, upload(t, c, chatLine("s1", "double-model", "slow delay=2s")+"\n"+chatLine("s2", "double-model", "z")).ID)
	expect := func(what, want string, names ...string) {
		t.Helper()
		var last error
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if last = testutil.GatherAndCompare(reg, strings.NewReader(want), names...); last == nil {
				return
			}
		}
		t.Fatalf("%s: %v", what, last)
	}
	expect("the slow line holds the batch share", `
# HELP llmctl_batch_slots Backend slots of a model held by batch lines (state=held) and the most they may hold, the batch share (state=limit; absent when a backend of the model has no maxConcurrency), and the slots a starting batch line must leave free (state=headroom).
# TYPE llmctl_batch_slots gauge
llmctl_batch_slots{model="double-model",state="headroom"} 0
llmctl_batch_slots{model="double-model",state="held"} 1
llmctl_batch_slots{model="double-model",state="limit"} 1
`, "llmctl_batch_slots")
	expect("progress of the running batch", fmt.Sprintf(`
# HELP llmctl_batch_progress Lines of each unfinished batch: state=total, completed (answered 2xx) or failed.
# TYPE llmctl_batch_progress gauge
llmctl_batch_progress{batch=%[1]q,state="completed",status="in_progress",tenant=%[2]q} 0
llmctl_batch_progress{batch=%[1]q,state="failed",status="in_progress",tenant=%[2]q} 0
llmctl_batch_progress{batch=%[1]q,state="total",status="in_progress",tenant=%[2]q} 2
`, slow.ID, e.tenantA), "llmctl_batch_progress")
	if b := e.waitStatus(t, slow.ID, batch.StatusCompleted); b.Completed != 2 {
		t.Fatalf("slow batch %+v", b)
	}
	expect("finished", `
# HELP llmctl_batches Batches in the store by status.
# TYPE llmctl_batches gauge
llmctl_batches{status="cancelled"} 0
llmctl_batches{status="cancelling"} 0
llmctl_batches{status="completed"} 2
llmctl_batches{status="expired"} 0
llmctl_batches{status="failed"} 0
llmctl_batches{status="finalizing"} 0
llmctl_batches{status="in_progress"} 0
llmctl_batches{status="validating"} 0
# HELP llmctl_batch_lines_total Batch lines recorded by this process, by result (completed: answered 2xx; failed: in the error file).
# TYPE llmctl_batch_lines_total counter
llmctl_batch_lines_total{result="completed"} 4
llmctl_batch_lines_total{result="failed"} 1
# HELP llmctl_batch_slots Backend slots of a model held by batch lines (state=held) and the most they may hold, the batch share (state=limit; absent when a backend of the model has no maxConcurrency), and the slots a starting batch line must leave free (state=headroom).
# TYPE llmctl_batch_slots gauge
llmctl_batch_slots{model="double-model",state="headroom"} 0
llmctl_batch_slots{model="double-model",state="held"} 0
llmctl_batch_slots{model="double-model",state="limit"} 1
`, "llmctl_batches", "llmctl_batch_lines_total", "llmctl_batch_slots", "llmctl_batch_progress")
}
