package serve_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/serve"
	"github.com/llmctl/llmctl/pkg/serve/engine"
)

// TestContextFallbackEngine: the embedded engine counts a prompt with the
// model's own tokenizer; one longer than the short model's context (32
// tokens) is answered by its longer-context fallback, which says so, and
// the request is settled at the usage that model counted (the short
// model's hold released at zero). A prompt that fits stays on the short one.
func TestContextFallbackEngine(t *testing.T) {
	open := func(name string, ctx int) *engine.Backend {
		b, err := engine.OpenDemo(engine.Options{Name: name, Threads: 1, Context: ctx})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
	f := newFixture(t, func(o *serve.Options) {
		o.Backends = []serve.Backend{open("short", 32), open("long", 0)}
		o.ContextFallbacks = map[string][]string{"short": {"long"}}
	})
	c := openai.NewClient(option.WithBaseURL(f.srv.URL+"/v1/"), option.WithAPIKey("good"), option.WithMaxRetries(0))
	ask := func(id, prompt string) (*openai.ChatCompletion, *http.Response) {
		t.Helper()
		var raw *http.Response
		resp, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
			Model: "short", MaxTokens: openai.Int(4), Temperature: openai.Float(0),
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage(prompt)}},
			option.WithResponseInto(&raw), option.WithHeader("X-Request-Id", id))
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		return resp, raw
	}

	resp, raw := ask("fits", "In the beginning")
	if resp.Model != "short" || raw.Header.Get("X-Llmctl-Fallback") != "" {
		t.Fatalf("a prompt that fits: model %q, header %q", resp.Model, raw.Header.Get("X-Llmctl-Fallback"))
	}
	f.rec.settledOnce(t, "fits")

	long := strings.Repeat("And God said, Let there be light: and there was light. ", 6)
	resp, raw = ask("too-long", long)
	if resp.Model != "long" || raw.Header.Get("X-Llmctl-Fallback") != "long" {
		t.Fatalf("a prompt longer than the context: model %q, header %q", resp.Model, raw.Header.Get("X-Llmctl-Fallback"))
	}
	if resp.Usage.PromptTokens <= 32 {
		t.Fatalf("the long model counted %d prompt tokens, more than 32 expected", resp.Usage.PromptTokens)
	}
	settles := waitSettles(t, f.rec, "too-long", 2)
	want := billing.Usage{PromptTokens: resp.Usage.PromptTokens, CompletionTokens: resp.Usage.CompletionTokens}
	if settles[0] != (billing.Usage{}) || settles[1] != want {
		t.Fatalf("settled %+v, want the short hold at zero then %+v", settles, want)
	}
}

// waitSettles waits for n settlements of request id (one per hold) and
// returns them in order.
func waitSettles(t *testing.T, r *recorder, id string, n int) []billing.Usage {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.mu.Lock()
		got := append([]billing.Usage(nil), r.settled[id]...)
		r.mu.Unlock()
		if len(got) >= n {
			if len(got) > n {
				t.Fatalf("request %s settled %d times, want %d: %v", id, len(got), n, got)
			}
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("request %s settled %d times, want %d", id, len(got), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
