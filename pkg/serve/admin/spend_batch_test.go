package admin_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
)

// Spend by batch: one row per batch id the charges record ("" for
// interactive requests), exact to the micro-unit, and entries show their
// batch; on a real SQLite and PostgreSQL ledger.
func TestAdminSpendByBatch(t *testing.T) {
	onEachLedger(t, func(t *testing.T, f *fixture, lg *ledger.Ledger) {
		ctx := context.Background()
		api, ak := f.api.URL, f.adminKey
		acme := createAcme(t, f)
		now := f.clock.Now().UTC()
		for i, c := range []struct {
			batch  string
			micros int64
		}{{"batch_1", 500_001}, {"", 20}, {"batch_1", 499_999}, {"batch_2", 7}} {
			if _, err := lg.Credit(ctx, ledger.Entry{Key: fmt.Sprintf("charge:%d", i), TenantID: acme.ID, Kind: ledger.KindDebit,
				Amount: ledger.Micros(-c.micros), Model: "m", KeyID: "k", BatchID: c.batch, PromptTokens: 10, CompletionTokens: 1,
				Time: now.Add(-time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}
		r := do(t, api, "GET", "/admin/v1/tenants/acme/spend?by=batch", ak, "")
		want(t, r, 200, "spend by batch")
		var s struct {
			spendOut
			By   string
			Data []struct {
				BatchID *string `json:"batch_id"`
				spendOut
			}
		}
		r.decode(t, &s)
		if s.AmountMicros != 1_000_027 || s.Requests != 4 || s.By != "batch" || len(s.Data) != 3 ||
			*s.Data[0].BatchID != "" || s.Data[0].AmountMicros != 20 ||
			*s.Data[1].BatchID != "batch_1" || s.Data[1].AmountMicros != 1_000_000 || s.Data[1].Requests != 2 || s.Data[1].Amount != "1.000000" ||
			*s.Data[2].BatchID != "batch_2" || s.Data[2].AmountMicros != 7 {
			t.Fatalf("spend by batch: %s", r.body)
		}
		r = do(t, api, "GET", "/admin/v1/tenants/acme/entries?limit=4", ak, "")
		want(t, r, 200, "entries")
		if !strings.Contains(string(r.body), `"batch_id":"batch_2"`) {
			t.Fatalf("entries: %s", r.body)
		}
		r = do(t, api, "GET", "/admin/v1/tenants/acme/spend?by=batches", ak, "")
		want(t, r, 400, "by=batches")
		if !strings.Contains(string(r.body), "batch") {
			t.Fatalf("by=batches: %s", r.body)
		}
	})
}
