package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	aoption "github.com/anthropics/anthropic-sdk-go/v2/option"

	"github.com/llmctl/llmctl/internal/llmctltest"
	"github.com/llmctl/llmctl/pkg/serve/engine"
)

// The Messages API (issue 15) through the built binary with Anthropic's own
// Go client: translated to chat completions for a remote backend double and
// for the embedded demo model, metered in the ledger like any chat request.

func anthropicClient(s *llmctltest.Server, opts ...aoption.RequestOption) anthropic.Client {
	return anthropic.NewClient(append([]aoption.RequestOption{aoption.WithBaseURL(s.URL), aoption.WithMaxRetries(0)}, opts...)...)
}

func userText(text string) []anthropic.MessageParam {
	return []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(text))}
}

// ledgerCharge is the debit of one request id.
type ledgerCharge struct {
	Kind                           string
	Key                            string
	PromptTokens, CompletionTokens int64
}

func charges(t *testing.T, db, tenant string) map[string]ledgerCharge {
	t.Helper()
	var es []ledgerCharge
	if err := json.Unmarshal([]byte(llmctl(t, db, "ledger", "entries", "--tenant", tenant, "-o", "json")), &es); err != nil {
		t.Fatal(err)
	}
	out := map[string]ledgerCharge{}
	for _, e := range es {
		if id, ok := strings.CutPrefix(e.Key, "req:"); ok && e.Kind == "debit" {
			id = id[:strings.LastIndexByte(id, ':')]
			out[id] = e
		}
	}
	return out
}

func anthropicErr(t *testing.T, err error, status int, typ, says string) {
	t.Helper()
	var ae *anthropic.Error
	if !errors.As(err, &ae) {
		t.Fatalf("want an API error %d %s, got %v", status, typ, err)
	}
	if (status != 0 && ae.StatusCode != status) || string(ae.Type()) != typ || !strings.Contains(ae.Message, says) {
		t.Fatalf("got %d %s %q, want %d %s saying %q (%s)", ae.StatusCode, ae.Type(), ae.Message, status, typ, says, ae.RawJSON())
	}
}

func TestMessagesRemoteBackend(t *testing.T) {
	s, d, db, key := pricedServer(t)
	c := anthropicClient(s, aoption.WithAPIKey(key)) // x-api-key, as Anthropic's clients send
	ctx := ctxT(t)
	delivered := map[string]int64{} // request id → completion tokens the double delivered

	t.Run("plain", func(t *testing.T) {
		m, err := c.Messages.New(ctx, anthropic.MessageNewParams{Model: model, MaxTokens: 50,
			System:   []anthropic.TextBlockParam{{Text: "be brief"}},
			Messages: userText("hello there tokens=3 cached=1")}, aoption.WithHeader("X-Request-Id", "m-plain"))
		if err != nil {
			t.Fatal(err)
		}
		rec, _ := d.Record("m-plain")
		if len(m.Content) != 1 || m.Content[0].Text != "t1 t2 t3 " || m.StopReason != anthropic.StopReasonEndTurn ||
			m.Role != "assistant" || string(m.Model) != model || !strings.HasPrefix(m.ID, "msg_") {
			t.Fatalf("message %s", m.RawJSON())
		}
		if m.Usage.InputTokens+m.Usage.CacheReadInputTokens != rec.PromptTokens || m.Usage.CacheReadInputTokens != 1 || m.Usage.OutputTokens != 3 {
			t.Fatalf("usage %s, double counted %d prompt tokens", m.Usage.RawJSON(), rec.PromptTokens)
		}
		delivered["m-plain"] = rec.CompletionTokens
	})

	t.Run("stream", func(t *testing.T) {
		st := c.Messages.NewStreaming(ctx, anthropic.MessageNewParams{Model: model, MaxTokens: 50,
			Messages: userText("stream me tokens=4")}, aoption.WithHeader("X-Request-Id", "m-stream"))
		var m anthropic.Message
		var events []string
		for st.Next() {
			ev := st.Current()
			events = append(events, ev.Type)
			if err := m.Accumulate(ev); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.Err(); err != nil {
			t.Fatal(err)
		}
		want := "message_start content_block_start content_block_delta content_block_delta content_block_delta content_block_delta content_block_stop message_delta message_stop"
		if strings.Join(events, " ") != want {
			t.Fatalf("events %v", events)
		}
		rec, _ := d.Record("m-stream")
		if len(m.Content) != 1 || m.Content[0].Text != "t1 t2 t3 t4 " || m.StopReason != anthropic.StopReasonEndTurn ||
			m.Usage.OutputTokens != 4 || m.Usage.InputTokens != rec.PromptTokens {
			t.Fatalf("accumulated %s", m.RawJSON())
		}
		delivered["m-stream"] = rec.CompletionTokens
	})

	t.Run("tool use round trip", func(t *testing.T) {
		for _, stream := range []bool{false, true} {
			id := map[bool]string{false: "m-tool", true: "m-tool-stream"}[stream]
			params := anthropic.MessageNewParams{Model: model, MaxTokens: 50,
				Messages: userText("weather in Paris tool=get_weather"),
				Tools: []anthropic.ToolUnionParam{{OfTool: &anthropic.ToolParam{Name: "get_weather",
					Description: anthropic.String("the weather in a city"),
					InputSchema: anthropic.ToolInputSchemaParam{Properties: map[string]any{"city": map[string]any{"type": "string"}}}}}},
				ToolChoice: anthropic.ToolChoiceUnionParam{OfAuto: &anthropic.ToolChoiceAutoParam{}}}
			var m *anthropic.Message
			if stream {
				st := c.Messages.NewStreaming(ctx, params, aoption.WithHeader("X-Request-Id", id))
				m = &anthropic.Message{}
				for st.Next() {
					if err := m.Accumulate(st.Current()); err != nil {
						t.Fatal(err)
					}
				}
				if err := st.Err(); err != nil {
					t.Fatal(err)
				}
			} else {
				var err error
				if m, err = c.Messages.New(ctx, params, aoption.WithHeader("X-Request-Id", id)); err != nil {
					t.Fatal(err)
				}
			}
			rec, _ := d.Record(id)
			if m.StopReason != anthropic.StopReasonToolUse || len(m.Content) != 1 || m.Content[0].Type != "tool_use" ||
				m.Content[0].Name != "get_weather" || string(m.Content[0].Input) != fmt.Sprintf(`{"words":%d}`, rec.PromptTokens) {
				t.Fatalf("stream=%v: %s", stream, m.RawJSON())
			}
			delivered[id] = rec.CompletionTokens
			// The tool's result goes back; the double answers it with text.
			params.Messages = append(params.Messages, m.ToParam(),
				anthropic.NewUserMessage(anthropic.NewToolResultBlock(m.Content[0].ID, "18C tokens=2", false)))
			back, err := c.Messages.New(ctx, params, aoption.WithHeader("X-Request-Id", id+"-result"))
			if err != nil {
				t.Fatal(err)
			}
			if back.StopReason != anthropic.StopReasonEndTurn || len(back.Content) != 1 || back.Content[0].Text != "t1 t2 " {
				t.Fatalf("after the tool result: %s", back.RawJSON())
			}
			rec, _ = d.Record(id + "-result")
			delivered[id+"-result"] = rec.CompletionTokens
		}
	})

	t.Run("cut stream", func(t *testing.T) {
		st := c.Messages.NewStreaming(ctx, anthropic.MessageNewParams{Model: model, MaxTokens: 50,
			Messages: userText("cut me tokens=5 fail-after=2")}, aoption.WithHeader("X-Request-Id", "m-cut"))
		var text strings.Builder
		for st.Next() {
			if ev := st.Current(); ev.Type == "content_block_delta" {
				text.WriteString(ev.Delta.Text)
			}
		}
		anthropicErr(t, st.Err(), 0, "api_error", "broke off")
		if text.String() != "t1 t2 " {
			t.Fatalf("delivered %q before the error", text.String())
		}
		rec, _ := d.Record("m-cut")
		if rec.CompletionTokens != 2 {
			t.Fatalf("double delivered %d", rec.CompletionTokens)
		}
		delivered["m-cut"] = rec.CompletionTokens
	})

	t.Run("count tokens", func(t *testing.T) {
		before := d.Requests()
		n, err := c.Messages.CountTokens(ctx, anthropic.MessageCountTokensParams{Model: model,
			Messages: userText("how many tokens is this")}, aoption.WithHeader("X-Request-Id", "m-count"))
		if err != nil {
			t.Fatal(err)
		}
		if n.InputTokens <= 0 || d.Requests() != before {
			t.Fatalf("count %d; backend requests %d → %d", n.InputTokens, before, d.Requests())
		}
	})

	t.Run("errors", func(t *testing.T) {
		bad := anthropicClient(s, aoption.WithAPIKey("sk-llm-nope.nope"))
		_, err := bad.Messages.New(ctx,
			anthropic.MessageNewParams{Model: model, MaxTokens: 5, Messages: userText("x")})
		anthropicErr(t, err, 401, "authentication_error", "invalid API key")
		_, err = c.Messages.New(ctx, anthropic.MessageNewParams{Model: "nope", MaxTokens: 5, Messages: userText("x")})
		anthropicErr(t, err, 404, "not_found_error", `"nope"`)
		_, err = c.Messages.New(ctx, anthropic.MessageNewParams{Model: model, MaxTokens: 5, Messages: userText("x"),
			Thinking: anthropic.ThinkingConfigParamOfEnabled(1024)})
		anthropicErr(t, err, 400, "invalid_request_error", "thinking")
		_, err = c.Messages.New(ctx, anthropic.MessageNewParams{Model: model, MaxTokens: 5, Messages: userText("x status=503")})
		// The backend's 5xx is the gateway's 502 after its retries.
		anthropicErr(t, err, 502, "api_error", "backend failed")
	})

	t.Run("bearer", func(t *testing.T) {
		bearer := anthropicClient(s, aoption.WithAuthToken(key))
		m, err := bearer.Messages.New(ctx,
			anthropic.MessageNewParams{Model: model, MaxTokens: 5, Messages: userText("tokens=1")}, aoption.WithHeader("X-Request-Id", "m-bearer"))
		if err != nil || m.Content[0].Text != "t1 " {
			t.Fatalf("%v %+v", err, m)
		}
		rec, _ := d.Record("m-bearer")
		delivered["m-bearer"] = rec.CompletionTokens
	})

	// Each request is charged exactly what the double delivered, a cut
	// stream included (its prompt at the gateway's estimate: the backend
	// never reported usage); refusals, failures and the count are not.
	got := charges(t, db, "acme")
	for id, n := range delivered {
		rec, _ := d.Record(id)
		c, ok := got[id]
		prompt := c.PromptTokens == rec.PromptTokens || (id == "m-cut" && c.PromptTokens > 0)
		if !ok || c.CompletionTokens != n || !prompt {
			t.Errorf("%s charged %+v, want %d prompt and %d completion tokens", id, c, rec.PromptTokens, n)
		}
		delete(got, id)
	}
	if len(got) != 0 {
		t.Errorf("other charges: %+v", got)
	}
}

// TestMessagesDemoModel: the embedded engine serves the Messages API by the
// same translation; the stream says what the plain answer says.
func TestMessagesDemoModel(t *testing.T) {
	s := llmctltest.Start(t, llmctltest.Options{Args: []string{"--engine-threads", "1"}})
	c := anthropicClient(s, aoption.WithAPIKey(s.AdminKey))
	ctx := ctxT(t)
	params := anthropic.MessageNewParams{Model: engine.DemoName, MaxTokens: 8, Messages: userText("tell me about the sea")}
	// v2 of the client no longer has a temperature field; the API has.
	greedy := aoption.WithJSONSet("temperature", 0)
	m, err := c.Messages.New(ctx, params, greedy)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Content) != 1 || len(strings.Fields(m.Content[0].Text)) < 2 || m.Usage.InputTokens <= 0 ||
		m.Usage.OutputTokens <= 0 || m.Usage.OutputTokens > 8 {
		t.Fatalf("demo answer %s", m.RawJSON())
	}
	if m.StopReason != anthropic.StopReasonMaxTokens && m.StopReason != anthropic.StopReasonEndTurn {
		t.Fatalf("stop reason %q", m.StopReason)
	}
	st := c.Messages.NewStreaming(ctx, params, greedy)
	var acc anthropic.Message
	for st.Next() {
		if err := acc.Accumulate(st.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	if len(acc.Content) != 1 || acc.Content[0].Text != m.Content[0].Text || acc.Usage.OutputTokens != m.Usage.OutputTokens ||
		acc.Usage.InputTokens != m.Usage.InputTokens || acc.StopReason != m.StopReason {
		t.Fatalf("stream %s\nplain %s", acc.RawJSON(), m.RawJSON())
	}
	n, err := c.Messages.CountTokens(ctx, anthropic.MessageCountTokensParams{Model: engine.DemoName, Messages: params.Messages})
	if err != nil || n.InputTokens <= 0 {
		t.Fatalf("count %v %v", n, err)
	}
}
