package ledger_test

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
)

func TestMetricsLintAndMove(t *testing.T) {
	ctx := context.Background()
	s := open(t, sqliteDSN(t))
	defer s.Close()
	reg := prometheus.NewRegistry()
	l := newLedger(t, s, t.TempDir(), func(c *ledger.Config) { c.Registerer = reg })
	fund(t, s, "a", ledger.Unit)
	h, err := l.Reserve(ctx, req("a", "r", "m", 1, 1))
	if err != nil {
		t.Fatal(err)
	}
	h.Settle(ctx, billing.Usage{PromptTokens: 1, CompletionTokens: 1})
	drained(t, l)
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	want := `
# HELP llmctl_ledger_spool_depth Ledger entries journaled in the local spool and not yet in the database.
# TYPE llmctl_ledger_spool_depth gauge
llmctl_ledger_spool_depth 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "llmctl_ledger_spool_depth"); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg, "llmctl_ledger_write_batch_size"); err != nil || n != 1 {
		t.Fatalf("batch size histogram: %d series, %v", n, err)
	}
	if err := l.Close(ctx); err != nil {
		t.Fatal(err)
	}
	// Close unregisters, so a restarted ledger can register again.
	l2 := newLedger(t, s, t.TempDir(), func(c *ledger.Config) { c.Registerer = reg })
	l2.Close(ctx)
}
