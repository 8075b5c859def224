package admin_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/billing/store"
)

// Spend by end user: one row per OpenAI `user` value the charges record
// ("" for none), exact to the micro-unit; entries show the end user and the
// cached prompt tokens; on a real SQLite and PostgreSQL ledger.
func TestAdminSpendByUser(t *testing.T) {
	onEachLedger(t, func(t *testing.T, f *fixture, lg *ledger.Ledger) {
		ctx := context.Background()
		api, ak := f.api.URL, f.adminKey
		acme := createAcme(t, f)
		f.clock.Add(-time.Duration(f.clock.Now().Nanosecond() % 1000))
		now := f.clock.Now().UTC()
		for i, c := range []struct {
			user   string
			micros int64
		}{{"alice", 1_000_001}, {"bob", 20}, {"alice", 999_999}, {"", 7}} {
			if _, err := lg.Credit(ctx, ledger.Entry{Key: fmt.Sprintf("charge:%d", i), TenantID: acme.ID, Kind: ledger.KindDebit,
				Amount: ledger.Micros(-c.micros), Model: "m", KeyID: "k", EndUser: c.user, PromptTokens: 10, CachedPromptTokens: int64(i),
				CompletionTokens: 1, Time: now.Add(-time.Hour)}); err != nil {
				t.Fatal(err)
			}
		}
		r := do(t, api, "GET", "/admin/v1/tenants/acme/spend?by=user", ak, "")
		want(t, r, 200, "spend by user")
		var s struct {
			spendOut
			By   string
			Data []struct {
				User *string
				spendOut
			}
		}
		r.decode(t, &s)
		if s.AmountMicros != 2_000_027 || s.Requests != 4 || s.By != "user" || len(s.Data) != 3 ||
			*s.Data[0].User != "" || s.Data[0].AmountMicros != 7 ||
			*s.Data[1].User != "alice" || s.Data[1].AmountMicros != 2_000_000 || s.Data[1].Requests != 2 || s.Data[1].Amount != "2.000000" ||
			*s.Data[2].User != "bob" || s.Data[2].AmountMicros != 20 || strings.Contains(string(r.body), "key_id") {
			t.Fatalf("spend by user: %s", r.body)
		}
		r = do(t, api, "GET", "/admin/v1/tenants/acme/entries?limit=4", ak, "")
		want(t, r, 200, "entries")
		if !strings.Contains(string(r.body), `"end_user":"alice","cached_prompt_tokens":2`) {
			t.Fatalf("entries: %s", r.body)
		}
		want(t, do(t, api, "GET", "/admin/v1/tenants/acme/spend?by=tenant", ak, ""), 400, "by=tenant")
	})
}

// createAcme creates tenant acme through the admin API and returns it as
// the store holds it.
func createAcme(t *testing.T, f *fixture) store.Tenant {
	t.Helper()
	want(t, do(t, f.api.URL, "POST", "/admin/v1/tenants", f.adminKey, `{"name":"acme"}`), 201, "tenant")
	acme, err := f.st.GetTenant(context.Background(), "acme")
	if err != nil {
		t.Fatal(err)
	}
	return acme
}
