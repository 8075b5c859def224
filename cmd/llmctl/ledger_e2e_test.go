package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/llmctl/llmctl/internal/upstreamdouble"
	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/store"
)

// TestServeBillingSQLite runs `llmctl serve` on the embedded SQLite store
// with prepaid billing and a webhook secret: a paid request is charged at
// the configured price, a tenant without funds gets OpenAI's 402, a payment
// webhook credits once, and a graceful stop leaves a ledger that verifies.
func TestServeBillingSQLite(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	dsn := "sqlite:" + filepath.Join(dir, "llmctl.db")
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	for _, name := range []string{"paid", "broke"} {
		tn, err := st.CreateTenant(ctx, name, billing.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if _, keys[name], err = st.CreateKey(ctx, store.NewKey{Tenant: tn.ID}); err != nil {
			t.Fatal(err)
		}
	}
	st.Close()
	if _, errOut, err := run(t, "ledger", "credit", "paid", "1", "--reason", "test funds", "--db", dsn); err != nil {
		t.Fatalf("ledger credit: %v\n%s", err, errOut)
	}

	double := upstreamdouble.Start(t, upstreamdouble.Options{Models: []string{"m"}})
	prices := filepath.Join(dir, "prices.yaml")
	// 0.10 per 1M prompt tokens, 0.30 per 1M completion tokens.
	if err := os.WriteFile(prices, []byte("models:\n  m: {input: 100000, output: 300000}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	var logs bytes.Buffer
	g := startGateway(t, buildLLMCtl(t), []string{"serve", "--db", dsn, "--listen", "127.0.0.1:0", "--admin-listen", "off",
		"--backend", "d=" + double.URL(), "--prices", prices, "--spool-dir", filepath.Join(dir, "spool"),
		"--standard-webhook-secret", secret}, &logs)
	defer g.cmd.Process.Kill()

	post := func(path, key string, body []byte, hdr map[string]string) (int, []byte) {
		req, _ := http.NewRequest(http.MethodPost, g.url+path, bytes.NewReader(body))
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	chat := []byte(`{"model":"m","max_tokens":100,"messages":[{"role":"user","content":"one two three tokens=7"}]}`)
	if code, b := post("/v1/chat/completions", keys["paid"], chat, map[string]string{"X-Request-Id": "e2e-1"}); code != 200 {
		t.Fatalf("paid request: %d %s", code, b)
	}
	code, b := post("/v1/chat/completions", keys["broke"], chat, nil)
	var oe struct{ Error struct{ Type, Code string } }
	if code != http.StatusPaymentRequired || json.Unmarshal(b, &oe) != nil || oe.Error.Code != "insufficient_quota" {
		t.Fatalf("broke tenant: %d %s", code, b)
	}
	if n := double.Requests(); n != 1 {
		t.Fatalf("backend saw %d requests; the refused one must not reach it", n)
	}

	wh, err := standardwebhooks.NewWebhook(secret)
	if err != nil {
		t.Fatal(err)
	}
	pay := []byte(`{"type":"payment.succeeded","data":{"tenant":"broke","amount_micros":2000000}}`)
	for range 2 { // the second delivery is a replay
		now := time.Now()
		sig, _ := wh.Sign("msg_e2e", now, pay)
		if code, b := post("/v1/billing/webhooks/standard", "", pay, map[string]string{
			"webhook-id": "msg_e2e", "webhook-timestamp": fmt.Sprint(now.Unix()), "webhook-signature": sig}); code != 200 {
			t.Fatalf("webhook: %d %s", code, b)
		}
	}
	if code, b := post("/v1/chat/completions", keys["broke"], chat, nil); code != 200 {
		t.Fatalf("after paying: %d %s", code, b)
	}

	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.done:
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	rec, ok := double.Record("e2e-1")
	if !ok || rec.CompletionTokens != 7 {
		t.Fatalf("double record %+v", rec)
	}
	// The double's usage: prompt = its word count, 7 completion tokens.
	want := 1_000_000 - want2(rec.PromptTokens)
	var bal struct{ BalanceMicros, ReservedMicros int64 }
	out, errOut, err := run(t, "ledger", "balance", "paid", "-o", "json", "--db", dsn)
	if err != nil || json.Unmarshal([]byte(out), &bal) != nil {
		t.Fatalf("ledger balance: %v %s %s", err, out, errOut)
	}
	if bal.BalanceMicros != want || bal.ReservedMicros != 0 {
		t.Fatalf("paid tenant: balance %d µ reserved %d µ, want %d and 0\n%s", bal.BalanceMicros, bal.ReservedMicros, want, logs.String())
	}
	if out, errOut, err := run(t, "ledger", "balance", "broke", "-o", "json", "--db", dsn); err != nil || json.Unmarshal([]byte(out), &bal) != nil ||
		bal.BalanceMicros != 2_000_000-want2(rec.PromptTokens) {
		t.Fatalf("broke tenant after one payment (credited once) and one request: %s %s %v", out, errOut, err)
	}
	if out, errOut, err := run(t, "ledger", "verify", "--db", dsn); err != nil {
		t.Fatalf("ledger verify: %v\n%s%s", err, out, errOut)
	}
}

// want2 is the cost of the same request for the second tenant.
func want2(prompt int64) int64 { return (prompt*100_000 + 7*300_000 + 999_999) / 1_000_000 }
