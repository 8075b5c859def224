package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/internal/upstreamdouble"
	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/billing/store"
	"github.com/llmctl/llmctl/pkg/serve"
	"github.com/llmctl/llmctl/pkg/serve/engine"
)

// The two prices of the fallback tests: the GPU model's and the embedded
// engine's, different in every part so a charge at the wrong one shows.
var (
	fallbackBigPrice  = ledger.Price{Input: 100_000, Output: 300_000}
	fallbackDemoPrice = ledger.Price{Input: 7_000, Output: 11_000, PerRequest: 3}
)

func TestServeFallbackE2ESQLite(t *testing.T) {
	dir := t.TempDir()
	serveFallbackE2E(t, dir, "sqlite:"+filepath.Join(dir, "llmctl.db"))
}

func TestServeFallbackE2EPostgres(t *testing.T) {
	serveFallbackE2E(t, t.TempDir(), testenv.PG(t).NewDatabase(t))
}

// serveFallbackE2E is the flagship case with the built binary: a
// remote backend (the GPU) serves "big", and the embedded engine's demo
// model is its fallback. While the backend is up it answers; once it is
// killed, answers continue from the engine, marked by x-llmctl-fallback and
// the model field, and charged at the demo model's price; once it is back,
// its health check passing, traffic returns to it. The ledger holds each
// answer at the price of the model that answered, to the micro-unit.
func serveFallbackE2E(t *testing.T, dir, dsn string) {
	ctx := context.Background()
	adminKey := adminKeyOn(t, dsn)
	gpu := upstreamdouble.Start(t, upstreamdouble.Options{Name: "gpu", Models: []string{"big"}})
	demoPath := demoGGUF(t)
	cfg := filepath.Join(dir, "llmctl.yaml")
	write := func(path, text string) {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(cfg, fmt.Sprintf(`healthInterval: 200ms
backends:
  - {name: gpu, url: %s, models: [big]}
models:
  - {path: %s, name: %s, threads: 1}
fallbacks:
  big: [%s]
`, gpu.URL(), demoPath, engine.DemoName, engine.DemoName))
	prices := filepath.Join(dir, "prices.yaml")
	write(prices, fmt.Sprintf("models:\n  big: {input: %d, output: %d}\n  %s: {input: %d, output: %d, perRequest: %d}\n",
		fallbackBigPrice.Input, fallbackBigPrice.Output, engine.DemoName,
		fallbackDemoPrice.Input, fallbackDemoPrice.Output, fallbackDemoPrice.PerRequest))
	logs := &bytes.Buffer{}
	g := startGateway(t, buildLLMCtl(t), []string{"serve", "--config", cfg, "--db", dsn, "--listen", "127.0.0.1:0",
		"--admin-listen", "off", "--prices", prices, "--spool-dir", filepath.Join(dir, "spool")}, logs)
	t.Cleanup(func() { _ = g.cmd.Process.Kill(); <-g.done })

	c := openai.NewClient(option.WithBaseURL(g.url+"/v1/"), option.WithAPIKey(adminKey), option.WithMaxRetries(0))
	want := map[string]ledger.Micros{} // by the model that answered
	asks := map[string]int64{}
	// ask sends one chat request for "big" and returns who answered: the
	// model field and the fallback header.
	ask := func(i int) (model, header string) {
		t.Helper()
		var raw *http.Response
		resp, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model:     "big",
			Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage(fmt.Sprintf("And it came to pass %d tokens=4", i))},
			MaxTokens: openai.Int(8),
		}, option.WithResponseInto(&raw))
		if err != nil {
			t.Fatalf("request %d: %v\n%s", i, err, logs)
		}
		model, header = resp.Model, raw.Header.Get("X-Llmctl-Fallback")
		pr := fallbackBigPrice
		if model == engine.DemoName {
			pr = fallbackDemoPrice
		}
		cost, err := pr.Cost(billing.Usage{PromptTokens: resp.Usage.PromptTokens, CompletionTokens: resp.Usage.CompletionTokens})
		if err != nil {
			t.Fatal(err)
		}
		want[model] += cost
		asks[model]++
		return model, header
	}

	i := 0
	if model, header := ask(i); model != "big" || header != "" {
		t.Fatalf("with the backend up: model %q, fallback header %q", model, header)
	}
	gpu.Down() // the GPU backend dies
	for range 3 {
		i++
		if model, header := ask(i); model != engine.DemoName || header != engine.DemoName {
			t.Fatalf("with the backend down, request %d: model %q, fallback header %q\n%s", i, model, header, logs)
		}
	}
	seen := gpu.Requests()
	if err := gpu.Up(); err != nil {
		t.Fatal(err)
	}
	// Traffic returns once the health check sees the backend again.
	for deadline := time.Now().Add(20 * time.Second); ; {
		i++
		model, header := ask(i)
		if model == "big" && header == "" {
			break
		}
		if model != engine.DemoName || header != engine.DemoName || time.Now().After(deadline) {
			t.Fatalf("after the backend came back, request %d: model %q, header %q\n%s", i, model, header, logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := gpu.Requests(); got != seen+1 {
		t.Fatalf("the backend got %d requests after it came back, want 1", got-seen)
	}

	// Stop the gateway (its ledger flushes), then read the database.
	g.stop(t)
	// A request tried on "big" before it fell back leaves a released hold
	// there, counted as a request at 0 µ.
	checkSpendByModel(t, dsn, want, asks, engine.DemoName)
}

// stop ends the gateway with SIGTERM, as an operator would, and waits for
// it to exit (it flushes its ledger first).
func (g *gatewayProc) stop(t *testing.T) {
	t.Helper()
	if err := g.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-g.done:
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
}

// checkSpendByModel checks, in the database of a stopped gateway, that
// each model was charged exactly want (micro-units) for asks requests
// (more for a model in released, whose holds a fallback released at 0),
// and that the admin tenant's balance is minus the total, nothing reserved.
func checkSpendByModel(t *testing.T, dsn string, want map[string]ledger.Micros, asks map[string]int64, exact string) {
	t.Helper()
	out, errOut, err := run(t, "ledger", "spend", "--by", "model", "-o", "json", "--db", dsn)
	var rows []spendRow
	if err != nil || json.Unmarshal([]byte(out), &rows) != nil {
		t.Fatalf("ledger spend --by model: %v %s %s", err, out, errOut)
	}
	got := map[string]ledger.Micros{}
	var total ledger.Micros
	for _, r := range rows {
		if r.Model == nil || r.Requests < asks[*r.Model] || *r.Model == exact && r.Requests != asks[*r.Model] {
			t.Fatalf("spend rows %s; requests answered by model %v", out, asks)
		}
		got[*r.Model] = ledger.Micros(r.SpentMicros)
		total += ledger.Micros(r.SpentMicros)
	}
	if len(got) != len(want) {
		t.Fatalf("spend by model %v µ, want %v µ", got, want)
	}
	for m, w := range want {
		if got[m] != w {
			t.Fatalf("spend by model %v µ, want %v µ (each answer at the price of the model that answered)", got, want)
		}
	}
	var bal struct{ BalanceMicros, ReservedMicros int64 }
	out, errOut, err = run(t, "ledger", "balance", "admin", "-o", "json", "--db", dsn)
	if err != nil || json.Unmarshal([]byte(out), &bal) != nil {
		t.Fatalf("ledger balance admin: %v %s %s", err, out, errOut)
	}
	if bal.BalanceMicros != -int64(total) || bal.ReservedMicros != 0 {
		t.Fatalf("admin balance %+v, want -%d µ and nothing reserved", bal, total)
	}
}

// adminKeyOn bootstraps the admin tenant's key in the database at dsn, as
// a first `llmctl serve` would.
func adminKeyOn(t *testing.T, dsn string) string {
	t.Helper()
	st, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	key, err := serve.EnsureAdmin(context.Background(), st, "")
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// demoGGUF is the path of the demo model's GGUF file in the repository.
func demoGGUF(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs("../../pkg/serve/engine/demo/kjv.gguf")
	if err != nil {
		t.Fatal(err)
	}
	return p
}
