package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/llmctl/llmctl/pkg/serve"
	"github.com/llmctl/llmctl/pkg/serve/engine"
)

// hugePrompt is 5 MB of ordinary text.
var hugePrompt = strings.Repeat("the sea and the land ", 5<<20/21)

// refusal sends body and returns the 400's param and message, failing t on
// anything else.
func refusal(t *testing.T, b *engine.Backend, ep serve.Endpoint, body []byte) (param, message string) {
	t.Helper()
	_, err := b.Do(context.Background(), &serve.Request{Endpoint: ep, Body: body})
	var re *engine.RequestError
	if !errors.As(err, &re) || re.Status != 400 {
		t.Fatalf("got %v, want a 400", err)
	}
	var e struct {
		Error struct{ Message, Type, Param string } `json:"error"`
	}
	if err := json.Unmarshal(re.Body(), &e); err != nil || e.Error.Type != "invalid_request_error" {
		t.Fatalf("error body %s", re.Body())
	}
	return re.Param, e.Error.Message
}

// TestHugePromptRefusedBeforeTokenizing: a prompt longer in bytes than the
// context could hold at the vocabulary's longest piece is refused without
// the tokenizer merging a byte of it (the work is bounded by the context,
// not the prompt: see docs/benchmarks.md for the time).
func TestHugePromptRefusedBeforeTokenizing(t *testing.T) {
	b := demo(t)
	tok := b.Tokenizer()
	if tok.MaxPieceBytes() <= 0 {
		t.Fatalf("demo vocabulary gives no byte bound")
	}
	for _, tc := range []struct {
		ep    serve.Endpoint
		body  any
		param string
	}{
		{serve.EndpointCompletions, map[string]any{"prompt": hugePrompt}, "prompt"},
		{serve.EndpointChat, map[string]any{"messages": []any{map[string]any{"role": "user", "content": hugePrompt}}}, "messages"},
		{serve.EndpointEmbeddings, map[string]any{"input": []string{hugePrompt, "short"}}, "input"},
	} {
		body, _ := json.Marshal(tc.body)
		before := tok.MergedBytes()
		param, msg := refusal(t, b, tc.ep, body)
		t.Logf("%s: %s", tc.ep, msg)
		if param != tc.param || !strings.Contains(msg, "bytes") || !strings.Contains(msg, "context holds") {
			t.Errorf("%s: param %q message %q", tc.ep, param, msg)
		}
		if merged := tok.MergedBytes() - before; merged != 0 {
			t.Errorf("%s: the tokenizer merged %d bytes of a prompt refused by its length", tc.ep, merged)
		}
	}
}

// TestLongPromptRefusedByTokens: a prompt within the byte bound but over the
// context is refused by its token count, naming the field.
func TestLongPromptRefusedByTokens(t *testing.T) {
	b := demo(t)
	prompt := strings.Repeat("word ", 3000)
	body, _ := json.Marshal(map[string]any{"prompt": prompt})
	before := b.Tokenizer().MergedBytes()
	param, msg := refusal(t, b, serve.EndpointCompletions, body)
	t.Log(msg)
	if param != "prompt" || !strings.Contains(msg, "more than") || !strings.Contains(msg, "tokens") {
		t.Fatalf("param %q message %q", param, msg)
	}
	// A SentencePiece fragment merges as a whole: at most the prompt once.
	if merged := b.Tokenizer().MergedBytes() - before; merged > int64(len(prompt)) {
		t.Fatalf("merged %d bytes of a %d-byte prompt", merged, len(prompt))
	}
}
