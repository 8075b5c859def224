package serve_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llmctl/llmctl/internal/upstreamdouble"
	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/serve"
)

// billed is a gateway over a real ledger on SQLite, priced 1 µ a token
// (input and output), 0.25 µ a cached prompt token and 10 µ a request.
type billed struct {
	*fixture
	l      *ledger.Ledger
	store  ledger.Store
	mu     sync.Mutex
	admits []int64 // tokens each request asked the Admitter for
}

func newBilled(t *testing.T, d *upstreamdouble.Double) *billed {
	t.Helper()
	ctx := context.Background()
	s, err := ledger.Open(ctx, "sqlite:"+filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	cached := ledger.Micros(250_000)
	l, err := ledger.New(s, ledger.Config{SpoolDir: t.TempDir(), Prices: ledger.Prices{Models: map[string]ledger.Price{
		"double-model": {Input: 1_000_000, CachedInput: &cached, Output: 1_000_000, PerRequest: 10}}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close(ctx) })
	b := &billed{l: l, store: s}
	b.fixture = newFixture(t, func(o *serve.Options) {
		o.Reserver = l
		o.Auth = memAuth{"good": {TenantID: "t1", KeyID: "k1"}, "new": {TenantID: "t2", KeyID: "k2"}}
		o.Admitter = admitFunc(func(tokens int64) {
			b.mu.Lock()
			b.admits = append(b.admits, tokens)
			b.mu.Unlock()
		})
	}, d)
	return b
}

type admitFunc func(int64)

func (f admitFunc) Admit(_ context.Context, _ billing.Principal, _ string, tokens int64) (billing.Ticket, error) {
	f(tokens)
	return ticketFunc(func(billing.Usage) {}), nil
}

func (b *billed) fund(t *testing.T, key string, amount ledger.Micros) {
	t.Helper()
	e := ledger.Entry{Key: key, TenantID: "t1", Kind: ledger.KindCredit, Amount: amount, Time: time.Now()}
	if _, err := b.store.Apply(context.Background(), []ledger.Entry{e}); err != nil {
		t.Fatal(err)
	}
}

func (b *billed) lastAdmit() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.admits[len(b.admits)-1]
}

// entries waits for the ledger to write what it journaled and lists t1's.
func (b *billed) entries(t *testing.T) []ledger.Entry {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); b.l.Depth() > 0; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("ledger never drained")
		}
	}
	es, err := b.store.Entries(context.Background(), ledger.Filter{TenantID: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func body(t *testing.T, v map[string]any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func msgs(prompt string) []any { return []any{map[string]any{"role": "user", "content": prompt}} }

func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// n > 1 generates max_tokens per choice: the reservation and the TPM
// admission cover all of them, so a tenant cannot sink below its overdraft
// (0 here) by asking for many choices of a small max_tokens.
func TestChoicesReservedAndAdmitted(t *testing.T) {
	d := upstreamdouble.Start(t, upstreamdouble.Options{})
	b := newBilled(t, d)
	b.fund(t, "pay-1", 200)
	// 4 choices × 100 tokens (the double answers tokens=400, as a backend
	// generating all four would); one choice alone would reserve ~125 µ.
	req := body(t, map[string]any{"model": "double-model", "n": 4, "max_tokens": 100, "messages": msgs("a b tokens=400")})
	resp := b.post(t, "/v1/chat/completions", "good", req)
	if msg := readAll(t, resp); resp.StatusCode != http.StatusPaymentRequired {
		t.Fatalf("n=4 × max_tokens=100 with 200 µ: status %d, want 402: %s", resp.StatusCode, msg)
	}
	est := b.lastAdmit() - 400
	if est < 1 || est > 20 {
		t.Fatalf("admitted %d tokens, want 4×100 + the prompt estimate", b.lastAdmit())
	}
	if es := b.entries(t); len(es) != 1 {
		t.Fatalf("a refused request was charged: %+v", es)
	}
	// Funded enough, it is served and charged what it used: 3 prompt + 400
	// completion + 10 per request.
	b.fund(t, "pay-2", 1000)
	resp = b.post(t, "/v1/chat/completions", "good", req)
	if msg := readAll(t, resp); resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, msg)
	}
	es := b.entries(t)
	if len(es) != 3 || es[2].Amount != -413 || es[2].CompletionTokens != 400 {
		t.Fatalf("entries %+v", es)
	}
	// best_of (completions) counts the same way, the larger of the two.
	creq := body(t, map[string]any{"model": "double-model", "n": 2, "best_of": 5, "max_tokens": 10, "prompt": "x"})
	resp = b.post(t, "/v1/completions", "good", creq)
	if msg := readAll(t, resp); resp.StatusCode != http.StatusOK || b.lastAdmit() < 50 || b.lastAdmit() > 60 {
		t.Fatalf("best_of=5: status %d, admitted %d: %s", resp.StatusCode, b.lastAdmit(), msg)
	}
}

// An image part is estimated at serve.ImageTokens, not by its base64 bytes:
// a 1 MB image no longer reserves ~250k tokens and draws a spurious 402.
func TestImagePartsEstimatedByAllowance(t *testing.T) {
	d := upstreamdouble.Start(t, upstreamdouble.Options{})
	b := newBilled(t, d)
	b.fund(t, "pay", 2000)                                                                     // enough for the allowance, far from 250k tokens
	img := "data:image/png;base64," + base64.StdEncoding.EncodeToString(make([]byte, 768<<10)) // ~1 MB of base64
	content := []any{
		map[string]any{"type": "text", "text": "what is in this picture tokens=2"},
		map[string]any{"type": "image_url", "image_url": map[string]any{"url": img, "detail": "high"}},
	}
	req := body(t, map[string]any{"model": "double-model", "max_tokens": 10,
		"messages": []any{map[string]any{"role": "user", "content": content}}})
	if len(req) < 1<<20 {
		t.Fatalf("the test image is only %d bytes", len(req))
	}
	resp := b.post(t, "/v1/chat/completions", "good", req)
	if msg := readAll(t, resp); resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, msg)
	}
	if got := b.lastAdmit() - 10; got < serve.ImageTokens || got > serve.ImageTokens+100 {
		t.Fatalf("prompt estimated at %d tokens, want the image allowance %d plus the text", got, serve.ImageTokens)
	}
}

// The 402 says what is available, what this request may cost at most, and
// to lower max_tokens; a tenant never credited is told so.
func TestQuotaRefusalHasNumbers(t *testing.T) {
	d := upstreamdouble.Start(t, upstreamdouble.Options{})
	b := newBilled(t, d)
	b.fund(t, "pay", 1000)
	errMsg := func(resp *http.Response) string {
		var e struct {
			Error struct{ Message, Code string } `json:"error"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || resp.StatusCode != http.StatusPaymentRequired || e.Error.Code != "insufficient_quota" {
			t.Fatalf("status %d, %+v, %v", resp.StatusCode, e, err)
		}
		return e.Error.Message
	}
	req := body(t, map[string]any{"model": "double-model", "max_tokens": 5000, "messages": msgs("hi")})
	msg := errMsg(b.post(t, "/v1/chat/completions", "good", req))
	// Cost: the estimate of the 36-byte messages (9) + 5000, + 10 per request.
	for _, want := range []string{"up to 0.005019", "0.001000 is available", "max_tokens=5000", "lower max_tokens"} {
		if !strings.Contains(msg, want) {
			t.Errorf("402 message %q lacks %q", msg, want)
		}
	}
	// Embeddings have no max_tokens to lower.
	msg = errMsg(b.post(t, "/v1/embeddings", "good", body(t, map[string]any{"model": "double-model", "input": "hi"})))
	if !strings.Contains(msg, "input tokens") || strings.Contains(msg, "max_tokens") {
		t.Errorf("embeddings' 402: %q", msg)
	}
	msg = errMsg(b.post(t, "/v1/chat/completions", "new", req))
	if !strings.Contains(msg, "no credit yet") || !strings.Contains(msg, "up to 0.005019") {
		t.Errorf("new tenant's 402: %q", msg)
	}
}

// Cached prompt tokens reported by the backend (usage.prompt_tokens_details)
// are recorded and charged at cachedInput, in plain answers and streams, for
// chat and completions; the charge records the request's `user`.
func TestCachedTokensCharged(t *testing.T) {
	d := upstreamdouble.Start(t, upstreamdouble.Options{})
	b := newBilled(t, d)
	b.fund(t, "pay", ledger.Unit)
	// 6 prompt words, 3 of them cached, 2 completion tokens:
	// 3×1 + 3×0.25 + 2×1 = 5.75 → 6 µ, + 10 per request.
	const prompt = "w1 w2 w3 cached=3 tokens=2 x"
	for i, req := range []map[string]any{
		{"model": "double-model", "user": "alice", "messages": msgs(prompt)},
		{"model": "double-model", "user": "alice", "stream": true, "messages": msgs(prompt)},
		{"model": "double-model", "user": "bob", "prompt": prompt},
		{"model": "double-model", "user": "bob", "stream": true, "prompt": prompt},
	} {
		path := "/v1/chat/completions"
		if _, ok := req["prompt"]; ok {
			path = "/v1/completions"
		}
		resp := b.post(t, path, "good", body(t, req))
		if msg := readAll(t, resp); resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: status %d: %s", i, resp.StatusCode, msg)
		}
	}
	es := b.entries(t)
	if len(es) != 5 {
		t.Fatalf("entries %+v", es)
	}
	for i, e := range es[1:] {
		user := []string{"alice", "alice", "bob", "bob"}[i]
		if e.Amount != -16 || e.PromptTokens != 6 || e.CachedPromptTokens != 3 || e.CompletionTokens != 2 || e.EndUser != user || e.KeyID != "k1" {
			t.Errorf("charge %d: %+v", i, e)
		}
	}
	// A `user` beyond the bound is refused before anything is reserved.
	resp := b.post(t, "/v1/chat/completions", "good", body(t, map[string]any{"model": "double-model",
		"user": strings.Repeat("u", ledger.MaxEndUser+1), "messages": msgs("x")}))
	if typ, _ := decodeErr(t, resp); resp.StatusCode != http.StatusBadRequest || typ != "invalid_request_error" {
		t.Fatalf("long user: %d %s", resp.StatusCode, typ)
	}
}
