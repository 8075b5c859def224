package serve_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"

	"github.com/llmctl/llmctl/internal/upstreamdouble"
	"github.com/llmctl/llmctl/pkg/billing"
	"github.com/llmctl/llmctl/pkg/billing/ledger"
	"github.com/llmctl/llmctl/pkg/serve"
	"github.com/llmctl/llmctl/pkg/serve/engine"
)

// The Responses API (POST /v1/responses) through the official client, over
// a remote backend double and the embedded demo model.

func responsesClient(f *fixture, key string) openai.Client {
	return openai.NewClient(option.WithBaseURL(f.srv.URL+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0))
}

func textInput(s string) responses.ResponseNewParamsInputUnion {
	return responses.ResponseNewParamsInputUnion{OfString: openai.String(s)}
}

var weatherTool = responses.ToolUnionParam{OfFunction: &responses.FunctionToolParam{Name: "get_weather",
	Description: openai.String("the weather in a city"),
	Parameters:  map[string]any{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string"}}}}}

// streamed collects a Responses stream: event types, the final response,
// and the error event if one came.
type streamed struct {
	types    []string
	final    responses.Response
	text     strings.Builder
	args     strings.Builder
	errEvent *responses.ResponseStreamEventUnion
}

func collect(t *testing.T, s interface {
	Next() bool
	Current() responses.ResponseStreamEventUnion
	Err() error
}) *streamed {
	t.Helper()
	out := &streamed{}
	want := int64(0)
	for s.Next() {
		ev := s.Current()
		if ev.SequenceNumber != want {
			t.Errorf("event %d (%s) has sequence_number %d", want, ev.Type, ev.SequenceNumber)
		}
		want++
		out.types = append(out.types, ev.Type)
		switch ev.Type {
		case "response.output_text.delta":
			out.text.WriteString(ev.Delta)
		case "response.function_call_arguments.delta":
			out.args.WriteString(ev.Delta)
		case "response.completed", "response.incomplete":
			out.final = ev.Response
		case "error":
			out.errEvent = &ev
		}
	}
	if err := s.Err(); err != nil {
		t.Fatalf("stream: %v", err)
	}
	return out
}

// TestResponsesDoubleCharged: plain and streamed answers through a remote
// backend, each charged exactly the usage the response reports.
func TestResponsesDoubleCharged(t *testing.T) {
	d := upstreamdouble.Start(t, upstreamdouble.Options{})
	b := newBilled(t, d)
	b.fund(t, "pay", ledger.Unit)
	c := responsesClient(b.fixture, "good")
	ctx := context.Background()
	params := responses.ResponseNewParams{Model: "double-model", Input: textInput("w1 w2 cached=1 tokens=3"),
		Instructions: openai.String("be brief"), MaxOutputTokens: openai.Int(50), User: openai.String("alice"),
		Metadata: map[string]string{"ticket": "42"}}

	r, err := c.Responses.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if r.Object != "response" || !strings.HasPrefix(r.ID, "resp_") || r.Status != "completed" || r.OutputText() != "t1 t2 t3 " {
		t.Fatalf("response %s", r.RawJSON())
	}
	// 6 prompt words (instructions included), 1 cached, 3 completion tokens.
	if u := r.Usage; u.InputTokens != 6 || u.OutputTokens != 3 || u.TotalTokens != 9 || u.InputTokensDetails.CachedTokens != 1 {
		t.Fatalf("usage %+v", u)
	}
	if r.Metadata["ticket"] != "42" || r.Instructions.OfString != "be brief" || r.MaxOutputTokens != 50 {
		t.Errorf("echo lost: %s", r.RawJSON())
	}

	// A tenant short of credit is refused in this route's terms.
	credit := ledger.Entry{Key: "pay2", TenantID: "t2", Kind: ledger.KindCredit, Amount: 1, Time: time.Now()}
	if _, err := b.store.Apply(ctx, []ledger.Entry{credit}); err != nil {
		t.Fatal(err)
	}
	short := responsesClient(b.fixture, "new")
	_, err = short.Responses.New(ctx, params)
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusPaymentRequired ||
		!strings.Contains(apiErr.Message, "max_output_tokens=50") || strings.Contains(apiErr.Message, "max_tokens") {
		t.Fatalf("short of credit: %v: %s", err, apiErr.Message)
	}

	st := collect(t, c.Responses.NewStreaming(ctx, params))
	want := []string{"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
		"response.output_text.delta", "response.output_text.delta", "response.output_text.delta", "response.output_text.done",
		"response.content_part.done", "response.output_item.done", "response.completed"}
	if strings.Join(st.types, " ") != strings.Join(want, " ") {
		t.Fatalf("events %v\nwant   %v", st.types, want)
	}
	if st.text.String() != "t1 t2 t3 " || st.final.OutputText() != "t1 t2 t3 " || st.final.Usage.OutputTokens != 3 || st.final.Usage.InputTokens != 6 {
		t.Fatalf("stream text %q, final %s", st.text.String(), st.final.RawJSON())
	}

	// 5 full + 1 cached × 0.25 → 6 µ, 3 out, 10 per request = 19 µ each.
	es := b.entries(t)[1:] // after the credit
	if len(es) != 2 {
		t.Fatalf("entries %+v", es)
	}
	for i, e := range es {
		if e.Amount != -19 || e.PromptTokens != 6 || e.CachedPromptTokens != 1 || e.CompletionTokens != 3 || e.EndUser != "alice" {
			t.Errorf("charge %d: %+v", i, e)
		}
	}
}

// TestResponsesToolRoundTrip: the model calls a function (plain and
// streamed), the client answers with function_call / function_call_output
// items, and the model answers in text.
func TestResponsesToolRoundTrip(t *testing.T) {
	d := upstreamdouble.Start(t, upstreamdouble.Options{})
	f := newFixture(t, nil, d)
	c := responsesClient(f, "good")
	ctx := context.Background()
	params := responses.ResponseNewParams{Model: "double-model", Input: textInput("weather in Oslo tool=get_weather"),
		Tools: []responses.ToolUnionParam{weatherTool}}

	r, err := c.Responses.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Output) != 1 || r.Output[0].Type != "function_call" {
		t.Fatalf("output %s", r.RawJSON())
	}
	call := r.Output[0].AsFunctionCall()
	if call.Name != "get_weather" || call.Arguments != `{"words":4}` || call.CallID == "" {
		t.Fatalf("call %+v", call)
	}

	st := collect(t, c.Responses.NewStreaming(ctx, params))
	want := "response.created response.in_progress response.output_item.added response.function_call_arguments.delta " +
		"response.function_call_arguments.delta response.function_call_arguments.done response.output_item.done response.completed"
	if strings.Join(st.types, " ") != want || st.args.String() != `{"words":4}` {
		t.Fatalf("events %v, args %q", st.types, st.args.String())
	}
	if out := st.final.Output; len(out) != 1 || out[0].AsFunctionCall().Arguments != `{"words":4}` || out[0].AsFunctionCall().CallID == "" {
		t.Fatalf("final %s", st.final.RawJSON())
	}

	// The round trip: the call and its output go back as input items.
	callParam := call.ToParam()
	next := responses.ResponseNewParams{Model: "double-model", Tools: []responses.ToolUnionParam{weatherTool},
		Input: responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{
			responses.ResponseInputItemParamOfMessage("weather in Oslo tool=get_weather", responses.EasyInputMessageRoleUser),
			{OfFunctionCall: &callParam},
			{OfFunctionCallOutput: &responses.ResponseInputItemFunctionCallOutputParam{CallID: openai.String(call.CallID),
				Output: responses.ResponseInputItemFunctionCallOutputOutputUnionParam{OfString: openai.String("sunny tokens=2")}}},
		}}}
	r2, err := c.Responses.New(ctx, next)
	if err != nil {
		t.Fatal(err)
	}
	if r2.OutputText() != "t1 t2 " || r2.Output[0].Type != "message" {
		t.Fatalf("answer after the tool: %s", r2.RawJSON())
	}
}

// TestResponsesStreamCut: a stream the backend cuts mid-way ends with an
// error event, and the charge is what was delivered.
func TestResponsesStreamCut(t *testing.T) {
	d := upstreamdouble.Start(t, upstreamdouble.Options{})
	b := newBilled(t, d)
	b.fund(t, "pay", ledger.Unit)
	c := responsesClient(b.fixture, "good")
	st := collect(t, c.Responses.NewStreaming(context.Background(), responses.ResponseNewParams{Model: "double-model",
		Input: textInput("w1 w2 tokens=5 fail-after=2")}))
	if st.errEvent == nil || st.types[len(st.types)-1] != "error" || st.text.String() != "t1 t2 " {
		t.Fatalf("events %v, text %q", st.types, st.text.String())
	}
	if st.errEvent.Message == "" || st.errEvent.Code == "" {
		t.Errorf("error event %s", st.errEvent.RawJSON())
	}
	// The prompt is the gateway's estimate: a cut stream reports no usage.
	es := b.entries(t)[1:]
	if len(es) != 1 || es[0].CompletionTokens != 2 || es[0].PromptTokens == 0 || int64(es[0].Amount) != -(es[0].PromptTokens+2+10) {
		t.Fatalf("charge %+v, want the 2 delivered completion tokens", es)
	}
	if rec := d.Records(); len(rec) != 1 || rec[0].CompletionTokens != 2 {
		t.Fatalf("the double delivered %+v", rec)
	}
}

// TestResponsesEmbeddedEngine: the demo model answers plain, streamed, and
// after a function call round trip, settled by its own usage.
func TestResponsesEmbeddedEngine(t *testing.T) {
	eb, err := engine.OpenDemo(engine.Options{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eb.Close() })
	f := newFixture(t, func(o *serve.Options) { o.Backends = []serve.Backend{eb} })
	c := responsesClient(f, "good")
	ctx := context.Background()
	params := responses.ResponseNewParams{Model: engine.DemoName, Input: textInput("hello"),
		MaxOutputTokens: openai.Int(6), Temperature: openai.Float(0)}
	r, err := c.Responses.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if r.OutputText() == "" || r.Usage.OutputTokens == 0 || r.Usage.InputTokens == 0 {
		t.Fatalf("response %s", r.RawJSON())
	}
	if r.Status == "incomplete" && r.IncompleteDetails.Reason != "max_output_tokens" {
		t.Fatalf("incomplete without the reason: %s", r.RawJSON())
	}
	st := collect(t, c.Responses.NewStreaming(ctx, params))
	if st.text.String() != r.OutputText() || st.final.Usage.OutputTokens != r.Usage.OutputTokens {
		t.Fatalf("stream %q %+v, plain %q %+v", st.text.String(), st.final.Usage, r.OutputText(), r.Usage)
	}
	if st.types[0] != "response.created" || !strings.HasPrefix(st.types[len(st.types)-1], "response.") {
		t.Fatalf("events %v", st.types)
	}

	// Tool history the engine reads as conversation.
	next := responses.ResponseNewParams{Model: engine.DemoName, MaxOutputTokens: openai.Int(4), Temperature: openai.Float(0),
		Tools: []responses.ToolUnionParam{weatherTool},
		Input: responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{
			responses.ResponseInputItemParamOfMessage("weather in Oslo?", responses.EasyInputMessageRoleUser),
			responses.ResponseInputItemParamOfFunctionCall(`{"city":"Oslo"}`, "call_1", "get_weather"),
			{OfFunctionCallOutput: &responses.ResponseInputItemFunctionCallOutputParam{CallID: openai.String("call_1"),
				Output: responses.ResponseInputItemFunctionCallOutputOutputUnionParam{OfString: openai.String("sunny")}}},
		}}}
	r2, err := c.Responses.New(ctx, next)
	if err != nil {
		t.Fatal(err)
	}
	if r2.OutputText() == "" {
		t.Fatalf("after the tool: %s", r2.RawJSON())
	}
	var settled []billing.Usage
	f.rec.mu.Lock()
	for _, us := range f.rec.settled {
		settled = append(settled, us...)
	}
	f.rec.mu.Unlock()
	if len(settled) != 3 {
		t.Fatalf("settled %+v", settled)
	}
}
