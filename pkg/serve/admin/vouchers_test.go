package admin_test

import (
	"bytes"
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/serve"
)

type voucherOut struct {
	ID, Code, Amount, Tenant, State string
	AmountMicros                    int64  `json:"amount_micros"`
	RedeemedBy                      string `json:"redeemed_by"`
}

type redemptionOut struct {
	VoucherID      string `json:"voucher_id"`
	Tenant         string
	Credited       string
	CreditedMicros int64 `json:"credited_micros"`
	BalanceMicros  int64 `json:"balance_micros"`
}

// Vouchers end to end through the real gateway, on each database: created
// by the admin API (codes shown once, never listed or audited), redeemed by
// a user key's POST /v1/me/redeem once, every refusal the same answer,
// revoked, and the answers held to the OpenAPI document.
func TestVouchersAPI(t *testing.T) {
	onEachLedger(t, func(t *testing.T, f *fixture, lg *ledger.Ledger) {
		ctx := context.Background()
		ak := f.adminKey
		v := validator{t: t, doc: loadOpenAPI(t, f.api.URL, ak), api: f.api.URL}
		for _, name := range []string{"acme", "other"} {
			want(t, do(t, f.api.URL, "POST", "/admin/v1/tenants", ak, `{"name":"`+name+`"}`), 201, "tenant")
		}
		r := do(t, f.api.URL, "POST", "/admin/v1/tenants/acme/keys", ak, `{"name":"u"}`)
		want(t, r, 201, "key")
		var uk keyOut
		r.decode(t, &uk)

		r = v.call("POST", "/admin/v1/vouchers", "/admin/v1/vouchers", ak, `{"amount":"10.000001","count":3,"expires_in":"2160h"}`, true)
		want(t, r, 201, "create vouchers")
		var created struct{ Data []voucherOut }
		r.decode(t, &created)
		if len(created.Data) != 3 {
			t.Fatalf("created %s", r.body)
		}
		codes := map[string]bool{}
		for _, c := range created.Data {
			if !strings.HasPrefix(c.Code, ledger.VoucherPrefix+"-") || len(c.Code) != len("LLMV")+8*5 || c.AmountMicros != 10_000_001 || c.State != "active" {
				t.Fatalf("voucher %+v", c)
			}
			codes[c.Code] = true
		}
		if len(codes) != 3 {
			t.Fatal("codes repeat")
		}
		r = v.call("POST", "/admin/v1/vouchers", "/admin/v1/vouchers", ak, `{"amount":"2","tenant":"other"}`, true)
		want(t, r, 201, "restricted voucher")
		var others struct{ Data []voucherOut }
		r.decode(t, &others)
		if others.Data[0].Tenant != "other" {
			t.Fatalf("restricted voucher %s", r.body)
		}
		// One that expired a second ago, straight into the store.
		past := time.Now().Add(-time.Second)
		expired, err := ledger.IssueVouchers(ctx, lg.Store(), ledger.IssueRequest{Amount: 1, Count: 1, Now: past.Add(-time.Hour), Expires: time.Hour})
		if err != nil {
			t.Fatal(err)
		}

		redeem := func(code string) reply {
			t.Helper()
			return v.call("POST", "/v1/me/redeem", "/v1/me/redeem", uk.Key, `{"code":"`+code+`"}`, true)
		}
		first := created.Data[0]
		r = redeem(strings.ToLower(first.Code)) // as typed: case does not matter
		want(t, r, 200, "redeem")
		var red redemptionOut
		r.decode(t, &red)
		if red.VoucherID != first.ID || red.Tenant != "acme" || red.Credited != "10.000001" || red.CreditedMicros != 10_000_001 || red.BalanceMicros != 10_000_001 {
			t.Fatalf("redemption %s", r.body)
		}
		wantBalance(t, f.api.URL, ak, "acme", 10_000_001)

		revoked := created.Data[1]
		want(t, v.call("POST", "/admin/v1/vouchers/{id}/revoke", "/admin/v1/vouchers/"+revoked.ID+"/revoke", ak, "", true), 200, "revoke")
		want(t, v.call("POST", "/admin/v1/vouchers/{id}/revoke", "/admin/v1/vouchers/"+revoked.ID+"/revoke", ak, "", true), 409, "revoke twice")
		want(t, v.call("POST", "/admin/v1/vouchers/{id}/revoke", "/admin/v1/vouchers/vch_nope/revoke", ak, "", true), 404, "revoke unknown")

		// Used, revoked, another tenant's, expired, unknown: one answer.
		var refusals [][]byte
		for _, code := range []string{first.Code, revoked.Code, others.Data[0].Code, expired[0].Code, "LLMV-AAAA-BBBB"} {
			r := redeem(code)
			wantErr(t, r, 400, "code", "cannot be redeemed")
			if e := r.err(t); e.Error.Code == nil || *e.Error.Code != "invalid_voucher" {
				t.Fatalf("refusal %s", r.body)
			}
			refusals = append(refusals, r.body)
		}
		for _, b := range refusals[1:] {
			if !bytes.Equal(b, refusals[0]) {
				t.Fatalf("refusals differ, an oracle:\n%s\n%s", refusals[0], b)
			}
		}
		wantBalance(t, f.api.URL, ak, "acme", 10_000_001)
		wantBalance(t, f.api.URL, ak, "other", 0)

		// Unknown fields are named; a missing code is said.
		wantErr(t, do(t, f.api.URL, "POST", "/v1/me/redeem", uk.Key, `{"code":"x","tenant":"other","amount":"9"}`), 400, "amount", `unknown field(s) "amount", "tenant"`)
		wantErr(t, do(t, f.api.URL, "POST", "/v1/me/redeem", uk.Key, `{}`), 400, "code", `"code" is required`)
		want(t, do(t, f.api.URL, "GET", "/v1/me/redeem", uk.Key, ""), 405, "GET redeem")
		want(t, do(t, f.api.URL, "POST", "/v1/me/redeem", "", `{"code":"x"}`), 401, "no key")

		// Listing shows states and never a code; neither does the audit log.
		r = v.call("GET", "/admin/v1/vouchers", "/admin/v1/vouchers", ak, "", true)
		want(t, r, 200, "list")
		var list struct{ Data []voucherOut }
		r.decode(t, &list)
		states := map[string]string{}
		for _, x := range list.Data {
			states[x.ID] = x.State
			if x.Code != "" {
				t.Fatalf("a listing shows a code: %s", r.body)
			}
		}
		if states[first.ID] != "redeemed" || states[revoked.ID] != "revoked" || states[expired[0].ID] != "expired" || states[created.Data[2].ID] != "active" {
			t.Fatalf("states %v", states)
		}
		audit := do(t, f.api.URL, "GET", "/admin/v1/audit?limit=100", ak, "")
		for code := range codes {
			if bytes.Contains(audit.body, []byte(code)) || bytes.Contains(audit.body, []byte(strings.TrimPrefix(code, "LLMV-"))) {
				t.Fatal("the audit log holds a voucher code")
			}
		}
		for _, action := range []string{`"voucher.create"`, `"voucher.revoke"`, first.ID} {
			if !bytes.Contains(audit.body, []byte(action)) {
				t.Fatalf("audit log lacks %s: %s", action, audit.body)
			}
		}

		// Bad create requests name their field.
		wantErr(t, do(t, f.api.URL, "POST", "/admin/v1/vouchers", ak, `{"amount":"0"}`), 400, "amount", "positive")
		wantErr(t, do(t, f.api.URL, "POST", "/admin/v1/vouchers", ak, `{"amount":"1","count":1001}`), 400, "count", "1 to 1000")
		wantErr(t, do(t, f.api.URL, "POST", "/admin/v1/vouchers", ak, `{"amount":"1","code":"mine"}`), 400, "code", "unknown field")
		want(t, do(t, f.api.URL, "POST", "/admin/v1/vouchers", ak, `{"amount":"1","tenant":"nobody"}`), 404, "unknown tenant")
		want(t, do(t, f.api.URL, "POST", "/admin/v1/vouchers", uk.Key, `{"amount":"1"}`), 403, "user key")

		// The key has made 8 attempts of its 10 a minute: the 9th and 10th
		// pass (bar the tokens that trickled back meanwhile, 1 per 6 s), and
		// then the answer is 429 with a Retry-After.
		want(t, redeem(created.Data[2].Code), 200, "9th attempt")
		for i := 10; ; i++ {
			r = do(t, f.api.URL, "POST", "/v1/me/redeem", uk.Key, `{"code":"LLMV-AAAA"}`)
			if r.status == 429 {
				break
			}
			want(t, r, 400, "attempt under the limit")
			if i > 14 {
				t.Fatal("no 429 after 14 attempts in well under a minute")
			}
		}
		if ra, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || ra < 1 || ra > 6 {
			t.Fatalf("429 with Retry-After %q, want 1 to 6 s", r.header.Get("Retry-After"))
		}
		wantBalance(t, f.api.URL, ak, "acme", 20_000_002)
		if rep, err := lg.Store().Verify(ctx); err != nil || !rep.OK() {
			t.Fatalf("verify: %+v %v", rep, err)
		}
	})
}

// Without a ledger the voucher routes say billing is off.
func TestVouchersWithoutLedger(t *testing.T) {
	f := newFixture(t, realStores[0].dsn(t), serve.AdminAPIOnAPI)
	want(t, do(t, f.api.URL, "POST", "/v1/me/redeem", f.adminKey, `{"code":"x"}`), 501, "redeem")
	want(t, do(t, f.api.URL, "GET", "/admin/v1/vouchers", f.adminKey, ""), 501, "list")
}
