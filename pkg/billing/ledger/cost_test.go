package ledger

import (
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/llmctl/llmctl/pkg/billing"
)

func micros(m Micros) *Micros { return &m }

// Cached prompt tokens are a subset of the prompt tokens, charged at
// cachedInput instead of input; perRequest is added once, exactly.
func TestCostCachedAndPerRequest(t *testing.T) {
	// 3 units per 1M input, 0.75 per 1M cached, 15 per 1M output, 0.0001 a request.
	p := Price{Input: 3_000_000, CachedInput: micros(750_000), Output: 15_000_000, PerRequest: 100}
	cases := []struct {
		name string
		p    Price
		u    billing.Usage
		want Micros
	}{
		// 1000×3 + 500×15 = 10_500 micro-units (exact), + 100.
		{"no cache", p, billing.Usage{PromptTokens: 1000, CompletionTokens: 500}, 10_600},
		// 200 uncached×3 + 800 cached×0.75 + 500×15 = 600+600+7500 = 8_700, + 100.
		{"cached", p, billing.Usage{PromptTokens: 1000, CompletionTokens: 500, CachedPromptTokens: 800}, 8_800},
		// Rounding once over the sum: 1×3 + 1×0.75 = 3.75 → 4, + 100.
		{"rounded up once", p, billing.Usage{PromptTokens: 2, CachedPromptTokens: 1}, 104},
		// More cached than prompt (a confused backend): bounded to the prompt.
		{"cached bounded", p, billing.Usage{PromptTokens: 1000, CachedPromptTokens: 5000}, 850},
		// No cachedInput: cached tokens cost input.
		{"default cachedInput", Price{Input: 3_000_000, Output: 15_000_000}, billing.Usage{PromptTokens: 1000, CompletionTokens: 500, CachedPromptTokens: 800}, 10_500},
		// A free cache is a price too (0, not "unset").
		{"free cache", Price{Input: 1_000_000, CachedInput: micros(0)}, billing.Usage{PromptTokens: 1_000_000, CachedPromptTokens: 999_999}, 1},
		{"per request only", Price{PerRequest: 2_500}, billing.Usage{PromptTokens: 1}, 2_500},
	}
	for _, c := range cases {
		got, err := c.p.Cost(c.u)
		if err != nil || got != c.want {
			t.Errorf("%s: Cost(%+v) = %d, %v; want %d", c.name, c.u, got, err, c.want)
		}
	}
	overflows := []struct {
		p Price
		u billing.Usage
	}{
		{Price{Input: 1_000_000, PerRequest: math.MaxInt64}, billing.Usage{PromptTokens: 1}},
		{Price{Input: math.MaxInt64, CachedInput: micros(math.MaxInt64), Output: math.MaxInt64},
			billing.Usage{PromptTokens: math.MaxInt64, CachedPromptTokens: math.MaxInt64 / 2, CompletionTokens: math.MaxInt64}},
		{Price{Output: 1_000_000}, billing.Usage{CompletionTokens: math.MaxInt64}}, // fits: MaxInt64
	}
	for i, c := range overflows[:2] {
		if got, err := c.p.Cost(c.u); err == nil {
			t.Errorf("overflow %d: got %d, want an error", i, got)
		}
	}
	if got, err := overflows[2].p.Cost(overflows[2].u); err != nil || got != math.MaxInt64 {
		t.Errorf("the largest cost: %d, %v", got, err)
	}
	if _, err := p.Cost(billing.Usage{PromptTokens: 1, CachedPromptTokens: -1}); err == nil {
		t.Error("negative cached tokens accepted")
	}
}

func TestParsePricesCachedInput(t *testing.T) {
	p, err := ParsePrices([]byte("models:\n  q: {input: 200000, cachedInput: 50000, output: 600000, perRequest: 100}\n  r: {input: 1, output: 2}\n"))
	if err != nil {
		t.Fatal(err)
	}
	q, _ := p.For("q")
	if q.cachedInput() != 50_000 || q.PerRequest != 100 {
		t.Fatalf("q: %+v", q)
	}
	if r, _ := p.For("r"); r.CachedInput != nil || r.cachedInput() != 1 {
		t.Fatalf("r: cachedInput defaults to input, got %+v", r)
	}
	for _, bad := range []string{
		"models: {q: {input: 1, cachedInput: 2}}",  // a cached token above input
		"models: {q: {input: 1, cachedInput: -1}}", // negative
		"models: {q: {input: 1, perRequest: -1}}",  // negative
		"default: {input: 1, cachedInputs: 1}",     // unknown key
	} {
		if _, err := ParsePrices([]byte(bad)); err == nil {
			t.Errorf("%s: accepted", bad)
		}
	}
}

// OpenAI's usage object: cached_tokens in prompt_tokens_details, both ways.
func TestUsageJSON(t *testing.T) {
	var u billing.Usage
	in := `{"prompt_tokens":2006,"completion_tokens":300,"total_tokens":2306,"prompt_tokens_details":{"cached_tokens":1920,"audio_tokens":0}}`
	if err := json.Unmarshal([]byte(in), &u); err != nil || u != (billing.Usage{PromptTokens: 2006, CompletionTokens: 300, CachedPromptTokens: 1920}) {
		t.Fatalf("%+v %v", u, err)
	}
	if err := json.Unmarshal([]byte(`{"prompt_tokens":5,"completion_tokens":1,"prompt_tokens_details":null}`), &u); err != nil || u.CachedPromptTokens != 0 || u.PromptTokens != 5 {
		t.Fatalf("null details: %+v %v", u, err)
	}
	out, _ := json.Marshal(billing.Usage{PromptTokens: 5, CompletionTokens: 1})
	if string(out) != `{"prompt_tokens":5,"completion_tokens":1}` {
		t.Fatalf("marshal without cache: %s", out)
	}
	out, _ = json.Marshal(billing.Usage{PromptTokens: 5, CachedPromptTokens: 4})
	if !strings.Contains(string(out), `"prompt_tokens_details":{"cached_tokens":4}`) {
		t.Fatalf("marshal with cache: %s", out)
	}
}
