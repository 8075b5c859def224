package serve_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/llmctl/llmctl/internal/upstreamdouble"
	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/serve"
)

func decodeErr(t *testing.T, resp *http.Response) (typ, code string) {
	t.Helper()
	var e struct {
		Error struct {
			Type string  `json:"type"`
			Code *string `json:"code"`
		} `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil {
		t.Fatalf("status %d: not an OpenAI error: %v", resp.StatusCode, err)
	}
	if e.Error.Code != nil {
		code = *e.Error.Code
	}
	return e.Error.Type, code
}

func TestLimitErrorIs429WithHeaders(t *testing.T) {
	d := upstreamdouble.Start(t, upstreamdouble.Options{})
	f := newFixture(t, nil, d)
	f.rec.admit = func() error {
		return &billing.LimitError{Message: "rpm exceeded", RetryAfter: 1500 * time.Millisecond,
			Header: http.Header{"X-Ratelimit-Limit-Requests": {"60"}}}
	}
	resp := f.post(t, "/v1/chat/completions", "good", chatBody(false, "hi"), "X-Request-Id", "limited")
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "2" || resp.Header.Get("X-Ratelimit-Limit-Requests") != "60" {
		t.Fatalf("status %d headers %v", resp.StatusCode, resp.Header)
	}
	if typ, code := decodeErr(t, resp); typ != "rate_limit_error" || code != "rate_limit_exceeded" {
		t.Fatalf("%s %s", typ, code)
	}
	if d.Requests() != 0 {
		t.Fatal("a refused request reached the backend")
	}
	f.rec.mu.Lock()
	defer f.rec.mu.Unlock()
	if len(f.rec.settled["limited"]) != 0 || len(f.rec.done) != 0 {
		t.Fatal("nothing was admitted, nothing may be settled")
	}
}

func TestInsufficientQuotaIs402AndReleasesTicket(t *testing.T) {
	d := upstreamdouble.Start(t, upstreamdouble.Options{})
	f := newFixture(t, nil, d)
	f.rec.reserve = func(billing.ReserveRequest) error { return fmt.Errorf("tenant t1: %w", billing.ErrInsufficientQuota) }
	resp := f.post(t, "/v1/chat/completions", "good", chatBody(false, "hi"))
	if resp.StatusCode != 402 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if typ, code := decodeErr(t, resp); typ != "insufficient_quota" || code != "insufficient_quota" {
		t.Fatalf("%s %s", typ, code)
	}
	f.rec.mu.Lock()
	defer f.rec.mu.Unlock()
	if len(f.rec.done) != 1 || f.rec.done[0] != (billing.Usage{}) {
		t.Fatalf("the admitted ticket must be released once with zero usage: %v", f.rec.done)
	}
}

func TestUnpricedModelIs403(t *testing.T) {
	d := upstreamdouble.Start(t, upstreamdouble.Options{})
	f := newFixture(t, nil, d)
	f.rec.reserve = func(billing.ReserveRequest) error { return fmt.Errorf("ledger: %w", billing.ErrModelNotPriced) }
	resp := f.post(t, "/v1/chat/completions", "good", chatBody(false, "hi"))
	if resp.StatusCode != 403 {
		t.Fatalf("status %d, want 403 (a retry cannot help)", resp.StatusCode)
	}
	if _, code := decodeErr(t, resp); code != "model_not_priced" {
		t.Fatalf("code %q", code)
	}
	f.rec.mu.Lock()
	defer f.rec.mu.Unlock()
	if len(f.rec.done) != 1 {
		t.Fatalf("the admitted ticket must be released once: %v", f.rec.done)
	}
}

func TestHookFailuresAre503(t *testing.T) {
	d := upstreamdouble.Start(t, upstreamdouble.Options{})
	f := newFixture(t, nil, d)
	f.rec.admit = func() error { return errors.New("redis down") }
	resp := f.post(t, "/v1/chat/completions", "good", chatBody(false, "hi"))
	if resp.StatusCode != 503 {
		t.Fatalf("limiter failure: %d", resp.StatusCode)
	}
	f.rec.admit = nil
	f.rec.reserve = func(billing.ReserveRequest) error { return errors.New("db down") }
	resp = f.post(t, "/v1/chat/completions", "good", chatBody(false, "hi"))
	if resp.StatusCode != 503 {
		t.Fatalf("ledger failure: %d", resp.StatusCode)
	}
	resp = f.post(t, "/v1/chat/completions", "broken-store", chatBody(false, "hi"))
	if resp.StatusCode != 503 {
		t.Fatalf("store failure: %d", resp.StatusCode)
	}
	if d.Requests() != 0 {
		t.Fatal("a request reached the backend")
	}
}

// panicky is a Backend that panics mid-request.
type panicky struct{}

func (panicky) Name() string                                                { return "panicky" }
func (panicky) Models(context.Context) ([]string, error)                    { return []string{"boom"}, nil }
func (panicky) Do(context.Context, *serve.Request) (*serve.Response, error) { panic("backend bug") }

// TestSettledExactlyOnceOnEveryPath: success, backend error, panic and client
// disconnect each settle the hold and finish the ticket exactly once.
func TestSettledExactlyOnceOnEveryPath(t *testing.T) {
	d := upstreamdouble.Start(t, upstreamdouble.Options{})
	f := newFixture(t, func(o *serve.Options) { o.Backends = []serve.Backend{panicky{}} }, d)

	cases := []struct {
		id, body string
		status   int
	}{
		{"ok", chatBody(false, "a b tokens=2"), 200},
		{"upstream-500", chatBody(false, "a status=500"), 502},
		{"panic", `{"model":"boom","messages":[{"role":"user","content":"x"}]}`, 500},
	}
	for _, c := range cases {
		resp := f.post(t, "/v1/chat/completions", "good", c.body, "X-Request-Id", c.id)
		if resp.StatusCode != c.status {
			t.Fatalf("%s: status %d, want %d", c.id, resp.StatusCode, c.status)
		}
		f.rec.settledOnce(t, c.id)
	}

	// Disconnect mid-stream: usage is what was streamed (no usage chunk came).
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, f.srv.URL+"/v1/chat/completions",
		strings.NewReader(chatBody(true, "a b c tokens=9 stall-after=2")))
	req.Header.Set("Authorization", "Bearer good")
	req.Header.Set("X-Request-Id", "leave")
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(resp.Body)
	for n := 0; n < 2; {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(line, "data: ") {
			n++
		}
	}
	cancel()
	resp.Body.Close()
	got := f.rec.settledOnce(t, "leave")
	rec, err := d.Wait(context.Background(), "leave", func(r upstreamdouble.Record) bool { return r.Canceled })
	if err != nil {
		t.Fatal(err)
	}
	if got.CompletionTokens != rec.CompletionTokens || got.CompletionTokens != 2 {
		t.Fatalf("settled %+v, double delivered %d", got, rec.CompletionTokens)
	}

	f.rec.mu.Lock()
	defer f.rec.mu.Unlock()
	if len(f.rec.done) != len(cases)+1 {
		t.Fatalf("tickets done %d times for %d requests", len(f.rec.done), len(cases)+1)
	}
}

func TestWebhooksMountedWithoutAuthAndBodyLimited(t *testing.T) {
	d := upstreamdouble.Start(t, upstreamdouble.Options{})
	hook := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.ReadAll(r.Body); err != nil {
			http.Error(w, "too big", http.StatusRequestEntityTooLarge)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	f := newFixture(t, func(o *serve.Options) { o.Webhooks = hook; o.WebhookMaxBodyBytes = 64 }, d)
	if resp := f.post(t, "/v1/billing/webhooks/stripe", "", `{"id":"evt_1"}`); resp.StatusCode != 204 {
		t.Fatalf("webhook without a key: %d", resp.StatusCode)
	}
	if resp := f.post(t, "/v1/billing/webhooks/stripe", "", strings.Repeat("x", 100)); resp.StatusCode != 413 {
		t.Fatalf("oversized webhook: %d", resp.StatusCode)
	}
}

func TestMetricsPassPromlint(t *testing.T) {
	d := upstreamdouble.Start(t, upstreamdouble.Options{})
	f := newFixture(t, nil, d)
	f.post(t, "/v1/chat/completions", "good", chatBody(true, "hi tokens=3"))
	f.post(t, "/v1/chat/completions", "good", chatBody(false, "hi status=503"))
	srv := f.gw.AdminHandler()
	rr := httptest.NewRecorder()
	srv.ServeHTTP(rr, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	text := rr.Body.String()
	problems, err := promlint.New(strings.NewReader(text)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint %s: %s", p.Metric, p.Text)
	}
	for _, name := range []string{"llmctl_requests_total", "llmctl_request_duration_seconds", "llmctl_time_to_first_token_seconds",
		"llmctl_inter_token_latency_seconds", "llmctl_tokens_total", "llmctl_requests_in_flight", "llmctl_backend_up",
		"llmctl_backend_in_flight", `llmctl_upstream_errors_total{backend="double",reason="status_5xx"}`} {
		if !strings.Contains(text, name) {
			t.Errorf("metrics lack %s", name)
		}
	}
}
