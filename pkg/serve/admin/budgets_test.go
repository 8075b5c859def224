package admin_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/billing/store"
)

type budgetOut struct {
	ID, Tenant, Amount, Period, TZ, Duration, Spent, Remaining string
	KeyID                                                      string    `json:"key_id"`
	AmountMicros                                               int64     `json:"amount_micros"`
	SpentMicros                                                int64     `json:"spent_micros"`
	RemainingMicros                                            int64     `json:"remaining_micros"`
	PeriodStart                                                time.Time `json:"period_start"`
	ResetsAt                                                   time.Time `json:"resets_at"`
}

// Budgets through the admin API, on each database: PUT creates and then
// replaces by period and zone, GET shows the spend of the period, DELETE by
// id or all, every write audited, every answer as the OpenAPI document
// says, and /v1/me shows a key its tenant's and its own budgets.
func TestAdminBudgets(t *testing.T) {
	onEachLedger(t, func(t *testing.T, f *fixture, lg *ledger.Ledger) {
		ctx := context.Background()
		ak := f.adminKey
		v := validator{t: t, doc: loadOpenAPI(t, f.api.URL, ak), api: f.api.URL}
		const tb, kb = "/admin/v1/tenants/{name}/budgets", "/admin/v1/keys/{id}/budgets"
		want(t, v.call("POST", "/admin/v1/tenants", "/admin/v1/tenants", ak, `{"name":"acme"}`, true), 201, "tenant")
		r := v.call("POST", "/admin/v1/tenants/{name}/keys", "/admin/v1/tenants/acme/keys", ak, `{}`, true)
		want(t, r, 201, "key")
		var uk keyOut
		r.decode(t, &uk)
		put := func(tmpl, path, body string) budgetOut {
			t.Helper()
			r := v.call("PUT", tmpl, path, ak, body, true)
			want(t, r, 200, "put budget "+body)
			var b budgetOut
			r.decode(t, &b)
			return b
		}
		month := put(tb, "/admin/v1/tenants/acme/budgets", `{"amount":"50","period":"month","tz":"Europe/Berlin"}`)
		if month.Amount != "50.000000" || month.AmountMicros != 50_000_000 || month.Period != "month" || month.TZ != "Europe/Berlin" ||
			month.Tenant != "acme" || month.KeyID != "" || month.Spent != "0.000000" || month.Remaining != "50.000000" || month.ResetsAt.IsZero() {
			t.Fatalf("month budget: %+v", month)
		}
		again := put(tb, "/admin/v1/tenants/acme/budgets", `{"amount":"40.5","period":"month","tz":"Europe/Berlin"}`)
		if again.ID != month.ID || again.AmountMicros != 40_500_000 {
			t.Fatalf("the same period and zone must replace the amount: %+v", again)
		}
		rolling := put(kb, "/admin/v1/keys/"+uk.ID+"/budgets", `{"amount":"0.000002","period":"rolling","duration":"24h"}`)
		if rolling.KeyID != uk.ID || rolling.Duration != "24h0m0s" || rolling.TZ != "" || rolling.AmountMicros != 2 {
			t.Fatalf("key budget: %+v", rolling)
		}

		// A charge of the key counts in both budgets.
		if _, err := lg.Credit(ctx, ledger.Entry{Key: "charge:b-1", TenantID: uk.tenantID(t, f), Kind: ledger.KindDebit,
			Amount: -3, Model: "m1", KeyID: uk.ID, Time: time.Now().UTC()}); err != nil {
			t.Fatal(err)
		}
		r = v.call("GET", tb, "/admin/v1/tenants/acme/budgets", ak, "", true)
		want(t, r, 200, "list tenant budgets")
		var list struct{ Data []budgetOut }
		r.decode(t, &list)
		if len(list.Data) != 2 || list.Data[0].ID != month.ID || list.Data[0].SpentMicros != 3 || list.Data[0].RemainingMicros != 40_499_997 ||
			list.Data[1].ID != rolling.ID || list.Data[1].SpentMicros != 3 || list.Data[1].Remaining != "0.000000" {
			t.Fatalf("tenant budgets: %s", r.body)
		}
		r = v.call("GET", kb, "/admin/v1/keys/"+uk.ID+"/budgets", ak, "", true)
		want(t, r, 200, "list key budgets")
		r.decode(t, &list)
		if len(list.Data) != 1 || list.Data[0].ID != rolling.ID {
			t.Fatalf("key budgets: %s", r.body)
		}

		r = v.call("GET", "/v1/me", "/v1/me", uk.Key, "", true)
		want(t, r, 200, "/v1/me")
		var me struct{ Billing struct{ Budgets []budgetOut } }
		r.decode(t, &me)
		if len(me.Billing.Budgets) != 2 || me.Billing.Budgets[1].KeyID != uk.ID || me.Billing.Budgets[1].SpentMicros != 3 {
			t.Fatalf("/v1/me budgets: %s", r.body)
		}
		// The admin key's tenant has none: an empty list, not null.
		r = v.call("GET", "/v1/me", "/v1/me", ak, "", true)
		var adminMe struct{ Billing struct{ Budgets []budgetOut } }
		r.decode(t, &adminMe)
		if adminMe.Billing.Budgets == nil || len(adminMe.Billing.Budgets) != 0 {
			t.Fatalf("/v1/me of the admin key: %s", r.body)
		}

		// Refusals say what is wrong with the budget.
		for _, c := range []struct{ body, param, msg string }{
			{`{"amount":"0","period":"day"}`, "amount", "positive decimal"},
			{`{"amount":50,"period":"day"}`, "amount", "must be a string"},
			{`{"amount":"5","period":"year"}`, "", "must be day, week, month or rolling"},
			{`{"amount":"5","period":"day","tz":"Mars/Base"}`, "", "not an IANA zone"},
			{`{"amount":"5","period":"rolling"}`, "", "needs a duration"},
			{`{"amount":"5","period":"rolling","duration":"x"}`, "duration", "Go duration"},
			{`{"amount":"5","period":"day","color":"red"}`, "color", `unknown field "color"`},
		} {
			r := v.call("PUT", tb, "/admin/v1/tenants/acme/budgets", ak, c.body, false)
			wantErr(t, r, 400, c.param, c.msg)
			v.errorAnswer(r)
		}
		wantErr(t, v.call("PUT", tb, "/admin/v1/tenants/nope/budgets", ak, `{"amount":"5","period":"day"}`, true), 404, "", `tenant "nope" not found`)
		wantErr(t, v.call("GET", kb, "/admin/v1/keys/nokey/budgets", ak, "", true), 404, "", `API key "nokey" not found`)
		wantErr(t, v.call("DELETE", tb, "/admin/v1/tenants/acme/budgets?id="+rolling.ID, ak, "", true), 404, "", "not found among the budgets of acme")

		r = v.call("DELETE", kb, "/admin/v1/keys/"+uk.ID+"/budgets?id="+rolling.ID, ak, "", true)
		want(t, r, 200, "delete key budget")
		put(tb, "/admin/v1/tenants/acme/budgets", `{"amount":"1","period":"day"}`)
		r = v.call("DELETE", tb, "/admin/v1/tenants/acme/budgets", ak, "", true)
		want(t, r, 200, "delete all")
		var del struct{ Deleted int }
		r.decode(t, &del)
		if del.Deleted != 2 {
			t.Fatalf("delete all: %s", r.body)
		}

		recs, err := f.st.ListAudit(ctx, store.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		adminID, _, _ := store.ParseKey(ak)
		var sets, dels int
		for _, a := range recs {
			switch a.Action {
			case "budget.set":
				sets++
				var d map[string]any
				if err := json.Unmarshal(a.Details, &d); err != nil || d["amount"] == nil || a.Actor != adminID {
					t.Fatalf("audit record %+v", a)
				}
			case "budget.delete":
				dels++
			}
		}
		if sets != 4 || dels != 2 {
			t.Fatalf("%d budget.set and %d budget.delete records, want 4 and 2", sets, dels)
		}
	})
}
