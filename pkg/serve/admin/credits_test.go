package admin_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/billing/store"
	"github.com/llmctl/llmctl/pkg/serve"
)

// openLedger is a real ledger on dsn, as serve builds it.
func openLedger(t *testing.T, dsn string) *ledger.Ledger {
	t.Helper()
	return openPricedLedger(t, dsn, ledger.Prices{})
}

// openPricedLedger is openLedger charging by p.
func openPricedLedger(t *testing.T, dsn string, p ledger.Prices) *ledger.Ledger {
	t.Helper()
	ls, err := ledger.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	lg, err := ledger.New(ls, ledger.Config{Prices: p, SpoolDir: t.TempDir()})
	if err != nil {
		ls.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := lg.Close(context.Background()); err != nil {
			t.Error(err)
		}
		ls.Close()
	})
	return lg
}

// onEachLedger runs test on a fresh gateway with a real ledger, once over
// each real database.
func onEachLedger(t *testing.T, test func(t *testing.T, f *fixture, lg *ledger.Ledger)) {
	for _, rs := range realStores {
		t.Run(rs.name, func(t *testing.T) {
			dsn := rs.dsn(t)
			lg := openLedger(t, dsn)
			test(t, newLedgerFixture(t, dsn, serve.AdminAPIOnAPI, lg), lg)
		})
	}
}

// withAcme is a gateway with a ledger on SQLite and a tenant "acme".
func withAcme(t *testing.T) *fixture {
	t.Helper()
	dsn := realStores[0].dsn(t)
	f := newLedgerFixture(t, dsn, serve.AdminAPIOnAPI, openLedger(t, dsn))
	want(t, do(t, f.api.URL, "POST", "/admin/v1/tenants", f.adminKey, `{"name":"acme"}`), 201, "tenant")
	return f
}

type entryOut struct {
	Tenant, Kind, Amount, Reason string
	AmountMicros                 int64     `json:"amount_micros"`
	IdempotencyKey               string    `json:"idempotency_key"`
	CreatedAt                    time.Time `json:"created_at"`
}

type balanceOut struct {
	Tenant, Balance, Reserved, Available string
	BalanceMicros                        int64 `json:"balance_micros"`
	ReservedMicros                       int64 `json:"reserved_micros"`
	AvailableMicros                      int64 `json:"available_micros"`
}

type spendOut struct {
	Amount       string
	AmountMicros int64 `json:"amount_micros"`
	Requests     int64
}

type meOut struct {
	Object, Tenant, Role string
	KeyID                string `json:"key_id"`
	Models               []string
	ExpiresAt            *time.Time `json:"expires_at"`
	Limits               struct{ Key, Tenant struct{ RPM, TPM int64 } }
	Billing              *struct {
		balanceOut
		Spend24h spendOut `json:"spend_24h"`
		Spend30d spendOut `json:"spend_30d"`
	}
	BillingMessage string `json:"billing_message"`
}

func wantBalance(t *testing.T, api, key, tenant string, micros int64) {
	t.Helper()
	r := do(t, api, "GET", "/admin/v1/tenants/"+tenant+"/balance", key, "")
	want(t, r, 200, "balance")
	var b balanceOut
	r.decode(t, &b)
	if b.Tenant != tenant || b.BalanceMicros != micros || b.Balance != ledger.Micros(micros).String() ||
		b.ReservedMicros != 0 || b.Reserved != "0.000000" || b.AvailableMicros != micros || b.Available != b.Balance {
		t.Fatalf("balance of %s: %s, want %d micro-units", tenant, r.body, micros)
	}
}

// Credits move the balance exactly to the micro-unit, a repeated
// idempotency key changes nothing and answers the original entry, a debit
// adjustment takes money back, each write is audited, and /v1/me shows a
// user key its tenant's balance, limits and spend.
func TestAdminCreditsBalanceAndMe(t *testing.T) {
	onEachLedger(t, func(t *testing.T, f *fixture, lg *ledger.Ledger) {
		ctx := context.Background()
		api, ak := f.api.URL, f.adminKey
		adminID, _, _ := store.ParseKey(ak)
		want(t, do(t, api, "POST", "/admin/v1/tenants", ak, `{"name":"acme","rpm":100}`), 201, "tenant")
		r := do(t, api, "POST", "/admin/v1/tenants/acme/keys", ak, `{"models":["m1"],"tpm":500}`)
		want(t, r, 201, "user key")
		var uk keyOut
		r.decode(t, &uk)
		wantBalance(t, api, ak, "acme", 0)

		credit := `{"amount":"12.500001","reason":"invoice 7","idempotency_key":"inv-7"}`
		r = do(t, api, "POST", "/admin/v1/tenants/acme/credits", ak, credit)
		want(t, r, 201, "credit")
		creditReq := r.header.Get("X-Request-Id")
		var first entryOut
		r.decode(t, &first)
		if first.Tenant != "acme" || first.Kind != "credit" || first.Amount != "12.500001" || first.AmountMicros != 12_500_001 ||
			first.Reason != "invoice 7" || first.IdempotencyKey != "inv-7" || first.CreatedAt.IsZero() {
			t.Fatalf("credit entry: %s", r.body)
		}
		wantBalance(t, api, ak, "acme", 12_500_001)

		// The same key again, even with another amount: nothing changes,
		// and the answer is the entry written the first time.
		for _, body := range []string{credit, `{"amount":"99","reason":"retry","idempotency_key":"inv-7"}`} {
			r = do(t, api, "POST", "/admin/v1/tenants/acme/credits", ak, body)
			want(t, r, 200, "replayed credit")
			var again entryOut
			r.decode(t, &again)
			if again != first {
				t.Fatalf("replay answered %+v, want the original %+v", again, first)
			}
			wantBalance(t, api, ak, "acme", 12_500_001)
		}

		r = do(t, api, "POST", "/admin/v1/tenants/acme/credits", ak, `{"amount":"-0.000002","reason":"correction","idempotency_key":"fix-1"}`)
		want(t, r, 201, "debit adjustment")
		var debit entryOut
		r.decode(t, &debit)
		if debit.Kind != "adjustment" || debit.Amount != "-0.000002" || debit.AmountMicros != -2 {
			t.Fatalf("debit entry: %s", r.body)
		}
		wantBalance(t, api, ak, "acme", 12_499_999)

		// A request's charge, as the gateway settles it, is spend.
		if _, err := lg.Credit(ctx, ledger.Entry{Key: "charge:test-1", TenantID: uk.tenantID(t, f), Kind: ledger.KindDebit,
			Amount: -1_234_567, Model: "m1", Time: time.Now().UTC()}); err != nil {
			t.Fatal(err)
		}

		r = do(t, api, "GET", "/v1/me", uk.Key, "")
		want(t, r, 200, "/v1/me for a user key")
		var me meOut
		r.decode(t, &me)
		if me.Object != "me" || me.Tenant != "acme" || me.KeyID != uk.ID || me.Role != "user" || len(me.Models) != 1 ||
			me.Models[0] != "m1" || me.ExpiresAt != nil || me.Limits.Key.TPM != 500 || me.Limits.Tenant.RPM != 100 {
			t.Fatalf("/v1/me: %s", r.body)
		}
		b := me.Billing
		if b == nil || b.BalanceMicros != 11_265_432 || b.Balance != "11.265432" || b.AvailableMicros != 11_265_432 ||
			b.Available != "11.265432" || b.ReservedMicros != 0 {
			t.Fatalf("/v1/me balance: %s", r.body)
		}
		for _, s := range []spendOut{b.Spend24h, b.Spend30d} {
			if s.Amount != "1.234567" || s.AmountMicros != 1_234_567 || s.Requests != 1 {
				t.Fatalf("/v1/me spend: %s", r.body)
			}
		}
		if strings.Contains(string(r.body), uk.Key) {
			t.Fatal("/v1/me shows the secret")
		}
		r = do(t, api, "GET", "/v1/me", ak, "")
		want(t, r, 200, "/v1/me for the admin key")
		r.decode(t, &me)
		if me.Tenant != "admin" || me.Role != "admin" || me.Billing == nil || me.Billing.BalanceMicros != 0 || me.Billing.Spend24h.Amount != "0.000000" {
			t.Fatalf("/v1/me for the admin key: %s", r.body)
		}
		wantErr(t, do(t, api, "GET", "/v1/me", "", ""), 401, "", "missing API key")
		wantErr(t, do(t, api, "POST", "/v1/me", uk.Key, "{}"), 405, "", "use GET")

		wantErr(t, do(t, api, "POST", "/admin/v1/tenants/nope/credits", ak, `{"amount":"1","reason":"x"}`), 404, "", `tenant "nope" not found`)
		wantErr(t, do(t, api, "GET", "/admin/v1/tenants/nope/balance", ak, ""), 404, "", `tenant "nope" not found`)
		wantErr(t, do(t, api, "POST", "/admin/v1/tenants/acme/credits", uk.Key, `{"amount":"1","reason":"x"}`), 403, "", "may not use the admin API")
		wantBalance(t, api, ak, "acme", 11_265_432)

		// Two credit records (not the replays), by the admin key.
		recs, err := f.st.ListAudit(ctx, store.AuditFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var credits []store.AuditRecord
		for _, a := range recs {
			if a.Action == store.AuditCredit {
				credits = append(credits, a)
			}
		}
		if len(credits) != 2 {
			t.Fatalf("%d credit audit records, want 2: %+v", len(credits), recs)
		}
		c := credits[1] // oldest: the credit
		if c.Actor != adminID || c.Target != "acme" || c.RequestID != creditReq ||
			!strings.Contains(string(c.Details), `"amount":"12.500001"`) || !strings.Contains(string(c.Details), `"idempotency_key":"inv-7"`) {
			t.Fatalf("credit audit record: %+v %s", c, c.Details)
		}
		for _, a := range credits {
			if strings.Contains(string(a.Details)+a.Actor, store.KeyPrefix) {
				t.Fatalf("audit record holds a key: %+v", a)
			}
		}
	})
}

// tenantID is the key's tenant's id, which the ledger is keyed by.
func (k keyOut) tenantID(t *testing.T, f *fixture) string {
	t.Helper()
	ten, err := f.st.GetTenant(context.Background(), k.Tenant)
	if err != nil {
		t.Fatal(err)
	}
	return ten.ID
}

// A malformed amount is a 400 naming amount and writes nothing; without a
// ledger the endpoints say billing is off, and /v1/me still answers.
func TestAdminCreditBadInput(t *testing.T) {
	f := withAcme(t)
	api, ak := f.api.URL, f.adminKey
	for _, tc := range []struct{ body, param, msg string }{
		{`{"amount":"1e3","reason":"x"}`, "amount", `(got "1e3")`},
		{`{"amount":"0.0000001","reason":"x"}`, "amount", "at most 6 fractional digits"},
		{`{"amount":"abc","reason":"x"}`, "amount", `(got "abc")`},
		{`{"amount":"","reason":"x"}`, "amount", `(got "")`},
		{`{"amount":" 1","reason":"x"}`, "amount", `(got " 1")`},
		{`{"amount":"1.","reason":"x"}`, "amount", `(got "1.")`},
		{`{"amount":"0","reason":"x"}`, "amount", "must not be zero"},
		{`{"amount":"-0.000000","reason":"x"}`, "amount", "must not be zero"},
		{`{"amount":"99999999999999","reason":"x"}`, "amount", "at most 6 fractional digits"},
		{`{"amount":12.5,"reason":"x"}`, "amount", `"amount" must be a string`},
		{`{"reason":"x"}`, "amount", `"amount" is required`},
		{`{"amount":"1"}`, "reason", `"reason" is required`},
		{`{"amount":"1","reason":" "}`, "reason", `"reason" is required`},
		{`{"amount":"1","reason":"x","idempotency_key":"a b"}`, "idempotency_key", "must not contain spaces"},
		{`{"amount":"1","reason":"x","idempotency_key":"` + strings.Repeat("k", 201) + `"}`, "idempotency_key", "longer than 200"},
		{`{"amount":"1","reason":"paid with sk-llm-abc_def"}`, "reason", "must not contain an API key"},
		{`{"amount":"1","reason":"x","tenant":"other"}`, "tenant", `unknown field "tenant"`},
	} {
		r := do(t, api, "POST", "/admin/v1/tenants/acme/credits", ak, tc.body)
		t.Run(tc.body[:min(len(tc.body), 40)], func(t *testing.T) { wantErr(t, r, 400, tc.param, tc.msg) })
	}
	wantErr(t, do(t, api, "GET", "/admin/v1/tenants/acme/credits", ak, ""), 405, "", "use POST")
	wantErr(t, do(t, api, "GET", "/admin/v1/tenants/acme/balance", ak, `{"x":1}`), 400, "", "takes no body")
	wantBalance(t, api, ak, "acme", 0)
	if recs, err := f.st.ListAudit(context.Background(), store.AuditFilter{}); err != nil || len(recs) != 1 {
		t.Fatalf("bad credits wrote audit records: %+v %v", recs, err)
	}

	off := newFixture(t, realStores[0].dsn(t), serve.AdminAPIOnAPI)
	wantErr(t, do(t, off.api.URL, "POST", "/admin/v1/tenants/admin/credits", off.adminKey, `{"amount":"1","reason":"x"}`), 501, "", "billing is not enabled")
	wantErr(t, do(t, off.api.URL, "GET", "/admin/v1/tenants/admin/balance", off.adminKey, ""), 501, "", "start llmctl serve with --prices")
	r := do(t, off.api.URL, "GET", "/v1/me", off.adminKey, "")
	want(t, r, 200, "/v1/me without a ledger")
	var me meOut
	r.decode(t, &me)
	if me.Tenant != "admin" || me.Billing != nil || !strings.Contains(me.BillingMessage, "billing is not enabled") {
		t.Fatalf("/v1/me without a ledger: %s", r.body)
	}
}
