package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/llmctl/llmctl/internal/testenv"
	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
)

func TestServeContextFallbackE2ESQLite(t *testing.T) {
	dir := t.TempDir()
	serveContextFallbackE2E(t, dir, "sqlite:"+filepath.Join(dir, "llmctl.db"))
}

func TestServeContextFallbackE2EPostgres(t *testing.T) {
	serveContextFallbackE2E(t, t.TempDir(), testenv.PG(t).NewDatabase(t))
}

// serveContextFallbackE2E runs the built binary with the demo model twice
// on the embedded engine: "kjv-short" with a 32-token context and
// "kjv-long" with the model's own, configured as its context fallback. A
// prompt that fits is answered by kjv-short; one that does not (by the
// engine's own tokenizer) by kjv-long, which says so, and the ledger holds
// each answer at the price of the model that answered, to the micro-unit.
func serveContextFallbackE2E(t *testing.T, dir, dsn string) {
	ctx := context.Background()
	adminKey := adminKeyOn(t, dsn)
	demoPath := demoGGUF(t)
	prices := map[string]ledger.Price{"kjv-short": {Input: 1_000, Output: 2_000}, "kjv-long": {Input: 5_000, Output: 9_000, PerRequest: 7}}
	cfg, pricesFile := filepath.Join(dir, "llmctl.yaml"), filepath.Join(dir, "prices.yaml")
	for path, text := range map[string]string{
		cfg: fmt.Sprintf(`models:
  - {path: %[1]s, name: kjv-short, context: 32, threads: 1}
  - {path: %[1]s, name: kjv-long, threads: 1}
contextFallbacks:
  kjv-short: [kjv-long]
`, demoPath),
		pricesFile: fmt.Sprintf("models:\n  kjv-short: {input: %d, output: %d}\n  kjv-long: {input: %d, output: %d, perRequest: %d}\n",
			prices["kjv-short"].Input, prices["kjv-short"].Output, prices["kjv-long"].Input, prices["kjv-long"].Output, prices["kjv-long"].PerRequest),
	} {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	logs := &bytes.Buffer{}
	g := startGateway(t, buildLLMCtl(t), []string{"serve", "--config", cfg, "--db", dsn, "--listen", "127.0.0.1:0",
		"--admin-listen", "off", "--prices", pricesFile, "--spool-dir", filepath.Join(dir, "spool")}, logs)
	t.Cleanup(func() { _ = g.cmd.Process.Kill(); <-g.done })

	c := openai.NewClient(option.WithBaseURL(g.url+"/v1/"), option.WithAPIKey(adminKey), option.WithMaxRetries(0))
	want, asks := map[string]ledger.Micros{}, map[string]int64{}
	for _, tc := range []struct{ prompt, model, header string }{
		{"In the beginning", "kjv-short", ""},
		{strings.Repeat("And God said, Let there be light: and there was light. ", 6), "kjv-long", "kjv-long"},
	} {
		var raw *http.Response
		resp, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "kjv-short", MaxTokens: openai.Int(4),
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(tc.prompt)}}, option.WithResponseInto(&raw))
		if err != nil {
			t.Fatalf("%q: %v\n%s", tc.prompt, err, logs)
		}
		if resp.Model != tc.model || raw.Header.Get("X-Llmctl-Fallback") != tc.header {
			t.Fatalf("%q: model %q, header %q; want %q, %q", tc.prompt, resp.Model, raw.Header.Get("X-Llmctl-Fallback"), tc.model, tc.header)
		}
		cost, err := prices[tc.model].Cost(billing.Usage{PromptTokens: resp.Usage.PromptTokens, CompletionTokens: resp.Usage.CompletionTokens})
		if err != nil {
			t.Fatal(err)
		}
		want[tc.model] += cost
		asks[tc.model]++
	}
	g.stop(t)
	// The long prompt's refused try on kjv-short is a hold released at 0 µ.
	checkSpendByModel(t, dsn, want, asks, "kjv-long")
}
