package serve_test

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/llmctl/llmctl/internal/upstreamdouble"
	"github.com/llmctl/llmctl/pkg/billing"
)

// TestNeverFittingRequestIsNotRetried: a request larger than its TPM limit
// can never be admitted, so it is a 400 without Retry-After, and the official
// client (which retries 429s, twice by default) gives up after one attempt.
func TestNeverFittingRequestIsNotRetried(t *testing.T) {
	d := upstreamdouble.Start(t, upstreamdouble.Options{})
	f := newFixture(t, nil, d)
	var attempts atomic.Int64
	f.rec.admit = func() error {
		attempts.Add(1)
		return &billing.LimitError{TooLarge: true, Message: "Request too large for tokens per minute on key k: limit 100, requested 4097.",
			Header: http.Header{"X-Ratelimit-Limit-Tokens": {"100"}}}
	}
	c := openai.NewClient(option.WithBaseURL(f.srv.URL+"/v1/"), option.WithAPIKey("good"))
	_, err := c.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model:    "double-model",
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")},
	})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("want an API error, got %v", err)
	}
	if apiErr.StatusCode != http.StatusBadRequest || apiErr.Code != "request_too_large" || apiErr.Param != "max_tokens" {
		t.Fatalf("status %d code %q param %q: want 400 request_too_large on max_tokens", apiErr.StatusCode, apiErr.Code, apiErr.Param)
	}
	if ra := apiErr.Response.Header.Get("Retry-After"); ra != "" {
		t.Fatalf("Retry-After %q on a request that can never fit", ra)
	}
	if n := attempts.Load(); n != 1 {
		t.Fatalf("the client sent %d attempts; a non-retryable answer gets 1", n)
	}
	if d.Requests() != 0 {
		t.Fatal("a refused request reached the backend")
	}
}
