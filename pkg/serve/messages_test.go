package serve_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/llmctl/llmctl/internal/upstreamdouble"
	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/serve"
)

// The Messages API is a built-in protocol: these tests run it through the
// gateway in process, with the recorder as limiter and reserver.

func messagesBody(stream bool, text string) string {
	b, _ := json.Marshal(map[string]any{"model": "double-model", "max_tokens": 20, "stream": stream,
		"messages": []any{map[string]any{"role": "user", "content": text}}})
	return string(b)
}

type anthropicError struct {
	Type  string
	Error struct{ Type, Message string }
}

// TestMessagesErrorsInAnthropicShape: every refusal of the gateway, before
// or after the body is read, is Anthropic's error object with the status
// the gateway chose and Anthropic's type for it.
func TestMessagesErrorsInAnthropicShape(t *testing.T) {
	d := upstreamdouble.Start(t, upstreamdouble.Options{Name: "a"})
	f := newFixture(t, func(o *serve.Options) { o.MaxBodyBytes = 4096 }, d)
	limited, broke := false, false
	f.rec.admit = func() error {
		if limited {
			return &billing.LimitError{Message: "too many requests per minute", RetryAfter: 2 * time.Second}
		}
		return nil
	}
	f.rec.reserve = func(billing.ReserveRequest) error {
		if broke {
			return fmt.Errorf("tenant t1: %w", billing.ErrInsufficientQuota)
		}
		return nil
	}
	for _, c := range []struct {
		name, key, body string
		setup           func()
		status          int
		typ, says       string
	}{
		{"no key", "", messagesBody(false, "x"), nil, 401, "authentication_error", "missing API key: send x-api-key"},
		{"bad key", "nope", messagesBody(false, "x"), nil, 401, "authentication_error", "invalid API key"},
		{"refused field", "good", `{"model":"double-model","max_tokens":5,"top_logprobs":2,"messages":[{"role":"user","content":"x"}]}`, nil, 400, "invalid_request_error", "top_logprobs"},
		{"no max_tokens", "good", `{"model":"double-model","messages":[{"role":"user","content":"x"}]}`, nil, 400, "invalid_request_error", "max_tokens"},
		{"unknown model", "good", `{"model":"nope","max_tokens":5,"messages":[{"role":"user","content":"x"}]}`, nil, 404, "not_found_error", "does not exist"},
		{"scope", "scoped", messagesBody(false, "x"), nil, 403, "permission_error", "may not use"},
		{"too large", "good", messagesBody(false, strings.Repeat("x", 5000)), nil, 413, "request_too_large", ""},
		{"rate limited", "good", messagesBody(false, "x"), func() { limited = true }, 429, "rate_limit_error", "per minute"},
		{"quota", "good", messagesBody(true, "x"), func() { limited, broke = false, true }, 402, "billing_error", ""},
		{"backend down", "good", messagesBody(true, "x status=500"), func() { broke = false }, 502, "api_error", "backend"},
		{"backend refuses", "good", messagesBody(false, "x status=400"), nil, 400, "invalid_request_error", "double answers 400"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if c.setup != nil {
				c.setup()
			}
			resp := f.post(t, "/v1/messages", "", c.body, "X-Api-Key", c.key, "Anthropic-Version", "2023-06-01")
			got := readAll(t, resp)
			var e anthropicError
			if resp.StatusCode != c.status || json.Unmarshal([]byte(got), &e) != nil || e.Type != "error" ||
				e.Error.Type != c.typ || !strings.Contains(e.Error.Message, c.says) {
				t.Fatalf("status %d: %s; want %d %s saying %q", resp.StatusCode, got, c.status, c.typ, c.says)
			}
			if c.status == 429 && resp.Header.Get("Retry-After") != "2" {
				t.Errorf("Retry-After %q", resp.Header.Get("Retry-After"))
			}
		})
	}
	req, _ := http.NewRequest(http.MethodGet, f.srv.URL+"/v1/messages", nil)
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, resp); resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(got, `"invalid_request_error"`) {
		t.Fatalf("GET: %d %s", resp.StatusCode, got)
	}
}

// TestMessagesSettleAndRoute: a Messages request settles the backend's
// usage once, a cut stream what was delivered, under the route "messages";
// a token count is admitted as a request of no tokens (rate limited) but
// never settled nor sent to a backend; the key may come as Bearer too.
func TestMessagesSettleAndRoute(t *testing.T) {
	d := upstreamdouble.Start(t, upstreamdouble.Options{Name: "a"})
	f := newFixture(t, nil, d)
	resp := f.post(t, "/v1/messages", "good", messagesBody(false, "a b tokens=3"), "X-Request-Id", "p1")
	var m struct {
		Content []struct{ Text string }
	}
	if got := readAll(t, resp); resp.StatusCode != 200 || json.Unmarshal([]byte(got), &m) != nil || m.Content[0].Text != "t1 t2 t3 " {
		t.Fatalf("%d %s", resp.StatusCode, got)
	}
	if u := f.rec.settledOnce(t, "p1"); u != (billing.Usage{PromptTokens: 3, CompletionTokens: 3}) {
		t.Fatalf("settled %+v", u)
	}

	resp = f.post(t, "/v1/messages", "", messagesBody(true, "a b tokens=5 fail-after=3"), "X-Api-Key", "good", "X-Request-Id", "s1")
	body := readAll(t, resp)
	if !strings.Contains(body, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\"") ||
		strings.Count(body, `"text_delta"`) != 3 || strings.Contains(body, "message_stop") {
		t.Fatalf("cut stream:\n%s", body)
	}
	if u := f.rec.settledOnce(t, "s1"); u.CompletionTokens != 3 {
		t.Fatalf("cut stream settled %+v, want the 3 delivered tokens", u)
	}
	if n := counterWith(t, f.gw, "llmctl_requests_total", "route", "messages"); n != 2 {
		t.Errorf("requests under route messages: %v", n)
	}

	f.rec.mu.Lock()
	admitted := len(f.rec.done)
	f.rec.mu.Unlock()
	resp = f.post(t, "/v1/messages/count_tokens", "", `{"model":"double-model","messages":[{"role":"user","content":"count these words"}]}`,
		"X-Api-Key", "good", "X-Request-Id", "c1")
	var c struct {
		InputTokens int64 `json:"input_tokens"`
	}
	if got := readAll(t, resp); resp.StatusCode != 200 || json.Unmarshal([]byte(got), &c) != nil || c.InputTokens <= 0 {
		t.Fatalf("count: %d %s", resp.StatusCode, got)
	}
	f.rec.mu.Lock()
	_, settled := f.rec.settled["c1"]
	admittedAfter := len(f.rec.done)
	f.rec.mu.Unlock()
	if settled || d.Requests() != 2 || admittedAfter != admitted+1 {
		t.Fatalf("a count was settled (%v), reached the backend (%d requests), or was not admitted once (%d)", settled, d.Requests(), admittedAfter-admitted)
	}
	f.rec.mu.Lock()
	u := f.rec.done[len(f.rec.done)-1]
	f.rec.mu.Unlock()
	if u != (billing.Usage{}) {
		t.Errorf("a count's admission ended with usage %+v", u)
	}
	f.rec.admit = func() error { return &billing.LimitError{Message: "slow down", RetryAfter: time.Second} }
	resp = f.post(t, "/v1/messages/count_tokens", "", `{"model":"double-model","messages":[{"role":"user","content":"x"}]}`, "X-Api-Key", "good")
	if got := readAll(t, resp); resp.StatusCode != 429 || !strings.Contains(got, `"rate_limit_error"`) {
		t.Fatalf("a count over the rate limit: %d %s", resp.StatusCode, got)
	}
}

// A Messages answer is sent only after Settle, and a stream's message_stop
// too: a client holding a whole answer means a durable charge.
func TestMessagesEndOnlyAfterSettle(t *testing.T) {
	early, all := settleOrder(t, "/v1/messages", messagesBody(false, "hello tokens=5"))
	if early != "" || !strings.Contains(all, `"output_tokens":5`) {
		t.Fatalf("plain: early %q, answer %q", early, all)
	}
	early, all = settleOrder(t, "/v1/messages", messagesBody(true, "hello tokens=20"))
	if !strings.Contains(early, "event: content_block_delta") || strings.Contains(early, "message_stop") {
		t.Fatalf("stream: before Settle the client had %q", early)
	}
	if !strings.Contains(all, "event: message_stop") {
		t.Fatalf("the stream did not end with message_stop: %q", all)
	}
}
