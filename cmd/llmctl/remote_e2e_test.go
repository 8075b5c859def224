package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llmctl/llmctl/internal/upstreamdouble"
	"github.com/llmctl/llmctl/pkg/billing/store"
)

// TestRemoteCLIEndToEnd runs the built binary twice over: `llmctl serve` on
// SQLite with prices, and the CLI with --server/--api-key against it. The
// operator creates a tenant and a key, credits it, the key pays for a chat
// completion over raw HTTP, `llmctl me` shows the debit, and once the key is
// revoked through the CLI the gateway refuses it.
func TestRemoteCLIEndToEnd(t *testing.T) {
	dir, dsn, st, adminKey := sqliteWithAdmin(t)
	st.Close()

	bin := buildLLMCtl(t)
	g, double, logs := startPricedServe(t, bin, dir, dsn)

	// cli runs the built CLI with a clean environment for the settings it
	// reads, so a developer's LLMCTL_* cannot change the outcome.
	cli := func(args ...string) (string, string, error) {
		t.Helper()
		c := exec.Command(bin, args...)
		c.Env = append(os.Environ(), "LLMCTL_SERVER=", "LLMCTL_API_KEY=", "LLMCTL_DB=")
		var out, errOut bytes.Buffer
		c.Stdout, c.Stderr = &out, &errOut
		err := c.Run()
		return out.String(), errOut.String(), err
	}
	admin := func(args ...string) string {
		t.Helper()
		out, errOut, err := cli(append(args, "--server", g.url, "--api-key", adminKey)...)
		if err != nil {
			t.Fatalf("llmctl %s: %v\n%s%s", strings.Join(args, " "), err, out, errOut)
		}
		return out
	}

	out := admin("tenants", "create", "acme", "--rpm", "50")
	if !strings.Contains(out, "acme") || !strings.Contains(out, "50") || !strings.Contains(out, "active") {
		t.Fatalf("tenants create table:\n%s", out)
	}
	var tenants []store.Tenant
	if err := json.Unmarshal([]byte(admin("tenants", "list", "-o", "json")), &tenants); err != nil || len(tenants) != 2 {
		t.Fatalf("tenants list -o json: %v %+v", err, tenants) // admin and acme
	}

	// The same JSON shape as --db: the store's key record plus the secret.
	var created createdKey
	out = admin("keys", "create", "--tenant", "acme", "--name", "ci", "--models", "m", "--expires", "720h", "-o", "json")
	if err := json.Unmarshal([]byte(out), &created); err != nil {
		t.Fatalf("keys create -o json: %v\n%s", err, out)
	}
	if !strings.HasPrefix(created.Secret, store.KeyPrefix) || created.ID == "" || created.TenantName != "acme" ||
		created.Name != "ci" || created.Role != "user" || len(created.Models) != 1 || created.ExpiresAt == nil {
		t.Fatalf("keys create: %+v", created)
	}
	if out := admin("keys", "list", "--tenant", "acme"); !strings.Contains(out, created.ID) || !strings.Contains(out, "active") {
		t.Fatalf("keys list:\n%s", out)
	}

	var bal balanceRow
	out = admin("ledger", "credit", "acme", "1.000001", "--reason", "e2e", "--idempotency-key", "e2e-1", "-o", "json")
	if err := json.Unmarshal([]byte(out), &bal); err != nil || bal.BalanceMicros != 1_000_001 || bal.Tenant != "acme" ||
		bal.TenantID != tenants[1].ID && bal.TenantID != tenants[0].ID {
		t.Fatalf("ledger credit: %v %+v\n%s", err, bal, out)
	}
	// A retry with the same idempotency key changes nothing.
	out, errOut, err := cli("ledger", "credit", "acme", "1.000001", "--reason", "e2e", "--idempotency-key", "e2e-1",
		"--server", g.url, "--api-key", adminKey)
	if err != nil || !strings.Contains(errOut, "already applied") || !strings.Contains(out, "balance 1.000001") {
		t.Fatalf("ledger credit replay: %v\n%s%s", err, out, errOut)
	}

	call := func(method, path, key, body string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, g.url+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		if path == "/v1/chat/completions" {
			req.Header.Set("X-Request-Id", "remote-e2e-chat")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	const chat = `{"model":"m","max_tokens":100,"messages":[{"role":"user","content":"one two three tokens=7"}]}`
	if code, b := call("POST", "/v1/chat/completions", created.Secret, chat); code != 200 {
		t.Fatalf("chat: %d %s", code, b)
	}
	rec, ok := double.Record("remote-e2e-chat")
	if !ok {
		t.Fatal("the double did not record the chat request")
	}
	cost := (rec.PromptTokens*100_000 + rec.CompletionTokens*300_000 + 999_999) / 1_000_000
	if cost <= 0 {
		t.Fatalf("cost %d", cost)
	}

	// The charge reaches the database through the spool shortly after the
	// answer: ask `llmctl me` until it shows (bounded, not timed).
	var me struct {
		Tenant  string
		KeyID   string `json:"key_id"`
		Billing *struct {
			BalanceMicros int64 `json:"balance_micros"`
			Spend24h      struct {
				AmountMicros int64 `json:"amount_micros"`
				Requests     int64
			} `json:"spend_24h"`
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, errOut, err := cli("me", "--server", g.url, "--api-key", created.Secret, "-o", "json")
		if err != nil || json.Unmarshal([]byte(out), &me) != nil || me.Billing == nil {
			t.Fatalf("llmctl me: %v\n%s%s", err, out, errOut)
		}
		if me.Billing.Spend24h.Requests == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("llmctl me never showed the charge:\n%s\n%s", out, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if me.Tenant != "acme" || me.KeyID != created.ID || me.Billing.BalanceMicros != 1_000_001-cost ||
		me.Billing.Spend24h.AmountMicros != cost {
		t.Fatalf("llmctl me after a credit of 1.000001 and a charge of %d: %+v %+v", cost, me, *me.Billing)
	}
	out, errOut, err = cli("me", "--server", g.url, "--api-key", created.Secret)
	if err != nil || !strings.Contains(out, "acme") || !strings.Contains(out, created.ID) || !strings.Contains(out, "(1 requests)") {
		t.Fatalf("llmctl me table: %v\n%s%s", err, out, errOut)
	}

	// The ledger balance over the API agrees with /v1/me.
	var bals []balanceRow
	if err := json.Unmarshal([]byte(admin("ledger", "balance", "-o", "json")), &bals); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, b := range bals {
		if b.Tenant == "acme" {
			found = b.BalanceMicros == 1_000_001-cost
		}
	}
	if !found {
		t.Fatalf("ledger balance: %+v", bals)
	}

	// Spend over the API is the charge, per tenant, as on --db.
	var spent []spendRow
	if err := json.Unmarshal([]byte(admin("ledger", "spend", "--since", "1h", "-o", "json")), &spent); err != nil ||
		len(spent) != 1 || spent[0].Tenant != "acme" || spent[0].SpentMicros != cost || spent[0].Requests != 1 {
		t.Fatalf("ledger spend: %v %+v", err, spent)
	}

	// Entries over the API, newest first like --db: the charge, then the credit.
	var es []struct {
		Kind                           string
		Amount                         int64
		Reason                         string
		Model                          string
		PromptTokens, CompletionTokens int64
	}
	if err := json.Unmarshal([]byte(admin("ledger", "entries", "--tenant", "acme", "-o", "json")), &es); err != nil ||
		len(es) != 2 || es[1].Kind != "credit" || es[1].Amount != 1_000_001 || es[1].Reason != "e2e" || es[0].Amount != -cost ||
		es[0].Model != "m" || es[0].PromptTokens != rec.PromptTokens || es[0].CompletionTokens != rec.CompletionTokens {
		t.Fatalf("ledger entries: %v %+v", err, es)
	}

	// A user key may not use the admin API: the CLI says so in words.
	_, errOut, err = cli("tenants", "list", "--server", g.url, "--api-key", created.Secret)
	if err == nil || !strings.Contains(errOut, "may not use the admin API") || !strings.Contains(errOut, "(403)") ||
		strings.Contains(errOut, "{") || strings.Contains(errOut, created.Secret) {
		t.Fatalf("user key on tenants list: %v\n%s", err, errOut)
	}
	// An unknown tenant is named with its status.
	_, errOut, err = cli("tenants", "suspend", "nope", "--server", g.url, "--api-key", adminKey)
	if err == nil || !strings.Contains(errOut, `tenant "nope" not found (404)`) {
		t.Fatalf("suspend unknown tenant: %v\n%s", err, errOut)
	}

	if out := admin("keys", "revoke", created.ID); !strings.Contains(out, "revoked") {
		t.Fatalf("keys revoke: %s", out)
	}
	// A revoke takes effect within the key cache TTL: ask until refused.
	deadline = time.Now().Add(30 * time.Second)
	for {
		code, b := call("POST", "/v1/chat/completions", created.Secret, chat)
		if code == 401 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("revoked key still answered %d %s", code, b)
		}
		time.Sleep(50 * time.Millisecond)
	}

	out = admin("audit", "-o", "json")
	for _, action := range []string{store.AuditTenantCreate, store.AuditKeyCreate, store.AuditCredit, store.AuditKeyRevoke} {
		if !strings.Contains(out, `"action": "`+action+`"`) {
			t.Errorf("audit lacks %s:\n%s", action, out)
		}
	}
}

// startPricedServe starts the built `llmctl serve` on dsn with model "m"
// on a backend double, priced so billing is on (0.10 per 1M prompt tokens,
// 0.30 per 1M completion tokens). It is killed when the test ends.
func startPricedServe(t *testing.T, bin, dir, dsn string, extra ...string) (*gatewayProc, *upstreamdouble.Double, *bytes.Buffer) {
	t.Helper()
	double := upstreamdouble.Start(t, upstreamdouble.Options{Models: []string{"m"}})
	prices := filepath.Join(dir, "prices.yaml")
	if err := os.WriteFile(prices, []byte("models:\n  m: {input: 100000, output: 300000}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &bytes.Buffer{}
	g := startGateway(t, bin, append([]string{"serve", "--db", dsn, "--listen", "127.0.0.1:0", "--admin-listen", "off",
		"--backend", "d=" + double.URL(), "--prices", prices, "--spool-dir", filepath.Join(dir, "spool")}, extra...), logs)
	t.Cleanup(func() { _ = g.cmd.Process.Kill(); <-g.done })
	return g, double, logs
}

// TestRemoteCLIErrors: the choices a user can get wrong before any server
// answers, and a server that is not there.
func TestRemoteCLIErrors(t *testing.T) {
	t.Setenv("LLMCTL_SERVER", "")
	t.Setenv("LLMCTL_API_KEY", "")
	t.Setenv("LLMCTL_DB", "")
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "llmctl.db")

	_, _, err := run(t, "tenants", "list", "--server", "http://127.0.0.1:1", "--api-key", "sk-llm-x.y", "--db", dsn)
	if err == nil || !strings.Contains(err.Error(), "--server") || !strings.Contains(err.Error(), "--db") {
		t.Fatalf("--server with --db: %v", err)
	}
	_, _, err = run(t, "keys", "list", "--server", "http://127.0.0.1:1")
	if err == nil || !strings.Contains(err.Error(), "--api-key") {
		t.Fatalf("--server without a key: %v", err)
	}
	_, _, err = run(t, "tenants", "list", "--server", "llm.example.com", "--api-key", "sk-llm-x.y")
	if err == nil || !strings.Contains(err.Error(), "want a URL") {
		t.Fatalf("--server without a scheme: %v", err)
	}

	// A port nothing listens on.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()
	const key = "sk-llm-abc.secretpart"
	_, _, err = run(t, "tenants", "list", "--server", dead, "--api-key", key)
	if err == nil || !strings.Contains(err.Error(), "cannot reach the llmctl server at "+dead) || strings.Contains(err.Error(), "secretpart") {
		t.Fatalf("wrong server: %v", err)
	}

	if _, _, err = run(t, "ledger", "entries", "--server", dead, "--api-key", key); err == nil || !strings.Contains(err.Error(), "needs --tenant") {
		t.Errorf("ledger entries over --server without --tenant: %v", err)
	}
	for _, args := range [][]string{{"ledger", "verify"}} {
		_, _, err = run(t, append(args, "--server", dead, "--api-key", key)...)
		if err == nil || !strings.Contains(err.Error(), "llmctl "+strings.Join(args, " ")+" is not available with --server") {
			t.Errorf("%v over --server: %v", args, err)
		}
	}
	if _, _, err = run(t, "me"); err == nil || !strings.Contains(err.Error(), "--server") {
		t.Errorf("me without a server: %v", err)
	}

	// The environment works like the flags, and a flag beats the other's variable.
	t.Setenv("LLMCTL_SERVER", dead)
	t.Setenv("LLMCTL_API_KEY", key)
	if _, _, err = run(t, "tenants", "list"); err == nil || !strings.Contains(err.Error(), "cannot reach") {
		t.Errorf("LLMCTL_SERVER: %v", err)
	}
	if _, _, err = run(t, "tenants", "list", "--db", dsn); err != nil {
		t.Errorf("--db with LLMCTL_SERVER set: %v", err)
	}
	t.Setenv("LLMCTL_DB", dsn)
	if _, _, err = run(t, "tenants", "list"); err == nil || !strings.Contains(err.Error(), "LLMCTL_SERVER") || !strings.Contains(err.Error(), "LLMCTL_DB") {
		t.Errorf("both variables: %v", err)
	}
}

// TestRemoteEntriesPages: `ledger entries --server` follows next_cursor
// until --limit is reached and prints newest first (--reverse: oldest
// first), --limit keeping the newest, as on --db, the tenant by name. The
// server is a double answering the admin API's page shape.
func TestRemoteEntriesPages(t *testing.T) {
	pages := map[string]string{ // cursor -> page, newest first
		"":  `{"object":"list","data":[{"kind":"credit","amount":"3.000000","amount_micros":3000000,"created_at":"2026-12-03T00:00:00Z"},{"kind":"credit","amount":"2.000000","amount_micros":2000000,"created_at":"2026-12-02T00:00:00Z"}],"next_cursor":"7"}`,
		"7": `{"object":"list","data":[{"kind":"credit","amount":"1.000000","amount_micros":1000000,"created_at":"2026-12-01T00:00:00Z"}]}`,
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/admin/v1/tenants/acme":
			_, _ = io.WriteString(w, `{"object":"tenant","id":"ten_1","name":"acme","status":"active"}`)
		case "/admin/v1/tenants/ten_1/entries":
			_, _ = io.WriteString(w, pages[r.URL.Query().Get("cursor")])
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	t.Setenv("LLMCTL_DB", "")
	for _, c := range []struct {
		args []string
		want []int64
	}{
		{[]string{"--limit", "2"}, []int64{3_000_000, 2_000_000}},
		{[]string{"--limit", "2", "--reverse"}, []int64{2_000_000, 3_000_000}},
		{nil, []int64{3_000_000, 2_000_000, 1_000_000}},
	} {
		out, _, err := run(t, append([]string{"ledger", "entries", "--tenant", "acme", "-o", "json", "--server", srv.URL, "--api-key", "sk-llm-a.b"}, c.args...)...)
		var es []struct {
			Amount     int64
			TenantID   string `json:"tenant"`
			TenantName string `json:"tenantName"`
		}
		if err != nil || json.Unmarshal([]byte(out), &es) != nil || len(es) != len(c.want) || es[0].TenantID != "ten_1" || es[0].TenantName != "acme" {
			t.Fatalf("entries %v: %v %+v\n%s", c.args, err, es, out)
		}
		for i, e := range es {
			if e.Amount != c.want[i] {
				t.Fatalf("entries %v: amounts %+v, want %v", c.args, es, c.want)
			}
		}
	}
	out, _, err := run(t, "ledger", "entries", "--tenant", "acme", "-o", "csv", "--server", srv.URL, "--api-key", "sk-llm-a.b")
	if err != nil || !strings.Contains(out, ",acme,credit,3000000,") || strings.Contains(out, "ten_1") {
		t.Fatalf("entries -o csv: %v\n%s", err, out)
	}
}
