package admin_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/serve"
)

type listedEntry struct {
	entryOut
	Model            string
	KeyID            string `json:"key_id"`
	PromptTokens     int64  `json:"prompt_tokens"`
	CompletionTokens int64  `json:"completion_tokens"`
}

type entryPage struct {
	Object     string
	Data       []listedEntry
	NextCursor string `json:"next_cursor"`
}

type spendReport struct {
	Object, Tenant, By string
	Since              *time.Time
	Until              time.Time
	spendOut
	Data []struct {
		Model string
		KeyID string `json:"key_id"`
		spendOut
	}
}

// Entries list a tenant's ledger newest first, a page at a time, within a
// window given as RFC 3339 times or durations before now; spend sums the
// tenant's charges (not its credits), in total and by model; each on a
// real SQLite and PostgreSQL ledger.
func TestAdminEntriesAndSpend(t *testing.T) {
	onEachLedger(t, func(t *testing.T, f *fixture, lg *ledger.Ledger) {
		ctx := context.Background()
		api, ak := f.api.URL, f.adminKey
		for _, name := range []string{"acme", "other"} {
			want(t, do(t, api, "POST", "/admin/v1/tenants", ak, `{"name":"`+name+`"}`), 201, "tenant")
		}
		acme, err := f.st.GetTenant(ctx, "acme")
		if err != nil {
			t.Fatal(err)
		}
		other, _ := f.st.GetTenant(ctx, "other")
		want(t, do(t, api, "POST", "/admin/v1/tenants/acme/credits", ak, `{"amount":"10","reason":"paid","idempotency_key":"p1"}`), 201, "credit")

		// Charges an hour apart, newest an hour before the handler's now;
		// another tenant's charge must never show.
		// The ledger keeps micro-seconds: align the handler's clock to
		// them so that windows relative to now compare exactly.
		f.clock.Add(-time.Duration(f.clock.Now().Nanosecond() % 1000))
		now := f.clock.Now().UTC()
		// Each charge records the API key of its request ("" for one
		// written before keys were recorded).
		charges := []struct {
			model, keyID string
			micros       int64
			ago          time.Duration
		}{{"m1", "key_a", 100, 5 * time.Hour}, {"m2", "key_b", 20, 4 * time.Hour}, {"m1", "key_a", 3, 3 * time.Hour},
			{"m2", "", 4000, 2 * time.Hour}, {"m1", "key_b", 50000, time.Hour}}
		for i, c := range charges {
			if _, err := lg.Credit(ctx, ledger.Entry{Key: fmt.Sprintf("charge:%d", i), TenantID: acme.ID, Kind: ledger.KindDebit,
				Amount: ledger.Micros(-c.micros), Model: c.model, KeyID: c.keyID, PromptTokens: int64(i + 1), CompletionTokens: 7, Time: now.Add(-c.ago)}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := lg.Credit(ctx, ledger.Entry{Key: "charge:other", TenantID: other.ID, Kind: ledger.KindDebit,
			Amount: -999, Model: "m1", KeyID: "key_a", Time: now.Add(-time.Hour)}); err != nil {
			t.Fatal(err)
		}

		// All of acme's entries in pages of two, newest first: the five
		// charges (latest written last), then the credit.
		var got []listedEntry
		cursor, pages := "", 0
		for {
			path := "/admin/v1/tenants/acme/entries?limit=2"
			if cursor != "" {
				path += "&cursor=" + cursor
			}
			r := do(t, api, "GET", path, ak, "")
			want(t, r, 200, "entries page")
			var p entryPage
			r.decode(t, &p)
			if p.Object != "list" || len(p.Data) > 2 {
				t.Fatalf("page: %s", r.body)
			}
			got = append(got, p.Data...)
			pages++
			if p.NextCursor == "" {
				break
			}
			if pages > 10 {
				t.Fatal("pagination does not end")
			}
			cursor = p.NextCursor
		}
		if len(got) != 6 || pages != 4 {
			t.Fatalf("%d entries in %d pages, want 6 in 4 (the last empty): %+v", len(got), pages, got)
		}
		for i, e := range got[:5] {
			c := charges[4-i]
			if e.Kind != "debit" || e.Tenant != "acme" || e.AmountMicros != -c.micros || e.Amount != ledger.Micros(-c.micros).String() ||
				e.Model != c.model || e.KeyID != c.keyID || e.PromptTokens != int64(5-i) || e.CompletionTokens != 7 || !e.CreatedAt.Equal(now.Add(-c.ago)) ||
				e.IdempotencyKey != "" {
				t.Fatalf("entry %d: %+v, want the charge %+v", i, e, c)
			}
		}
		if cr := got[5]; cr.Kind != "credit" || cr.Amount != "10.000000" || cr.Reason != "paid" || cr.IdempotencyKey != "p1" || cr.KeyID != "" {
			t.Fatalf("the credit: %+v", cr)
		}

		// A window: durations before now, then the same as RFC 3339 times.
		for _, q := range []string{
			"since=4h&until=2h",
			"since=" + now.Add(-4*time.Hour).Format(time.RFC3339Nano) + "&until=" + now.Add(-2*time.Hour).Format(time.RFC3339Nano),
		} {
			r := do(t, api, "GET", "/admin/v1/tenants/acme/entries?"+q, ak, "")
			want(t, r, 200, q)
			var p entryPage
			r.decode(t, &p)
			if len(p.Data) != 3 || p.Data[0].AmountMicros != -4000 || p.Data[2].AmountMicros != -20 || p.NextCursor != "" {
				t.Fatalf("entries %s: %s", q, r.body)
			}
		}

		// Spend: charges only, over all time and within a window.
		r := do(t, api, "GET", "/admin/v1/tenants/acme/spend", ak, "")
		want(t, r, 200, "spend")
		var s spendReport
		r.decode(t, &s)
		if s.Object != "spend" || s.Tenant != "acme" || s.Since != nil || s.AmountMicros != 54123 || s.Amount != "0.054123" ||
			s.Requests != 5 || s.By != "" || s.Data != nil {
			t.Fatalf("spend: %s", r.body)
		}
		r = do(t, api, "GET", "/admin/v1/tenants/acme/spend?since=3h&by=model", ak, "")
		want(t, r, 200, "spend by model")
		s = spendReport{}
		r.decode(t, &s)
		if s.AmountMicros != 54003 || s.Requests != 3 || s.By != "model" || len(s.Data) != 2 ||
			s.Data[0].Model != "m1" || s.Data[0].AmountMicros != 50003 || s.Data[0].Requests != 2 || s.Data[0].Amount != "0.050003" ||
			s.Data[1].Model != "m2" || s.Data[1].AmountMicros != 4000 || s.Data[1].Requests != 1 ||
			s.Since == nil || !s.Since.Equal(now.Add(-3*time.Hour)) || !s.Until.Equal(now) {
			t.Fatalf("spend since 3h by model: %s", r.body)
		}
		if strings.Contains(string(r.body), "key_id") {
			t.Fatalf("spend by model shows key ids: %s", r.body)
		}

		// By key: one row per key id, exact to the micro-unit; the other
		// tenant's charge by key_a never counts.
		r = do(t, api, "GET", "/admin/v1/tenants/acme/spend?by=key", ak, "")
		want(t, r, 200, "spend by key")
		s = spendReport{}
		r.decode(t, &s)
		if s.AmountMicros != 54123 || s.Requests != 5 || s.By != "key" || len(s.Data) != 3 ||
			s.Data[0].KeyID != "" || s.Data[0].AmountMicros != 4000 || s.Data[0].Requests != 1 ||
			s.Data[1].KeyID != "key_a" || s.Data[1].AmountMicros != 103 || s.Data[1].Requests != 2 || s.Data[1].Amount != "0.000103" ||
			s.Data[2].KeyID != "key_b" || s.Data[2].AmountMicros != 50020 || s.Data[2].Requests != 2 || s.Data[2].Amount != "0.050020" ||
			strings.Contains(string(r.body), `"model"`) || !strings.Contains(string(r.body), `"key_id":""`) {
			t.Fatalf("spend by key: %s", r.body)
		}
		r = do(t, api, "GET", "/admin/v1/tenants/acme/spend?by=key&since=3h&until=30m", ak, "")
		want(t, r, 200, "spend by key since 3h")
		s = spendReport{}
		r.decode(t, &s)
		if s.AmountMicros != 54003 || s.Requests != 3 || len(s.Data) != 3 ||
			s.Data[0].KeyID != "" || s.Data[0].AmountMicros != 4000 ||
			s.Data[1].KeyID != "key_a" || s.Data[1].AmountMicros != 3 || s.Data[1].Requests != 1 ||
			s.Data[2].KeyID != "key_b" || s.Data[2].AmountMicros != 50000 || s.Data[2].Requests != 1 {
			t.Fatalf("spend by key since 3h: %s", r.body)
		}
		r = do(t, api, "GET", "/admin/v1/tenants/other/spend?by=key&until=2h", ak, "")
		want(t, r, 200, "empty spend by key")
		if !strings.Contains(string(r.body), `"amount_micros":0,"requests":0,"by":"key","data":[]`) {
			t.Fatalf("empty spend by key: %s", r.body)
		}
		r = do(t, api, "GET", "/admin/v1/tenants/other/spend?by=model&until=2h", ak, "")
		want(t, r, 200, "empty spend by model")
		if !strings.Contains(string(r.body), `"amount_micros":0,"requests":0,"by":"model","data":[]`) {
			t.Fatalf("empty spend: %s", r.body)
		}
	})
}

// Bad query parameters are a 400 naming the parameter; unknown tenants a
// 404; without a ledger both endpoints say billing is off.
func TestAdminEntriesAndSpendBadInput(t *testing.T) {
	f := withAcme(t)
	api, ak := f.api.URL, f.adminKey
	for _, tc := range []struct{ path, param, msg string }{
		{"entries?since=yesterday", "since", `"since" must be an RFC 3339 time such as 2026-01-02T15:04:05Z or a duration before now such as 24h (got "yesterday")`},
		{"entries?until=2026-13-01T00:00:00Z", "until", `(got "2026-13-01T00:00:00Z")`},
		{"entries?since=-1h", "since", `(got "-1h")`},
		{"entries?since=1h&until=2h", "until", `"until" must be after "since"`},
		{"entries?limit=0", "limit", `"limit" must be a whole number from 1 to 1000 (got "0")`},
		{"entries?limit=1001", "limit", "from 1 to 1000"},
		{"entries?cursor=abc", "cursor", `"cursor" must be the next_cursor of a previous page`},
		{"entries?cursor=-3", "cursor", "next_cursor"},
		{"entries?before=3", "before", `unknown query parameter "before"; use since, until, limit, cursor`},
		{"entries?by=model", "by", `unknown query parameter "by"`},
		{"spend?by=tenant", "by", `"by" must be model, key, user or batch (got "tenant")`},
		{"spend?by=Key", "by", `"by" must be model, key, user or batch (got "Key")`},
		{"spend?limit=3", "limit", `unknown query parameter "limit"; use since, until, by`},
		{"spend?since=abc", "since", `(got "abc")`},
	} {
		t.Run(tc.path, func(t *testing.T) {
			wantErr(t, do(t, api, "GET", "/admin/v1/tenants/acme/"+tc.path, ak, ""), 400, tc.param, tc.msg)
		})
	}
	later := f.clock.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	wantErr(t, do(t, api, "GET", "/admin/v1/tenants/acme/spend?since="+later, ak, ""), 400, "since", `"since" must be before now`)
	wantErr(t, do(t, api, "GET", "/admin/v1/tenants/nope/entries", ak, ""), 404, "", `tenant "nope" not found`)
	wantErr(t, do(t, api, "GET", "/admin/v1/tenants/nope/spend", ak, ""), 404, "", `tenant "nope" not found`)
	wantErr(t, do(t, api, "POST", "/admin/v1/tenants/acme/entries", ak, ""), 405, "", "use GET")
	wantErr(t, do(t, api, "GET", "/admin/v1/tenants/acme/spend", ak, `{"by":"model"}`), 400, "", "takes no body")

	off := newFixture(t, realStores[0].dsn(t), serve.AdminAPIOnAPI)
	for _, p := range []string{"entries", "spend"} {
		wantErr(t, do(t, off.api.URL, "GET", "/admin/v1/tenants/admin/"+p, off.adminKey, ""), 501, "", "billing is not enabled")
	}
}
