package e2e

import (
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/responses"

	"github.com/llmctl/llmctl/internal/llmctltest"
	"github.com/llmctl/llmctl/internal/upstreamdouble"
	"github.com/llmctl/llmctl/pkg/serve/engine"
)

// streamText reads a Responses stream: its text, its event types, and the
// usage of its final event.
func streamText(t *testing.T, c openai.Client, p responses.ResponseNewParams) (string, []string, responses.ResponseUsage) {
	t.Helper()
	s := c.Responses.NewStreaming(ctxT(t), p)
	var text strings.Builder
	var types []string
	var usage responses.ResponseUsage
	for i := int64(0); s.Next(); i++ {
		ev := s.Current()
		if ev.SequenceNumber != i {
			t.Fatalf("event %d %s: sequence_number %d", i, ev.Type, ev.SequenceNumber)
		}
		types = append(types, ev.Type)
		switch ev.Type {
		case "response.output_text.delta", "response.function_call_arguments.delta":
			text.WriteString(ev.Delta)
		case "response.completed", "response.incomplete":
			usage = ev.Response.Usage
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return text.String(), types, usage
}

// TestResponsesAPI: the built binary serves POST /v1/responses to the
// official client over a remote backend: plain, streamed, a function call
// round trip, and a stream cut mid-way ending in an error event.
func TestResponsesAPI(t *testing.T) {
	d := upstreamdouble.Start(t, upstreamdouble.Options{Name: "a"})
	s := llmctltest.Start(t, llmctltest.Options{Args: []string{"--backend", "a=" + d.URL()}})
	c := client(s, s.AdminKey)
	ctx := ctxT(t)
	in := func(s string) responses.ResponseNewParamsInputUnion {
		return responses.ResponseNewParamsInputUnion{OfString: openai.String(s)}
	}

	r, err := c.Responses.New(ctx, responses.ResponseNewParams{Model: model, Input: in("hello there tokens=3")})
	if err != nil {
		t.Fatal(err)
	}
	if r.OutputText() != "t1 t2 t3 " || r.Usage.InputTokens != 3 || r.Usage.OutputTokens != 3 {
		t.Fatalf("response %s", r.RawJSON())
	}
	text, types, usage := streamText(t, c, responses.ResponseNewParams{Model: model, Input: in("hello there tokens=3")})
	if text != "t1 t2 t3 " || usage.OutputTokens != 3 || types[0] != "response.created" || types[len(types)-1] != "response.completed" {
		t.Fatalf("stream %q %v %+v", text, types, usage)
	}

	tool := responses.ToolUnionParam{OfFunction: &responses.FunctionToolParam{Name: "lookup",
		Parameters: map[string]any{"type": "object"}}}
	ask := responses.ResponseNewParams{Model: model, Input: in("find it tool=lookup"), Tools: []responses.ToolUnionParam{tool}}
	args, types, _ := streamText(t, c, ask)
	if args != `{"words":3}` || !strings.Contains(strings.Join(types, " "), "response.function_call_arguments.done") {
		t.Fatalf("tool call %q %v", args, types)
	}
	r, err = c.Responses.New(ctx, ask)
	if err != nil || len(r.Output) != 1 {
		t.Fatalf("tool call: %v %s", err, r.RawJSON())
	}
	call := r.Output[0].AsFunctionCall()
	callParam := call.ToParam()
	r, err = c.Responses.New(ctx, responses.ResponseNewParams{Model: model, Tools: []responses.ToolUnionParam{tool},
		Input: responses.ResponseNewParamsInputUnion{OfInputItemList: responses.ResponseInputParam{
			responses.ResponseInputItemParamOfMessage("find it tool=lookup", responses.EasyInputMessageRoleUser),
			{OfFunctionCall: &callParam},
			{OfFunctionCallOutput: &responses.ResponseInputItemFunctionCallOutputParam{CallID: openai.String(call.CallID),
				Output: responses.ResponseInputItemFunctionCallOutputOutputUnionParam{OfString: openai.String("found tokens=1")}}},
		}}})
	if err != nil || r.OutputText() != "t1 " {
		t.Fatalf("after the tool: %v %s", err, r.RawJSON())
	}

	st := c.Responses.NewStreaming(ctx, responses.ResponseNewParams{Model: model, Input: in("x tokens=4 fail-after=1")})
	last := ""
	for st.Next() {
		last = st.Current().Type
	}
	if st.Err() != nil || last != "error" {
		t.Fatalf("cut stream ended with %q (%v)", last, st.Err())
	}
}

// TestResponsesDemo: the embedded demo model answers the Responses API,
// streamed and not, with the same greedy text.
func TestResponsesDemo(t *testing.T) {
	s := llmctltest.Start(t, llmctltest.Options{Args: []string{"--engine-threads", "1"}})
	c := client(s, s.AdminKey)
	p := responses.ResponseNewParams{Model: engine.DemoName, MaxOutputTokens: openai.Int(8), Temperature: openai.Float(0),
		Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("tell me about the sea")}}
	r, err := c.Responses.New(ctxT(t), p)
	if err != nil {
		t.Fatal(err)
	}
	if r.OutputText() == "" || r.Usage.OutputTokens <= 0 || r.Usage.OutputTokens > 8 {
		t.Fatalf("response %s", r.RawJSON())
	}
	text, _, usage := streamText(t, c, p)
	if text != r.OutputText() || usage.OutputTokens != r.Usage.OutputTokens {
		t.Fatalf("stream %q %+v, plain %q %+v", text, usage, r.OutputText(), r.Usage)
	}
}
