package ledger_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/llmctl/llmctl/internal/upstreamdouble"
	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/billing/limits"
	"github.com/llmctl/llmctl/pkg/billing/store"
	"github.com/llmctl/llmctl/pkg/serve"
)

// TestRateLimitedRequestHoldsNothing: with a limiter and the ledger both
// on the gateway's path (whichever order or overlap they run in), a request
// the limiter refuses leaves no hold and charges nothing: the account ends,
// to the micro-unit, at the funding minus the one admitted request's debit,
// on SQLite and PostgreSQL.
func TestRateLimitedRequestHoldsNothing(t *testing.T) {
	for name, newDSN := range groupStores {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			d, err := upstreamdouble.New(upstreamdouble.Options{Name: "double"})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			dsn := newDSN(t)
			st, err := store.Open(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			key, err := serve.EnsureAdmin(ctx, st, "")
			if err != nil {
				t.Fatal(err)
			}
			ts, err := st.ListTenants(ctx)
			if err != nil || len(ts) != 1 {
				t.Fatalf("tenants: %v %v", ts, err)
			}
			tenant := ts[0].ID
			ls := open(t, dsn)
			defer ls.Close()
			const funded = 10 * ledger.Unit
			fund(t, ls, tenant, funded)
			l := newLedger(t, ls, t.TempDir(), func(c *ledger.Config) {
				c.Prices = ledger.Prices{Models: map[string]ledger.Price{"double-model": {Input: 100_000, Output: 300_000}}}
			})
			defer l.Close(ctx)
			lim, err := limits.NewMemory(limits.Config{Key: billing.Limits{RPM: 1}})
			if err != nil {
				t.Fatal(err)
			}
			defer lim.Close()
			url := benchGateway(t, st, d.URL(), lim, l)

			body := `{"model":"double-model","max_tokens":64,"messages":[{"role":"user","content":"hello tokens=16"}]}`
			post := func() int {
				req, _ := http.NewRequest(http.MethodPost, url+"/v1/chat/completions", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+key)
				req.Header.Set("Content-Type", "application/json")
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return resp.StatusCode
			}
			if c := post(); c != http.StatusOK {
				t.Fatalf("first request: %d", c)
			}
			for range 5 {
				if c := post(); c != http.StatusTooManyRequests {
					t.Fatalf("request over RPM 1: %d, want 429", c)
				}
			}
			drained(t, l)
			es, err := ls.Entries(ctx, ledger.Filter{TenantID: tenant})
			if err != nil {
				t.Fatal(err)
			}
			var charged ledger.Micros
			debits := 0
			for _, e := range es {
				switch {
				case e.Kind == ledger.KindDebit:
					debits++
					charged -= e.Amount
				case e.Kind == ledger.KindRelease && e.Amount != 0:
					t.Fatalf("a release that moves money: %+v", e)
				case e.Kind != ledger.KindCredit && e.Kind != ledger.KindRelease:
					t.Fatalf("unexpected entry %+v", e)
				}
			}
			if debits != 1 || charged <= 0 {
				t.Fatalf("%d debits charging %s; want the one admitted request's", debits, charged)
			}
			if got := account(t, ls, tenant); got.Balance != funded-charged || got.Reserved != 0 {
				t.Fatalf("account %+v, want balance %s and nothing reserved", got, funded-charged)
			}
			if r := clean(t, ls); r.Holds != 0 {
				t.Fatalf("%d holds left open", r.Holds)
			}
		})
	}
}
