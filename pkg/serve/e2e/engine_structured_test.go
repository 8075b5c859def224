package e2e

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/shared"

	"github.com/llmctl/llmctl/internal/llmctltest"
	"github.com/llmctl/llmctl/pkg/serve/engine"
)

// TestEngineStructuredOutput drives `llmctl serve` (the demo model) with
// the stock openai-go client: response_format json_schema answers parse
// as the schema, a required tool call comes back as tool_calls (streamed
// and not) and its result renders for the next turn, logprobs come back,
// and a field the engine does not do (n > 1) is a 400 naming it.
func TestEngineStructuredOutput(t *testing.T) {
	s := llmctltest.Start(t, llmctltest.Options{Args: []string{"--engine-threads", "1"}})
	c := client(s, s.AdminKey)
	ctx := ctxT(t)
	user := []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Who is the first king?")}

	schema := map[string]any{"type": "object", "properties": map[string]any{
		"name": map[string]any{"type": "string", "maxLength": 16}, "age": map[string]any{"type": "integer"},
	}, "required": []string{"name", "age"}, "additionalProperties": false}
	resp, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: engine.DemoName, Messages: user, MaxTokens: openai.Int(48), Seed: openai.Int(7),
		ResponseFormat: openai.ChatCompletionNewParamsResponseFormatUnion{OfJSONSchema: &shared.ResponseFormatJSONSchemaParam{
			JSONSchema: shared.ResponseFormatJSONSchemaJSONSchemaParam{Name: "king", Strict: openai.Bool(true), Schema: schema}}}})
	if err != nil {
		t.Fatal(err)
	}
	var king struct {
		Name *string `json:"name"`
		Age  *int64  `json:"age"`
	}
	if err := json.Unmarshal([]byte(resp.Choices[0].Message.Content), &king); err != nil || king.Name == nil || king.Age == nil || len([]rune(*king.Name)) > 16 {
		t.Fatalf("answer %q does not hold to the schema: %v", resp.Choices[0].Message.Content, err)
	}

	tools := []openai.ChatCompletionToolUnionParam{openai.ChatCompletionFunctionTool(shared.FunctionDefinitionParam{
		Name: "get_weather", Description: openai.String("Weather in a city"),
		Parameters: shared.FunctionParameters{"type": "object", "properties": map[string]any{"city": map[string]any{"type": "string", "maxLength": 10}}, "required": []string{"city"}},
	})}
	params := openai.ChatCompletionNewParams{Model: engine.DemoName, Messages: user, MaxTokens: openai.Int(40), Temperature: openai.Float(0), Tools: tools,
		ToolChoice: openai.ChatCompletionToolChoiceOptionUnionParam{OfAuto: openai.String("required")}}
	resp, err = c.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	msg := resp.Choices[0].Message
	if resp.Choices[0].FinishReason != "tool_calls" || len(msg.ToolCalls) != 1 || msg.ToolCalls[0].Function.Name != "get_weather" {
		t.Fatalf("no tool call: %+v", resp.Choices[0])
	}
	var args struct{ City *string }
	if err := json.Unmarshal([]byte(msg.ToolCalls[0].Function.Arguments), &args); err != nil || args.City == nil {
		t.Fatalf("arguments %q: %v", msg.ToolCalls[0].Function.Arguments, err)
	}
	// Streamed, the same call arrives as delta.tool_calls: first its id and
	// name with no arguments, then the arguments as they are generated. How
	// many pieces depends on how many tokens the engine made between two
	// reads of the stream (under load, several), so it is not asserted
	// here; toolcall's TestParserPieces holds the fragmenting itself.
	st := c.Chat.Completions.NewStreaming(ctx, params)
	var acc openai.ChatCompletionAccumulator
	deltas := 0
	for st.Next() {
		acc.AddChunk(st.Current())
		for _, ch := range st.Current().Choices {
			for _, tc := range ch.Delta.ToolCalls {
				if deltas == 0 && (tc.ID == "" || tc.Function.Name != "get_weather" || tc.Function.Arguments != "") {
					t.Fatalf("first tool-call delta %+v: want its id and name, no arguments", tc)
				}
				deltas++
			}
		}
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	if deltas < 2 {
		t.Fatalf("the call came in %d delta(s): want its start, then its arguments", deltas)
	}
	if len(acc.Choices) != 1 || acc.Choices[0].FinishReason != "tool_calls" || len(acc.Choices[0].Message.ToolCalls) != 1 ||
		acc.Choices[0].Message.ToolCalls[0].Function.Arguments != msg.ToolCalls[0].Function.Arguments {
		t.Fatalf("streamed %+v, plain %+v", acc.Choices, msg.ToolCalls)
	}
	// The call and its result go back for the next turn.
	next := openai.ChatCompletionNewParams{Model: engine.DemoName, MaxTokens: openai.Int(8), Temperature: openai.Float(0), Tools: tools,
		Messages: append(user, msg.ToParam(), openai.ToolMessage("sunny", msg.ToolCalls[0].ID))}
	resp, err = c.Chat.Completions.New(ctx, next)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Choices[0].Message.Content == "" || len(resp.Choices[0].Message.ToolCalls) != 0 {
		t.Fatalf("next turn: %+v", resp.Choices[0])
	}

	resp, err = c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: engine.DemoName, Messages: user, MaxTokens: openai.Int(4),
		Temperature: openai.Float(0), Logprobs: openai.Bool(true), TopLogprobs: openai.Int(2)})
	if err != nil {
		t.Fatal(err)
	}
	if lp := resp.Choices[0].Logprobs.Content; int64(len(lp)) != resp.Usage.CompletionTokens || len(lp[0].TopLogprobs) != 2 || lp[0].Logprob > 0 {
		t.Fatalf("logprobs %+v for %d tokens", lp, resp.Usage.CompletionTokens)
	}

	_, err = c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: engine.DemoName, Messages: user, N: openai.Int(2)})
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != 400 || apiErr.Param != "n" {
		t.Fatalf("n=2: got %v, want a 400 on n", err)
	}
}
