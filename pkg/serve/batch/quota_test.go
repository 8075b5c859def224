package batch_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/serve/batch"
)

// TestBatchRunsOutOfCredit: a tenant with credit for a few lines runs a
// batch of 8, one line at a time. The lines its balance covers are
// answered and charged at the batch price; the ledger refuses the next
// (402 insufficient_quota); every later line is failed with the same
// error without running; the batch completes; nothing more is charged
// or sent, to the micro-unit, on the real ledger of SQLite and PostgreSQL.
func TestBatchRunsOutOfCredit(t *testing.T) {
	for name, dsn := range map[string]func(testing.TB) string{"SQLite": sqliteDSN, "PostgreSQL": pgDSN} {
		t.Run(name, func(t *testing.T) { testRunsOutOfCredit(t, dsn(t)) })
	}
}

func testRunsOutOfCredit(t *testing.T, dsn string) {
	ctx := context.Background()
	e := newEnv(t, dsn, batch.Limits{}, func(o *batch.Options) { o.Concurrency = 1 })
	// 1000 units of credit become 70 µ: a line reserves about 25 µ
	// (prompt estimate + max_tokens 20, at half a µ a token, + 10) and is
	// charged about 16 µ.
	const credit = 70
	if _, err := e.ls.Apply(ctx, []ledger.Entry{{Key: "trim", TenantID: e.tenantA, Kind: ledger.KindAdjustment,
		Amount: credit - 1000*ledger.Unit, Time: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	c := e.client(e.keyA)
	var lines []string
	for i := range 8 {
		lines = append(lines, chatLine(fmt.Sprintf("q%d", i), "double-model", "hello tokens=3"))
	}
	defer e.startWorker()()
	b := poll(t, c, create(t, c, upload(t, c, strings.Join(lines, "\n")).ID).ID)
	if b.Status != openai.BatchStatusCompleted || b.RequestCounts.Total != 8 || b.RequestCounts.Completed+b.RequestCounts.Failed != 8 {
		t.Fatalf("batch %s %+v", b.Status, b.RequestCounts)
	}
	done := b.RequestCounts.Completed
	if done < 1 || b.RequestCounts.Failed < 2 {
		t.Fatalf("%d lines answered, %d failed: want some of each", done, b.RequestCounts.Failed)
	}
	// The answered lines, and what they are charged at the batch price.
	var want ledger.Micros
	out := download(t, c, b.OutputFileID)
	for i, l := range out {
		var cc openai.ChatCompletion
		if l.CustomID != fmt.Sprintf("q%d", i) || l.Response == nil || l.Response.StatusCode != 200 || json.Unmarshal(l.Response.Body, &cc) != nil {
			t.Fatalf("output line %d: %+v", i, l)
		}
		want += ledger.Micros((cc.Usage.PromptTokens+cc.Usage.CompletionTokens)*500_000+999_999)/1_000_000 + 10
	}
	// The refused line, then the ones that never ran, all insufficient_quota.
	errs := download(t, c, b.ErrorFileID)
	if int64(len(errs)) != 8-done {
		t.Fatalf("%d error lines, want %d", len(errs), 8-done)
	}
	for i, l := range errs {
		var body struct {
			Error struct{ Message, Type, Code string }
		}
		if l.CustomID != fmt.Sprintf("q%d", int(done)+i) || l.Error != nil || l.Response == nil || l.Response.StatusCode != 402 ||
			json.Unmarshal(l.Response.Body, &body) != nil || body.Error.Code != "insufficient_quota" || body.Error.Type != "insufficient_quota" {
			t.Fatalf("error line %d: %+v", i, l)
		}
		if first := i == 0; first != strings.Contains(body.Error.Message, "insufficient balance") ||
			!first && !strings.Contains(body.Error.Message, "not run") {
			t.Fatalf("error line %d says %q", i, body.Error.Message)
		}
	}
	// Only the answered lines reached the backend and the ledger.
	if n := e.double.Requests(); int64(n) != done {
		t.Fatalf("%d requests sent for %d answered lines", n, done)
	}
	var got ledger.Micros
	for _, d := range e.debits(t) {
		if !strings.Contains(d.Key, b.ID) {
			t.Fatalf("debit %s is not the batch's", d.Key)
		}
		got -= d.Amount
	}
	if got != want {
		t.Fatalf("charged %d µ, want %d µ for %d lines at the batch price", got, want, done)
	}
	acct, err := e.ls.Account(ctx, e.tenantA)
	if err != nil {
		t.Fatal(err)
	}
	if acct.Balance != credit-want || acct.Reserved != 0 {
		t.Fatalf("account %+v, want balance %d and nothing held", acct, credit-want)
	}
	if rep, err := e.ls.Verify(ctx); err != nil || !rep.OK() {
		t.Fatalf("ledger verify: %+v %v", rep, err)
	}
}
