package engine_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/serve"
	"github.com/llmctl/llmctl/pkg/serve/engine"
)

func demo(t *testing.T) *engine.Backend {
	t.Helper()
	b, err := engine.OpenDemo(engine.Options{Threads: 2, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

type answer struct {
	Choices []struct {
		Message struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"message"`
		Text         string `json:"text"`
		FinishReason string `json:"finish_reason"`
	} `json:"choices"`
	Usage struct {
		PromptTokens     int64 `json:"prompt_tokens"`
		CompletionTokens int64 `json:"completion_tokens"`
		TotalTokens      int64 `json:"total_tokens"`
	} `json:"usage"`
	Model  string `json:"model"`
	Object string `json:"object"`
}

func do(t *testing.T, b *engine.Backend, ep serve.Endpoint, body string) answer {
	t.Helper()
	resp, err := b.Do(context.Background(), &serve.Request{Endpoint: ep, Body: []byte(body), RequestID: "t1"})
	if err != nil {
		t.Fatal(err)
	}
	var a answer
	if err := json.Unmarshal(resp.Body, &a); err != nil {
		t.Fatalf("%v: %s", err, resp.Body)
	}
	if resp.Usage == nil || resp.Usage.PromptTokens != a.Usage.PromptTokens || resp.Usage.CompletionTokens != a.Usage.CompletionTokens {
		t.Fatalf("Response.Usage %+v disagrees with body usage %+v", resp.Usage, a.Usage)
	}
	return a
}

// streamChunks runs a streaming request and returns its chunks and the
// usage the stream reports after its end.
func streamChunks(t *testing.T, ctx context.Context, b *engine.Backend, req *serve.Request) ([][]byte, *billing.Usage) {
	t.Helper()
	req.Stream = true
	resp, err := b.Do(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Events.Close()
	var chunks [][]byte
	for {
		data, err := resp.Events.Next()
		if errors.Is(err, io.EOF) {
			return chunks, resp.Events.Usage()
		}
		if err != nil {
			t.Fatal(err)
		}
		chunks = append(chunks, data)
	}
}

// streamText runs a streaming request and returns the concatenated text,
// the finish reason and the usage chunk's completion tokens.
func streamText(t *testing.T, ctx context.Context, b *engine.Backend, ep serve.Endpoint, body string) (string, string, int64) {
	t.Helper()
	chunks, u := streamChunks(t, ctx, b, &serve.Request{Endpoint: ep, Body: []byte(body)})
	var text strings.Builder
	var finish string
	var usageTokens int64 = -1
	for _, data := range chunks {
		var c struct {
			Choices []struct {
				Delta        struct{ Content string } `json:"delta"`
				Text         string                   `json:"text"`
				FinishReason *string                  `json:"finish_reason"`
			} `json:"choices"`
			Usage *struct {
				CompletionTokens int64 `json:"completion_tokens"`
			} `json:"usage"`
		}
		if err := json.Unmarshal(data, &c); err != nil {
			t.Fatalf("bad chunk %s: %v", data, err)
		}
		for _, ch := range c.Choices {
			text.WriteString(ch.Delta.Content + ch.Text)
			if ch.FinishReason != nil {
				finish = *ch.FinishReason
			}
		}
		if c.Usage != nil {
			usageTokens = c.Usage.CompletionTokens
		}
	}
	if u == nil {
		t.Fatal("no usage after EOF")
	}
	if usageTokens >= 0 && usageTokens != u.CompletionTokens {
		t.Fatalf("usage chunk says %d tokens, Usage() %d", usageTokens, u.CompletionTokens)
	}
	return text.String(), finish, u.CompletionTokens
}

func TestChatCompletion(t *testing.T) {
	b := demo(t)
	models, _ := b.Models(context.Background())
	if len(models) != 1 || models[0] != engine.DemoName {
		t.Fatalf("models %v", models)
	}
	a := do(t, b, serve.EndpointChat, `{"messages":[{"role":"user","content":"Tell me about the sea"}],"max_tokens":7,"temperature":0}`)
	if len(a.Choices) != 1 || a.Choices[0].Message.Role != "assistant" || a.Choices[0].Message.Content == "" {
		t.Fatalf("answer %+v", a)
	}
	if a.Choices[0].FinishReason != "length" || a.Usage.CompletionTokens != 7 {
		t.Fatalf("want 7 tokens cut by length, got %+v", a)
	}
	// prompt tokens are counted by the model's tokenizer over the rendered prompt
	want := len(b.Tokenizer().Encode("User: Tell me about the sea\nAssistant:", true, true))
	if a.Usage.PromptTokens != int64(want) || a.Usage.TotalTokens != a.Usage.PromptTokens+7 {
		t.Fatalf("usage %+v, want %d prompt tokens", a.Usage, want)
	}
	if a.Object != "chat.completion" || a.Model != engine.DemoName {
		t.Fatalf("object %q model %q", a.Object, a.Model)
	}
}

func TestStreamMatchesNonStream(t *testing.T) {
	b := demo(t)
	body := `{"messages":[{"role":"user","content":"hello there"}],"max_tokens":12,"temperature":0.8,"seed":3,"stream_options":{"include_usage":true}}`
	a := do(t, b, serve.EndpointChat, body)
	text, finish, n := streamText(t, context.Background(), b, serve.EndpointChat, body)
	if text != a.Choices[0].Message.Content || finish != a.Choices[0].FinishReason || n != a.Usage.CompletionTokens {
		t.Fatalf("stream %q/%s/%d, non-stream %q/%s/%d", text, finish, n, a.Choices[0].Message.Content, a.Choices[0].FinishReason, a.Usage.CompletionTokens)
	}
}

func TestStopSequence(t *testing.T) {
	b := demo(t)
	full := do(t, b, serve.EndpointCompletions, `{"prompt":"the water","max_tokens":30,"temperature":0}`).Choices[0].Text
	words := strings.Fields(full)
	if len(words) < 6 {
		t.Fatalf("greedy text too short to pick a stop from: %q", full)
	}
	stop := " " + words[4]
	idx := strings.Index(full, stop)
	body, _ := json.Marshal(map[string]any{"prompt": "the water", "max_tokens": 30, "temperature": 0, "stop": []string{stop}})
	a := do(t, b, serve.EndpointCompletions, string(body))
	if a.Choices[0].Text != full[:idx] || a.Choices[0].FinishReason != "stop" {
		t.Fatalf("with stop %q: %q (%s), want %q", stop, a.Choices[0].Text, a.Choices[0].FinishReason, full[:idx])
	}
	text, finish, _ := streamText(t, context.Background(), b, serve.EndpointCompletions, string(body))
	if text != full[:idx] || finish != "stop" {
		t.Fatalf("streamed with stop: %q (%s)", text, finish)
	}
}

// TestBatchingDoesNotChangeResults: a request decoded alone and the same
// request decoded while others share its steps give the same tokens.
func TestBatchingDoesNotChangeResults(t *testing.T) {
	b := demo(t)
	body := `{"prompt":"once there was a king","max_tokens":20,"temperature":0}`
	alone := do(t, b, serve.EndpointCompletions, body).Choices[0].Text
	var wg sync.WaitGroup
	results := make([]string, 4)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := body
			if i%2 == 1 {
				p = `{"prompt":"a different and somewhat longer prompt about the river and the mountain","max_tokens":25,"temperature":0.9,"seed":1}`
			}
			results[i], _, _ = streamText(t, context.Background(), b, serve.EndpointCompletions, p)
		}()
	}
	wg.Wait()
	for i := 0; i < len(results); i += 2 {
		if results[i] != alone {
			t.Fatalf("batched %q, alone %q", results[i], alone)
		}
	}
}

// TestShortRequestNotBlocked: a short request admitted while a long one is
// decoding finishes first; it does not wait for the long one.
func TestShortRequestNotBlocked(t *testing.T) {
	b := demo(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	long, err := b.Do(ctx, &serve.Request{Endpoint: serve.EndpointCompletions, Stream: true,
		Body: []byte(`{"prompt":"the long one","max_tokens":1500,"temperature":0.7,"seed":5}`)})
	if err != nil {
		t.Fatal(err)
	}
	defer long.Events.Close()
	// wait until the long request is decoding
	for range 3 {
		if _, err := long.Events.Next(); err != nil {
			t.Fatal(err)
		}
	}
	_, finish, n := streamText(t, ctx, b, serve.EndpointCompletions, `{"prompt":"short","max_tokens":3,"temperature":0}`)
	if finish == "" || n == 0 {
		t.Fatalf("short request: finish %q, %d tokens", finish, n)
	}
	if u := long.Events.Usage(); u != nil {
		t.Fatal("the long request finished before the short one")
	}
	// cancelling the long request ends its stream with an error, not EOF
	cancel()
	for {
		_, err := long.Events.Next()
		if err == nil {
			continue
		}
		if errors.Is(err, io.EOF) {
			t.Fatal("cancelled stream ended normally")
		}
		break
	}
}

func TestBadRequests(t *testing.T) {
	b := demo(t)
	for _, tc := range []struct {
		ep    serve.Endpoint
		body  string
		param string
	}{
		{serve.EndpointChat, `{"messages":[]}`, "messages"},
		{serve.EndpointChat, `{"messages":[{"role":"user","content":"x"}],"n":2}`, "n"},
		{serve.EndpointChat, `{"messages":[{"role":"user","content":"x"}],"temperature":7}`, "temperature"},
		{serve.EndpointChat, `{"messages":[{"role":"user","content":[{"type":"image_url"}]}]}`, "messages"},
		{serve.EndpointChat, `{"messages":[{"role":"wizard","content":"x"}]}`, "messages"},
		{serve.EndpointCompletions, `{"prompt":"x","stop":5}`, "stop"},
		{serve.EndpointCompletions, `{"prompt":"x","max_tokens":0}`, "max_tokens"},
		{serve.EndpointCompletions, `{"prompt":` + `"` + strings.Repeat("word ", 3000) + `"}`, "prompt"},
		{serve.EndpointCompletions, `{not json`, ""},
		{serve.EndpointEmbeddings, `{}`, "input"},
		{serve.EndpointEmbeddings, `{"input":[]}`, "input"},
		{serve.EndpointEmbeddings, `{"input":""}`, "input"},
		{serve.EndpointEmbeddings, `{"input":["a",""]}`, "input"},
		{serve.EndpointEmbeddings, `{"input":5}`, "input"},
		{serve.EndpointEmbeddings, `{"input":[1,"a"]}`, "input"},
		{serve.EndpointEmbeddings, `{"input":[[1,2],[]]}`, "input"},
		{serve.EndpointEmbeddings, `{"input":[[1,2],[99999]]}`, "input"},
		{serve.EndpointEmbeddings, `{"input":[-1]}`, "input"},
		{serve.EndpointEmbeddings, `{"input":"` + strings.Repeat("word ", 3000) + `"}`, "input"},
		{serve.EndpointEmbeddings, `{"input":"x","encoding_format":"int8"}`, "encoding_format"},
		{serve.EndpointEmbeddings, `{"input":"x","dimensions":3}`, "dimensions"},
		{serve.EndpointEmbeddings, `{"input":"x"`, ""},
	} {
		_, err := b.Do(context.Background(), &serve.Request{Endpoint: tc.ep, Body: []byte(tc.body)})
		var re *engine.RequestError
		var be *serve.BackendError
		if !errors.As(err, &re) || re.Status != 400 || re.Param != tc.param ||
			!errors.As(err, &be) || be.Status != 400 || string(be.Body) != string(re.Body()) || errors.Is(err, serve.ErrRetryable) {
			t.Errorf("%.60s: got %v, want a 400 on %q", tc.body, err, tc.param)
			continue
		}
		var e struct {
			Error struct{ Message, Type string } `json:"error"`
		}
		if json.Unmarshal(re.Body(), &e) != nil || e.Error.Message == "" || e.Error.Type != "invalid_request_error" {
			t.Errorf("error body %s", re.Body())
		}
	}
}
