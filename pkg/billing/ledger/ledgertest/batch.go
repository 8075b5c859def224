package ledgertest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
)

// runBatchSpend: entries keep the batch of the line they charge, entries
// written before batches read "", and spend splits by batch.
func runBatchSpend(t *testing.T, h Harness, open func(*testing.T) ledger.Store) {
	ctx := context.Background()
	t.Run("SpendByBatch", func(t *testing.T) {
		s := open(t)
		b := func(e ledger.Entry, batchID string) ledger.Entry {
			e.BatchID = batchID
			return e
		}
		rel := ledger.Entry{Key: "r", TenantID: "a", Kind: ledger.KindRelease, BatchID: "batch_1", Time: t0}
		if _, err := s.Apply(ctx, []ledger.Entry{
			credit("pay", "a", 10*ledger.Unit),
			b(debit("1", "a", 1_000_001), "batch_1"), b(debit("2", "a", 2), "batch_2"),
			b(debit("3", "a", 999_999), "batch_1"), debit("4", "a", 40), rel, b(debit("5", "b", 11), "batch_1"),
		}); err != nil {
			t.Fatal(err)
		}
		old := fmt.Sprintf(`INSERT INTO ledger_entries (idem_key, tenant_id, kind, amount, model, key_id, prompt_tokens, completion_tokens, reason, created_at)
            VALUES ('old', 'a', 'release', 0, 'm', 'k0', 0, 0, '', %d)`, t0.UnixMicro())
		if err := h.Exec(t, s, old); err != nil {
			t.Fatal(err)
		}
		es, err := s.Entries(ctx, ledger.Filter{TenantID: "a"})
		if err != nil || len(es) != 7 || es[1].BatchID != "batch_1" || es[2].BatchID != "batch_2" || es[4].BatchID != "" ||
			es[5].BatchID != "batch_1" || es[6].Key != "old" || es[6].BatchID != "" {
			t.Fatalf("entries keep their batch: %+v %v", es, err)
		}
		w := ledger.SpendWindow{Since: t0.Add(-time.Hour), Recent: t0.Add(-time.Minute), Until: t0, TenantID: "a", ByBatch: true}
		got, err := s.Spend(ctx, w)
		want := []ledger.Spend{
			{TenantID: "a", Amount: 40, Requests: 2, RecentAmount: 40, RecentRequests: 2},
			{TenantID: "a", BatchID: "batch_1", Amount: 2_000_000, Requests: 3, RecentAmount: 2_000_000, RecentRequests: 3},
			{TenantID: "a", BatchID: "batch_2", Amount: 2, Requests: 1, RecentAmount: 2, RecentRequests: 1},
		}
		if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("by batch:\n got %+v %v\nwant %+v", got, err, want)
		}
		wantClean(t, s)
	})
}
