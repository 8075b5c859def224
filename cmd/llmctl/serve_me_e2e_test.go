package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/store"
	"github.com/llmctl/llmctl/pkg/serve"
)

// TestServeMeAfterCreditAndChat runs the built `llmctl serve` with prices
// on SQLite: the admin API credits a tenant, a chat completion is charged,
// and the key's /v1/me shows the balance and the spend to the micro-unit.
// It checks that serve hands its ledger to the admin API and to /v1/me.
func TestServeMeAfterCreditAndChat(t *testing.T) {
	ctx := context.Background()
	dir, dsn, st, adminKey := sqliteWithAdmin(t)
	tn, err := st.CreateTenant(ctx, "acme", billing.Limits{RPM: 50})
	if err != nil {
		t.Fatal(err)
	}
	_, userKey, err := st.CreateKey(ctx, store.NewKey{Tenant: tn.ID})
	if err != nil {
		t.Fatal(err)
	}
	st.Close()

	g, double, logs := startPricedServe(t, buildLLMCtl(t), dir, dsn)

	call := func(method, path, key, body string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, g.url+path, bytes.NewReader([]byte(body)))
		req.Header.Set("Authorization", "Bearer "+key)
		if path == "/v1/chat/completions" {
			req.Header.Set("X-Request-Id", "me-e2e-chat") // to find it in the double's records
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, b := call("POST", "/admin/v1/tenants/acme/credits", adminKey, `{"amount":"1.000001","reason":"e2e","idempotency_key":"e2e-1"}`); code != 201 {
		t.Fatalf("credit: %d %s", code, b)
	}
	if code, b := call("POST", "/v1/chat/completions", userKey,
		`{"model":"m","max_tokens":100,"messages":[{"role":"user","content":"one two three tokens=7"}]}`); code != 200 {
		t.Fatalf("chat: %d %s", code, b)
	}
	rec, ok := double.Record("me-e2e-chat")
	if !ok {
		t.Fatal("the double did not record the chat request")
	}
	cost := (rec.PromptTokens*100_000 + rec.CompletionTokens*300_000 + 999_999) / 1_000_000

	type spend struct {
		AmountMicros int64 `json:"amount_micros"`
		Requests     int64
	}
	var me struct {
		Tenant  string
		Role    string
		Limits  struct{ Tenant struct{ RPM int64 } }
		Billing *struct {
			BalanceMicros   int64 `json:"balance_micros"`
			AvailableMicros int64 `json:"available_micros"`
			Spend24h        spend `json:"spend_24h"`
			Spend30d        spend `json:"spend_30d"`
		}
	}
	// The charge reaches the database through the spool's writer, shortly
	// after the answer: read /v1/me until it is there (bounded, not timed).
	deadline := time.Now().Add(30 * time.Second)
	for {
		code, b := call("GET", "/v1/me", userKey, "")
		if code != 200 || json.Unmarshal(b, &me) != nil || me.Billing == nil {
			t.Fatalf("/v1/me: %d %s", code, b)
		}
		if me.Billing.Spend24h.Requests == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/v1/me never showed the charge: %s\n%s", b, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	bl := me.Billing
	if me.Tenant != "acme" || me.Role != "user" || me.Limits.Tenant.RPM != 50 || cost <= 0 ||
		bl.BalanceMicros != 1_000_001-cost || bl.AvailableMicros != bl.BalanceMicros ||
		bl.Spend24h.AmountMicros != cost || bl.Spend30d != bl.Spend24h {
		t.Fatalf("/v1/me after a credit of 1.000001 and a charge of %d micro-units: %+v %+v", cost, me, *bl)
	}
}

// sqliteWithAdmin makes a SQLite store in a fresh directory with the admin
// tenant's key, as a first `llmctl serve` would; the caller closes st.
func sqliteWithAdmin(t *testing.T) (dir, dsn string, st store.Store, adminKey string) {
	t.Helper()
	dir = t.TempDir()
	dsn = "sqlite:" + filepath.Join(dir, "llmctl.db")
	st, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	adminKey, err = serve.EnsureAdmin(context.Background(), st, "")
	if err != nil {
		t.Fatal(err)
	}
	return dir, dsn, st, adminKey
}

// tenantWithKey creates tenant name with one user key and returns the key.
func tenantWithKey(t *testing.T, st store.Store, name string) string {
	t.Helper()
	ctx := context.Background()
	tn, err := st.CreateTenant(ctx, name, billing.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	_, key, err := st.CreateKey(ctx, store.NewKey{Tenant: tn.ID})
	if err != nil {
		t.Fatal(err)
	}
	return key
}
