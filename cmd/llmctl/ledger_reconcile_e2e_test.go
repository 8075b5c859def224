package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/internal/upstreamdouble"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/billing/reconcile"
	"github.com/llmctl/llmctl/pkg/billing/store"
)

// TestReconcileE2E runs `llmctl serve` in front of two backend doubles, one
// exporting vLLM's token counters and one llama.cpp's, on SQLite and on
// PostgreSQL. An honest run reconciles; then one backend under-reports
// usage by 3 tokens (bill-less=3) and the llama.cpp one restarts, and
// reconcile exits 1 with exactly that drift on the vLLM model, a
// billing.drift alert in the outbox and llmctl_billing_drift_tokens in the
// metrics file, while the restarted backend's lower bound is not drift.
func TestReconcileE2E(t *testing.T) {
	bin := buildLLMCtl(t)
	t.Run("sqlite", func(t *testing.T) {
		testReconcileE2E(t, bin, "sqlite:"+filepath.Join(t.TempDir(), "llmctl.db"))
	})
	t.Run("postgres", func(t *testing.T) { testReconcileE2E(t, bin, testenv.PG(t).NewDatabase(t)) })
}

func testReconcileE2E(t *testing.T, bin, dsn string) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := store.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	key := tenantWithKey(t, st, "acme")
	st.Close()
	if _, errOut, err := run(t, "ledger", "credit", "acme", "10", "--reason", "funds", "--db", dsn); err != nil {
		t.Fatalf("ledger credit: %v\n%s", err, errOut)
	}
	vllm := upstreamdouble.Start(t, upstreamdouble.Options{Name: "vllm", Models: []string{"m"}, Metrics: upstreamdouble.MetricsVLLM})
	llama := upstreamdouble.Start(t, upstreamdouble.Options{Name: "llama", Models: []string{"l"}, Metrics: upstreamdouble.MetricsLlamaCpp})
	prices := filepath.Join(dir, "prices.yaml")
	if err := os.WriteFile(prices, []byte("models:\n  m: {input: 100000, output: 300000}\n  l: {input: 100000, output: 300000}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &testenv.Buffer{}
	g := startGateway(t, bin, []string{"serve", "--db", dsn, "--listen", "127.0.0.1:0", "--admin-listen", "off",
		"--backend", "v=" + vllm.URL(), "--backend", "ll=" + llama.URL(), "--prices", prices,
		"--spool-dir", filepath.Join(dir, "spool")}, logs)
	defer g.cmd.Process.Kill()

	sent := 0
	chat := func(model, prompt string, stream bool) {
		t.Helper()
		body := fmt.Sprintf(`{"model":%q,"max_tokens":100,"stream":%t,"messages":[{"role":"user","content":%q}]}`, model, stream, prompt)
		req, _ := http.NewRequest(http.MethodPost, g.url+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s\n%s", model, resp.StatusCode, b, logs)
		}
		sent++
	}
	// settled waits until the ledger holds a debit for every request sent.
	settled := func() {
		t.Helper()
		lg, err := ledger.Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer lg.Close()
		for deadline := time.Now().Add(30 * time.Second); ; {
			es, err := lg.Entries(ctx, ledger.Filter{})
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, e := range es {
				if e.Kind == ledger.KindDebit {
					n++
				}
			}
			if n == sent {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("ledger has %d debits, want %d\n%s", n, sent, logs)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	state := filepath.Join(dir, "reconcile.json")
	metricsFile := filepath.Join(dir, "drift.prom")
	reconcileRun := func(since string) ([]reconcile.Row, error) {
		t.Helper()
		out, errOut, err := run(t, "ledger", "reconcile", "--db", dsn, "--since", since, "--state", state,
			"--target", vllm.URL()+"/metrics", "--target", "l="+llama.URL()+"/metrics",
			"--tolerance-tokens", "0", "--tolerance", "0", "--metrics-file", metricsFile, "-o", "json")
		var rows []reconcile.Row
		if jerr := json.Unmarshal([]byte(out), &rows); jerr != nil {
			t.Fatalf("reconcile output: %v\n%s\n%s", jerr, out, errOut)
		}
		return rows, err
	}
	byModel := func(rows []reconcile.Row) map[string]reconcile.Row {
		m := map[string]reconcile.Row{}
		for _, r := range rows {
			m[r.Model] = r
		}
		return m
	}

	for i := range 3 {
		chat("m", fmt.Sprintf("hello there %d tokens=7", i), i == 2)
	}
	chat("l", "one two tokens=4", false)
	settled()
	rows, err := reconcileRun("1h")
	if err != nil {
		t.Fatalf("honest run: %v %+v", err, rows)
	}
	m := byModel(rows)
	vp, vg := vllm.Counted("m")
	if r := m["m"]; r.Status != reconcile.StatusOK || r.Ledger != (reconcile.Counts{Prompt: vp, Generated: 21}) || r.Backend != r.Ledger || vg != 21 {
		t.Fatalf("vLLM model (started inside the window, so its counters are the window): %+v, double counted %d+%d", r, vp, vg)
	}
	if r := m["l"]; r.Status != reconcile.StatusNoBaseline {
		t.Fatalf("llama.cpp exports no start time: the first run has no baseline, got %+v", r)
	}

	// Window two starts at the first run's samples (in the state file).
	since := time.Now().UTC().Format(time.RFC3339Nano)
	chat("m", "under billed tokens=7 bill-less=3", false)
	chat("m", "fine tokens=2", true)
	chat("l", "before restart tokens=5", false)
	llama.Restart() // its counters drop to zero: the 5 tokens are no longer seen
	// Counters below the last sample show the restart (a counter that
	// restarted and passed its old value cannot be told apart: Prometheus'
	// increase() has the same limit).
	chat("l", "after tokens=2", false)
	settled()
	rows, err = reconcileRun(since)
	var ec exitCoder
	if err == nil || !errors.As(err, &ec) || ec.ExitCode() != 1 {
		t.Fatalf("under-billing not caught: err %v rows %+v", err, rows)
	}
	m = byModel(rows)
	if r := m["m"]; r.Status != reconcile.StatusDrift || r.Drift != (reconcile.Counts{Generated: 3}) || r.Backend.Generated != 9 || r.Ledger.Generated != 6 {
		t.Fatalf("vLLM model: want drift +3 generated (9 generated, 6 charged), got %+v", r)
	}
	if r := m["l"]; r.Status != reconcile.StatusOK || !r.LowerBound || r.Backend.Generated != 2 || r.Ledger.Generated != 7 {
		t.Fatalf("llama.cpp model after a restart: want a lower bound of 2 against 7 charged, not drift; got %+v", r)
	}
	lg, err := ledger.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer lg.Close()
	ob, _ := ledger.OutboxOf(lg)
	evs, err := ob.Events(ctx, ledger.EventBillingDrift)
	if err != nil || len(evs) != 1 || !bytes.Contains(evs[0].Payload, []byte(`"driftGeneratedTokens":3`)) {
		t.Fatalf("billing.drift events: %v %+v", err, evs)
	}
	prom, err := os.ReadFile(metricsFile)
	if err != nil || !strings.Contains(string(prom), `llmctl_billing_drift_tokens{kind="generated",model="m"} 3`) {
		t.Fatalf("metrics file: %v\n%s", err, prom)
	}
}
