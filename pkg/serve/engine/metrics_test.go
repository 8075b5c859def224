package engine_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/llmctl/llmctl/pkg/billing/reconcile"
	"github.com/llmctl/llmctl/pkg/serve"
	"github.com/llmctl/llmctl/pkg/serve/engine"
)

// TestTokenCounters: the engine's own counters add up to the usage it
// reported, for chat, a stream and embeddings, and read back through the
// reconcile parser under the names it looks for.
func TestTokenCounters(t *testing.T) {
	b := demo(t)
	reg := prometheus.NewRegistry()
	reg.MustRegister(b.Collector())
	var prompt, gen int64
	a := do(t, b, serve.EndpointChat, `{"messages":[{"role":"user","content":"Tell me about the sea"}],"max_tokens":7,"temperature":0}`)
	prompt, gen = prompt+a.Usage.PromptTokens, gen+a.Usage.CompletionTokens
	_, _, n := streamText(t, context.Background(), b, serve.EndpointCompletions, `{"prompt":"In the beginning","max_tokens":5,"temperature":0,"stream":true,"stream_options":{"include_usage":true}}`)
	gen += n
	resp, err := b.Do(context.Background(), &serve.Request{Endpoint: serve.EndpointEmbeddings, Body: []byte(`{"input":["light","and darkness"]}`)})
	if err != nil {
		t.Fatal(err)
	}
	prompt += resp.Usage.PromptTokens
	var u struct {
		Usage struct {
			PromptTokens int64 `json:"prompt_tokens"`
		} `json:"usage"`
	}
	if err := json.Unmarshal(resp.Body, &u); err != nil || u.Usage.PromptTokens != resp.Usage.PromptTokens {
		t.Fatalf("embeddings usage %v", err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&sb, mf); err != nil {
			t.Fatal(err)
		}
	}
	s, err := reconcile.Parse(strings.NewReader(sb.String()), "")
	if err != nil {
		t.Fatal(err)
	}
	// The streamed prompt's tokens: the counter has them; the stream's
	// usage chunk gives completion tokens only in streamText, so compare
	// generated exactly and prompt as at least the non-stream requests'.
	got := s.Models[engine.DemoName]
	if got.Generated != gen || got.Prompt <= prompt {
		t.Fatalf("counters %+v, usage says %d generated and more than %d prompt tokens\n%s", got, gen, prompt, sb.String())
	}
}
