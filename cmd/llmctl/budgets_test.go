package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/store"
	"github.com/llmctl/llmctl/pkg/serve/adminclient"
)

func TestBudgetsCLISQLite(t *testing.T) {
	testBudgetsCLI(t, "sqlite:"+filepath.Join(t.TempDir(), "llmctl.db"))
}

func TestBudgetsCLIPostgres(t *testing.T) { testBudgetsCLI(t, testenv.PG(t).NewDatabase(t)) }

// testBudgetsCLI drives `llmctl budgets` on --db: set (and set again to
// replace), list with -o json, a key's budget, delete by id and --all, the
// audit records, and the refusals of bad flags.
func testBudgetsCLI(t *testing.T, dsn string) {
	ctx := context.Background()
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	tn, err := st.CreateTenant(ctx, "acme", billing.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	k, _, err := st.CreateKey(ctx, store.NewKey{Tenant: tn.ID})
	if err != nil {
		t.Fatal(err)
	}
	budget := func(args ...string) adminclient.Budget {
		t.Helper()
		out, errOut, err := run(t, append([]string{"budgets", "--db", dsn, "-o", "json"}, args...)...)
		if err != nil {
			t.Fatalf("budgets %v: %v\n%s", args, err, errOut)
		}
		var b adminclient.Budget
		if err := json.Unmarshal([]byte(out), &b); err != nil {
			t.Fatalf("budgets %v: %s", args, out)
		}
		return b
	}
	m := budget("set", "acme", "--amount", "50", "--period", "month", "--tz", "Europe/Berlin")
	if m.Amount != "50.000000" || m.Period != "month" || m.TZ != "Europe/Berlin" || m.Tenant != "acme" || m.Spent != "0.000000" {
		t.Fatalf("set: %+v", m)
	}
	if again := budget("set", "acme", "--amount", "60", "--period", "month", "--tz", "Europe/Berlin"); again.ID != m.ID || again.AmountMicros != 60_000_000 {
		t.Fatalf("set again: %+v", again)
	}
	kb := budget("set", "--key", k.ID, "--amount", "1.5", "--period", "rolling", "--duration", "24h")
	if kb.KeyID != k.ID || kb.Duration != "24h0m0s" {
		t.Fatalf("key budget: %+v", kb)
	}

	out, _, err := run(t, "budgets", "list", "acme", "--db", dsn, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var all []adminclient.Budget
	if err := json.Unmarshal([]byte(out), &all); err != nil || len(all) != 2 || all[0].ID != m.ID || all[1].ID != kb.ID {
		t.Fatalf("list: %s (%v)", out, err)
	}
	out, _, err = run(t, "budgets", "list", "acme", "--db", dsn)
	if err != nil || !strings.Contains(out, "month Europe/Berlin") || !strings.Contains(out, "rolling 24h0m0s") || !strings.Contains(out, "60.000000") {
		t.Fatalf("list table: %s (%v)", out, err)
	}

	for _, c := range []struct {
		args []string
		msg  string
	}{
		{[]string{"set", "--amount", "5", "--period", "day"}, "name a TENANT or give --key"},
		{[]string{"set", "acme", "--key", k.ID, "--amount", "5", "--period", "day"}, "one of them"},
		{[]string{"set", "acme", "--amount", "5", "--period", "day", "--tz", "Mars/Base"}, "not an IANA zone"},
		{[]string{"set", "acme", "--amount", "0", "--period", "day"}, "must be positive"},
		{[]string{"set", "acme", "--amount", "5", "--period", "rolling"}, "needs a duration"},
		{[]string{"set", "nope", "--amount", "5", "--period", "day"}, `tenant "nope"`},
		{[]string{"delete", "acme"}, "give --id BUDGET"},
		{[]string{"delete", "acme", "--id", kb.ID}, "not found among the budgets of acme"},
	} {
		_, _, err := run(t, append([]string{"budgets", "--db", dsn}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.msg) {
			t.Errorf("budgets %v: %v, want %q", c.args, err, c.msg)
		}
	}

	if out, _, err = run(t, "budgets", "delete", "--key", k.ID, "--id", kb.ID, "--db", dsn); err != nil || !strings.Contains(out, "1 budget(s) deleted") {
		t.Fatalf("delete: %s %v", out, err)
	}
	budget("set", "acme", "--amount", "1", "--period", "week")
	if out, _, err = run(t, "budgets", "delete", "acme", "--all", "--db", dsn, "-o", "json"); err != nil || !strings.Contains(out, `"deleted": 2`) {
		t.Fatalf("delete --all: %s %v", out, err)
	}
	recs, err := st.ListAudit(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, r := range recs {
		if strings.HasPrefix(r.Action, "budget.") && r.Actor == store.AuditActorCLI {
			actions = append(actions, r.Action+" "+r.Target)
		}
	}
	want := "budget.delete acme|budget.set acme|budget.delete " + k.ID + "|budget.set " + k.ID + "|budget.set acme|budget.set acme"
	if got := strings.Join(actions, "|"); got != want {
		t.Fatalf("audit (newest first): %s\nwant %s", got, want)
	}
}

// TestBudgetsGatewayEndToEnd runs the built `llmctl serve` with prices: a
// budget set with the CLI over --server admits a request within it, counts
// its charge, then refuses one whose maximum cost would cross it with 429
// budget_exceeded, the numbers, and Retry-After = seconds to the reset;
// /v1/me and `budgets list --server` show the spend.
func TestBudgetsGatewayEndToEnd(t *testing.T) {
	t.Setenv("LLMCTL_SERVER", "")
	dir, dsn, st, adminKey := sqliteWithAdmin(t)
	userKey := tenantWithKey(t, st, "acme")
	st.Close()
	g, _, logs := startPricedServe(t, buildLLMCtl(t), dir, dsn)
	remote := []string{"--server", g.url, "--api-key", adminKey}

	call := func(method, path, key, body string) (int, http.Header, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, g.url+path, bytes.NewReader([]byte(body)))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, b
	}
	if code, _, b := call("POST", "/admin/v1/tenants/acme/credits", adminKey, `{"amount":"10","reason":"e2e"}`); code != 201 {
		t.Fatalf("credit: %d %s", code, b)
	}
	// 0.000100 is 100 micro-units: a request with max_tokens 100 holds
	// about 31 of them (0.30 per 1M completion tokens), one with 1000 about 301.
	if _, errOut, err := run(t, append([]string{"budgets", "set", "acme", "--amount", "0.0001", "--period", "day"}, remote...)...); err != nil {
		t.Fatalf("budgets set --server: %v %s", err, errOut)
	}
	chat := func(maxTokens int) (int, http.Header, []byte) {
		return call("POST", "/v1/chat/completions", userKey,
			`{"model":"m","max_tokens":`+strconv.Itoa(maxTokens)+`,"messages":[{"role":"user","content":"hello tokens=7"}]}`)
	}
	if code, _, b := chat(100); code != 200 {
		t.Fatalf("a request within the budget: %d %s\n%s", code, b, logs)
	}
	var spent int64
	deadline := time.Now().Add(30 * time.Second)
	for spent == 0 {
		code, _, b := call("GET", "/v1/me", userKey, "")
		var me struct {
			Billing struct {
				ReservedMicros int64 `json:"reserved_micros"`
				Budgets        []adminclient.Budget
			}
		}
		if code != 200 || json.Unmarshal(b, &me) != nil || len(me.Billing.Budgets) != 1 {
			t.Fatalf("/v1/me: %d %s", code, b)
		}
		// Settled: the hold is gone and the debit counts instead.
		if me.Billing.ReservedMicros == 0 {
			spent = me.Billing.Budgets[0].SpentMicros
		}
		if time.Now().After(deadline) {
			t.Fatalf("/v1/me never showed the charge: %s", b)
		}
		time.Sleep(50 * time.Millisecond)
	}

	code, h, b := chat(1000)
	now := time.Now()
	if code != 429 {
		t.Fatalf("a request crossing the budget: %d %s", code, b)
	}
	var e struct {
		Error struct{ Message, Type, Code string }
	}
	if err := json.Unmarshal(b, &e); err != nil || e.Error.Type != "budget_exceeded" || e.Error.Code != "budget_exceeded" {
		t.Fatalf("429 body: %s", b)
	}
	reset := time.Date(now.UTC().Year(), now.UTC().Month(), now.UTC().Day()+1, 0, 0, 0, 0, time.UTC)
	spentText := fmt.Sprintf("would be exceeded: 0.%06d already spent in this period", spent)
	for _, part := range []string{"your tenant's day (UTC) budget of 0.000100", spentText, "may cost up to 0.0003", "resets at " + reset.Format(time.RFC3339), "lower max_tokens"} {
		if !strings.Contains(e.Error.Message, part) {
			t.Errorf("message %q lacks %q", e.Error.Message, part)
		}
	}
	ra, err := strconv.ParseInt(h.Get("Retry-After"), 10, 64)
	if want := int64(reset.Sub(now).Seconds()); err != nil || ra < want-2 || ra > want+2 {
		t.Fatalf("Retry-After %q, want about %d s to midnight UTC", h.Get("Retry-After"), want)
	}

	out, _, err := run(t, append([]string{"budgets", "list", "acme", "-o", "json"}, remote...)...)
	var bs []adminclient.Budget
	if err != nil || json.Unmarshal([]byte(out), &bs) != nil || len(bs) != 1 || bs[0].SpentMicros != spent || bs[0].RemainingMicros != 100-spent {
		t.Fatalf("budgets list --server: %s (%v)", out, err)
	}
	if out, _, err = run(t, append([]string{"budgets", "delete", "acme", "--id", bs[0].ID}, remote...)...); err != nil {
		t.Fatalf("budgets delete --server: %s %v", out, err)
	}
	if code, _, b := chat(1000); code != 200 {
		t.Fatalf("without the budget: %d %s", code, b)
	}
}
