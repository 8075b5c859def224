package batch_test

import (
	"context"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/serve/batch"
)

// TestBatchLineWaitEndsWithWorker: a line still waiting for a backend slot
// (the Runner answers 499 once the worker's context ends, as the gateway's
// queue does) did not run: the stop records nothing for it, and the next
// worker runs it once.
func TestBatchLineWaitEndsWithWorker(t *testing.T) {
	waiting := make(chan struct{}, 8)
	e := newEnv(t, sqliteDSN(t), batch.Limits{}, func(o *batch.Options) {
		o.Runner = batch.RunnerFunc(func(ctx context.Context, _ billing.Principal, _, _ string, _ []byte, _ string) (int, []byte) {
			waiting <- struct{}{}
			<-ctx.Done() // no slot ever frees
			return 499, []byte(`{"error":{"message":"client closed the request","code":"client_closed"}}`)
		})
	})
	c := e.client(e.keyA)
	b := create(t, c, upload(t, c, strings.Join([]string{chatLine("w1", "double-model", "hi"), chatLine("w2", "double-model", "hi")}, "\n")).ID)
	stop := e.startWorker()
	<-waiting
	stop()
	lines, err := e.bs.Lines(context.Background(), b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 0 {
		t.Fatalf("lines that never ran were recorded: %+v", lines)
	}
	e.svcOpts.Runner = batch.RunnerFunc(func(ctx context.Context, p billing.Principal, batchID, ep string, body []byte, id string) (int, []byte) {
		return e.gw.RunLine(ctx, p, batchID, ep, body, id)
	})
	defer e.startWorker()()
	b = poll(t, c, b.ID)
	if b.Status != openai.BatchStatusCompleted || b.RequestCounts.Completed != 2 || b.RequestCounts.Failed != 0 {
		t.Fatalf("after restart %s %+v", b.Status, b.RequestCounts)
	}
	if d := e.debits(t); len(d) != 2 {
		t.Fatalf("%d debits for 2 lines", len(d))
	}
}
