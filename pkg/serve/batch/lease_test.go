package batch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/serve/batch"
)

// stores runs f on SQLite and on PostgreSQL.
func stores(t *testing.T, f func(t *testing.T, dsn string)) {
	for name, dsn := range map[string]func(testing.TB) string{"SQLite": sqliteDSN, "PostgreSQL": pgDSN} {
		t.Run(name, func(t *testing.T) { f(t, dsn(t)) })
	}
}

// replica starts another worker (a Service of its own, as a second replica
// or a restarted process) on e's database; stop ends it and waits for it.
func (e *env) replica(t *testing.T, mutate func(o *batch.Options)) (stop func()) {
	stop, _ = e.replicaCancel(t, mutate)
	return stop
}

// replicaCancel is replica, with the cancel of its context alone.
func (e *env) replicaCancel(t *testing.T, mutate func(o *batch.Options)) (stop func(), cancel context.CancelFunc) {
	t.Helper()
	o := e.svcOpts
	mutate(&o)
	w, err := batch.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); w.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop, cancel
}

func (e *env) runLine(ctx context.Context, p billing.Principal, batchID, ep string, body []byte, id string) (int, []byte) {
	return e.gw.RunLine(ctx, p, batchID, ep, body, id)
}

// createLines creates a batch of n chat lines: custom ids idFormat of the
// index, prompts prompt(index).
func createLines(t *testing.T, c openai.Client, n int, idFormat string, prompt func(i int) string) *openai.Batch {
	t.Helper()
	var lines []string
	for i := range n {
		lines = append(lines, chatLine(fmt.Sprintf(idFormat, i), "double-model", prompt(i)))
	}
	return create(t, c, upload(t, c, strings.Join(lines, "\n")).ID)
}

// batchCost is a line's charge at double-model's batch price: half of 1 µ
// a token, rounded up over the line, plus 10 µ a request.
func batchCost(prompt, completion int64) int64 {
	return (prompt*500_000+completion*500_000+999_999)/1_000_000 + 10
}

// lineUsage is the usage in an output line's response body.
func lineUsage(t *testing.T, l outLine) (prompt, completion int64) {
	t.Helper()
	var body struct {
		Usage struct {
			PromptTokens     int64 `json:"prompt_tokens"`
			CompletionTokens int64 `json:"completion_tokens"`
		} `json:"usage"`
	}
	if l.Response == nil || json.Unmarshal(l.Response.Body, &body) != nil || body.Usage.CompletionTokens == 0 {
		t.Fatalf("output line without usage: %+v", l)
	}
	return body.Usage.PromptTokens, body.Usage.CompletionTokens
}

// TestLineChargesReadsTheLedger: the worker's view of a batch's runs in
// the ledger: charged, released, held, and keys that are not this batch's
// lines (an interactive request's, another batch's) left out.
func TestLineChargesReadsTheLedger(t *testing.T) {
	stores(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		s := openStore(t, dsn)
		ls, err := ledger.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer ls.Close()
		now := time.Now()
		e := func(key string, kind ledger.Kind, amount ledger.Micros) ledger.Entry {
			return ledger.Entry{Key: key, TenantID: "t", Kind: kind, Amount: amount, Model: "m", Time: now}
		}
		if _, err := ls.Apply(ctx, []ledger.Entry{
			e("pay", ledger.KindCredit, ledger.Unit),
			e(ledger.BatchLineKey("batch_x-3"), ledger.KindDebit, -5),
			e(ledger.BatchLineKey("batch_x-4"), ledger.KindRelease, 0),
			e(ledger.BatchLineKey("batch_x-4-r2"), ledger.KindDebit, -7),
			e(ledger.BatchLineKey("batch_x-6"), ledger.KindRelease, 0),
			e("req:batch_x-7:0123456789abcdef", ledger.KindDebit, -1),  // an interactive request's
			e(ledger.BatchLineKey("batch_xy-1"), ledger.KindDebit, -1), // another batch
			e(ledger.BatchLineKey("batchyx-8"), ledger.KindDebit, -1),  // _ is no wildcard
		}); err != nil {
			t.Fatal(err)
		}
		if err := ls.Reserve(ctx, ledger.HoldRequest{Key: ledger.BatchLineKey("batch_x-5"), TenantID: "t", Amount: 100, Time: now}); err != nil {
			t.Fatal(err)
		}
		got, err := s.LineCharges(ctx, "batch_x")
		if err != nil {
			t.Fatal(err)
		}
		want := map[int64]batch.LineCharge{
			3: {Charged: "batch_x-3", Runs: 1},
			4: {Charged: "batch_x-4-r2", Runs: 2},
			5: {Held: true},
			6: {Runs: 1},
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("line charges\n%v\nwant\n%v", got, want)
		}
	})
}

// TestBatchLeaseOneReplicaRunsIt: two workers on one database; the batch
// is run by exactly one of them, every line once.
func TestBatchLeaseOneReplicaRunsIt(t *testing.T) {
	stores(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, batch.Limits{})
		c := e.client(e.keyA)
		b := createLines(t, c, 20, "c%02d", func(int) string { return "x delay=5ms" })
		var mu sync.Mutex
		runs := map[string]int{}    // by replica
		perLine := map[string]int{} // by request id
		for _, owner := range []string{"A", "B"} {
			e.replica(t, func(o *batch.Options) {
				o.Owner = owner
				o.Runner = batch.RunnerFunc(func(ctx context.Context, p billing.Principal, batchID, ep string, body []byte, id string) (int, []byte) {
					mu.Lock()
					runs[owner]++
					perLine[id]++
					mu.Unlock()
					return e.runLine(ctx, p, batchID, ep, body, id)
				})
			})
		}
		if got := poll(t, c, b.ID); got.Status != openai.BatchStatusCompleted || got.RequestCounts.Completed != 20 {
			t.Fatalf("batch %s %+v", got.Status, got.RequestCounts)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(perLine) != 20 || (runs["A"] != 0 && runs["B"] != 0) {
			t.Fatalf("runs by replica %v, %d lines run", runs, len(perLine))
		}
		for id, n := range perLine {
			if n != 1 {
				t.Fatalf("line %s ran %d times", id, n)
			}
		}
		if d := e.debits(t); len(d) != 20 {
			t.Fatalf("%d debits for 20 lines", len(d))
		}
	})
}

// TestBatchLeaseExpiryHandsOver: replica A holds the batch and hangs in a
// line (as a killed or partitioned process would); replica B takes the
// batch only once A's lease has ended, and finishes it. A's hung line,
// when it comes back, finishes under the same ledger key as B's run of
// it: the line is charged once and recorded once, and A starts no other
// line.
func TestBatchLeaseExpiryHandsOver(t *testing.T) {
	stores(t, func(t *testing.T, dsn string) {
		clock := testenv.NewClock(time.Now())
		e := newEnv(t, dsn, batch.Limits{})
		c := e.client(e.keyA)
		b := createLines(t, c, 5, "c%d", func(i int) string { return fmt.Sprintf("x tokens=%d", 3+i) })
		started, resume := make(chan struct{}), make(chan struct{})
		var mu sync.Mutex
		var aRuns int
		var bRunsAt []time.Time
		// Renewals never come within the test (a real 59m ticker): the
		// lease ends when the clock says so.
		lease := func(o *batch.Options) { o.Now, o.LeaseTTL, o.LeaseRenew = clock.Now, time.Hour, 59*time.Minute }
		stopA := e.replica(t, func(o *batch.Options) {
			lease(o)
			o.Owner, o.Concurrency = "A", 1
			o.Runner = batch.RunnerFunc(func(ctx context.Context, p billing.Principal, batchID, ep string, body []byte, id string) (int, []byte) {
				mu.Lock()
				aRuns++
				first := aRuns == 1
				mu.Unlock()
				if first {
					close(started)
					<-resume
				}
				return e.runLine(ctx, p, batchID, ep, body, id)
			})
		})
		<-started
		e.replica(t, func(o *batch.Options) {
			lease(o)
			o.Owner = "B"
			o.Runner = batch.RunnerFunc(func(ctx context.Context, p billing.Principal, batchID, ep string, body []byte, id string) (int, []byte) {
				mu.Lock()
				bRunsAt = append(bRunsAt, clock.Now())
				mu.Unlock()
				return e.runLine(ctx, p, batchID, ep, body, id)
			})
		})
		expiry := clock.Now().Add(time.Hour)
		clock.Add(time.Hour + time.Second)
		got := poll(t, c, b.ID)
		if got.Status != openai.BatchStatusCompleted || got.RequestCounts.Completed != 5 {
			t.Fatalf("batch %s %+v", got.Status, got.RequestCounts)
		}
		close(resume) // A's hung line comes back
		stopA()
		mu.Lock()
		if aRuns != 1 || len(bRunsAt) != 5 {
			t.Fatalf("A ran %d lines (want 1), B %d (want 5)", aRuns, len(bRunsAt))
		}
		for _, at := range bRunsAt {
			if at.Before(expiry) {
				t.Fatalf("B ran a line at %s, before A's lease ended at %s", at, expiry)
			}
		}
		mu.Unlock()
		// A's resumed line races A's stop: it either reaches the backend
		// (6 requests, c0 twice, and the checks below hold it to one
		// charge) or ends in its wait for a slot, unsent (5). Either is
		// right; anything else is not.
		if n := e.double.Requests(); n != 5 && n != 6 {
			t.Fatalf("the backend answered %d requests, want 5, or 6 with line c0 twice", n)
		}
		out := download(t, c, got.OutputFileID)
		var want int64
		for _, l := range out {
			want += batchCost(lineUsage(t, l))
		}
		var charged int64
		d := e.debits(t)
		for _, x := range d {
			charged -= int64(x.Amount)
		}
		if len(out) != 5 || len(d) != 5 || charged != want {
			t.Fatalf("%d output lines, %d debits charging %d µ; want 5, 5 and %d µ", len(out), len(d), charged, want)
		}
	})
}

// TestBatchChargedLineRerunChargedOnce: the process dies after a line was
// charged and before its answer was stored. The next worker runs the line
// again under the same ledger key: the output holds the rerun's answer and
// the tenant pays for the line once, to the micro-unit.
func TestBatchChargedLineRerunChargedOnce(t *testing.T) {
	stores(t, func(t *testing.T, dsn string) {
		e := newEnv(t, dsn, batch.Limits{})
		c := e.client(e.keyA)
		b := createLines(t, c, 4, "c%d", func(i int) string { return fmt.Sprintf("some words tokens=%d", 2+3*i) })
		crashed, ready := make(chan struct{}), make(chan struct{})
		var crash func() // set once the replica is started: ready
		stop, cancel := e.replicaCancel(t, func(o *batch.Options) {
			o.Concurrency = 1
			o.Runner = batch.RunnerFunc(func(ctx context.Context, p billing.Principal, batchID, ep string, body []byte, id string) (int, []byte) {
				status, out := e.runLine(ctx, p, batchID, ep, body, id)
				if id != b.ID+"-3" { // c2, the third line
					return status, out
				}
				// Charged (its settlement is in the ledger's journal); the
				// process dies before the answer is stored.
				<-ready
				crash()
				return 499, out
			})
		})
		crash = func() { cancel(); go func() { stop(); close(crashed) }() }
		close(ready)
		<-crashed
		if lines, _ := e.bs.Lines(context.Background(), b.ID); len(lines) != 2 {
			t.Fatalf("%d lines recorded before the crash, want 2", len(lines))
		}
		if d := e.debits(t); len(d) != 3 {
			t.Fatalf("%d debits before the crash, want 3 (c2 charged, not recorded)", len(d))
		}
		e.replica(t, func(o *batch.Options) {})
		got := poll(t, c, b.ID)
		if got.Status != openai.BatchStatusCompleted || got.RequestCounts.Completed != 4 {
			t.Fatalf("batch %s %+v", got.Status, got.RequestCounts)
		}
		if n := e.double.Requests(); n != 5 {
			t.Fatalf("the backend answered %d requests, want 5 (c2 twice)", n)
		}
		var want int64
		out := download(t, c, got.OutputFileID)
		for i, l := range out {
			if l.CustomID != fmt.Sprintf("c%d", i) || l.Response.RequestID != fmt.Sprintf("%s-%d", b.ID, i+1) {
				t.Fatalf("output line %d: %+v", i, l)
			}
			want += batchCost(lineUsage(t, l))
		}
		var charged int64
		d := e.debits(t)
		keys := map[string]bool{}
		for _, x := range d {
			charged -= int64(x.Amount)
			keys[x.Key] = true
		}
		if len(out) != 4 || len(d) != 4 || len(keys) != 4 || charged != want {
			t.Fatalf("%d output lines, %d debits (%d keys) charging %d µ; want 4, 4 and %d µ", len(out), len(d), len(keys), charged, want)
		}
		if a, err := e.ls.Account(context.Background(), e.tenantA); err != nil || a.Reserved != 0 || int64(a.Balance) != 1000*int64(ledger.Unit)-want {
			t.Fatalf("account %+v, %v; want %d µ spent and nothing reserved", a, err, want)
		}
	})
}

// TestBatchRunsLeftInTheLedger: what an earlier owner left in the ledger
// decides each line's next run. A released run (its process restarted on
// its spool and released the hold) gets a new key, and is charged; a run
// still held waits until its outcome lands (here: its charge), then runs
// again under its key and is not charged again.
func TestBatchRunsLeftInTheLedger(t *testing.T) {
	stores(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		e := newEnv(t, dsn, batch.Limits{})
		c := e.client(e.keyA)
		b := createLines(t, c, 4, "c%d", func(i int) string { return fmt.Sprintf("x tokens=%d", 4+i) })
		now := time.Now()
		if _, err := e.ls.Apply(ctx, []ledger.Entry{{Key: ledger.BatchLineKey(b.ID + "-1"), TenantID: e.tenantA, Kind: ledger.KindRelease,
			Model: "double-model", Time: now, Reason: "released at restart"}}); err != nil {
			t.Fatal(err)
		}
		held := ledger.BatchLineKey(b.ID + "-2") // c1
		if err := e.ls.Reserve(ctx, ledger.HoldRequest{Key: held, TenantID: e.tenantA, Amount: 5000, Time: now}); err != nil {
			t.Fatal(err)
		}
		e.replica(t, func(o *batch.Options) {})
		for {
			cur, err := e.bs.Batch(ctx, e.tenantA, b.ID)
			if err != nil {
				t.Fatal(err)
			}
			if cur.Completed+cur.Failed == 3 {
				if cur.Status != batch.StatusInProgress {
					t.Fatalf("batch %s with a line still held", cur.Status)
				}
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
		ls, _ := e.bs.Lines(ctx, b.ID)
		for _, l := range ls {
			if l.CustomID == "c1" {
				t.Fatal("the held line ran before its earlier run's outcome landed")
			}
		}
		// The earlier run's charge lands (its process's spool drained).
		const first = 777
		if _, err := e.ls.Apply(ctx, []ledger.Entry{{Key: held, TenantID: e.tenantA, Kind: ledger.KindDebit, Amount: -first,
			Model: "double-model", PromptTokens: 4, CompletionTokens: 5, Time: now}}); err != nil {
			t.Fatal(err)
		}
		got := poll(t, c, b.ID)
		if got.Status != openai.BatchStatusCompleted || got.RequestCounts.Completed != 4 {
			t.Fatalf("batch %s %+v", got.Status, got.RequestCounts)
		}
		out := download(t, c, got.OutputFileID)
		wantIDs := []string{b.ID + "-1-r2", b.ID + "-2", b.ID + "-3", b.ID + "-4"} // lines are numbered from 1
		want := int64(first)
		for i, l := range out {
			if l.Response.RequestID != wantIDs[i] || l.ID != fmt.Sprintf("batch_req_%s-%d", b.ID, i+1) {
				t.Fatalf("output line %d: id %s request id %s, want request id %s", i, l.ID, l.Response.RequestID, wantIDs[i])
			}
			if i != 1 {
				want += batchCost(lineUsage(t, l))
			}
		}
		var charged int64
		d := e.debits(t)
		for _, x := range d {
			charged -= int64(x.Amount)
			if x.Key == held && x.Amount != -first {
				t.Fatalf("the held line's charge is %s, want the first run's %d µ", x.Amount, first)
			}
		}
		if len(out) != 4 || len(d) != 4 || charged != want {
			t.Fatalf("%d output lines, %d debits charging %d µ; want 4, 4 and %d µ", len(out), len(d), charged, want)
		}
		if a, err := e.ls.Account(ctx, e.tenantA); err != nil || a.Reserved != 0 || int64(a.Balance) != 1000*int64(ledger.Unit)-want {
			t.Fatalf("account %+v, %v; want %d µ spent and nothing reserved", a, err, want)
		}
	})
}

// logBuffer is a slog destination the test can read while workers write.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) has(s string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Contains(l.b.String(), s)
}

// TestBatchLeaseRenewalFailsStopsLines: another replica takes the lease
// (here: a claim as if its clock were an hour ahead) while A runs a line.
// A's next renewal fails; A's running line finishes and is recorded, and
// A starts no other line.
func TestBatchLeaseRenewalFailsStopsLines(t *testing.T) {
	stores(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		e := newEnv(t, dsn, batch.Limits{})
		c := e.client(e.keyA)
		b := createLines(t, c, 4, "c%d", func(int) string { return "x" })
		started, resume := make(chan struct{}), make(chan struct{})
		var mu sync.Mutex
		runs := 0
		logs := &logBuffer{}
		stop := e.replica(t, func(o *batch.Options) {
			o.Owner, o.Concurrency = "A", 1
			o.LeaseTTL, o.LeaseRenew = time.Minute, 20*time.Millisecond
			o.Logger = slog.New(slog.NewTextHandler(logs, nil))
			o.Runner = batch.RunnerFunc(func(ctx context.Context, p billing.Principal, batchID, ep string, body []byte, id string) (int, []byte) {
				mu.Lock()
				runs++
				first := runs == 1
				mu.Unlock()
				if first {
					close(started)
					<-resume
				}
				return e.runLine(ctx, p, batchID, ep, body, id)
			})
		})
		<-started
		if ok, err := e.bs.Claim(ctx, b.ID, "thief", time.Now().Add(time.Hour), time.Hour); err != nil || !ok {
			t.Fatalf("the other replica's claim: %v %v", ok, err)
		}
		for !logs.has("lost the batch's lease") {
			time.Sleep(5 * time.Millisecond)
		}
		close(resume)
		for !logs.has("batch worker stopped: its lease was lost") {
			time.Sleep(5 * time.Millisecond)
		}
		stop()
		lines, err := e.bs.Lines(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if runs != 1 || len(lines) != 1 || lines[0].CustomID != "c0" || lines[0].Failed {
			t.Fatalf("A ran %d lines and %d were recorded (%+v); want its running line only", runs, len(lines), lines)
		}
		if cur, err := e.bs.Batch(ctx, e.tenantA, b.ID); err != nil || cur.Status != batch.StatusInProgress {
			t.Fatalf("batch %+v, %v; want it left in progress for its new owner", cur.Status, err)
		}
	})
}
