package serve

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/llmctl/llmctl/internal/upstreamdouble"
	"github.com/llmctl/llmctl/pkg/billing"
)

// vllmTooLong is vLLM's answer to a prompt longer than max_model_len, in
// its flat error shape (a numeric code).
const vllmTooLong = `{"object":"error","message":"This model's maximum context length is 2048 tokens. However, you requested 2100 tokens (2000 in the messages, 100 in the completion). Please reduce the length of the messages or completion.","type":"BadRequestError","param":null,"code":400}`

// TestContextFallback: a backend that refuses the prompt as longer than
// its context (vLLM's 400) is answered by the configured longer-context
// model, which says so and is the model charged (the short model's hold is
// released at zero); another 400 passes through, and without a
// contextFallbacks entry the context refusal does too.
func TestContextFallback(t *testing.T) {
	var shortCalls atomic.Int64
	short := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet { // /v1/models: the health check
			_, _ = io.WriteString(w, `{"object":"list","data":[{"id":"short","object":"model"}]}`)
			return
		}
		shortCalls.Add(1)
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		if strings.Contains(string(body), "other-400") {
			_, _ = io.WriteString(w, `{"error":{"message":"temperature must be at most 2","type":"invalid_request_error","param":"temperature","code":null}}`)
			return
		}
		_, _ = io.WriteString(w, vllmTooLong)
	}))
	defer short.Close()
	long := upstreamdouble.Start(t, upstreamdouble.Options{Name: "long", Models: []string{"long"}})
	bill := &exitBilling{}
	g, err := New(Options{Auth: exitAuth{}, Admitter: bill, Reserver: bill,
		Remotes: []RemoteConfig{{Name: "short", URL: short.URL, Models: []string{"short", "short-alone"}},
			{Name: "long", URL: long.URL()}},
		ContextFallbacks: map[string][]string{"short": {"long"}}})
	if err != nil {
		t.Fatal(err)
	}
	g.CheckBackends(t.Context())
	srv := httptest.NewServer(g)
	defer srv.Close()
	ask := func(model, prompt string, stream bool) (status int, answered, header, code string) {
		t.Helper()
		before := bill.count()
		b, _ := json.Marshal(map[string]any{"model": model, "stream": stream,
			"messages": []map[string]string{{"role": "user", "content": prompt}}})
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/v1/chat/completions", strings.NewReader(string(b)))
		req.Header.Set("Authorization", "Bearer k")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		var v struct {
			Model string
			Error struct{ Code string }
		}
		if stream && resp.StatusCode == 200 {
			line, _, _ := strings.Cut(strings.TrimPrefix(string(out), "data: "), "\n")
			out = []byte(line)
		}
		_ = json.Unmarshal(out, &v)
		waitFor(t, "the request to settle", func() bool { return bill.count() == before+1 })
		return resp.StatusCode, v.Model, resp.Header.Get(fallbackHeader), v.Error.Code
	}
	holds := bill.take

	for _, stream := range []bool{false, true} {
		st, model, h, _ := ask("short", "a long story tokens=4", stream)
		if st != 200 || model != "long" || h != "long" {
			t.Fatalf("stream %v: %d model %q header %q, want 200 from long", stream, st, model, h)
		}
		models, settles := holds()
		if !slices.Equal(models, []string{"short", "long"}) || len(settles) != 2 ||
			settles[0] != (billing.Usage{}) || settles[1].CompletionTokens != 4 {
			t.Fatalf("stream %v: holds %v settled %v: want short released at zero, long charged 4 tokens", stream, models, settles)
		}
	}
	if v := testutil.ToFloat64(g.queueMetrics.fallbacks.WithLabelValues("short", "long")); v != 2 {
		t.Fatalf("llmctl_fallbacks_total{short→long} = %v, want 2", v)
	}

	// Another 400 is the client's to see, not a reason to go elsewhere.
	if st, _, h, _ := ask("short", "other-400", false); st != 400 || h != "" {
		t.Fatalf("a 400 that is not about the context: %d %q", st, h)
	}
	// No contextFallbacks entry: the refusal passes through as it was.
	calls := shortCalls.Load()
	if st, _, h, _ := ask("short-alone", "a long story", false); st != 400 || h != "" || shortCalls.Load() != calls+1 {
		t.Fatalf("without contextFallbacks: %d %q after %d calls", st, h, shortCalls.Load()-calls)
	}
	holds()
}

// TestContextRefusal: the error bodies read as "the prompt does not fit".
func TestContextRefusal(t *testing.T) {
	for body, want := range map[string]bool{
		vllmTooLong: true,
		`{"error":{"message":"This model's maximum context length is 8192 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}`:                                                 true,
		`{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error","n_prompt_tokens":5000,"n_ctx":4096}}`:                                    true,
		`{"error":{"message":"the prompt is more than 63 tokens; this model's context holds 64 tokens, prompt and answer together","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}`: true,
		`{"error":{"message":"temperature must be at most 2","type":"invalid_request_error","param":"temperature","code":null}}`:                                                                                         false,
		`{"error":"maximum context length"}`: false,
		`not json`:                           false,
		``:                                   false,
	} {
		if got := contextRefusal([]byte(body)); got != want {
			t.Errorf("contextRefusal(%s) = %v, want %v", body, got, want)
		}
	}
}

// FuzzContextRefusal: any body is read without panicking, and only a JSON
// object can be a context refusal.
func FuzzContextRefusal(f *testing.F) {
	f.Add([]byte(vllmTooLong))
	f.Add([]byte(`{"error":{"code":"context_length_exceeded"}}`))
	f.Add([]byte(`{"error":null,"message":"exceeds the available context size"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		if contextRefusal(body) && !json.Valid(body) {
			t.Fatalf("%q read as a context refusal", body)
		}
	})
}

// take returns the holds' models and settlements so far and forgets them.
func (b *exitBilling) take() ([]string, []billing.Usage) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r, s := b.reserved, b.settles
	b.reserved, b.settles = nil, nil
	return r, s
}
