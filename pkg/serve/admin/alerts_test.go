package admin_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/serve"
)

// The alerts endpoints against real ledgers, every answer validated
// against the OpenAPI document, and every write in the audit log.
func TestAlertsAPI(t *testing.T) {
	onEachLedger(t, func(t *testing.T, f *fixture, lg *ledger.Ledger) {
		ctx := context.Background()
		ak := f.adminKey
		v := validator{t: t, doc: loadOpenAPI(t, f.api.URL, ak), api: f.api.URL}
		want(t, v.call("POST", "/admin/v1/tenants", "/admin/v1/tenants", ak, `{"name":"acme"}`, true), 201, "tenant")
		want(t, v.call("POST", "/admin/v1/tenants/{name}/credits", "/admin/v1/tenants/acme/credits", ak,
			`{"amount":"12.50","reason":"invoice 1","idempotency_key":"inv-1"}`, true), 201, "credit")
		ob, _ := ledger.OutboxOf(lg.Store())
		ob.SetLowBalance(ledger.Unit)
		if n, err := ob.Dispatch(ctx, []ledger.Route{{Endpoint: "https://hooks.example/llmctl"}}, f.clock.Now(), 24*time.Hour); err != nil || n != 1 {
			t.Fatalf("dispatch: %d %v", n, err)
		}

		const list = "/admin/v1/alerts/deliveries"
		r := v.call("GET", list, list+"?status=pending&tenant=acme&limit=10", ak, "", true)
		want(t, r, 200, "deliveries")
		var page struct {
			Data []struct {
				ID             int64
				Type, Status   string
				EventID        string `json:"event_id"`
				NextAttemptAt  string `json:"next_attempt_at"`
				LastStatusCode int    `json:"last_status_code"`
			}
		}
		r.decode(t, &page)
		if len(page.Data) != 1 || page.Data[0].Type != ledger.EventPaymentCredited || page.Data[0].Status != "pending" || page.Data[0].NextAttemptAt == "" {
			t.Fatalf("deliveries: %s", r.body)
		}
		id := strconv.FormatInt(page.Data[0].ID, 10)
		r = v.call("GET", list, list+"?status=delivered", ak, "", true)
		if want(t, r, 200, "delivered"); !strings.Contains(string(r.body), `"data":[]`) {
			t.Fatalf("status filter: %s", r.body)
		}
		wantErr(t, v.call("GET", list, list+"?status=sent", ak, "", false), 400, "status", "pending, delivered or failed")
		wantErr(t, v.call("GET", list, list+"?limit=0", ak, "", false), 400, "limit", "from 1 to 1000")
		want(t, v.call("GET", list, list+"?tenant=nope", ak, "", true), 404, "unknown tenant")

		const redeliver = "/admin/v1/alerts/deliveries/{id}/redeliver"
		r = v.call("POST", redeliver, "/admin/v1/alerts/deliveries/"+id+"/redeliver", ak, "", true)
		if want(t, r, 200, "redeliver"); !strings.Contains(string(r.body), `"event_id":"`+page.Data[0].EventID+`"`) {
			t.Fatalf("redeliver: %s", r.body)
		}
		want(t, v.call("POST", redeliver, "/admin/v1/alerts/deliveries/999999/redeliver", ak, "", true), 404, "unknown delivery")
		want(t, v.call("POST", redeliver, "/admin/v1/alerts/deliveries/x/redeliver", ak, "", true), 404, "bad id")

		const ta = "/admin/v1/tenants/{name}/alerts"
		r = v.call("GET", ta, "/admin/v1/tenants/acme/alerts", ak, "", true)
		if want(t, r, 200, "tenant alerts"); !strings.Contains(string(r.body), `"low_balance":"1.000000","low_balance_micros":1000000,"source":"default"`) {
			t.Fatalf("default threshold: %s", r.body)
		}
		r = v.call("PUT", ta, "/admin/v1/tenants/acme/alerts", ak, `{"low_balance":"2.50"}`, true)
		if want(t, r, 200, "set threshold"); !strings.Contains(string(r.body), `"low_balance":"2.500000","low_balance_micros":2500000,"source":"tenant"`) {
			t.Fatalf("own threshold: %s", r.body)
		}
		if m, ok, err := ob.TenantLowBalance(ctx, keyOut{Tenant: "acme"}.tenantID(t, f)); err != nil || !ok || m != 2_500_000 {
			t.Fatalf("stored threshold %s %v %v", m, ok, err)
		}
		r = v.call("PUT", ta, "/admin/v1/tenants/acme/alerts", ak, `{"low_balance":null}`, true)
		if want(t, r, 200, "reset threshold"); !strings.Contains(string(r.body), `"source":"default"`) {
			t.Fatalf("reset: %s", r.body)
		}
		wantErr(t, v.call("PUT", ta, "/admin/v1/tenants/acme/alerts", ak, `{"low_balance":"-1"}`, false), 400, "low_balance", "at least 0")
		wantErr(t, v.call("PUT", ta, "/admin/v1/tenants/acme/alerts", ak, `{"low_balance":2}`, false), 400, "low_balance", "string of currency units")
		wantErr(t, v.call("PUT", ta, "/admin/v1/tenants/acme/alerts", ak, `{}`, false), 400, "low_balance", "is required")
		want(t, v.call("PUT", ta, "/admin/v1/tenants/nope/alerts", ak, `{"low_balance":"1"}`, true), 404, "unknown tenant")

		r = do(t, f.api.URL, "GET", "/admin/v1/audit?limit=5", ak, "")
		for _, action := range []string{`"action":"alerts.redeliver","target":"` + id + `"`, `"action":"alerts.threshold","target":"acme"`, `"low_balance":"2.500000"`} {
			if !strings.Contains(string(r.body), action) {
				t.Fatalf("audit lacks %s: %s", action, r.body)
			}
		}
	})
}

// Without a ledger the alerts endpoints say why they cannot answer.
func TestAlertsAPIWithoutLedger(t *testing.T) {
	f := newFixture(t, realStores[0].dsn(t), serve.AdminAPIOnAPI)
	wantErr(t, do(t, f.api.URL, "GET", "/admin/v1/alerts/deliveries", f.adminKey, ""), 501, "", "alerts need the ledger")
}
