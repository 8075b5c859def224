package admin_test

import (
	"encoding/json"
	"testing"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/serve"
	"github.com/llmctl/llmctl/pkg/serve/admin"
)

func micros(m ledger.Micros) *ledger.Micros { return &m }

// testPrices covers each shape a price can take: plain, a cached-input
// discount, an explicit batch price, a per-request fee, and odd amounts
// whose halves round.
var testPrices = ledger.Prices{
	UnknownModel: ledger.UnknownDefault,
	Default:      ledger.Price{Input: 333_333, Output: 999_999},
	Models: map[string]ledger.Price{
		"plain":         {Input: 200_000, Output: 600_000},
		"cached":        {Input: 200_001, CachedInput: micros(50_001), Output: 600_001},
		"batch":         {Input: 200_000, Output: 600_000, Batch: &ledger.BatchPrice{Input: 70_000, Output: 90_000}},
		"org/with-fee":  {Input: 7, Output: 13, PerRequest: 101, CachedInput: micros(3)},
		"batch+cached":  {Input: 10, CachedInput: micros(9), Output: 30, Batch: &ledger.BatchPrice{Input: 5, Output: 6}},
		"free-but-fees": {PerRequest: 1},
	},
}

func pricedFixture(t *testing.T, p ledger.Prices) (*fixture, *ledger.Ledger) {
	t.Helper()
	dsn := realStores[0].dsn(t)
	lg := openPricedLedger(t, dsn, p)
	return newLedgerFixture(t, dsn, serve.AdminAPIOnAPI, lg), lg
}

// The price the admin API reports charges, for interactive requests and
// batch lines, exactly what the ledger charges: every model, every usage
// of a grid that hits the rounding and the cached split, to the micro-unit.
func TestPricesChargeWhatTheLedgerCharges(t *testing.T) {
	f, lg := pricedFixture(t, testPrices)
	r := do(t, f.api.URL, "GET", "/admin/v1/prices", f.adminKey, "")
	want(t, r, 200, "prices")
	var list admin.PricesJSON
	if err := json.Unmarshal(r.body, &list); err != nil {
		t.Fatal(err)
	}
	if list.UnknownModel != "default" || list.Default == nil || len(list.Data) != len(testPrices.Models) {
		t.Fatalf("list: %s", r.body)
	}
	configured := lg.Prices()
	usages := []billing.Usage{{}, {PromptTokens: 1}, {CompletionTokens: 1}, {PromptTokens: 3, CompletionTokens: 7},
		{PromptTokens: 1_000_001, CompletionTokens: 999_999, CachedPromptTokens: 500_001}, {PromptTokens: 10, CachedPromptTokens: 10}}
	check := func(model string, p admin.PriceJSON) {
		t.Helper()
		want, err := configured.For(model)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range usages {
			for _, c := range []struct {
				what      string
				got, want ledger.Price
			}{{"interactive", p.Price(), want}, {"batch", p.BatchPrice(), want.ForBatch()}} {
				g, err1 := c.got.Cost(u)
				w, err2 := c.want.Cost(u)
				if err1 != nil || err2 != nil || g != w {
					t.Errorf("%s %s %+v: the reported price charges %d, the ledger %d (%v %v)", model, c.what, u, g, w, err1, err2)
				}
			}
		}
	}
	for _, p := range list.Data {
		if p.Source != "model" {
			t.Errorf("%s: source %q", p.Model, p.Source)
		}
		check(p.Model, p)
	}
	// One model, by query (names hold slashes), named or charged at the default.
	for model, source := range map[string]string{"org/with-fee": "model", "anything/else": "default"} {
		r := do(t, f.api.URL, "GET", "/admin/v1/prices?model="+model, f.adminKey, "")
		want(t, r, 200, model)
		var one admin.PricesJSON
		if err := json.Unmarshal(r.body, &one); err != nil || len(one.Data) != 1 || one.Data[0].Model != model || one.Data[0].Source != source {
			t.Fatalf("%s: %s (%v)", model, r.body, err)
		}
		check(model, one.Data[0])
	}
}

func TestPricesErrors(t *testing.T) {
	reject := ledger.Prices{Models: map[string]ledger.Price{"m": {Input: 1, Output: 2}}}
	f, _ := pricedFixture(t, reject)
	r := do(t, f.api.URL, "GET", "/admin/v1/prices?model=other", f.adminKey, "")
	wantErr(t, r, 404, "model", `model "other" has no price`)
	if e := r.err(t); e.Error.Code == nil || *e.Error.Code != "model_not_priced" {
		t.Fatalf("code: %s", r.body)
	}
	r = do(t, f.api.URL, "GET", "/admin/v1/prices?modle=m", f.adminKey, "")
	wantErr(t, r, 400, "modle", `unknown query parameter "modle"`)
	r = do(t, f.api.URL, "GET", "/admin/v1/prices", f.adminKey, "")
	want(t, r, 200, "reject list")
	var list admin.PricesJSON
	if err := json.Unmarshal(r.body, &list); err != nil || list.UnknownModel != "reject" || list.Default != nil || len(list.Data) != 1 {
		t.Fatalf("reject list: %s", r.body)
	}
	// Without a ledger (serve without prices), the endpoint says so.
	nf := newFixture(t, realStores[0].dsn(t), serve.AdminAPIOnAPI)
	want(t, do(t, nf.api.URL, "GET", "/admin/v1/prices", nf.adminKey, ""), 501, "no billing")
}
